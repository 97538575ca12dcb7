/// The store interface (DESIGN §3 and §10): everything the API, delivery, jobs and the tools
/// ask of storage. LMDB (`RegistryLMDB`) is one backend behind it; a PostgreSQL backend is the
/// next. Every backend must pass the conformance suite (`Tests/StoreConformanceTests`).
///
/// Reads are `async` because a networked backend answers over a connection; the embedded one
/// answers inline (a short read transaction on the caller's thread). The exceptions are what
/// must stay node-local and cheap: device credentials (the broker asks on every connection),
/// the committed-sequence signal, health and server keys.
public typealias LogHead = (seq: UInt64, hash: [UInt8], time: Timestamp)

/// A route's delivery progress: the last delivered sequence number, and whether the route was
/// given up (its endpoint reported dead).
public struct RouteCursor: Sendable, Hashable {
    public var seq: UInt64
    public var dead: Bool

    public init(seq: UInt64, dead: Bool) {
        self.seq = seq
        self.dead = dead
    }
}

/// A message parked after its route's retry window: the event's sequence number and the
/// message as delivery encoded it (canonical JSON).
public struct ParkedRecord: Sendable, Hashable {
    public var seq: UInt64
    public var message: [UInt8]

    public init(seq: UInt64, message: [UInt8]) {
        self.seq = seq
        self.message = message
    }
}

/// Bytes a backend has reserved for its data and uses of them.
public struct StorageFootprint: Sendable, Hashable {
    public var allocated: Int
    public var used: Int

    public init(allocated: Int, used: Int) {
        self.allocated = allocated
        self.used = used
    }
}

/// The read side of a store: identities, the log, and the typed stores' contents. Read-only
/// tools (export, audit, replay) open a backend through this alone, beside a running daemon.
public protocol RegistryReader: AnyObject, Sendable {
    // MARK: identities

    func device(_ deviceId: String) async throws -> Device?
    func module(_ deviceId: String, _ moduleId: String) async throws -> Module?
    /// The device's modules in id order.
    func modules(of deviceId: String) async throws -> [Module]
    /// Up to `limit` devices in id order, starting after `after`.
    func devices(after: String?, limit: Int) async throws -> [Device]
    /// The stored document with its keys opened, as the API returns it.
    func deviceDocument(_ deviceId: String) async throws -> IdentityDocument?
    func moduleDocument(_ deviceId: String, _ moduleId: String) async throws -> IdentityDocument?
    /// Up to `limit` device documents in id order.
    func deviceDocuments(limit: Int) async throws -> [IdentityDocument]
    /// The device's module documents in id order, or `nil` when the device does not exist.
    func moduleDocuments(of deviceId: String) async throws -> [IdentityDocument]?
    /// The stored canonical document (keys sealed, twin included), or `nil`.
    func storedDocument(deviceId: String, moduleId: String?) async throws -> [UInt8]?
    /// Visits every device, each followed by its modules, in key order, from one consistent
    /// snapshot (safe while a daemon writes). `visit` is called in order, one call at a time, on
    /// a thread the backend chooses (off the cooperative pool: an export scans everything and
    /// writes a file as it goes).
    func forEachIdentity(openKeys: Bool, _ visit: @escaping @Sendable (IdentityDocument, _ isModule: Bool) throws -> Void) async throws
    /// What device authentication needs of one identity (`nil`: it does not exist). Synchronous
    /// and node-local by contract: the broker asks on every connection.
    func credentials(deviceId: String, moduleId: String?) throws -> CredentialRecord?
    func statistics() async throws -> RegistryStatistics
    /// One page of a query (an aggregate answers in one page). Long scans run off the
    /// cooperative pool, in bounded work units.
    func runQuery(_ query: DeviceQuery, cursor: QueryCursor?, pageSize: Int, bounds: QueryBounds) async throws -> QueryPage

    // MARK: the log

    /// The last committed sequence number and its hash (zeros for an empty log).
    func head() async throws -> LogHead
    /// Up to `limit` stored events from `seq` on, decoded (not verified).
    func events(from seq: UInt64, limit: Int) async throws -> [EventRecord]
    /// The identity an event carries, its keys opened (sealed for read-only tools): what a
    /// restore re-creates from a deletion.
    func identity(in record: EventRecord) throws -> Identity
    /// Up to `limit` stored event records from `seq` on, verbatim (the bytes the chain hashes):
    /// for external audit tools.
    func rawEvents(from seq: UInt64, limit: Int) async throws -> [[UInt8]]
    /// A page of an identity's changes (see `HistoryEntry`), oldest first, after `after`.
    func history(deviceId: String, moduleId: String?, after: UInt64, limit: Int) async throws -> (entries: [HistoryEntry], next: UInt64?)
    /// Verifies the chain and every projection against the log (see `Replayer`).
    func verifyLog(progress: (@Sendable (UInt64) -> Void)?) async throws -> Replayer.Report
    /// Builds a fresh data directory `target` holding the log up to `point` (verified on the way)
    /// and the projections rebuilt from it: the registry as it stood then. Returns the events
    /// copied and, if the log is bad before `point`, where.
    func materialize(until point: ReplayPoint, into target: DataDirectory) async throws -> (events: UInt64, corruption: Replayer.Outcome?)

    // MARK: typed stores, read side

    /// A text setting (`MetaKey`).
    func metaString(_ key: String) async throws -> String?
    func routeCursor(_ route: String) async throws -> RouteCursor?
    /// A route's parked messages in sequence order.
    func parkedMessages(route: String) async throws -> [ParkedRecord]
    /// Every route's cursor, by route name.
    func routeCursors() async throws -> [String: RouteCursor]
    /// Every job record (canonical JSON), in no particular order.
    func jobRecords() async throws -> [[UInt8]]
    func jobRecord(_ jobId: String) async throws -> [UInt8]?
    /// The shared access policies with their keys opened.
    func policies() async throws -> [SharedAccessPolicy]
    /// A server-side secret for `purpose`, derived from the data key (continuation tokens).
    func serverKey(purpose: String) -> KeyBox

    // MARK: backup

    /// Copies the stored log, projections and typed stores, from one consistent snapshot, into
    /// the (new, empty) data directory `target` (compacted where the engine can). The data key
    /// and TLS files are the caller's to copy.
    func backup(into target: DataDirectory) async throws
}

/// A store that writes: identity commands through the group-commit writer, the typed stores'
/// writes, the committed-sequence signal and the writer's health.
public protocol RegistryBackend: RegistryReader {
    /// Wakes delivery and event streams after each commit.
    var commits: CommitSignal { get }
    /// Full storage: set by the writer, reported by `/readyz`.
    var health: StorageHealth { get }
    /// Whether the writer takes work (false once `close()` began).
    var isAcceptingWrites: Bool { get }
    /// Alive as a watchdog sees it: taking writes, its log readable, its writer not stuck.
    var isLive: Bool { get }
    /// Why the writer counts as stuck now, or `nil`.
    var writerStall: WriterStall? { get }
    /// Space the engine has reserved and uses (`/metrics`), where it keeps such figures.
    var storageFootprint: StorageFootprint? { get }

    /// Executes `commands` in one transaction; one result per command, in order. A rejected
    /// command writes nothing and does not affect the others.
    /// - Throws: a storage error when the transaction could not be committed (then nothing of
    ///   the batch was written); `WriteTimeoutError` when the writer did not take the commands
    ///   within the write timeout (then they are never written).
    func execute(_ commands: [Command], actor: String, requestId: String) async throws -> [Result<CommandOutcome, RegistryError>]
    /// Hands commands to the writer now and returns at once: submissions reach the writer in
    /// the order of these calls, so a bulk load can keep several batches queued, in order.
    func submit(_ commands: [Command], actor: String, requestId: String) -> PendingCommands
    /// A tiny write that succeeds once the storage has space again, clearing the full state.
    func probeStorage() async -> Bool

    func setMetaString(_ key: String, _ value: String) async throws
    func saveRouteCursor(_ route: String, _ cursor: RouteCursor) async throws
    /// Parks messages of a route (one transaction).
    func park(route: String, _ messages: [ParkedRecord]) async throws
    /// Removes one parked message (after its redelivery was confirmed).
    func unpark(route: String, seq: UInt64) async throws
    func saveJobRecord(_ jobId: String, _ record: [UInt8]) async throws
    /// Stores `record` only if the stored one is still `expected` (byte for byte; `nil`: none
    /// stored), in one step: false (nothing written) when someone else wrote it meanwhile, so
    /// that a job's progress never overwrites a cancel another node recorded, nor a cancel a
    /// finished job.
    func replaceJobRecord(_ jobId: String, expected: [UInt8]?, with record: [UInt8]) async throws -> Bool
    /// Applies one policy change in one transaction, checked against `ifMatch` (see `PolicyChange`).
    func applyPolicyChange(_ change: PolicyChange, to name: String, ifMatch: ETagCondition) async throws(PolicyError) -> PolicySnapshot
    /// Appends stored event records verbatim after the head and folds them into the
    /// projections, as a replay does (moving a registry between backends, `StoreMigration`).
    /// Each record must verify and continue the chain (the next seq, the head's hash as its
    /// prevHash); otherwise nothing of the call is written.
    func appendVerbatim(_ records: [[UInt8]]) async throws
    /// Installs policies exactly as given (keys, rights, versions) with `generation`, replacing
    /// any stored (moving a registry between backends).
    func installPolicies(_ policies: [SharedAccessPolicy], generation: Int64) async throws
    /// Creates Azure's built-in policies on first start; returns the policies now stored.
    func ensureBuiltInPolicies() async throws -> [SharedAccessPolicy]
    /// Stops taking work, finishes what is queued, releases the store.
    func close()

    /// Runs `body` while this node holds the delivery lease of `route`, waiting for the lease
    /// first: with several nodes on one store, each route is delivered by exactly one of them at
    /// a time. If the lease is lost (the node's database session ended), `body` is cancelled and
    /// the lease sought again; the next holder continues from the persisted cursor. Returns when
    /// `body` returns on its own or the calling task is cancelled. A store only one process
    /// writes always holds every lease.
    func withRouteLease(_ route: String, _ body: @escaping @Sendable () async -> Void) async

    /// Runs `body` if no other node of the store holds the lease `name` (one attempt, no wait)
    /// and answers whether it did; the lease is held until `body` returns (or the node's database
    /// session is lost, which cancels `body`). The hub's one active job uses it. A store only
    /// one process writes always holds every lease.
    /// - Throws: a storage error when the store cannot tell.
    func withExclusiveLease(_ name: String, _ body: @escaping @Sendable () async -> Void) async throws -> Bool
}

extension RegistryBackend {
    public func withRouteLease(_ route: String, _ body: @escaping @Sendable () async -> Void) async { await body() }

    public func withExclusiveLease(_ name: String, _ body: @escaping @Sendable () async -> Void) async throws -> Bool {
        await body()
        return true
    }
}

extension RegistryBackend {
    /// Executes one command.
    /// - Throws: `RegistryError` when the rules refuse it, a storage error when it could not be committed.
    public func execute(_ command: Command, actor: String, requestId: String) async throws -> CommandOutcome {
        try await execute([command], actor: actor, requestId: requestId)[0].get()
    }
}

extension RegistryReader {
    /// Every change of an identity, oldest first (all pages).
    public func history(deviceId: String, moduleId: String? = nil) async throws -> [HistoryEntry] {
        var entries: [HistoryEntry] = []
        var after: UInt64 = 0
        while true {
            let page = try await history(deviceId: deviceId, moduleId: moduleId, after: after, limit: 10_000)
            entries += page.entries
            guard let next = page.next else { return entries }
            after = next
        }
    }
}

extension RegistryBackend {
    /// Adds a policy or changes an existing one's rights (its keys stay; a new one gets fresh
    /// keys). Returns the policy as stored.
    public func upsertPolicy(name: String, rights: AccessRights, scope: PolicyScope? = nil) async throws(PolicyError) -> SharedAccessPolicy {
        try Self.changed(await applyPolicyChange(.setRights(rights, scope: scope), to: name, ifMatch: .absent))
    }

    /// Gives a policy a new primary or secondary key (the other one keeps working, so clients
    /// can move over without a gap).
    public func rotatePolicy(name: String, secondary: Bool) async throws(PolicyError) -> SharedAccessPolicy {
        try Self.changed(await applyPolicyChange(.rotate(secondary: secondary), to: name, ifMatch: .absent))
    }

    public func removePolicy(name: String) async throws(PolicyError) {
        _ = try await applyPolicyChange(.remove, to: name, ifMatch: .absent)
    }

    private static func changed(_ snapshot: PolicySnapshot) throws(PolicyError) -> SharedAccessPolicy {
        guard let policy = snapshot.policy else { throw PolicyError("the change stored no policy") }
        return policy
    }
}
