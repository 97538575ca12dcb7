import Logging
import PostgresNIO
import RegistryCore
import Synchronization

/// A node's local view of the log: the committed sequence it has seen (which wakes SSE streams
/// and delivery on this node) and a node-local projection of every identity document, which
/// device authentication reads (`credentials`), so brokers keep admitting devices while the
/// database fails over.
///
/// Fed by the log itself, in seq order, with the same fold as the stored projections (an
/// event's payload is the identity's new document): by this node's writer right after each of
/// its commits, and for other nodes' commits on a `LISTEN` notification (sent inside the
/// committing transaction, so only after it commits) or, when a notification is lost with its
/// connection, by a slow poll. A disable or key change made on any node reaches every node's
/// answers within the notification latency.
final class LogFollower: Sendable {
    /// The notification channel; the payload is `seq hub`.
    static let channel = "registryd_commits"

    static func payload(hub: String, seq: UInt64) -> String { "\(seq) \(hub)" }

    private struct State {
        var applied: UInt64 = 0
        /// The hash of the event at `applied`: a log that no longer continues from it (a
        /// failover that lost commits the old primary had) makes the view reload.
        var appliedHash = Hash32(EventRecord.genesisHash)
        /// Identity key (as the stored tables') → the identity's current document.
        var documents: [[UInt8]: [UInt8]] = [:]
        /// The last seq of this node's latest COMMIT (its writer folds those events).
        var ownCommitThrough: UInt64 = 0
    }

    private let state = Mutex(State())
    /// The catch-up in flight that readers waiting for the view share (`reach`).
    private let sharedCatchUp = Mutex<Task<Void, Never>?>(nil)
    private let client: PostgresClient
    private let hub: String
    private let commits: CommitSignal
    private let logger: Logger
    /// Events read per round trip while catching up.
    static let page = 2_000

    init(client: PostgresClient, hub: String, commits: CommitSignal, logger: Logger) {
        self.client = client
        self.hub = hub
        self.commits = commits
        self.logger = logger
    }

    /// The last seq folded into this node's view.
    var applied: UInt64 { state.withLock { $0.applied } }

    /// The device's document and the identity's (the module's, or the device's again).
    func documents(deviceId: String, moduleId: String?) -> (device: [UInt8], identity: [UInt8])? {
        let deviceKey = IdentityKey.of(deviceId: deviceId, moduleId: nil)
        return state.withLock { s in
            guard let device = s.documents[deviceKey] else { return nil }
            guard let moduleId else { return (device, device) }
            guard let module = s.documents[IdentityKey.of(deviceId: deviceId, moduleId: moduleId)] else { return nil }
            return (device, module)
        }
    }

    /// Of `deviceIds`, those that do not exist, when the view has folded the log exactly through
    /// `head` (which its caller holds locked, so the view is the stored state); `nil` when it
    /// has not (another node's commit not folded yet), and the caller reads the tables.
    /// The hash too: after a failover that lost commits, another node may have committed other
    /// events at the same seqs, and the view must not pass for the stored state.
    func absentDevices(_ deviceIds: Set<String>, ifCurrentAt head: (seq: UInt64, hash: [UInt8])) -> Set<String>? {
        let keys = deviceIds.map { ($0, IdentityKey.of(deviceId: $0, moduleId: nil)) }
        let hash = Hash32(head.hash)
        return state.withLock { s in
            guard s.applied == head.seq, s.appliedHash == hash else { return nil }
            var absent: Set<String> = []
            for (id, key) in keys where s.documents[key] == nil { absent.insert(id) }
            return absent
        }
    }

    /// The document stored under an identity key (as the tables'), as this node's view holds it.
    func document(key: [UInt8]) -> [UInt8]? {
        state.withLock { $0.documents[key] }
    }

    /// Whether the view has folded the log through `seq`, catching up (one read shared by every
    /// reader waiting, a bounded number of times) when it has not yet: another node's commit
    /// reaches the view on its notification, usually before a reader asks.
    func reach(_ seq: UInt64) async -> Bool {
        for _ in 0..<3 {
            if applied >= seq { return true }
            let task = sharedCatchUp.withLock { running -> Task<Void, Never> in
                if let running { return running }
                let started = Task { _ = try? await self.catchUp() }
                running = started
                return started
            }
            await task.value
            sharedCatchUp.withLock { if $0 == task { $0 = nil } }
        }
        return applied >= seq
    }

    /// Loads the projection from one snapshot of the stored tables (consistent with the head
    /// read in the same snapshot).
    func load() async throws {
        let loaded = try await client.withConnection { connection -> State in
            try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                var loaded = State()
                for try await (seq, hash) in try await connection.query("SELECT seq, hash FROM log_head WHERE hub = \(hub)", logger: logger)
                    .decode((Int64, ByteBuffer).self)
                {
                    loaded.applied = UInt64(seq)
                    loaded.appliedHash = Hash32(hash.readableBytesView)
                }
                for table in ["devices", "modules"] {
                    let rows = try await connection.query(
                        PostgresQuery(unsafeSQL: "SELECT key, doc FROM \(table) WHERE hub = $1", binds: Self.binds(hub)),
                        logger: logger
                    )
                    for try await (key, doc) in rows.decode((ByteBuffer, ByteBuffer).self) {
                        loaded.documents[Array(key.readableBytesView)] = Array(doc.readableBytesView)
                    }
                }
                try await connection.query("COMMIT", logger: logger)
                return loaded
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
        state.withLock { $0 = loaded }
        commits.publish(loaded.applied)
    }

    private static func binds(_ hub: String) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(hub)
        return binds
    }

    /// This node's writer is about to send COMMIT for a batch ending at `seq`: the notification
    /// of that commit is then its own, whose events it folds itself (`committed`), and the
    /// listener does not read them back.
    func committing(through seq: UInt64) {
        state.withLock { $0.ownCommitThrough = max($0.ownCommitThrough, seq) }
    }

    /// This node's writer's batch did not commit: a notification up to its seq is another
    /// node's again, and those skipped meanwhile (taken for this node's own) are read now.
    func commitFailed() {
        let skipped = state.withLock { s in
            defer { s.ownCommitThrough = 0 }
            return s.ownCommitThrough > s.applied
        }
        if skipped { Task { try? await self.catchUp() } }
    }

    /// This node's writer committed these events (the last at `seq`): folds them now, reading
    /// any other node's commits before them first.
    func committed(_ entries: [FoldEntry], through seq: UInt64) async {
        let first = seq - UInt64(entries.count) + 1
        if applied + 1 < first {
            // Another node committed in between: its events (and ours) are read from the log
            // by a catch-up of their own, never on the writer's path (which must not wait on
            // the database after its commit).
            Task { try? await self.catchUp() }
            return
        }
        if !fold(entries) {
            // The view does not continue into what this writer committed (a failover lost
            // commits it had folded): the catch-up finds the divergence and reloads.
            Task { try? await self.catchUp() }
        }
    }

    /// Whether a commit notification for `seq` may be left unread: this node folded it already,
    /// or it is this node's own commit, which its writer folds.
    func needsCatchUp(forNotified seq: UInt64) -> Bool {
        state.withLock { s in seq > s.applied && seq > s.ownCommitThrough }
    }

    /// Reads and folds every committed event past `applied`.
    @discardableResult
    func catchUp() async throws -> UInt64 {
        while true {
            let from = applied + 1
            let (records, headSeq, headHash) = try await client.leased(within: PostgresStore.connectionWait) { [hub, logger] connection in
                try await withDeadline(.seconds(10), "reading the log") {
                    var (headSeq, headHash): (UInt64, Hash32?) = (0, nil)
                    for try await (seq, hash) in try await connection.query("SELECT seq, hash FROM log_head WHERE hub = \(hub)", logger: logger)
                        .decode((Int64, ByteBuffer).self)
                    {
                        (headSeq, headHash) = (UInt64(seq), Hash32(hash.readableBytesView))
                    }
                    let records = try await PostgresReads.records(from: from, limit: Self.page, hub: hub, on: connection, logger: logger)
                    return (records, headSeq, headHash)
                }
            }
            let entries = try records.map { try FoldEntry(record: $0) }
            // At the head (read before the records, so it may be behind them), the view must hold
            // its hash: the same seq with another hash is a log rewritten past a failover.
            let divergedAtHead = {
                self.state.withLock { s in s.applied == headSeq && headHash != nil && s.appliedHash != headHash }
            }
            if headSeq < from - 1 || !fold(entries) || divergedAtHead() {
                // The log no longer continues from what this node folded (a failover lost
                // commits the old primary had): start over from the stored projections.
                logger.warning("the log diverged from this node's view (a failover lost commits?); reloading it")
                try await load()
                return applied
            }
            if records.count < Self.page { return applied }
        }
    }

    /// Folds events in seq order; events already folded are skipped (a catch-up and the writer
    /// may race), and a gap stops the fold (the next catch-up fills it). Returns false when the
    /// next event does not continue from the folded one's hash (the view must reload).
    @discardableResult
    private func fold(_ entries: [FoldEntry]) -> Bool {
        let (seq, continues): (UInt64?, Bool) = state.withLock { s in
            let before = s.applied
            for entry in entries {
                if entry.seq <= s.applied { continue }
                guard entry.seq == s.applied + 1 else { break }
                guard entry.prevHash == s.appliedHash else { return (nil, false) }
                s.documents[entry.key] = entry.document
                s.applied = entry.seq
                s.appliedHash = entry.hash
            }
            return (s.applied > before ? s.applied : nil, true)
        }
        if let seq { commits.publish(seq) }
        return continues
    }

    /// Follows other nodes' commits until cancelled: notifications, and a poll every
    /// `pollInterval` for those lost with a connection (the poll also tells `reachability`).
    func run(pollInterval: Duration, reachability: Reachability) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen(reachability: reachability) }
            group.addTask { await self.poll(every: pollInterval, reachability: reachability) }
            await group.waitForAll()
        }
    }

    private func poll(every interval: Duration, reachability: Reachability) async {
        while !Task.isCancelled {
            do {
                try await catchUp()
                reachability.record(true)
            } catch {
                if !Task.isCancelled { reachability.record(false) }
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func listen(reachability: Reachability) async {
        let prefix = " \(hub)"
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        // Commits made while this listener was away.
                        try await self.catchUp()
                        for try await notification in notifications where notification.payload.hasSuffix(prefix) {
                            let notified = notification.payload.split(separator: " ", maxSplits: 1).first.flatMap { UInt64($0) }
                            if let notified, !self.needsCatchUp(forNotified: notified) { continue }
                            try await self.catchUp()
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                reachability.record(false)
                logger.debug("commit notifications interrupted; reconnecting", metadata: ["store.error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// What folding one event into a node's view takes: where it sits in the chain and what it does
/// to the identity documents (the writer makes these from what it just stored, the catch-up from
/// the stored records).
struct FoldEntry: Sendable {
    var seq: UInt64
    var prevHash: Hash32
    var hash: Hash32
    /// The identity's key, as the stored tables'.
    var key: [UInt8]
    /// The identity's document after the event; `nil` after a delete.
    var document: [UInt8]?

    init(seq: UInt64, prevHash: Hash32, hash: Hash32, type: EventType, deviceId: String, moduleId: String?, payload: [UInt8]) {
        self.seq = seq
        self.prevHash = prevHash
        self.hash = hash
        let (key, _, deletes) = IdentityKey.effect(of: type, deviceId: deviceId, moduleId: moduleId)
        self.key = key
        document = deletes ? nil : payload
    }

    /// From a stored record: its envelope read in place (the payload is not parsed), or, for a
    /// record the fast reader cannot read (escapes in its ids), the full decode.
    init(record: [UInt8]) throws {
        if let layout = EventRecord.layout(record, record.indices) {
            self.init(
                seq: layout.seq,
                prevHash: layout.prevHash,
                hash: layout.hash,
                type: layout.type,
                deviceId: String(decoding: record[layout.device], as: UTF8.self),
                moduleId: layout.module.map { String(decoding: record[$0], as: UTF8.self) },
                payload: Array(record[layout.payload])
            )
        } else {
            let decoded = try EventRecord.decode(record)
            self.init(
                seq: decoded.seq,
                prevHash: Hash32(decoded.prevHash),
                hash: Hash32(decoded.hash),
                type: decoded.type,
                deviceId: decoded.deviceId,
                moduleId: decoded.moduleId,
                payload: decoded.payloadBytes
            )
        }
    }
}
