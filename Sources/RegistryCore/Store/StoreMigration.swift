/// Moves a registry from one store to another (`registryd migrate`, DESIGN §10), through the
/// store interface alone, so any backend can be either end: the log is copied verbatim (the
/// destination checks every record's hash and link as it appends), the destination folds its
/// own projections from it, and policies (keys included), route cursors, parked messages, jobs
/// and the hub's settings follow. It ends by verifying the destination (chain and projections)
/// and comparing its head with the source's; only then is the move done.
///
/// The source must not be written meanwhile (the caller makes sure: a daemon's lock) and the
/// destination must be empty. Both ends use the same data key: the log holds sealed keys.
public enum StoreMigration {
    public struct Summary: Sendable, Hashable {
        public var events: UInt64 = 0
        public var policies = 0
        public var routes = 0
        public var parked = 0
        public var jobs = 0
    }

    /// The settings of `meta` that belong to the registry, not to a node.
    public static let carriedSettings = [MetaKey.hubName, MetaKey.hostName]

    /// Events per append (one transaction each at the destination).
    public static let page = 5_000

    /// Appends the source's events from seq 1 verbatim (the destination checks every hash and
    /// link), up to `through` and, given a point, only those the point includes (the log is in
    /// seq and time order, so the copy stops at the first it does not): `replay --until` on a
    /// backend that cannot write a data directory itself. Answers the events copied.
    public static func copyLog(
        from source: any RegistryReader,
        to destination: any RegistryBackend,
        through last: UInt64,
        until point: ReplayPoint? = nil,
        progress: (@Sendable (UInt64) -> Void)? = nil
    ) async throws -> UInt64 {
        var copied: UInt64 = 0
        var next: UInt64 = 1
        while next <= last {
            var records = try await source.rawEvents(from: next, limit: page)
            guard !records.isEmpty else { break }
            var reachedPoint = false
            if let point, let beyond = try records.firstIndex(where: { !point.includes(try EventRecord.decode($0)) }) {
                records.removeSubrange(beyond...)
                reachedPoint = true
            }
            if !records.isEmpty { try await destination.appendVerbatim(records) }
            next += UInt64(records.count)
            copied += UInt64(records.count)
            progress?(copied)
            if reachedPoint { break }
        }
        return copied
    }

    public static func copy(
        from source: any RegistryReader,
        to destination: any RegistryBackend,
        progress: (@Sendable (UInt64) -> Void)? = nil
    ) async throws -> Summary {
        guard try await destination.head().seq == 0, try await destination.policies().isEmpty,
            try await destination.jobRecords().isEmpty, try await destination.routeCursors().isEmpty
        else {
            throw StoreError("the destination is not empty (it has a log, policies, jobs or route cursors); migrate only into a new store")
        }
        var summary = Summary()
        let sourceHead = try await source.head()
        summary.events = try await copyLog(from: source, to: destination, through: sourceHead.seq, progress: progress)
        let generation = try await source.metaString(MetaKey.policyGeneration).flatMap { Int64($0) } ?? 0
        let policies = try await source.policies()
        try await destination.installPolicies(policies, generation: generation)
        summary.policies = policies.count
        for (route, cursor) in try await source.routeCursors() {
            try await destination.saveRouteCursor(route, cursor)
            let parked = try await source.parkedMessages(route: route)
            try await destination.park(route: route, parked)
            summary.routes += 1
            summary.parked += parked.count
        }
        for record in try await source.jobRecords() {
            guard let jobId = try JSONParser.parse(record)["jobId"]?.stringValue else { throw StoreError("a stored job record has no jobId") }
            try await destination.saveJobRecord(jobId, record)
            summary.jobs += 1
        }
        for key in carriedSettings {
            if let value = try await source.metaString(key) { try await destination.setMetaString(key, value) }
        }
        // The source must not have moved while it was copied (a node still writing it).
        let sourceEnd = try await source.head()
        guard sourceEnd.seq == sourceHead.seq, sourceEnd.hash == sourceHead.hash else {
            throw StoreError(
                "the source was written during the move (seq \(sourceHead.seq) → \(sourceEnd.seq)); stop every node on it and migrate into a new destination"
            )
        }
        let report = try await destination.verifyLog(progress: nil)
        guard report.outcome == .clean else { throw StoreError("the destination does not verify after the copy: \(report.outcome)") }
        let head = try await destination.head()
        guard head.seq == sourceHead.seq, head.hash == sourceHead.hash else {
            throw StoreError(
                "the destination's head (seq \(head.seq)) is not the source's (seq \(sourceHead.seq)); the source changed during the move?"
            )
        }
        return summary
    }
}
