import Foundation
import HTTPTypes
import Logging
import RegistryCore
import RegistryTransfer
import ServiceLifecycle
import Synchronization

/// The `jobs` key of the configuration file: where job containers may live.
///
/// ```json
/// {"jobs": {"roots": ["/srv/registryd/jobs"], "importBatch": 10000}}
/// ```
public struct JobsConfiguration: Sendable, Hashable {
    /// Directories `file://` container URIs must resolve inside (symlinks resolved). None: jobs are off.
    public var roots: [String]
    /// Import lines per write transaction.
    public var importBatch: Int

    public init(roots: [String] = [], importBatch: Int = 10_000) {
        self.roots = roots
        self.importBatch = importBatch
    }

    public init(json: JSONValue) throws(ConfigurationFieldError) {
        self.init()
        guard case .object(let fields) = json else { throw ConfigurationFieldError("jobs", "must be an object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "roots":
                guard case .array(let items) = value else {
                    throw ConfigurationFieldError("jobs.roots", "must be an array of absolute directory paths")
                }
                roots = []
                for item in items {
                    guard let path = item.stringValue, path.hasPrefix("/") else {
                        throw ConfigurationFieldError("jobs.roots", "must hold absolute directory paths")
                    }
                    roots.append(path)
                }
            case "importBatch":
                guard let n = value.intValue, n > 0, n <= 100_000 else {
                    throw ConfigurationFieldError("jobs.importBatch", "must be an integer from 1 to 100000")
                }
                importBatch = Int(n)
            default:
                throw ConfigurationFieldError("jobs.\(key)", "unknown key (known: importBatch, roots)")
            }
        }
    }
}

/// Runs import and export jobs, one at a time, recording each in the `jobs` database: created
/// `enqueued`, then `running` with progress, then `completed`, `failed` (with a reason) or
/// `cancelled`. Exports write a consistent snapshot; imports go through the writer in large
/// key-sorted batches, with `importErrors.log` beside the output.
///
/// A service of the daemon's group: jobs run inside its `run()`, so a shutdown drains them (the
/// running job is asked to stop and records itself cancelled before the store closes). A job
/// created while the service is not running waits for it.
public final class JobService: Service, Sendable {
    let store: any RegistryBackend
    let configuration: JobsConfiguration
    let logger: Logger
    private let active = Mutex<ActiveJob?>(nil)
    private let shuttingDown = Atomic<Bool>(false)
    private let queue = AsyncStream<(JobRecord, JobPlan)>.makeStream()

    public init(store: any RegistryBackend, configuration: JobsConfiguration, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: records

    public func list() async throws -> [JobRecord] {
        try await store.jobRecords()
            .compactMap { (try? JSONParser.parse($0)).flatMap(JobRecord.init(json:)) }
            .sorted { $0.startTimeUtc < $1.startTimeUtc }
    }

    public func get(_ id: String) async throws -> JobRecord? {
        try await store.jobRecord(id).flatMap { try? JSONParser.parse($0) }.flatMap(JobRecord.init(json:))
    }

    func save(_ record: JobRecord) async throws {
        try await store.saveJobRecord(record.jobId, CanonicalJSON.encode(record.json))
    }

    /// Saves a record of the job this node runs, only over the record this node last wrote for
    /// it (one compare-and-set in the store): a record another node wrote meanwhile (a cancel
    /// taken there) is never overwritten, and the job is asked to stop. Whether it was written.
    @discardableResult
    func saveActive(_ record: JobRecord) async throws -> Bool {
        let bytes = CanonicalJSON.encode(record.json)
        guard let expected = active.withLock({ $0?.id == record.jobId ? $0?.stored : nil }) else {
            try await store.saveJobRecord(record.jobId, bytes)
            return true
        }
        if try await store.replaceJobRecord(record.jobId, expected: expected, with: bytes) {
            active.withLock { if $0?.id == record.jobId { $0?.stored = bytes } }
            return true
        }
        _ = await cancelledElsewhere(record.jobId)
        return false
    }

    /// The job this node runs, and how to give up the hub's job lease when it ends.
    struct ActiveJob {
        var id: String
        var cancelled = false
        /// The hub's job lease was lost while the job was active (its database session ended):
        /// another node may start a job, so this one stops and is recorded failed.
        var leaseLost = false
        var releaseLease: @Sendable () -> Void = {}
        /// The record as this node last stored it (what `saveActive` compares against).
        var stored: [UInt8]?
    }

    static let leaseLostReason =
        "the job's lease was lost (its database session ended), so another node could start a job; this one stopped. Create it again (an import may have applied part of its file)"

    /// The store lease that makes a job the hub's one active job across nodes.
    static let lease = "jobs"

    /// At start: a job left `enqueued` or `running` by a daemon that stopped is marked failed
    /// (its partial effects are real: an import's applied batches stay applied). With several
    /// nodes, only while no node holds the job lease: a job another node runs is not interrupted.
    public func recoverInterrupted(now: Timestamp) async throws {
        let failure = Mutex<(any Error)?>(nil)
        _ = try await store.withExclusiveLease(Self.lease) {
            do { try await self.failInterrupted(now: now) } catch { failure.withLock { $0 = error } }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Marks every job not terminal failed; called only while holding the job lease, when no
    /// job can be running.
    private func failInterrupted(now: Timestamp) async throws {
        for var record in try await list() where !record.status.isTerminal {
            record.failureReason =
                "registryd stopped while the job was \(record.status.rawValue); create the job again (an import may have applied part of its file)"
            record.status = .failed
            record.endTimeUtc = now
            try await save(record)
            logger.warning("job interrupted by a restart marked failed", metadata: ["job.id": "\(record.jobId)"])
        }
    }

    // MARK: create and cancel

    /// Validates and records a job, then starts it. Throws `APIError` for a bad request.
    /// - Parameter scope: a scoped caller's: only a bulkByQuery job, inside the scope.
    public func create(_ body: JSONValue, now: Timestamp, scope: PolicyScope? = nil, createdBy: String? = nil) async throws -> JobRecord {
        let (prepared, plan) = try prepare(body, now: now, scope: scope)
        var record = prepared
        record.createdBy = createdBy
        let claimed = active.withLock { current -> Bool in
            guard current == nil else { return false }
            current = ActiveJob(id: record.jobId)
            return true
        }
        let quotaExceeded = APIError(
            status: .forbidden,
            code: "JobQuotaExceeded",
            message: "Job quota has been exceeded: one import, export or bulkByQuery job may be active at a time."
        )
        guard claimed else { throw quotaExceeded }
        do {
            // Across nodes: the hub's job lease, held by a task of its own until the job ends.
            guard let release = try await takeLease() else {
                active.withLock { $0 = nil }
                throw quotaExceeded
            }
            active.withLock { $0?.releaseLease = release }
            // Holding the lease, no job runs anywhere: one left unfinished was interrupted.
            try await failInterrupted(now: now)
            let bytes = CanonicalJSON.encode(record.json)
            try await store.saveJobRecord(record.jobId, bytes)
            active.withLock { $0?.stored = bytes }
        } catch {
            finishActive()
            throw error
        }
        if case .terminated = queue.continuation.yield((record, plan)) {
            finishActive()
            record.status = .failed
            record.failureReason = "registryd is shutting down; create the job again once it runs"
            try await save(record)
            throw APIError(
                status: .serviceUnavailable,
                code: "ServiceUnavailable",
                message: "The registry is shutting down; create the job again once it runs."
            )
        }
        record.status = .enqueued
        return record
    }

    /// Takes the hub's job lease for a new job: nil when another node holds it. The lease stays
    /// with a task of its own until the returned closure is called (the job ended).
    private func takeLease() async throws -> (@Sendable () -> Void)? {
        let (released, release) = AsyncStream<Void>.makeStream()
        let givenUp = Flag()
        let store = self.store
        let taken: Bool = try await withCheckedThrowingContinuation { continuation in
            let answer = Answer(continuation)
            Task {
                do {
                    let took = try await store.withExclusiveLease(Self.lease) {
                        answer.give(.success(true))
                        for await _ in released {}
                    }
                    if !took { answer.give(.success(false)) }
                } catch {
                    answer.give(.failure(error))
                }
                // The lease ended without the job giving it up: its session was lost.
                if !givenUp.isSet { await self.leaseLost() }
            }
        }
        guard taken else { return nil }
        return {
            givenUp.set()
            release.finish()
        }
    }

    /// The active job's lease was lost: it is asked to stop and recorded failed at once (a job
    /// not started yet never starts).
    private func leaseLost() async {
        let id = active.withLock { current -> String? in
            guard current != nil else { return nil }
            current?.cancelled = true
            current?.leaseLost = true
            return current?.id
        }
        guard let id, var record = try? await get(id), !record.status.isTerminal else { return }
        logger.error("job lease lost; the job stops", metadata: ["job.id": "\(id)"])
        record.status = .failed
        record.failureReason = Self.leaseLostReason
        record.endTimeUtc = SystemClock().now()
        try? await save(record)
    }

    /// A one-way flag shared with a task (`Atomic` itself cannot be captured).
    private final class Flag: Sendable {
        private let state = Atomic<Bool>(false)
        func set() { state.store(true, ordering: .releasing) }
        var isSet: Bool { state.load(ordering: .acquiring) }
    }

    /// A continuation resumed once, by whichever answer comes first.
    private final class Answer: Sendable {
        private let continuation: Mutex<CheckedContinuation<Bool, any Error>?>
        init(_ continuation: CheckedContinuation<Bool, any Error>) { self.continuation = Mutex(continuation) }
        func give(_ result: Result<Bool, any Error>) { continuation.withLock { $0.take() }?.resume(with: result) }
    }

    /// The active job ended (or never started): its slot and lease are free.
    private func finishActive() {
        let release = active.withLock { current -> (@Sendable () -> Void)? in
            defer { current = nil }
            return current?.releaseLease
        }
        release?()
    }

    /// Runs the jobs handed over by `create`, one at a time, until a graceful shutdown; then it
    /// stops taking jobs, asks the running one to stop, and returns once it has recorded itself.
    public func run() async throws {
        await withGracefulShutdownHandler {
            for await (record, plan) in queue.stream { await self.run(record, plan) }
        } onGracefulShutdown: {
            self.shuttingDown.store(true, ordering: .relaxed)
            self.queue.continuation.finish()
            self.active.withLock { $0?.cancelled = true }
        }
    }

    /// The record of a new job and what it will read and write, checked (a bad request throws `APIError`).
    func prepare(_ body: JSONValue, now: Timestamp, scope: PolicyScope? = nil) throws -> (JobRecord, JobPlan) {
        func string(_ name: String) throws -> String? { try IdentityRequestDecoder.string(body, name).flatMap { $0.isEmpty ? nil : $0 } }
        guard let typeName = try string("type") else {
            throw APIError(status: .badRequest, code: "ArgumentNull", message: "type is required (export or import).")
        }
        guard let type = JobRecord.Kind.allCases.first(where: { $0.rawValue.lowercased() == typeName.lowercased() }) else {
            throw APIError.invalid("Job type '\(typeName)' is not supported; use export, import or bulkByQuery.")
        }
        if type == .bulkByQuery {
            // Reads and writes the registry only: no container, no job roots.
            var job = try BulkQueryJob.parse(body)
            if let scope {
                // Inside a scoped caller's scope: selected there, and each change checked there.
                job.query.filter = job.query.filter.map { .and($0, scope.queryCondition) } ?? scope.queryCondition
                job.scope = scope
            }
            var record = JobRecord(
                jobId: UUID().uuidString.lowercased(),
                type: type,
                status: .enqueued,
                startTimeUtc: now,
                inputBlobContainerUri: nil,
                inputBlobName: nil,
                outputBlobContainerUri: nil,
                outputBlobName: nil,
                excludeKeysInExport: false
            )
            record.bulk = BulkQueryJob.Record(job)
            return (record, .bulkByQuery(job))
        }
        if scope != nil {
            throw APIError.unauthorized(
                "A scoped policy cannot run \(type.rawValue) jobs: they read or write every identity. A bulkByQuery job runs inside the scope."
            )
        }
        guard !configuration.roots.isEmpty else {
            throw APIError.invalid("Import and export jobs are off: configure jobs.roots with the directories containers may use.")
        }
        let outputUri = try string("outputBlobContainerUri")
        let inputUri = try string("inputBlobContainerUri")
        let exclude = try IdentityRequestDecoder.bool(body, "excludeKeysInExport") ?? false
        let record = JobRecord(
            jobId: UUID().uuidString.lowercased(),
            type: type,
            status: .enqueued,
            startTimeUtc: now,
            inputBlobContainerUri: inputUri,
            inputBlobName: type == .import ? try string("inputBlobName") ?? "devices.txt" : nil,
            outputBlobContainerUri: outputUri,
            outputBlobName: type == .export ? try string("outputBlobName") ?? "devices.txt" : nil,
            excludeKeysInExport: exclude
        )
        // Resolve every path now: a bad container is the caller's error (400), not a failed job.
        let plan: JobPlan
        switch type {
        case .bulkByQuery:
            preconditionFailure("handled above")
        case .export:
            guard let outputUri else { throw APIError(status: .badRequest, code: "ArgumentNull", message: "An export needs outputBlobContainerUri.") }
            let directory = try container(outputUri, field: "outputBlobContainerUri")
            _ = try blob(record.outputBlobName!, in: directory, field: "outputBlobName", mustExist: false)
            plan = .export(container: directory, name: record.outputBlobName!)
        case .import:
            guard let inputUri else { throw APIError(status: .badRequest, code: "ArgumentNull", message: "An import needs inputBlobContainerUri.") }
            let inputDirectory = try container(inputUri, field: "inputBlobContainerUri")
            _ = try blob(record.inputBlobName!, in: inputDirectory, field: "inputBlobName", mustExist: true)
            let errorsDirectory = try outputUri.map { try container($0, field: "outputBlobContainerUri") } ?? inputDirectory
            _ = try blob(Self.importErrorsName, in: errorsDirectory, field: "outputBlobContainerUri", mustExist: false)
            plan = .import(container: inputDirectory, name: record.inputBlobName!, errorsContainer: errorsDirectory)
        }
        return (record, plan)
    }

    /// Asks the active job to stop; answers the record as it stands (terminal jobs unchanged).
    public func cancel(_ id: String, now: Timestamp) async throws -> JobRecord? {
        guard var record = try await get(id) else { return nil }
        let signalled = active.withLock { current -> Bool in
            guard current?.id == id else { return false }
            current?.cancelled = true
            return true
        }
        if !signalled {
            // Not running here: another node runs it (its watcher sees the record within a
            // second and stops the job; its progress saves compare and fail), or it was left
            // over. Recorded over the record as read, never over one written since (the job may
            // have finished meanwhile: then it stays finished).
            for _ in 0..<5 {
                guard let stored = try await store.jobRecord(id), let current = (try? JSONParser.parse(stored)).flatMap(JobRecord.init(json:)),
                    !current.status.isTerminal
                else { break }
                record = current
                record.status = .cancelled
                record.endTimeUtc = now
                if try await store.replaceJobRecord(id, expected: stored, with: CanonicalJSON.encode(record.json)) { break }
            }
        }
        return try await get(id) ?? record
    }

    var isCancelled: Bool { active.withLock { $0?.cancelled ?? false } }

    /// Whether the stored record says cancelled (another node took the cancel); if so, the
    /// running job is asked to stop.
    private func cancelledElsewhere(_ id: String) async -> Bool {
        guard (try? await get(id))?.status == .cancelled else { return false }
        active.withLock { if $0?.id == id { $0?.cancelled = true } }
        return true
    }

    // MARK: running

    /// What a job reads and writes: containers as resolved when it was created, and plain file
    /// names in them. They are opened again when it runs (`JobDirectory`), and checked again.
    enum JobPlan: Sendable {
        case export(container: String, name: String)
        case `import`(container: String, name: String, errorsContainer: String)
        case bulkByQuery(BulkQueryJob)
    }

    /// The name of an import's log of refused lines, in its output container.
    static let importErrorsName = "importErrors.log"

    func run(_ initial: JobRecord, _ plan: JobPlan) async {
        var record = initial
        record.status = .running
        // A cancel taken by another node reaches this one through the stored record.
        let watcher = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if await cancelledElsewhere(initial.jobId) { return }
            }
        }
        defer { watcher.cancel() }
        do {
            // Cancelled (or drained by a shutdown) before it began: nothing is read or written.
            if isCancelled { throw ImportExportEngine.Cancelled() }
            try await saveActive(record)
            // A cancel another node recorded before this start: nothing is read or written.
            if isCancelled { throw ImportExportEngine.Cancelled() }
            switch plan {
            case .export(let container, let name):
                try await runExport(&record, container: container, name: name)
            case .import(let container, let name, let errorsContainer):
                try await runImport(&record, container: container, name: name, errorsContainer: errorsContainer)
            case .bulkByQuery(let job):
                try await runBulkQuery(&record, job)
            }
            record.status = .completed
            record.progress = 100
        } catch is ImportExportEngine.Cancelled {
            record.status = .cancelled
            if shuttingDown.load(ordering: .relaxed) { record.failureReason = "registryd shut down while the job ran; create the job again" }
            if active.withLock({ $0?.leaseLost ?? false }) {
                record.status = .failed
                record.failureReason = Self.leaseLostReason
            }
        } catch {
            record.status = .failed
            record.failureReason = "\(error)"
            logger.error("job failed", metadata: ["job.id": "\(record.jobId)", "error": "\(error)"])
        }
        record.endTimeUtc = SystemClock().now()
        // Over a record another node wrote meanwhile (a cancel) only if the job completed: its
        // work is all done, whatever was asked late.
        if (try? await saveActive(record)) != true && record.status == .completed { try? await save(record) }
        finishActive()
        logger.info(
            "job finished",
            metadata: ["job.id": "\(record.jobId)", "job.type": "\(record.type.rawValue)", "job.status": "\(record.status.rawValue)"]
        )
    }

    func runExport(_ record: inout JobRecord, container: String, name: String) async throws {
        let exclude = record.excludeKeysInExport
        let roots = configuration.roots
        let temporary = name + ".partial-" + record.jobId
        // File work blocks: it runs on the blocking pool, as the backend's scan does.
        let (directory, handle) = try await BlockingPool.shared.run {
            // Opened now, not trusted from the job's creation (see `JobDirectory`).
            let directory = try JobDirectory.opened(container, roots: roots)
            // A directory at the name fails the job before the scan (and the rename checks again).
            try directory.checkReplaceable(name)
            // The lines carry the devices' keys unless excluded: owner-only from the first byte,
            // and never a file or link already at that name (`PrivateFile`).
            return (directory, try directory.createPrivate(temporary))
        }
        let counts: ImportExportEngine.ExportCounts
        do {
            counts = try await ImportExportEngine.export(storage: store, excludeKeys: exclude, isCancelled: { self.isCancelled }) {
                try handle.write(contentsOf: $0)
            }
            try await BlockingPool.shared.run {
                try handle.synchronize()
                try handle.close()
                // The finished file appears whole, in one rename over any old one: never
                // half-written under its name, never a removal first.
                try directory.publish(temporary, as: name)
            }
        } catch {
            try? handle.close()
            directory.remove(temporary)
            throw error
        }
        record.identities = counts.devices + counts.modules
    }

    func runImport(_ record: inout JobRecord, container: String, name: String, errorsContainer: String) async throws {
        // Both opened now, not trusted from the job's creation (see `JobDirectory`).
        let input = try JobDirectory.opened(container, roots: configuration.roots).openForReading(name)
        let errorsDirectory = try JobDirectory.opened(errorsContainer, roots: configuration.roots)
        try errorsDirectory.checkReplaceable(Self.importErrorsName)
        // The log is written beside its final name and published in one rename, as an export is.
        let temporary = Self.importErrorsName + ".partial-" + record.jobId
        let errorLog = try errorsDirectory.createPrivate(temporary)
        let size = max(1, input.size)
        var progressRecord = record
        let counts: ImportExportEngine.ImportCounts
        do {
            counts = try await ImportExportEngine.importFile(
                store: store,
                reader: LineReader(handle: input.handle),
                batch: configuration.importBatch,
                actor: "job:\(record.jobId)",
                requestId: record.jobId,
                errors: { try? errorLog.write(contentsOf: CanonicalJSON.encode($0) + [10]) },
                isCancelled: { self.isCancelled },
                progress: { counts in
                    // Never over a cancellation another node recorded (`saveActive` compares).
                    progressRecord.progress = min(99, counts.bytesRead * 100 / size)
                    progressRecord.identities = counts.imported
                    progressRecord.failedLines = counts.failed
                    _ = try? await self.saveActive(progressRecord)
                }
            )
        } catch {
            // A cancelled or failed import still reports the lines it refused until then.
            try? errorLog.close()
            if (try? errorsDirectory.publish(temporary, as: Self.importErrorsName)) == nil { errorsDirectory.remove(temporary) }
            throw error
        }
        do {
            try errorLog.synchronize()
            try errorLog.close()
            try errorsDirectory.publish(temporary, as: Self.importErrorsName)
        } catch {
            errorsDirectory.remove(temporary)
            throw error
        }
        record.identities = counts.imported
        record.failedLines = counts.failed
    }

    /// Counts what the query selects (all a dry run does), then applies the change page by page
    /// as the actor `job:<id>`, saving counts and refusals with each batch.
    func runBulkQuery(_ record: inout JobRecord, _ job: BulkQueryJob) async throws {
        let bounds = QueryBounds()
        let batch = configuration.importBatch
        let matched = try await BulkQueryEngine.count(
            store: store,
            query: job.query,
            pageSize: QueryRoute.maximumPageSize,
            bounds: bounds,
            isCancelled: { self.isCancelled }
        )
        record.bulk?.counts.matched = matched
        if job.dryRun { return }
        // A cancel another node recorded during the count must not be overwritten.
        try await saveActive(record)
        if isCancelled { throw ImportExportEngine.Cancelled() }
        let progressRecord = Mutex(record)
        // Saved with each settled batch, never over a cancellation another node recorded.
        let counts: BulkQueryEngine.Counts
        do {
            counts = try await BulkQueryEngine.apply(
                store: store,
                query: job.query,
                action: job.action,
                scope: job.scope,
                counts: record.bulk?.counts ?? .init(),
                batch: batch,
                bounds: bounds,
                actor: "job:\(record.jobId)",
                requestId: record.jobId,
                refused: { refusal in progressRecord.withLock { $0.bulk?.refused(refusal) } },
                isCancelled: { self.isCancelled },
                progress: { counts in
                    let snapshot = progressRecord.withLock { current -> JobRecord in
                        current.bulk?.counts = counts
                        current.identities = counts.changed
                        current.failedLines = counts.skipped + counts.failed
                        current.progress = min(99, counts.processed * 100 / max(1, matched))
                        return current
                    }
                    _ = try? await self.saveActive(snapshot)
                }
            )
        } catch {
            record = progressRecord.withLock { $0 }
            throw error
        }
        record = progressRecord.withLock { $0 }
        record.bulk?.counts = counts
        record.identities = counts.changed
        record.failedLines = counts.skipped + counts.failed
    }

    // MARK: containers

    /// A `file://` container URI as a real directory inside one of the roots: absolute, no
    /// `..`, symlinks resolved before the check.
    func container(_ uri: String, field: String) throws -> String {
        guard let url = URL(string: uri), url.scheme?.lowercased() == "file", (url.host ?? "").isEmpty || url.host == "localhost" else {
            throw APIError.invalid("\(field) must be a file:// URI of a directory under the configured job roots.")
        }
        let path = url.path
        guard path.hasPrefix("/") else { throw APIError.invalid("\(field) must be an absolute file:// path.") }
        guard !path.split(separator: "/").contains("..") else { throw APIError.invalid("\(field) must not contain '..'.") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw APIError.invalid("\(field): \(path) is not an existing directory.")
        }
        let resolved = Self.realPath(path)
        guard configuration.roots.contains(where: { Self.isInside(resolved, Self.realPath($0)) }) else {
            throw APIError.invalid("\(field): \(path) is outside the configured job roots.")
        }
        return resolved
    }

    /// A blob (a plain file name) in a resolved container; an existing file must not lead out of it.
    func blob(_ name: String, in directory: String, field: String, mustExist: Bool) throws -> String {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { throw APIError.invalid("\(field) must be a plain file name.") }
        let path = directory + "/" + name
        let exists = FileManager.default.fileExists(atPath: path)
        if mustExist && !exists { throw APIError.invalid("\(field): \(path) does not exist.") }
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil {
            throw APIError.invalid("\(field): \(path) is a symbolic link; jobs read and write regular files only.")
        }
        return path
    }

    static func realPath(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }

    static func isInside(_ path: String, _ root: String) -> Bool {
        path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }
}
