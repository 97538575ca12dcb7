import Foundation
import LMDB
import Logging
import RegistryCore
import Synchronization

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
        /// The write timeout and the stall threshold of the writer.
        public var writer = WriterLimits()
        /// Monotonic time for the writer's heartbeat and the queue's waits (a manual one in tests).
        public var monotonicNow: @Sendable () -> Duration = RegistryStore.monotonicNow
        /// Sleeps on the same clock: the write timeout's wait (a manual one in tests, which passes
        /// when the test advances `monotonicNow`).
        public var monotonicSleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
        /// Told when an identity write's timeout passes, with whether its commands were withdrawn
        /// (answered 503, never written) or already taken by the writer (waited for): metrics.
        public var writeTimeoutObserver: (@Sendable (_ withdrawn: Bool) -> Void)?

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
    private let progress: WriterProgress
    private let writerLimits: WriterLimits
    private let monotonicNow: @Sendable () -> Duration
    private let monotonicSleep: @Sendable (Duration) async throws -> Void
    private let writeTimeoutObserver: (@Sendable (Bool) -> Void)?
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
        queue = WriteQueue(now: configuration.monotonicNow)
        progress = WriterProgress(now: configuration.monotonicNow())
        writerLimits = configuration.writer
        monotonicNow = configuration.monotonicNow
        monotonicSleep = configuration.monotonicSleep
        writeTimeoutObserver = configuration.writeTimeoutObserver
        let writer = Writer(
            storage: storage,
            configuration: configuration,
            head: head,
            random: random,
            queue: queue,
            commits: commits,
            health: health,
            progress: progress,
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
    ///   `WriteTimeoutError` when the writer did not take the commands within the write timeout
    ///   (then they were withdrawn and nothing of them is written, ever).
    public func execute(_ commands: [Command], actor: String, requestId: String) async throws -> [Result<CommandOutcome, RegistryError>] {
        let pending = PendingCommands()
        guard !commands.isEmpty, let ticket = enqueue(commands, actor: actor, requestId: requestId, pending) else {
            if commands.isEmpty { pending.complete(.success([])) }
            return try await pending.value()
        }
        // The deadline only applies while the commands wait in the queue: withdrawn, they are
        // never written, so the 503 is true. Once the writer took them the caller waits for the
        // commit (bounded by the disk; a transaction that never ends is a wedged writer, which
        // the watchdog restarts), because any answer before it could be a lie.
        let timeout = writerLimits.writeTimeout
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [queue, writeTimeoutObserver, monotonicSleep] in
                do { try await monotonicSleep(timeout) } catch { return }  // cancelled: the results came first
                let withdrawn = queue.withdraw(ticket)
                if case .commands(let batch) = withdrawn { batch.complete(.failure(WriteTimeoutError(waited: timeout))) }
                writeTimeoutObserver?(withdrawn != nil)
            }
            defer { group.cancelAll() }
            return try await pending.value()
        }
    }

    /// Hands commands to the writer now and returns at once: submissions reach the writer in the
    /// order of these calls (unlike tasks each calling `execute`), so a bulk load can keep
    /// several batches queued, in order, and await each one's results later.
    public func submit(_ commands: [Command], actor: String, requestId: String) -> PendingCommands {
        let pending = PendingCommands()
        if commands.isEmpty {
            pending.complete(.success([]))
        } else {
            enqueue(commands, actor: actor, requestId: requestId, pending)
        }
        return pending
    }

    @discardableResult
    private func enqueue(_ commands: [Command], actor: String, requestId: String, _ pending: PendingCommands) -> UInt64? {
        queue.enqueue(.commands(CommandBatch(commands: commands, actor: actor, requestId: requestId, complete: { pending.complete($0) })))
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

    /// Why the writer counts as stuck at `now` (monotonic, as `Configuration.monotonicNow`), or
    /// `nil` while it makes progress or is idle.
    public func writerStall(now: Duration) -> WriterStall? {
        let backlog = queue.backlog
        return progress.stall(now: now, threshold: writerLimits.stallThreshold, queued: backlog.count, oldestQueuedAt: backlog.oldestQueuedAt)
    }

    /// `writerStall(now:)` at the configured clock's now.
    public var writerStall: WriterStall? { writerStall(now: monotonicNow()) }

    /// Alive as the systemd watchdog sees it: taking writes, its log readable, and its writer
    /// making progress or idle. A full disk does not count against it (the store recovers from
    /// that by itself; a restart would not help), a stuck writer does (only a restart helps).
    public var isLive: Bool { isAcceptingWrites && (try? storage.head()) != nil && writerStall == nil }

    /// Monotonic time since an arbitrary origin (the default of `Configuration.monotonicNow`).
    public static let monotonicNow: @Sendable () -> Duration = {
        let origin = ContinuousClock.now
        return { ContinuousClock.now - origin }
    }()

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
    private struct Entry {
        var job: WriteJob
        /// Names the job for `withdraw`.
        var ticket: UInt64
        var enqueuedAt: Duration
    }
    private let condition = NSCondition()
    private var jobs: [Entry] = []
    private var closed = false
    private var nextTicket: UInt64 = 0
    private let now: @Sendable () -> Duration

    init(now: @escaping @Sendable () -> Duration) { self.now = now }

    /// Queues `job`; returns its ticket for `withdraw` (`nil`: the queue is closed and the job
    /// has been failed already).
    @discardableResult
    func enqueue(_ job: WriteJob) -> UInt64? {
        let at = now()
        condition.lock()
        if closed {
            condition.unlock()
            switch job {
            case .commands(let batch): batch.complete(.failure(StoreError("the store is closed")))
            case .custom(_, let onStorageFailure): onStorageFailure(StoreError("the store is closed"))
            }
            return nil
        }
        nextTicket += 1
        let ticket = nextTicket
        jobs.append(Entry(job: job, ticket: ticket, enqueuedAt: at))
        condition.signal()
        condition.unlock()
        return ticket
    }

    /// Takes the job back out if the writer has not taken it yet (under the same lock as `take`,
    /// so a job is either withdrawn, and never written, or taken, never both).
    func withdraw(_ ticket: UInt64) -> WriteJob? {
        condition.lock()
        defer { condition.unlock() }
        guard let index = jobs.firstIndex(where: { $0.ticket == ticket }) else { return nil }
        return jobs.remove(at: index).job
    }

    /// Jobs waiting, and when the oldest of them was queued (for the stall check).
    var backlog: (count: Int, oldestQueuedAt: Duration?) {
        condition.lock()
        defer { condition.unlock() }
        return (jobs.count, jobs.first?.enqueuedAt)
    }

    /// Blocks until work is queued; takes whole jobs up to `maxCommands` (at least one), or a
    /// single custom job. Returns `nil` once closed and drained.
    func take(maxCommands: Int) -> [WriteJob]? {
        condition.lock()
        defer { condition.unlock() }
        while jobs.isEmpty && !closed { condition.wait() }
        if jobs.isEmpty { return nil }
        if case .custom = jobs[0].job { return [jobs.removeFirst().job] }
        var taken: [WriteJob] = []
        var count = 0
        while let next = jobs.first?.job, case .commands = next, taken.isEmpty || count + next.commandCount <= maxCommands {
            taken.append(jobs.removeFirst().job)
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
