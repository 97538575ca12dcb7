import Dispatch
import Synchronization

/// An event decided by the writer whose payload (keys sealed, canonical JSON) is still to be
/// made. Sealing and encoding were about a third of the writer's time on an import; they need
/// nothing of the transaction, so a run of decided events is encoded on every core at once and
/// then chained and stored in order (see `Writer`).
package struct DecidedEvent: Sendable {
    package var event: RegistryEvent
    /// One nonce per sealed key, drawn in the order the codec seals them (primary, secondary),
    /// on the writer thread: the generator is drawn exactly as a one-at-a-time writer would.
    /// Kept end to end in one array (`KeySealer.nonceSize` bytes each): one allocation per event.
    package var nonces: [UInt8]
    package var actor: String
    package var requestId: String

    package init(_ event: RegistryEvent, actor: String, requestId: String, random: inout some RandomNumberGenerator) {
        self.event = event
        self.actor = actor
        self.requestId = requestId
        let keys: SymmetricKey
        switch event.identity {
        case .device(let d): keys = d.authentication.symmetricKey
        case .module(let m): keys = m.authentication.symmetricKey
        }
        let sealed = (keys.primaryKey == nil ? 0 : 1) + (keys.secondaryKey == nil ? 0 : 1)
        nonces = []
        for _ in 0..<sealed { appendRandomBytes(KeySealer.nonceSize, to: &nonces, using: &random) }
    }

    package var nonceCount: Int { nonces.count / KeySealer.nonceSize }

    /// What the ordered part of a write needs of this event, made off it: the payload in
    /// canonical JSON (keys sealed) and the record's pieces around the chain fields.
    package struct Prepared: Sendable {
        package var payloadBytes: [UInt8]
        package var disabled: Bool
        package var connected: Bool
        package var parts: EventRecord.Parts
    }

    package func prepare(sealer: KeySealer) -> Prepared {
        var next = 0
        // The closure captures these, not `self` (which copied the whole event per call).
        let (nonces, nonceCount) = (self.nonces, self.nonceCount)
        let bytes = IdentityCodec.canonicalBytes(event.identity) { key, slot, out in
            // Pair assertion: the codec seals exactly the keys counted above, in that order.
            precondition(next < nonceCount, "a key was sealed that had no nonce drawn")
            defer { next += 1 }
            out.append(34)
            sealer.seal(key, context: slot.contextBytes, nonce: nonces[(next * KeySealer.nonceSize)..<((next + 1) * KeySealer.nonceSize)], into: &out)
            out.append(34)
        }
        precondition(next == nonceCount, "a drawn nonce was not used")
        let (disabled, connected) =
            if case .device(let d) = event.identity { (d.status == .disabled, d.connectionState == .connected) } else { (false, false) }
        return Prepared(
            payloadBytes: bytes,
            disabled: disabled,
            connected: connected,
            parts: EventRecord.Parts(
                seq: event.seq,
                time: event.time,
                type: event.type,
                deviceId: event.deviceId,
                moduleId: event.moduleId,
                actor: actor,
                requestId: requestId,
                payloadBytes: bytes
            )
        )
    }

    /// Every event of `events` prepared, in order, now: on this thread for a few (an API
    /// write), else shared with the helpers as a `PreparingRun` this thread waits on and works in.
    package static func prepareAll(_ events: [DecidedEvent], sealer: KeySealer) -> [Prepared] {
        guard isWorthSharing(events.count) else { return events.map { $0.prepare(sealer: sealer) } }
        return PreparingRun(events, sealer: sealer).wait()
    }

    /// Below this many events per share, handing work to other threads costs more than it saves.
    package static let minimumPerShare = 16

    /// Whether `count` events are enough to share with (or free on) other threads.
    package static func isWorthSharing(_ count: Int) -> Bool { count >= 2 * minimumPerShare }
}

/// A run of decided events being prepared on Dispatch's pool while the writer decides the next.
/// The run is cut into shares that threads claim one at a time; the writer, once it needs the
/// run, claims whatever no helper has started instead of sleeping (it waited on the helpers for
/// a tenth of an import while a core idled).
package final class PreparingRun: Sendable {
    package let events: [DecidedEvent]
    private let sealer: KeySealer
    private let shares: Int
    private let nextShare = Atomic<Int>(0)
    private let group = DispatchGroup()
    private let results: Mutex<[[DecidedEvent.Prepared]]>

    package init(_ events: [DecidedEvent], sealer: KeySealer) {
        self.events = events
        self.sealer = sealer
        // Several shares per core, so a preempted share does not hold the run up.
        shares = max(1, min(4 * Replayer.cores, events.count / DecidedEvent.minimumPerShare))
        results = Mutex(Array(repeating: [], count: shares))
        for _ in 0..<min(shares, Replayer.cores) {
            group.enter()
            DispatchQueue.global().async {
                self.work()
                self.group.leave()
            }
        }
    }

    /// Prepares shares until none is left to claim.
    private func work() {
        while true {
            let share = nextShare.wrappingAdd(1, ordering: .relaxed).oldValue
            guard share < shares else { return }
            let range = (events.count * share / shares)..<(events.count * (share + 1) / shares)
            // By index: `map` over the slice copied (and retained) every event first.
            var prepared: [DecidedEvent.Prepared] = []
            prepared.reserveCapacity(range.count)
            for i in range { prepared.append(events[i].prepare(sealer: sealer)) }
            results.withLock { $0[share] = prepared }
        }
    }

    /// The prepared events, in order, once every share is done (the caller helps). They are
    /// handed over, not shared (the writer chains each record in place): a second call gets none.
    @discardableResult
    package func wait() -> [DecidedEvent.Prepared] {
        work()
        group.wait()
        return results.withLock { shares in
            defer { shares = [] }
            return shares.flatMap { $0 }
        }
    }
}
