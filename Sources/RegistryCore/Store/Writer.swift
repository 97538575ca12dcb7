import LMDB
import Logging

/// The writer thread's state and loop. Confined to that one thread: nothing here is shared.
final class Writer: @unchecked Sendable {
    // Why unchecked: created on the opening thread, then used only by the writer thread.
    private let storage: RegistryStorage
    private let configuration: RegistryStore.Configuration
    private var random: any RandomNumberGenerator
    private let queue: WriteQueue
    private let commits: CommitSignal
    private let health: StorageHealth
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
        logger: Logger
    ) {
        self.health = health
        self.storage = storage
        self.configuration = configuration
        self.random = random
        self.queue = queue
        self.commits = commits
        self.logger = logger
        (lastSeq, lastHash, lastTime) = head
    }

    func run() {
        while let jobs = queue.take(maxCommands: configuration.maxBatchCommands) {
            if jobs.count == 1, case .custom(let work, let onStorageFailure) = jobs[0] {
                runCustom(work, onStorageFailure: onStorageFailure)
            } else {
                runCommands(jobs.compactMap { if case .commands(let b) = $0 { b } else { nil } })
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
        var seq: UInt64
        var hash: [UInt8]
        var time: Timestamp
        var results: [[Result<CommandOutcome, RegistryError>]] = []
    }

    private func runCommands(_ batches: [CommandBatch]) {
        let progress: Progress
        let started = ContinuousClock.now
        do {
            // The body may run more than once (map growth): it starts from the committed head
            // each time and only its returned value is kept.
            progress = try storage.environment.write { txn in
                var p = Progress(seq: lastSeq, hash: lastHash, time: lastTime)
                for batch in batches {
                    var results: [Result<CommandOutcome, RegistryError>] = []
                    results.reserveCapacity(batch.commands.count)
                    for command in batch.commands {
                        results.append(try apply(command, batch: batch, txn: txn, progress: &p))
                    }
                    p.results.append(results)
                }
                return p
            }
        } catch {
            logger.error("write transaction failed", metadata: ["store.error": "\(error)", "store.batches": "\(batches.count)"])
            let failure = classify(error)
            for batch in batches { batch.continuation.resume(throwing: failure) }
            return
        }
        recovered()
        let appended = Int(progress.seq - lastSeq)
        (lastSeq, lastHash, lastTime) = (progress.seq, progress.hash, progress.time)
        commits.publish(lastSeq)
        configuration.commitObserver?(
            CommitObservation(commands: batches.reduce(0) { $0 + $1.commands.count }, events: appended, duration: ContinuousClock.now - started)
        )
        for (batch, results) in zip(batches, progress.results) { batch.continuation.resume(returning: results) }
    }

    /// Decides one command against the transaction's current state and appends its events.
    /// A rule violation is returned as a failure (nothing written); storage errors throw.
    private func apply(
        _ command: Command,
        batch: CommandBatch,
        txn: borrowing WriteTransaction,
        progress p: inout Progress
    ) throws -> Result<CommandOutcome, RegistryError> {
        // Event times strictly increase, so creation times (generationIds) are unique.
        let now = max(configuration.clock.now(), p.time.successor)
        let state = try loadState(for: command, txn)
        let events: [RegistryEvent]
        do {
            events = try decide(command, state: state, context: DecisionContext(now: now, sequence: p.seq + 1, limits: configuration.limits), random: &random)
        } catch {
            return .failure(error)
        }
        for event in events {
            let payload = IdentityCodec.encode(event.identity) { key, slot in
                storage.sealer!.seal(key, context: slot.context, random: &random)
            }
            let record = EventRecord(
                seq: event.seq,
                time: event.time,
                type: event.type,
                deviceId: event.deviceId,
                moduleId: event.moduleId,
                actor: batch.actor,
                requestId: batch.requestId,
                payload: payload,
                prevHash: p.hash
            )
            // Pair assertion (TigerStyle): the log stays gapless and chained.
            precondition(record.seq == p.seq + 1, "event sequence must be gapless")
            try txn.put(storage.databases.events, StorageKey.sequence(record.seq), record.encoded, flags: .append)
            try Projections.apply(record, txn: txn, databases: storage.databases)
            p.seq = record.seq
            p.hash = record.hash
        }
        p.time = now
        let identity = events.last.flatMap { $0.type.isDelete ? nil : $0.identity }
        return .success(CommandOutcome(events: events, identity: identity))
    }

    private func loadState(for command: Command, _ txn: borrowing WriteTransaction) throws -> CommandState {
        var state = CommandState()
        let deviceId = command.deviceId
        state.device = try storage.loadDevice(deviceId, txn)
        if let moduleId = command.moduleId {
            state.module = try storage.loadModule(deviceId, moduleId, txn)
        }
        switch command {
        case .deleteDevice:
            state.modules = try storage.loadModules(of: deviceId, txn)
            state.moduleCount = state.modules.count
        case .createModule, .createOrReplaceModule:
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
