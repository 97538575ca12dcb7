import Dispatch
import Foundation
import LMDB
import Synchronization

/// Rebuilds projections from the log and compares them with live ones.
///
/// Replay runs `Projections.apply`, the very code the writer runs, from sequence 1 into an empty
/// environment, checking sequence continuity and the hash chain on the way.
public enum Replayer {
    /// What a verification found.
    public enum Outcome: Sendable, Hashable {
        case clean
        /// The log itself is bad at `seq` (gap, broken chain, undecodable or non-canonical record).
        case logCorrupt(seq: UInt64, reason: String)
        /// The log is fine but a live projection differs from the rebuilt one.
        case projectionDiffers(database: String, key: String, detail: String)
    }

    public struct Report: Sendable, Hashable {
        public var events: UInt64 = 0
        public var devices = 0
        public var modules = 0
        public var historyEntries = 0
        public var outcome: Outcome = .clean
        public init() {}
    }

    /// Events applied per scratch transaction.
    static let chunk = 10_000

    /// Replays the whole log of `source` into a fresh environment in `scratchPath` (an empty,
    /// existing directory) and compares every projection with the live one, all against one
    /// consistent snapshot of the source (safe while a daemon writes it).
    public static func verify(source: RegistryStorage, scratchPath: String, progress: ((UInt64) -> Void)? = nil) throws -> Report {
        // The scratch copy is disposable: no flushes.
        let scratch = try Environment(configuration: .init(path: scratchPath, mapSize: 64 << 20, flags: [.noSync]))
        let scratchDatabases = try scratch.write { txn in try RegistryDatabases.open(in: txn) }
        return try source.read { txn, live in
            var report = Report()
            if let corrupt = try rebuild(from: txn, live.events, into: scratch, scratchDatabases, report: &report, progress: progress) {
                report.outcome = corrupt
                return report
            }
            report.outcome = try scratch.read { rebuilt in
                try compare(live: txn, live, rebuilt: rebuilt, scratchDatabases, report: &report)
            }
            return report
        }
    }

    /// Applies every event of `events` (verified; up to `point` when given) to the projections in
    /// `target`, copying the events too when asked. Returns the corruption found, if any.
    public static func rebuild<T: ReadableTransaction & ~Copyable>(
        from txn: borrowing T,
        _ events: Database,
        into target: Environment,
        _ targetDatabases: RegistryDatabases,
        report: inout Report,
        until point: ReplayPoint? = nil,
        copyEvents: Bool = false,
        progress: ((UInt64) -> Void)? = nil
    ) throws -> Outcome? {
        var pending: [(event: VerifiedEvent, bytes: [UInt8])] = []
        var expected: UInt64 = 1
        var prevHash = EventRecord.genesisHash
        var corruption: Outcome?
        func flush() throws {
            let records = pending
            try target.write { out in
                for (event, bytes) in records {
                    if copyEvents { try out.put(targetDatabases.events, StorageKey.sequence(event.seq), bytes, flags: .append) }
                    try Projections.apply(event, txn: out, databases: targetDatabases)
                }
            }
            pending.removeAll(keepingCapacity: true)
            progress?(expected - 1)
        }
        // Each record's own hash needs only its bytes and its stored prevHash, so a chunk is
        // checked on every core at once; the chain links and the fold then run in order.
        var raw: [([UInt8], [UInt8])] = []
        func process() throws -> Bool {
            let checks = parallelMap(raw) { entry in EventRecord.selfCheck(entry.1) }
            defer { raw.removeAll(keepingCapacity: true) }
            for ((key, value), check) in zip(raw, checks) {
                let result: Result<VerifiedEvent, EventDecodingError>
                switch check {
                case .none:
                    result = EventRecord.fastVerified(value, expectedSeq: expected, prevHash: prevHash)
                case .some(let (fast, hashMatches)):
                    if fast.seq != expected {
                        result = .failure(EventDecodingError("sequence \(fast.seq) where \(expected) was expected"))
                    } else if fast.prevHash != prevHash {
                        result = .failure(EventDecodingError("prevHash does not match the previous event's hash"))
                    } else if !hashMatches {
                        result = .failure(EventDecodingError("hash does not match the content"))
                    } else {
                        result = .success(fast.event)
                    }
                }
                switch result {
                case .failure(let error):
                    corruption = .logCorrupt(seq: StorageKey.sequence(from: key) ?? expected, reason: error.description)
                    return false
                case .success(let event):
                    // Point-in-time stops need the event's time: decode only then.
                    if let point, !point.includes(try EventRecord.decode(value)) { return false }
                    pending.append((event, value))
                    prevHash = event.hash
                    expected += 1
                }
            }
            try flush()
            return true
        }
        var going = true
        try txn.scan(events) { key, value in
            raw.append((key, value))
            if raw.count >= chunk { going = try process() }
            return going
        }
        if going, !raw.isEmpty { _ = try process() }
        try flush()
        report.events = expected - 1
        return corruption
    }

    /// `transform` over `items`, split across the cores (Dispatch's pool, not the cooperative one).
    static func parallelMap<T: Sendable>(_ items: [([UInt8], [UInt8])], _ transform: @Sendable (([UInt8], [UInt8])) -> T) -> [T] {
        let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        guard items.count >= 64, parts > 1 else { return items.map(transform) }
        let results = Mutex<[[T]]>(Array(repeating: [], count: parts))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let local = items[(items.count * part / parts)..<(items.count * (part + 1) / parts)].map(transform)
            results.withLock { $0[part] = local }
        }
        return results.withLock { $0.flatMap { $0 } }
    }

    /// Compares the projection databases entry by entry.
    static func compare<L: ReadableTransaction & ~Copyable, R: ReadableTransaction & ~Copyable>(
        live: borrowing L,
        _ liveDatabases: RegistryDatabases,
        rebuilt: borrowing R,
        _ rebuiltDatabases: RegistryDatabases,
        report: inout Report
    ) throws -> Outcome {
        let pairs = [
            (liveDatabases.devices, rebuiltDatabases.devices),
            (liveDatabases.modules, rebuiltDatabases.modules),
            (liveDatabases.history, rebuiltDatabases.history),
        ]
        var counts: [Int] = []
        for (l, r) in pairs {
            var count = 0
            let difference = try live.withCursor(l) { a in
                try rebuilt.withCursor(r) { b -> Outcome? in
                    var x = try a.first()
                    var y = try b.first()
                    while x != nil || y != nil {
                        switch (x, y) {
                        case (let lx?, let ry?) where lx.key == ry.key:
                            if lx.value != ry.value { return .projectionDiffers(database: l.name, key: describe(lx.key, l.name), detail: "value differs from the replayed one") }
                            count += 1
                            x = try a.next()
                            y = try b.next()
                        case (let lx?, let ry?) where lx.key.lexicographicallyPrecedes(ry.key):
                            return .projectionDiffers(database: l.name, key: describe(lx.key, l.name), detail: "present in the live projection, absent from the replay")
                        case (nil, let ry?), (_?, let ry?):
                            return .projectionDiffers(database: l.name, key: describe(ry.key, l.name), detail: "absent from the live projection, present in the replay")
                        case (let lx?, nil):
                            return .projectionDiffers(database: l.name, key: describe(lx.key, l.name), detail: "present in the live projection, absent from the replay")
                        case (nil, nil):
                            break
                        }
                    }
                    return nil
                }
            }
            if let difference { return difference }
            counts.append(count)
        }
        (report.devices, report.modules, report.historyEntries) = (counts[0], counts[1], counts[2])
        for counter in [MetaKey.disabledDevices, MetaKey.connectedDevices] {
            let liveValue = try live.get(liveDatabases.meta, counter) ?? StorageKey.sequence(0)
            let rebuiltValue = try rebuilt.get(rebuiltDatabases.meta, counter) ?? StorageKey.sequence(0)
            if liveValue != rebuiltValue {
                return .projectionDiffers(database: "meta", key: String(decoding: counter, as: UTF8.self), detail: "counter differs from the replayed one")
            }
        }
        return .clean
    }

    /// A readable form of a projection key: `device`, `device/module` or `device@seq`.
    static func describe(_ key: [UInt8], _ database: String) -> String {
        guard let zero = key.firstIndex(of: 0) else { return String(decoding: key, as: UTF8.self) }
        let device = String(decoding: key[..<zero], as: UTF8.self)
        let rest = Array(key[(zero + 1)...])
        if database == "history", let seq = StorageKey.sequence(from: rest) { return "\(device)@\(seq)" }
        return "\(device)/\(String(decoding: rest, as: UTF8.self))"
    }
}
