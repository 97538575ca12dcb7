import Crypto
import Foundation
import Logging
import PostgresNIO
import RegistryCore
import Synchronization

/// The PostgreSQL backend of the store interface (DESIGN §10): several registryd nodes on one
/// database, each with its own group-commit writer.
///
/// Writer model: every node writes. Each batch is one transaction that first locks its hub's
/// `log_head` row (`SELECT … FOR UPDATE`), decides its commands against the projections read
/// inside that transaction, appends the events with the next seqs and hashes, updates the
/// projections and the head, notifies, and commits. The row lock is the fence: a writer that was
/// paused or partitioned cannot append after a newer one, because it reads the head only once it
/// holds the lock, and the `(hub, seq)` key refuses a second event at a seq. The cost is one lock
/// hand-off per batch (group commit keeps batches large under load), and no election, forwarding
/// or epoch to get wrong.
///
/// Device authentication reads a node-local projection of the documents (`LogFollower`), fed by
/// the log, so `/registry/auth/*` keeps answering while the database fails over.
public final class PostgresStore: Sendable {
    public struct Configuration: Sendable {
        public var location: PostgresLocation
        /// The data key's 32 bytes (every node loads the same file; the database keeps only its
        /// fingerprint).
        public var dataKey: [UInt8]
        public var maxBatchCommands: Int = 1024
        public var limits: RegistryLimits = .init()
        public var clock: any RegistryClock = SystemClock()
        public var writer = WriterLimits()
        /// How often the log follower reads the log without a notification (the fallback).
        public var pollInterval: Duration = .seconds(1)
        public var commitObserver: (@Sendable (CommitObservation) -> Void)?
        /// A write transaction running longer than this has its connection closed (see
        /// `PostgresWriter`); well under the writer's stall threshold.
        public var transactionTimeout: Duration = .seconds(10)
        public var monotonicNow: @Sendable () -> Duration = PostgresStore.monotonicNow
        /// Register the hub when it is new (a daemon). Readers set it false: a mistyped hub is
        /// then an error, not a new empty registry that verifies clean.
        public var createsHub = true
        /// Hold the hub's serving lease (shared with the other nodes) while open: a daemon does,
        /// so that a migration from the hub is refused while it runs; tools do not.
        public var holdsServingLease = false

        public init(location: PostgresLocation, dataKey: [UInt8]) {
            self.location = location
            self.dataKey = dataKey
        }
    }

    public let location: PostgresLocation
    var hub: String { location.hub }
    let client: PostgresClient
    let documents: StoredDocuments
    let sealer: KeySealer
    let configuration: Configuration
    let logger: Logger
    public let commits: CommitSignal
    public let health = StorageHealth()
    let follower: LogFollower
    let fence = ReadFence()
    let writer: PostgresWriter
    private let writerExecutor: WriterExecutor
    /// The writer's connection pool's task (ended after the writer, before its thread).
    private let writerRun: Task<Void, Never>
    let reachability = Reachability()
    private let tasks: Mutex<[Task<Void, Never>]>

    /// Connects, migrates the schema, checks the data key against the hub's, loads the
    /// credentials projection and starts the writer and the log follower.
    public static func open(
        _ configuration: Configuration,
        random: some RandomNumberGenerator & Sendable = BufferedSystemRandom(),
        logger: Logger = Logger(label: "registryd.store")
    ) async throws -> PostgresStore {
        let sealer = try KeySealer(keyBytes: configuration.dataKey)
        // The pool's own chatter (connection attempts, "run() not called yet" while the task
        // below starts) stays out of the log; failures reach it through our calls.
        var poolLogger = logger
        poolLogger.logLevel = .error
        let clientConfiguration = try configuration.location.clientConfiguration()
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: poolLogger)
        let run = Task { await client.run() }
        // The writer's connections are its own (on its own thread: see `WriterExecutor`): one
        // for the batch transactions, one for reading a commit's outcome back.
        let executor = WriterExecutor()
        var writerConfiguration = clientConfiguration
        writerConfiguration.options.maximumConnections = 2
        let writerClient = PostgresClient(configuration: writerConfiguration, eventLoopGroup: executor.group, backgroundLogger: poolLogger)
        let writerRun = Task { await writerClient.run() }
        do {
            try await PostgresSchema.prepare(
                client,
                hub: configuration.location.hub,
                keyFingerprint: Self.fingerprint(sealer),
                createHub: configuration.createsHub,
                logger: logger
            )
            let store = PostgresStore(
                configuration: configuration,
                client: client,
                writer: (writerClient, executor, writerRun),
                sealer: sealer,
                random: random,
                logger: logger,
                run: run
            )
            try await store.follower.load()
            store.start()
            return store
        } catch {
            run.cancel()
            writerRun.cancel()
            Task {
                await writerRun.value
                await executor.shutdown()
            }
            throw PostgresStore.describe(error, configuration.location)
        }
    }

    private init(
        configuration: Configuration,
        client: PostgresClient,
        writer writerParts: (client: PostgresClient, executor: WriterExecutor, run: Task<Void, Never>),
        sealer: KeySealer,
        random: some RandomNumberGenerator & Sendable,
        logger: Logger,
        run: Task<Void, Never>
    ) {
        self.configuration = configuration
        self.location = configuration.location
        self.client = client
        self.sealer = sealer
        self.logger = logger
        documents = StoredDocuments(sealer: sealer)
        commits = CommitSignal(committed: 0)
        follower = LogFollower(client: client, hub: configuration.location.hub, commits: commits, logger: logger)
        writerExecutor = writerParts.executor
        writerRun = writerParts.run
        writer = PostgresWriter(
            client: writerParts.client,
            executor: writerParts.executor,
            hub: configuration.location.hub,
            documents: documents,
            configuration: configuration,
            random: random,
            follower: follower,
            logger: logger
        )
        tasks = Mutex([run])
    }

    private func start() {
        let writer = self.writer
        let follower = self.follower
        let interval = configuration.pollInterval
        let reachability = self.reachability
        tasks.withLock {
            $0.append(Task(executorPreference: writerExecutor) { await writer.run(reachability: reachability) })
            $0.append(Task { await follower.run(pollInterval: interval, reachability: reachability) })
            if configuration.holdsServingLease { $0.append(Task { await self.holdServingLease() }) }
        }
    }

    /// The data key's fingerprint as the database keeps it: a hash of a key derived for this
    /// purpose only, so it says nothing about the key or any other derived secret.
    static func fingerprint(_ sealer: KeySealer) -> String {
        let derived = sealer.derivedKey(purpose: "registryd.data-key-fingerprint").key
        let digest = derived.withUnsafeBytes { SHA256.hash(data: Array($0)) }
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// A failure as an operator reads it: what PostgreSQL said (PostgresNIO's own description is
    /// deliberately generic), never the password.
    static func describe(_ error: any Error, _ location: PostgresLocation) -> any Error {
        // `withTransaction` wraps what failed inside it: the operator is told that failure.
        if let wrapped = error as? PostgresTransactionError,
            let inner = wrapped.closureError ?? wrapped.beginError ?? wrapped.commitError ?? wrapped.rollbackError
        {
            return describe(inner, location)
        }
        guard let error = error as? PSQLError else { return error }
        if let message = error.serverInfo?[.message] {
            return StoreError("PostgreSQL at \(location) refused: \(message)")
        }
        return StorageUnavailableError("cannot reach PostgreSQL at \(location) (\(error.code))")
    }

    /// Monotonic time since an arbitrary origin.
    public static let monotonicNow: @Sendable () -> Duration = {
        let origin = ContinuousClock.now
        return { ContinuousClock.now - origin }
    }()

    public var isAcceptingWrites: Bool { writer.isOpen }

    public var isLive: Bool { isAcceptingWrites && writerStall == nil }

    public var writerStall: WriterStall? { writer.stall(now: configuration.monotonicNow()) }

    public var storageFootprint: StorageFootprint? { nil }

    /// Whether the database answered the last time a node task asked (for `/readyz`).
    public var isReachable: Bool { reachability.isReachable }

    public func close() {
        writer.close()
        let running = tasks.withLock { tasks in
            defer { tasks.removeAll() }
            return tasks
        }
        commits.finish()
        // The writer finishes what it holds, then the pool goes: not waited for here (close is
        // synchronous and may be called on the cooperative pool, which those tasks need).
        let (writer, writerRun, writerExecutor) = (self.writer, self.writerRun, self.writerExecutor)
        Task {
            await writer.drained()
            for task in running { task.cancel() }
            writerRun.cancel()
            await writerRun.value
            await writerExecutor.shutdown()
        }
    }
}

/// Whether the database answered lately: set by every node task that talks to it. (Also a
/// plain shared flag where one task tells another that something happened.)
final class Reachability: Sendable {
    private let state: Atomic<Bool>
    init(initially: Bool = true) { state = Atomic(initially) }
    var isReachable: Bool { state.load(ordering: .relaxed) }
    func record(_ reachable: Bool) { state.store(reachable, ordering: .relaxed) }
}
