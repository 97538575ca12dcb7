import Dispatch
import LMDB
import Logging
import RegistryCore

/// The writer thread's state and loop. Confined to that one thread: nothing here is shared.
final class Writer: @unchecked Sendable {
    // Why unchecked: created on the opening thread, then used only by the writer thread.
    private let storage: RegistryStorage
    private let configuration: RegistryStore.Configuration
    private var random: any RandomNumberGenerator
    private let queue: WriteQueue
    private let commits: CommitSignal
    private let health: StorageHealth
    private let progress: WriterProgress
    private let logger: Logger
    private var lastSeq: UInt64
    private var lastHash: [UInt8]
    private var lastTime: Timestamp

    init(
        storage: RegistryStorage,
        configuration: RegistryStore.Configuration,
        head: (seq: UInt64, hash: [UInt8], time: Timestamp),
        random: any RandomNumberGenerator,
        queue: WriteQueue,
        commits: CommitSignal,
        health: StorageHealth,
        progress: WriterProgress,
        logger: Logger
    ) {
        self.health = health
        self.progress = progress
        self.storage = storage
        self.configuration = configuration
        self.random = random
        self.queue = queue
        self.commits = commits
        self.logger = logger
        (lastSeq, lastHash, lastTime) = head
    }

    func run() {
        var laps = PhaseLaps()
        while let jobs = queue.take(maxCommands: configuration.maxBatchCommands) {
            laps.lap("idle")
            defer { laps = PhaseLaps() }
            // The heartbeat the watchdog and /readyz read: a job that does not finish within the
            // stall threshold marks the writer stuck.
            progress.began(at: configuration.monotonicNow())
            defer { progress.finished(at: configuration.monotonicNow()) }
            if jobs.count == 1, case .custom(let work, let onStorageFailure) = jobs[0] {
                runCustom(work, onStorageFailure: onStorageFailure)
            } else {
                runCommands(jobs.compactMap { if case .commands(let b) = $0 { b } else { nil } }, laps: laps)
            }
        }
    }

    private func runCustom(
        _ work: (borrowing WriteTransaction, RegistryDatabases) throws -> () -> Void,
        onStorageFailure: (any Error) -> Void
    ) {
        do {
            let resume = try storage.environment.write { txn in try work(txn, storage.databases) }
            recovered()
            // A custom write may have appended to the log (`appendVerbatim`): the writer's head
            // follows it, so the next command continues the chain from there.
            if let head = try? storage.head(), head.seq != lastSeq {
                (lastSeq, lastHash, lastTime) = head
                commits.publish(lastSeq)
            }
            resume()
        } catch let failure as CustomWorkFailure {
            failure.resume()
        } catch {
            onStorageFailure(classify(error))
        }
    }

    /// A storage error as callers see it: "no space" becomes `StorageFullError` (and the store
    /// is marked full until a write succeeds again).
    private func classify(_ error: any Error) -> any Error {
        guard StorageHealth.isNoSpace(error) else { return error }
        if health.record(full: true) { logger.error("storage full: writes are refused until space returns", metadata: ["store.error": "\(error)"]) }
        return StorageFullError(underlying: "\(error)")
    }

    private func recovered() {
        if health.record(full: false) { logger.notice("storage has space again: writes resume") }
    }

    private struct Progress {
        /// The last event decided (sequence numbers are given out at decision).
        var seq: UInt64
        var time: Timestamp
        /// The last event stored, and its hash (the chain advances as events are stored).
        var storedSeq: UInt64
        var hash: [UInt8]
        var results: [[Result<CommandOutcome, RegistryError>]] = []
    }

    /// Most events encoded together: bounds the memory a huge batch holds before it is stored.
    private static let maximumRun = 1024

    /// `laps`: `write` is the transaction's body (deciding, preparing, storing), `commit` its
    /// durable commit.
    private func runCommands(_ batches: [CommandBatch], laps: PhaseLaps) {
        let progress: Progress
        let started = ContinuousClock.now
        do {
            // The body may run more than once (map growth): it starts from the committed head
            // each time and only its returned value is kept.
            progress = try storage.environment.write { txn in
                var p = Progress(seq: lastSeq, time: lastTime, storedSeq: lastSeq, hash: lastHash)
                // Commands are decided in order here; their events collect in `deciding`. A full
                // run goes to the other cores to be prepared (sealed, encoded) while the next one
                // is decided, and is stored (chained, appended, projected) in order before that
                // next one is handed over. A command whose device an unstored event touches
                // would read state not yet stored, so everything is stored first; so it is after
                // every command when an identity limit makes each decision depend on the count
                // stored so far.
                var deciding: [DecidedEvent] = []
                var touched: Set<String> = []
                // Sized once: grown insert by insert, its rehashes showed on an import's profile.
                touched.reserveCapacity(batches.reduce(0) { $0 + $1.commands.count })
                var preparing: PreparingRun?
                defer { preparing?.wait() }
                let oneByOne = configuration.limits.maxIdentities != nil
                for batch in batches {
                    var results: [Result<CommandOutcome, RegistryError>] = []
                    results.reserveCapacity(batch.commands.count)
                    for command in batch.commands {
                        if touched.contains(command.deviceId) {
                            try storeAll(&preparing, &deciding, txn: txn, progress: &p)
                            touched.removeAll(keepingCapacity: true)
                        }
                        let result = try decide(command, batch: batch, txn: txn, progress: &p, into: &deciding)
                        if case .success(let outcome) = result, !outcome.events.isEmpty { touched.insert(command.deviceId) }
                        if oneByOne {
                            try storeAll(&preparing, &deciding, txn: txn, progress: &p)
                            touched.removeAll(keepingCapacity: true)
                        } else if deciding.count >= Self.maximumRun {
                            // The next run goes to the helpers before the previous one is stored,
                            // so its preparation overlaps the puts (stored first, the other core
                            // idled while this thread did them).
                            if let previous = preparing {
                                let prepared = previous.wait()
                                preparing = PreparingRun(deciding, sealer: storage.sealer!)
                                deciding.removeAll(keepingCapacity: true)
                                try store(previous.events, prepared, txn: txn, progress: &p)
                                DispatchQueue.global().async { withExtendedLifetime(previous) {} }
                            } else {
                                preparing = PreparingRun(deciding, sealer: storage.sealer!)
                                deciding.removeAll(keepingCapacity: true)
                            }
                            // Still unstored: the run just handed over, whose devices are `touched`.
                        }
                        results.append(result)
                    }
                    p.results.append(results)
                }
                try storeAll(&preparing, &deciding, txn: txn, progress: &p)
                precondition(p.storedSeq == p.seq, "every decided event is stored")
                laps.lap("write")
                return p
            }
            laps.lap("commit")
        } catch {
            logger.error("write transaction failed", metadata: ["store.error": "\(error)", "store.batches": "\(batches.count)"])
            let failure = classify(error)
            for batch in batches { batch.complete(.failure(failure)) }
            return
        }
        recovered()
        let appended = Int(progress.seq - lastSeq)
        (lastSeq, lastHash, lastTime) = (progress.seq, progress.hash, progress.time)
        commits.publish(lastSeq)
        configuration.commitObserver?(
            CommitObservation(
                commands: batches.reduce(0) { $0 + $1.commands.count },
                events: appended,
                duration: ContinuousClock.now - started,
                phases: laps.laps
            )
        )
        for (batch, results) in zip(batches, progress.results) { batch.complete(.success(results)) }
    }

    /// Decides one command against the transaction's current state (plus nothing of `run`:
    /// see `runCommands`) and queues its events. A rule violation is returned as a failure
    /// (nothing queued); storage errors throw.
    private func decide(
        _ command: Command,
        batch: CommandBatch,
        txn: borrowing WriteTransaction,
        progress p: inout Progress,
        into run: inout [DecidedEvent]
    ) throws -> Result<CommandOutcome, RegistryError> {
        // Event times strictly increase, so creation times (generationIds) are unique.
        let now = max(configuration.clock.now(), p.time.successor)
        let state = try loadState(for: command, txn)
        let events: [RegistryEvent]
        do {
            events = try RegistryCore.decide(
                command,
                state: state,
                context: DecisionContext(now: now, sequence: p.seq + 1, limits: configuration.limits),
                random: &random
            )
        } catch {
            return .failure(error)
        }
        for event in events {
            // Pair assertion (TigerStyle): the log stays gapless.
            precondition(event.seq == p.seq + 1, "event sequence must be gapless")
            run.append(DecidedEvent(event, actor: batch.actor, requestId: batch.requestId, random: &random))
            p.seq = event.seq
        }
        p.time = now
        let identity = events.last.flatMap { $0.type.isDelete ? nil : $0.identity }
        return .success(CommandOutcome(events: events, identity: identity))
    }

    /// Stores the run being prepared, then the one being decided.
    private func storeAll(
        _ preparing: inout PreparingRun?,
        _ deciding: inout [DecidedEvent],
        txn: borrowing WriteTransaction,
        progress p: inout Progress
    ) throws {
        if let run = preparing {
            preparing = nil
            let prepared = run.wait()
            if DecidedEvent.isWorthSharing(deciding.count) {
                // The last run is prepared by the helpers while the one before it is stored (a
                // batch's tail used to wait for the whole of it on this thread).
                let last = PreparingRun(deciding, sealer: storage.sealer!)
                deciding.removeAll(keepingCapacity: true)
                try store(run.events, prepared, txn: txn, progress: &p)
                try store(last.events, last.wait(), txn: txn, progress: &p)
                return
            }
            try store(run.events, prepared, txn: txn, progress: &p)
        }
        try store(deciding, DecidedEvent.prepareAll(deciding, sealer: storage.sealer!), txn: txn, progress: &p)
        deciding.removeAll(keepingCapacity: true)
    }

    /// Chains, appends and projects prepared events in order. `prepared` is taken over: each
    /// record is chained in place (uniquely held, so not copied).
    private func store(
        _ run: [DecidedEvent],
        _ prepared: consuming [DecidedEvent.Prepared],
        txn: borrowing WriteTransaction,
        progress p: inout Progress
    ) throws {
        precondition(run.count == prepared.count, "every event is prepared")
        // By index: the events are read in place, not copied (and retained) one by one.
        for i in run.indices {
            let seq = run[i].event.seq
            // Pair assertion (TigerStyle): the log stays gapless and chained.
            precondition(seq == p.storedSeq + 1, "event sequence must be gapless")
            let hash = prepared[i].parts.chain(to: p.hash)
            try txn.put(storage.databases.events, StorageKey.sequence(seq), prepared[i].parts.record, flags: .append)
            try Projections.apply(
                VerifiedEvent(
                    seq: seq,
                    type: run[i].event.type,
                    deviceId: run[i].event.deviceId,
                    moduleId: run[i].event.moduleId,
                    payloadBytes: prepared[i].payloadBytes,
                    hash: hash,
                    disabled: prepared[i].disabled,
                    connected: prepared[i].connected
                ),
                txn: txn,
                databases: storage.databases
            )
            p.storedSeq = seq
            p.hash = hash
        }
        // A large run is freed on another core: the events and their payloads were a tenth of
        // this thread's time on an import, and this thread is the one everything waits for. A
        // few events (an API write) cost less to free here than a hand-over.
        if DecidedEvent.isWorthSharing(run.count) {
            let finished = (run, prepared)
            DispatchQueue.global().async { withExtendedLifetime(finished) {} }
        }
    }

    private func loadState(for command: Command, _ txn: borrowing WriteTransaction) throws -> CommandState {
        var state = CommandState()
        let deviceId = command.deviceId
        state.device = try storage.loadDevice(deviceId, txn)
        if let moduleId = command.moduleId {
            state.module = try storage.loadModule(deviceId, moduleId, txn)
        }
        switch command {
        case _ where command.needsAllModules:
            state.modules = try storage.loadModules(of: deviceId, txn)
            state.moduleCount = state.modules.count
        case _ where command.needsModuleCount:
            state.moduleCount = try storage.countModules(of: deviceId, txn)
        default:
            break
        }
        if configuration.limits.maxIdentities != nil {
            let db = storage.databases
            state.identityCount = try txn.statistics(db.devices).entries + txn.statistics(db.modules).entries
        }
        return state
    }
}
