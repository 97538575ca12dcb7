import Logging
import PostgresNIO
import RegistryCore
import Synchronization

/// A node's group-commit writer on PostgreSQL: one task takes every queued batch (up to
/// `maxBatchCommands` commands) and applies them in one transaction that holds the hub's log
/// head row lock (see `PostgresStore` for why every node writes this way).
///
/// A commit whose outcome is unknown (the connection dropped during COMMIT) is resolved by
/// reading the log back: the batch committed exactly when the database holds our record at our
/// last seq. The writer retries that read until the database answers; it never guesses.
final class PostgresWriter: Sendable {
    private let client: PostgresClient
    private let executor: WriterExecutor
    private let hub: String
    private let documents: StoredDocuments
    private let configuration: PostgresStore.Configuration
    private let follower: LogFollower
    private let logger: Logger
    private let queue: WriterQueue
    private let progress: WriterProgress
    private let random: Mutex<any RandomNumberGenerator & Sendable>
    /// The head this writer last committed: when the locked head is still it, its time is
    /// known without reading the record back.
    private let lastCommitted = Mutex<LogHead?>(nil)

    init(
        client: PostgresClient,
        executor: WriterExecutor,
        hub: String,
        documents: StoredDocuments,
        configuration: PostgresStore.Configuration,
        random: some RandomNumberGenerator & Sendable,
        follower: LogFollower,
        logger: Logger
    ) {
        self.client = client
        self.executor = executor
        self.hub = hub
        self.documents = documents
        self.configuration = configuration
        self.follower = follower
        self.logger = logger
        self.random = Mutex(random)
        queue = WriterQueue(now: configuration.monotonicNow)
        progress = WriterProgress(now: configuration.monotonicNow())
    }

    var isOpen: Bool { queue.isOpen }

    func stall(now: Duration) -> WriterStall? {
        let backlog = queue.backlog
        return progress.stall(
            now: now,
            threshold: configuration.writer.stallThreshold,
            queued: backlog.count,
            oldestQueuedAt: backlog.oldestQueuedAt
        )
    }

    /// Queues a batch; `nil` when the writer is closed (the batch is then failed).
    func enqueue(_ batch: QueuedBatch) -> UInt64? { queue.enqueue(batch) }

    func withdraw(_ ticket: UInt64) -> QueuedBatch? { queue.withdraw(ticket) }

    func close() { queue.close() }

    /// Returns once the writer has finished everything it was given.
    func drained() async { await queue.drained() }

    func run(reachability: Reachability) async {
        var laps = PhaseLaps()
        while let batches = await queue.take(maxCommands: configuration.maxBatchCommands) {
            laps.lap("idle")
            progress.began(at: configuration.monotonicNow())
            await commit(batches, laps: laps, reachability: reachability)
            laps = PhaseLaps()
            progress.finished(at: configuration.monotonicNow())
            queue.finishedTake()
        }
    }

    // MARK: one transaction

    private struct Decided {
        var events: [DecidedEvent] = []
        var results: [[Result<CommandOutcome, RegistryError>]] = []
        var head: LogHead
        /// The stored events as the node's view folds them (made here: nothing is decoded back).
        var folds: [FoldEntry] = []
    }

    /// The connection dropped during COMMIT: what the batch decided, until the log says
    /// whether it committed.
    private struct UnknownOutcome: Error {
        var underlying: any Error
        var decided: Decided
        var records: [[UInt8]]
    }

    private func commit(_ batches: [QueuedBatch], laps: PhaseLaps, reachability: Reachability) async {
        let started = ContinuousClock.now
        let outcome: (decided: Decided, records: [[UInt8]])
        do {
            // Waiting for a connection is bounded (the database may be down: the callers get
            // 503 and nothing is written); once the transaction has its connection it runs to
            // its end, so its outcome is known (or resolved below).
            outcome = try await client.leased(within: PostgresStore.connectionWait) { connection in
                laps.lap("lease")
                return try await self.transaction(batches, laps: laps, on: connection)
            }
            laps.lap("release")
            reachability.record(true)
        } catch let unknown as UnknownOutcome {
            logger.warning("the connection dropped during COMMIT: reading the log to learn whether the batch committed")
            switch await resolve(unknown, reachability: reachability) {
            case .committed(let decided, let records):
                outcome = (decided, records)
            case .notCommitted:
                fail(batches, StorageUnavailableError("the database connection was lost during the commit; nothing was written"))
                return
            case .unknown:
                // The node is closing before the database answered: the batch may or may not
                // be in the log, and the callers must not be told it is not.
                fail(
                    batches,
                    StorageUnavailableError(
                        "the database connection was lost during the commit and the node is closing: whether it was written is unknown"
                    )
                )
                return
            }
        } catch {
            let failure = PostgresStore.describe(error, configuration.location)
            if failure is StorageUnavailableError { reachability.record(false) }
            logger.error("write transaction failed", metadata: ["store.error": "\(failure)", "store.batches": "\(batches.count)"])
            fail(batches, failure)
            return
        }
        let (decided, records) = outcome
        if let last = decided.events.last?.event {
            lastCommitted.withLock { $0 = (decided.head.seq, decided.head.hash, last.time) }
        }
        logger.trace("write transaction: folding into the node's view")
        if !records.isEmpty {
            await follower.committed(decided.folds, through: decided.head.seq)
        }
        laps.lap("fold")
        configuration.commitObserver?(
            CommitObservation(
                commands: batches.reduce(0) { $0 + $1.commands.count },
                events: decided.events.count,
                duration: ContinuousClock.now - started,
                phases: laps.laps
            )
        )
        for (batch, results) in zip(batches, decided.results) { batch.complete(.success(results)) }
    }

    private func fail(_ batches: [QueuedBatch], _ error: any Error) {
        follower.commitFailed()
        for batch in batches { batch.complete(.failure(error)) }
    }

    private enum Resolution {
        case committed(Decided, [[UInt8]])
        case notCommitted
        /// The writer closed before the database answered.
        case unknown
    }

    /// Reads our last seq back until the database answers: the batch committed iff the stored
    /// record there is ours, byte for byte.
    private func resolve(_ unknown: UnknownOutcome, reachability: Reachability) async -> Resolution {
        while true {
            do {
                // Under the head lock: while our transaction is still in progress (a COMMIT
                // waiting for a synchronous standby) it holds that lock, so the read waits for
                // its end and a "not there" is final.
                let seq = unknown.decided.head.seq
                let stored = try await client.leased(within: PostgresStore.connectionWait) { [hub, logger] connection in
                    try await withDeadline(.seconds(30), "the commit outcome check") {
                        try await connection.query("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
                        do {
                            try await connection.run("SELECT 1 FROM log_head WHERE hub = \(hub) FOR UPDATE", logger: logger)
                            let record = try await PostgresReads.record(at: seq, hub: hub, on: connection, logger: logger)
                            try await connection.query("ROLLBACK", logger: logger)
                            return record
                        } catch {
                            _ = try? await connection.query("ROLLBACK", logger: logger)
                            throw error
                        }
                    }
                }
                reachability.record(true)
                return stored == unknown.records.last ? .committed(unknown.decided, unknown.records) : .notCommitted
            } catch {
                reachability.record(false)
                if !queue.isOpen { return .unknown }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// One batch transaction, watched. A connection whose server vanished without the socket
    /// failing (seen when a primary was killed in the middle of a statement: the statement
    /// neither answered nor failed, even after the connection was closed) would hold the
    /// writer forever; after `transactionTimeout` the transaction is abandoned instead (its
    /// task is left to end whenever it does, its connection closed). Before COMMIT was sent the
    /// abandonment is a clean failure (the transaction can no longer commit: `Stage` keeps the
    /// body from sending COMMIT once abandoned); after, the outcome is unknown and is resolved
    /// from the log.
    private func transaction(_ batches: [QueuedBatch], laps: PhaseLaps, on connection: PostgresConnection) async throws -> (Decided, [[UInt8]]) {
        let (timeout, logger) = (configuration.transactionTimeout, self.logger)
        let stage = Stage()
        let (results, delivery) = AsyncThrowingStream<(Decided, [[UInt8]]), any Error>.makeStream()
        let body = Task(executorPreference: executor) {
            do {
                delivery.yield(try await self.unwatchedTransaction(batches, laps: laps, on: connection, stage: stage))
                delivery.finish()
            } catch {
                delivery.finish(throwing: error)
            }
        }
        let watchdog = Task(executorPreference: executor) {
            try await Task.sleep(for: timeout)
            logger.error("a write transaction did not finish within \(timeout); abandoning it and closing its database connection")
            let abandonment = stage.abandon()
            body.cancel()
            // Closed before the caller hears of it: the connection must not go back to the
            // pool with the abandoned transaction open.
            _ = try? await withDeadline(.seconds(2), "closing the connection") { try await connection.close() }
            switch abandonment {
            case .abandoned:
                delivery.finish(throwing: StorageUnavailableError("the database stopped answering during a write; nothing was committed"))
            case .committing(let decided, let records):
                delivery.finish(
                    throwing: UnknownOutcome(underlying: StorageUnavailableError("COMMIT unanswered"), decided: decided, records: records)
                )
            }
        }
        defer { watchdog.cancel() }
        for try await result in results { return result }
        throw StorageUnavailableError("the write transaction ended without a result")
    }

    /// Whether a batch transaction may still send COMMIT, or was abandoned first.
    private final class Stage: Sendable {
        enum Abandonment {
            case abandoned
            case committing(Decided, [[UInt8]])
        }
        private enum State {
            case running
            case committing(Decided, [[UInt8]])
            case abandoned
        }
        private let state = Mutex(State.running)

        /// The body is about to send COMMIT: false when the watchdog abandoned it first.
        func beginCommit(_ decided: Decided, _ records: [[UInt8]]) -> Bool {
            state.withLock { s in
                guard case .running = s else { return false }
                s = .committing(decided, records)
                return true
            }
        }

        func abandon() -> Abandonment {
            state.withLock { s in
                if case .committing(let decided, let records) = s { return .committing(decided, records) }
                s = .abandoned
                return .abandoned
            }
        }
    }

    private func unwatchedTransaction(
        _ batches: [QueuedBatch],
        laps: PhaseLaps,
        on connection: PostgresConnection,
        stage: Stage
    ) async throws -> (Decided, [[UInt8]]) {
        logger.trace("write transaction: BEGIN")
        // Explicitly: a role whose default is REPEATABLE READ would turn every contended batch
        // into a serialization failure.
        try await connection.query("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
        laps.lap("begin")
        let decided: Decided
        let records: [[UInt8]]
        do {
            (decided, records) = try await write(batches, laps: laps, on: connection)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
        guard !records.isEmpty else {
            try await connection.query("ROLLBACK", logger: logger)
            return (decided, [])
        }
        guard stage.beginCommit(decided, records) else {
            throw StorageUnavailableError("the database stopped answering during a write; nothing was committed")
        }
        follower.committing(through: decided.head.seq)
        do {
            logger.trace("write transaction: COMMIT")
            try await connection.query("COMMIT", logger: logger)
            laps.lap("commit")
            logger.trace("write transaction: committed")
        } catch let error as PSQLError where error.code == .server {
            throw error  // the server refused the commit: nothing was written
        } catch {
            throw UnknownOutcome(underlying: error, decided: decided, records: records)
        }
        return (decided, records)
    }

    /// Everything of one batch transaction before COMMIT. Returns what was decided and the
    /// stored records (empty when every command was refused: nothing to write).
    private func write(_ batches: [QueuedBatch], laps: PhaseLaps, on connection: PostgresConnection) async throws -> (Decided, [[UInt8]]) {
        let head = try await lockHead(on: connection)
        laps.lap("lock")
        let deviceIds = Set(batches.flatMap { $0.commands.map(\.deviceId) })
        var state = try await BatchState.load(
            deviceIds: deviceIds,
            // New devices (a create's) are known from the node's view when it is current: a
            // batch of creates reads nothing.
            knownAbsent: follower.absentDevices(deviceIds, ifCurrentAt: (head.seq, head.hash)) ?? [],
            countIdentities: configuration.limits.maxIdentities != nil,
            hub: hub,
            documents: documents,
            on: connection,
            logger: logger
        )
        laps.lap("load")
        var decided = Decided(head: head)
        random.withLock { random in
            for batch in batches {
                var results: [Result<CommandOutcome, RegistryError>] = []
                results.reserveCapacity(batch.commands.count)
                for command in batch.commands {
                    // Event times strictly increase, so creation times (generationIds) are unique.
                    let now = max(configuration.clock.now(), decided.head.time.successor)
                    do throws(RegistryError) {
                        let events = try RegistryCore.decide(
                            command,
                            state: state.commandState(for: command, limits: configuration.limits),
                            context: DecisionContext(now: now, sequence: decided.head.seq + 1, limits: configuration.limits),
                            random: &random
                        )
                        for event in events {
                            // Pair assertion (TigerStyle): the log stays gapless.
                            precondition(event.seq == decided.head.seq + 1, "event sequence must be gapless")
                            decided.events.append(DecidedEvent(event, actor: batch.actor, requestId: batch.requestId, random: &random))
                            decided.head.seq = event.seq
                            state.apply(event)
                        }
                        decided.head.time = now
                        let identity = events.last.flatMap { $0.type.isDelete ? nil : $0.identity }
                        results.append(.success(CommandOutcome(events: events, identity: identity)))
                    } catch {
                        results.append(.failure(error))
                    }
                }
                decided.results.append(results)
            }
        }
        laps.lap("decide")
        guard !decided.events.isEmpty else { return (decided, []) }
        // Sealing and encoding a large run is CPU work: off the cooperative pool.
        let events = decided.events
        let sealer = documents.sealer!
        var prepared =
            DecidedEvent.isWorthSharing(events.count)
            ? try await BlockingPool.shared.run { DecidedEvent.prepareAll(events, sealer: sealer) }
            : DecidedEvent.prepareAll(events, sealer: sealer)
        var hash = head.hash
        var records: [[UInt8]] = []
        records.reserveCapacity(prepared.count)
        decided.folds.reserveCapacity(prepared.count)
        for i in prepared.indices {
            let previous = hash
            hash = prepared[i].parts.chain(to: hash)
            records.append(prepared[i].parts.record)
            let event = events[i].event
            decided.folds.append(
                FoldEntry(
                    seq: event.seq,
                    prevHash: Hash32(previous),
                    hash: Hash32(hash),
                    type: event.type,
                    deviceId: event.deviceId,
                    moduleId: event.moduleId,
                    payload: prepared[i].payloadBytes
                )
            )
        }
        decided.head.hash = hash
        laps.lap("seal")
        try await store(events, prepared, records, head: decided.head, on: connection)
        laps.lap("write")
        return (decided, records)
    }

    /// Locks the hub's head row (the fence of the whole batch) and reads the head under it.
    func lockHead(on connection: PostgresConnection) async throws -> LogHead {
        // The lock first, the head's record second: in READ COMMITTED a `FOR UPDATE` that
        // waited re-reads only the locked row, so a join in the same statement would still see
        // the old record (and the batch would lose the last event's time).
        var locked: (seq: Int64, hash: ByteBuffer)?
        for try await row in try await connection.query("SELECT seq, hash FROM log_head WHERE hub = \(hub) FOR UPDATE", logger: logger)
            .decode((Int64, ByteBuffer).self)
        {
            locked = row
        }
        guard let locked else { throw StoreError("hub '\(hub)' has no log head row (the schema was not prepared)") }
        let seq = UInt64(locked.seq)
        let hash = Array(locked.hash.readableBytesView)
        if let last = lastCommitted.withLock({ $0 }), last.seq == seq, last.hash == hash { return last }
        let time = try await PostgresReads.record(at: seq, hub: hub, on: connection, logger: logger).map { try EventRecord.decode($0).time } ?? .unset
        return (seq, hash, time)
    }

    /// Appends the records, applies the projections' end state, moves the head and notifies.
    private func store(
        _ events: [DecidedEvent],
        _ prepared: [DecidedEvent.Prepared],
        _ records: [[UInt8]],
        head: LogHead,
        on connection: PostgresConnection
    ) async throws {
        try await Self.insert(
            records,
            seqs: events.map(\.event.seq),
            deviceIds: events.map(\.event.deviceId),
            hub: hub,
            on: connection,
            logger: logger
        )
        try await Self.apply(ProjectionChanges(events, prepared), head: head, hub: hub, on: connection, logger: logger)
    }

    /// Appends event records (inside the caller's transaction, which holds the head lock).
    static func insert(
        _ records: [[UInt8]],
        seqs: [UInt64],
        deviceIds: [String],
        hub: String,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO events (hub, seq, device_id, record)
            SELECT \(hub), * FROM UNNEST(\(seqs.map { Int64($0) })::bigint[], \(deviceIds)::text[],
              \(records.map { ByteBuffer(bytes: $0) })::bytea[])
            """,
            logger: logger
        )
    }

    /// Writes the projections' end state, moves the head and notifies (inside the caller's
    /// transaction, after its events were inserted).
    static func apply(_ changes: ProjectionChanges, head: LogHead, hub: String, on connection: PostgresConnection, logger: Logger) async throws {
        if !changes.deviceUpserts.isEmpty {
            try await connection.query(
                """
                INSERT INTO devices (hub, key, doc, disabled, connected)
                SELECT \(hub), * FROM UNNEST(\(changes.deviceUpserts.map { ByteBuffer(bytes: $0.key) })::bytea[],
                  \(changes.deviceUpserts.map { ByteBuffer(bytes: $0.doc) })::bytea[],
                  \(changes.deviceUpserts.map(\.disabled))::boolean[], \(changes.deviceUpserts.map(\.connected))::boolean[])
                ON CONFLICT (hub, key) DO UPDATE SET doc = EXCLUDED.doc, disabled = EXCLUDED.disabled, connected = EXCLUDED.connected
                """,
                logger: logger
            )
        }
        if !changes.deviceDeletes.isEmpty {
            try await connection.query(
                "DELETE FROM devices WHERE hub = \(hub) AND key = ANY(\(changes.deviceDeletes.map { ByteBuffer(bytes: $0) })::bytea[])",
                logger: logger
            )
        }
        if !changes.moduleUpserts.isEmpty {
            try await connection.query(
                """
                INSERT INTO modules (hub, key, device_id, doc)
                SELECT \(hub), * FROM UNNEST(\(changes.moduleUpserts.map { ByteBuffer(bytes: $0.key) })::bytea[],
                  \(changes.moduleUpserts.map(\.deviceId))::text[], \(changes.moduleUpserts.map { ByteBuffer(bytes: $0.doc) })::bytea[])
                ON CONFLICT (hub, key) DO UPDATE SET doc = EXCLUDED.doc
                """,
                logger: logger
            )
        }
        if !changes.moduleDeletes.isEmpty {
            try await connection.query(
                "DELETE FROM modules WHERE hub = \(hub) AND key = ANY(\(changes.moduleDeletes.map { ByteBuffer(bytes: $0) })::bytea[])",
                logger: logger
            )
        }
        // The head moves and the commit is announced in one round trip. The notification is
        // delivered to listeners only once the transaction commits (and never if it aborts).
        try await connection.run(
            """
            WITH moved AS (UPDATE log_head SET seq = \(Int64(head.seq)), hash = \(ByteBuffer(bytes: head.hash)) WHERE hub = \(hub) RETURNING 1)
            SELECT pg_notify(\(LogFollower.channel), \(LogFollower.payload(hub: hub, seq: head.seq))) FROM moved
            """,
            logger: logger
        )
    }
}

/// A caller's commands with how to hand their results back.
struct QueuedBatch: Sendable {
    var commands: [Command]
    var actor: String
    var requestId: String
    var complete: @Sendable (Result<[Result<CommandOutcome, RegistryError>], any Error>) -> Void
}
