import Foundation
import LMDB
import Logging
import Synchronization

/// The result of one command: its events and the identity as it now stands (`nil` after a delete).
public struct CommandOutcome: Sendable, Hashable {
    public var events: [RegistryEvent]
    public var identity: Identity?
}

/// One durable commit of identity commands, as the writer saw it.
public struct CommitObservation: Sendable, Hashable {
    /// Commands in the transaction (several callers' batches share one commit).
    public var commands: Int
    /// Events appended (0 when every command was refused).
    public var events: Int
    /// From the start of the transaction to the end of its durable commit.
    public var duration: Duration
}

/// The store: the single writer with group commit, plus the reads of `RegistryStorage`.
///
/// One dedicated thread owns every write transaction. `execute` enqueues a batch of commands and
/// suspends; the writer drains the queue, applies up to `maxBatchCommands` queued commands in one
/// LMDB transaction, commits once (full sync: the flush that dominates the cost is shared), then
/// resumes each caller with its own results. Commits never run on the cooperative pool.
public final class RegistryStore: Sendable {
    /// The writer's OS thread name (at most 15 bytes, Linux's limit): what `top -H`, perf and
    /// the import bench's reading of `/proc` see.
    public static let writerThreadName = "registryd-write"

    public struct Configuration: Sendable {
        public var dataDirectory: DataDirectory
        /// Commands applied per transaction at most (a caller's batch is never split).
        public var maxBatchCommands: Int
        public var limits: RegistryLimits
        public var clock: any RegistryClock
        /// Initial map size; the map grows on demand.
        public var mapSize: Int
        /// LMDB flags; durable (none) by default. `.noSync` is for benchmarks that say so.
        public var environmentFlags: EnvironmentFlags
        /// Told about every identity commit, on the writer thread (keep it cheap): metrics.
        public var commitObserver: (@Sendable (CommitObservation) -> Void)?

        public init(
            dataDirectory: DataDirectory,
            maxBatchCommands: Int = 1024,
            limits: RegistryLimits = .init(),
            clock: any RegistryClock = SystemClock(),
            mapSize: Int = 64 << 20,
            environmentFlags: EnvironmentFlags = []
        ) {
            self.dataDirectory = dataDirectory
            self.maxBatchCommands = maxBatchCommands
            self.limits = limits
            self.clock = clock
            self.mapSize = mapSize
            self.environmentFlags = environmentFlags
        }
    }

    public let storage: RegistryStorage
    /// Wakes delivery and event streams after each commit.
    public let commits: CommitSignal
    /// Full storage (disk or map): set by the writer, reported by `/readyz`.
    public let health = StorageHealth()
    private let queue: WriteQueue
    private let lock: DirectoryLock
    private let finished = DispatchSemaphore(value: 0)

    /// Opens (creating if needed) a data directory for writing: takes its exclusive lock, opens
    /// the environment and starts the writer thread.
    /// - Parameter random: the source of generated keys and sealing nonces (seeded in tests).
    public init(
        configuration: Configuration,
        random: some RandomNumberGenerator & Sendable = BufferedSystemRandom(),
        logger: Logger = Logger(label: "registryd.store")
    ) throws {
        try configuration.dataDirectory.create()
        lock = try DirectoryLock(path: configuration.dataDirectory.lockPath)
        storage = try RegistryStorage(
            directory: configuration.dataDirectory,
            create: true,
            mapSize: configuration.mapSize,
            flags: configuration.environmentFlags
        )
        let head = try storage.head()
        commits = CommitSignal(committed: head.seq)
        queue = WriteQueue()
        let writer = Writer(
            storage: storage,
            configuration: configuration,
            head: head,
            random: random,
            queue: queue,
            commits: commits,
            health: health,
            logger: logger
        )
        let finished = self.finished
        let thread = Thread {
            // Foundation names the OS thread only from the thread itself, and Linux keeps at
            // most 15 bytes of it (a longer name is refused whole): for top -H and perf.
            Thread.current.name = RegistryStore.writerThreadName
            writer.run()
            finished.signal()
        }
        thread.name = RegistryStore.writerThreadName
        thread.start()
    }

    deinit {
        close()
    }

    /// Executes `commands` in one transaction; one result per command, in order. A rejected
    /// command writes nothing and does not affect the others.
    /// - Throws: a storage error when the transaction could not be committed (then nothing of
    ///   the batch was written), or `StoreError` after `close()`.
    public func execute(_ commands: [Command], actor: String, requestId: String) async throws -> [Result<CommandOutcome, RegistryError>] {
        try await submit(commands, actor: actor, requestId: requestId).value()
    }

    /// Hands commands to the writer now and returns at once: submissions reach the writer in the
    /// order of these calls (unlike tasks each calling `execute`), so a bulk load can keep
    /// several batches queued, in order, and await each one's results later.
    public func submit(_ commands: [Command], actor: String, requestId: String) -> PendingCommands {
        let pending = PendingCommands()
        if commands.isEmpty {
            pending.complete(.success([]))
        } else {
            queue.enqueue(.commands(CommandBatch(commands: commands, actor: actor, requestId: requestId, complete: { pending.complete($0) })))
        }
        return pending
    }

    /// Executes one command.
    /// - Throws: `RegistryError` when the rules refuse it, a storage error when it could not be committed.
    public func execute(_ command: Command, actor: String, requestId: String) async throws -> CommandOutcome {
        try await execute([command], actor: actor, requestId: requestId)[0].get()
    }

    /// Runs a write that is not an identity event (delivery cursors, job records, policies) on the
    /// writer thread, in its own transaction, outside the hash chain.
    /// The closure must be safe to re-run (see `Environment.write`).
    public func perform<T: Sendable>(_ work: @escaping @Sendable (borrowing WriteTransaction, RegistryDatabases) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.enqueue(
                .custom { txn, db in
                    do {
                        let value = try work(txn, db)
                        return { continuation.resume(returning: value) }
                    } catch {
                        throw CustomWorkFailure(resume: { continuation.resume(throwing: error) }, error: error)
                    }
                } onStorageFailure: { error in
                    continuation.resume(throwing: error)
                }
            )
        }
    }

    /// A tiny write (a probe time in `meta`) that succeeds once the storage has space again,
    /// clearing the full state. `serve` runs it periodically while the storage is full.
    public func probeStorage() async -> Bool {
        let stamp = Array(String(DispatchTime.now().uptimeNanoseconds).utf8)
        do {
            try await perform { txn, db in try txn.put(db.meta, Array("health.probe".utf8), stamp) }
            return true
        } catch {
            return false
        }
    }

    /// Whether the writer takes work (false once `close()` began).
    public var isAcceptingWrites: Bool { queue.isOpen }

    /// Stops taking work, lets the writer finish what is queued, and waits for its thread to end.
    public func close() {
        if queue.close() { finished.wait() }
        commits.finish()
        // The writer has stopped: the directory is free for the next writer (even in this process).
        lock.release()
    }
}

/// A caller's commands with how to hand their results back.
struct CommandBatch {
    var commands: [Command]
    var actor: String
    var requestId: String
    var complete: @Sendable (Result<[Result<CommandOutcome, RegistryError>], any Error>) -> Void
}

/// Commands handed to the writer by `RegistryStore.submit`, whose results are awaited later.
public final class PendingCommands: Sendable {
    public typealias Results = [Result<CommandOutcome, RegistryError>]
    private enum State {
        case waiting(CheckedContinuation<Results, any Error>?)
        case done(Result<Results, any Error>)
    }
    private let state = Mutex<State>(.waiting(nil))

    init() {}

    func complete(_ result: Result<Results, any Error>) {
        let waiter: CheckedContinuation<Results, any Error>? = state.withLock { state in
            guard case .waiting(let continuation) = state else { return nil }
            state = .done(result)
            return continuation
        }
        waiter?.resume(with: result)
    }

    /// The commands' results, once their transaction has committed (awaited once).
    public func value() async throws -> Results {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Results, any Error>? = state.withLock { state in
                switch state {
                case .done(let result): return result
                case .waiting(let earlier):
                    precondition(earlier == nil, "the results of a submission are awaited once")
                    state = .waiting(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// Failure of a custom write's own closure (not of the storage): carries how to resume its caller.
struct CustomWorkFailure: Error {
    var resume: @Sendable () -> Void
    var error: any Error
}

/// Work for the writer thread.
enum WriteJob {
    case commands(CommandBatch)
    /// Returns the resumption to run after commit.
    case custom(
        (borrowing WriteTransaction, RegistryDatabases) throws -> () -> Void,
        onStorageFailure: (any Error) -> Void
    )

    var commandCount: Int {
        switch self {
        case .commands(let batch): batch.commands.count
        case .custom: 1
        }
    }
}

/// The queue between callers and the writer thread.
final class WriteQueue: @unchecked Sendable {
    // Why unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [WriteJob] = []
    private var closed = false
    private var started = true

    func enqueue(_ job: WriteJob) {
        condition.lock()
        if closed {
            condition.unlock()
            switch job {
            case .commands(let batch): batch.complete(.failure(StoreError("the store is closed")))
            case .custom(_, let onStorageFailure): onStorageFailure(StoreError("the store is closed"))
            }
            return
        }
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Blocks until work is queued; takes whole jobs up to `maxCommands` (at least one), or a
    /// single custom job. Returns `nil` once closed and drained.
    func take(maxCommands: Int) -> [WriteJob]? {
        condition.lock()
        defer { condition.unlock() }
        while jobs.isEmpty && !closed { condition.wait() }
        if jobs.isEmpty { return nil }
        if case .custom = jobs[0] { return [jobs.removeFirst()] }
        var taken: [WriteJob] = []
        var count = 0
        while let next = jobs.first, case .commands = next, taken.isEmpty || count + next.commandCount <= maxCommands {
            taken.append(jobs.removeFirst())
            count += next.commandCount
        }
        return taken
    }

    var isOpen: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !closed
    }

    /// Returns whether this call closed it (false if already closed).
    func close() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if closed { return false }
        closed = true
        condition.broadcast()
        return true
    }
}
