import Dispatch
import Logging
import PostgresNIO
import RegistryCore

/// The read side of the store interface on PostgreSQL. A write that returned on any node is
/// visible to the next read on every node (read-your-writes across the cluster): listings,
/// queries and the log are queries on a pooled connection; a single identity comes from the
/// node-local view once it holds every commit made before the read (`ReadFence`); device
/// credentials come from that view as it stands (`LogFollower`), so they answer while the
/// database is away.
extension PostgresStore: RegistryReader {
    /// How long a read waits for a database connection before answering 503.
    static let connectionWait: Duration = .seconds(5)

    /// Runs `body` on a pooled connection, with failures as callers should see them.
    @discardableResult
    func database<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            let value = try await client.leased(within: Self.connectionWait, body)
            reachability.record(true)
            return value
        } catch {
            let described = Self.describe(error, location)
            if described is StorageUnavailableError { reachability.record(false) }
            throw described
        }
    }

    /// One identity's stored document. Read from this node's view of the log once it has folded
    /// everything committed before the call (`ReadFence`): as fresh as a query, a round trip
    /// shared with the concurrent reads instead of one each. When the view cannot catch up, the
    /// table answers.
    private func documentRow(deviceId: String, moduleId: String?) async throws -> [UInt8]? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        if let moduleId, (try? Validation.checkId(moduleId, kind: "module")) == nil { return nil }
        let identityKey = IdentityKey.of(deviceId: deviceId, moduleId: moduleId)
        let committed = try await fence.committedSeq { [self] in try await self.committedHeadSeq() }
        if await follower.reach(committed) { return follower.document(key: identityKey) }
        let (hub, logger) = (self.hub, self.logger)
        let key = ByteBuffer(bytes: identityKey)
        return try await database { connection in
            let rows =
                moduleId == nil
                ? try await connection.query("SELECT doc FROM devices WHERE hub = \(hub) AND key = \(key)", logger: logger)
                : try await connection.query("SELECT doc FROM modules WHERE hub = \(hub) AND key = \(key)", logger: logger)
            for try await doc in rows.decode(ByteBuffer.self) { return Array(doc.readableBytesView) }
            return nil
        }
    }

    /// Rows of one table in key order: `(key, doc)`, after `after`, at most `limit`.
    func documentRows(modules: Bool, after: [UInt8]?, limit: Int, deviceId: String? = nil) async throws -> [([UInt8], [UInt8])] {
        let (hub, logger) = (self.hub, self.logger)
        let table = modules ? "modules" : "devices"
        var binds = PostgresBindings()
        binds.append(hub)
        var sql = "SELECT key, doc FROM \(table) WHERE hub = $1"
        if let after {
            binds.append(ByteBuffer(bytes: after))
            sql += " AND key > $\(binds.count)"
        }
        if let deviceId {
            binds.append(deviceId)
            sql += " AND device_id = $\(binds.count)"
        }
        binds.append(Int64(clamping: limit))
        sql += " ORDER BY key LIMIT $\(binds.count)"
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        return try await database { connection in
            var rows: [([UInt8], [UInt8])] = []
            for try await (key, doc) in try await connection.query(query, logger: logger).decode((ByteBuffer, ByteBuffer).self) {
                rows.append((Array(key.readableBytesView), Array(doc.readableBytesView)))
            }
            return rows
        }
    }

    public func device(_ deviceId: String) async throws -> Device? {
        try await documentRow(deviceId: deviceId, moduleId: nil).map { try documents.decodeDevice($0) }
    }

    public func module(_ deviceId: String, _ moduleId: String) async throws -> Module? {
        try await documentRow(deviceId: deviceId, moduleId: moduleId).map { try documents.decodeModule($0) }
    }

    public func modules(of deviceId: String) async throws -> [Module] {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return [] }
        return try await documentRows(modules: true, after: nil, limit: .max, deviceId: deviceId).map { try documents.decodeModule($0.1) }
    }

    public func devices(after: String?, limit: Int) async throws -> [Device] {
        try await documentRows(modules: false, after: after.map { Array($0.utf8) }, limit: limit).map { try documents.decodeDevice($0.1) }
    }

    public func deviceDocument(_ deviceId: String) async throws -> IdentityDocument? {
        try await documentRow(deviceId: deviceId, moduleId: nil).map { try documents.open($0, deviceId: deviceId, moduleId: nil) }
    }

    public func moduleDocument(_ deviceId: String, _ moduleId: String) async throws -> IdentityDocument? {
        try await documentRow(deviceId: deviceId, moduleId: moduleId).map { try documents.open($0, deviceId: deviceId, moduleId: moduleId) }
    }

    public func deviceDocuments(limit: Int) async throws -> [IdentityDocument] {
        try await documentRows(modules: false, after: nil, limit: limit).map { key, doc in
            try documents.open(doc, deviceId: String(decoding: key, as: UTF8.self), moduleId: nil)
        }
    }

    public func moduleDocuments(of deviceId: String) async throws -> [IdentityDocument]? {
        guard try await documentRow(deviceId: deviceId, moduleId: nil) != nil else { return nil }
        let prefix = Array(deviceId.utf8).count + 1
        return try await documentRows(modules: true, after: nil, limit: .max, deviceId: deviceId).map { key, doc in
            try documents.open(doc, deviceId: deviceId, moduleId: String(decoding: key[prefix...], as: UTF8.self))
        }
    }

    public func storedDocument(deviceId: String, moduleId: String?) async throws -> [UInt8]? {
        try await documentRow(deviceId: deviceId, moduleId: moduleId)
    }

    public func forEachIdentity(openKeys: Bool, _ visit: @escaping @Sendable (IdentityDocument, _ isModule: Bool) throws -> Void) async throws {
        // One query in one REPEATABLE READ transaction: one snapshot, however long the scan, and
        // rows streamed (not loaded whole). Devices and modules merged in key order put each
        // device right before its modules (a module's key is its device's key, 0x00, its id).
        // `visit` runs on the blocking pool, a page of rows at a time.
        let (hub, logger, documents) = (self.hub, self.logger, self.documents)
        try await database { connection in
            try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                let rows = try await connection.query(
                    """
                    SELECT key, doc, false FROM devices WHERE hub = \(hub)
                    UNION ALL SELECT key, doc, true FROM modules WHERE hub = \(hub)
                    ORDER BY 1
                    """,
                    logger: logger
                )
                var page: [([UInt8], [UInt8], Bool)] = []
                func hand(_ page: [([UInt8], [UInt8], Bool)]) async throws {
                    try await BlockingPool.shared.run {
                        for (key, doc, isModule) in page {
                            let zero = isModule ? key.firstIndex(of: 0) : nil
                            let deviceId = String(decoding: zero.map { key[..<$0] } ?? key[...], as: UTF8.self)
                            let moduleId = zero.map { String(decoding: key[($0 + 1)...], as: UTF8.self) }
                            try visit(try documents.document(doc, deviceId: deviceId, moduleId: moduleId, open: openKeys), isModule)
                        }
                    }
                }
                for try await (key, doc, isModule) in rows.decode((ByteBuffer, ByteBuffer, Bool).self) {
                    page.append((Array(key.readableBytesView), Array(doc.readableBytesView), isModule))
                    if page.count == 500 {
                        try await hand(page)
                        page.removeAll(keepingCapacity: true)
                    }
                }
                try await hand(page)
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    public func credentials(deviceId: String, moduleId: String?) throws -> CredentialRecord? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        if let moduleId, (try? Validation.checkId(moduleId, kind: "module")) == nil { return nil }
        guard let (device, identity) = follower.documents(deviceId: deviceId, moduleId: moduleId) else { return nil }
        return try documents.credentials(device: device, identity: identity, deviceId: deviceId, moduleId: moduleId)
    }

    public func statistics() async throws -> RegistryStatistics {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            let rows = try await connection.query(
                """
                SELECT count(*), count(*) FILTER (WHERE disabled), count(*) FILTER (WHERE connected),
                  (SELECT count(*) FROM modules WHERE hub = \(hub))
                FROM devices WHERE hub = \(hub)
                """,
                logger: logger
            )
            for try await (devices, disabled, connected, modules) in rows.decode((Int64, Int64, Int64, Int64).self) {
                return RegistryStatistics(
                    totalDeviceCount: Int(devices),
                    enabledDeviceCount: Int(devices - disabled),
                    disabledDeviceCount: Int(disabled),
                    totalModuleCount: Int(modules),
                    connectedDeviceCount: Int(connected)
                )
            }
            throw StoreError("the statistics query returned no row")
        }
    }

    public func runQuery(_ query: DeviceQuery, cursor: QueryCursor?, pageSize: Int, bounds: QueryBounds) async throws -> QueryPage {
        // The query language runs here, over documents read in key order in chunks: the same
        // matcher and paging as on LMDB, so answers and continuation tokens are the same. The
        // chunks are fetched from a blocking-pool thread (the runner is synchronous).
        let matcher = QueryMatcher(query)
        let fetch = BlockingFetch(store: self, modules: query.source != .devices)
        return try await BlockingPool.shared.run {
            try QueryRunner.page(query, cursor: cursor, pageSize: pageSize, bounds: bounds) { after, deadline, visit in
                var after = after
                var seen = 0
                while true {
                    let rows = try fetch.rows(after: after, limit: 1_000)
                    for (key, doc) in rows {
                        seen += 1
                        if let deadline, seen & 255 == 0, let last = after, ContinuousClock.now > deadline { return .paused(after: last) }
                        after = key
                        guard let twin = try matcher.match(doc).twin else { continue }
                        if try !visit(key, twin, doc.count) { return .stoppedByVisitor }
                    }
                    if rows.count < 1_000 { return .reachedEnd }
                }
            }
        }
    }

    /// The hub's committed head seq (0 for an empty log).
    func committedHeadSeq() async throws -> UInt64 {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            for try await seq in try await connection.query("SELECT seq FROM log_head WHERE hub = \(hub)", logger: logger).decode(Int64.self) {
                return UInt64(seq)
            }
            return 0
        }
    }

    public func head() async throws -> LogHead {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            let rows = try await connection.query(
                "SELECT h.seq, h.hash, e.record FROM log_head h LEFT JOIN events e ON e.hub = h.hub AND e.seq = h.seq WHERE h.hub = \(hub)",
                logger: logger
            )
            for try await (seq, hash, record) in rows.decode((Int64, ByteBuffer, ByteBuffer?).self) {
                let time = try record.map { try EventRecord.decode(Array($0.readableBytesView)).time } ?? .unset
                return (UInt64(seq), Array(hash.readableBytesView), time)
            }
            return (0, EventRecord.genesisHash, .unset)
        }
    }

    public func identity(in record: EventRecord) throws -> Identity { try documents.decodeIdentity(record.payloadBytes) }

    public func events(from seq: UInt64, limit: Int) async throws -> [EventRecord] {
        try await rawEvents(from: seq, limit: limit).map { try EventRecord.decode($0) }
    }

    public func rawEvents(from seq: UInt64, limit: Int) async throws -> [[UInt8]] {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            try await PostgresReads.records(from: seq, limit: limit, hub: hub, on: connection, logger: logger)
        }
    }

    public func history(deviceId: String, moduleId: String?, after: UInt64, limit: Int) async throws -> (entries: [HistoryEntry], next: UInt64?) {
        let (hub, logger) = (self.hub, self.logger)
        // The device's events in seq order (modules included): the fold compares each with the
        // identity's previous event, wherever it lies, so it reads from the first.
        let records = try await database { connection in
            let rows = try await connection.query(
                "SELECT record FROM events WHERE hub = \(hub) AND device_id = \(deviceId) ORDER BY seq",
                logger: logger
            )
            var records: [[UInt8]] = []
            for try await record in rows.decode(ByteBuffer.self) { records.append(Array(record.readableBytesView)) }
            return records
        }
        var fold = HistoryFold(moduleId: moduleId, after: after, limit: limit, documents: documents)
        for bytes in records {
            guard fold.add(try EventRecord.decode(bytes)) else { break }
        }
        return fold.page
    }

    public func verifyLog(progress: (@Sendable (UInt64) -> Void)?) async throws -> Replayer.Report {
        try await PostgresVerifier(store: self).verify(progress: progress)
    }

    public func materialize(until point: ReplayPoint, into target: DataDirectory) async throws -> (events: UInt64, corruption: Replayer.Outcome?) {
        throw StoreError(
            "point-in-time materialization writes an LMDB data directory: run `registryd migrate --from \(location) --to DIR` and replay there"
        )
    }

    public func metaString(_ key: String) async throws -> String? {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            for try await value in try await connection.query("SELECT value FROM meta WHERE hub = \(hub) AND key = \(key)", logger: logger)
                .decode(String.self)
            {
                return value
            }
            return nil
        }
    }

    public func routeCursor(_ route: String) async throws -> RouteCursor? {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            let rows = try await connection.query("SELECT seq, dead FROM cursors WHERE hub = \(hub) AND route = \(route)", logger: logger)
            for try await (seq, dead) in rows.decode((Int64, Bool).self) { return RouteCursor(seq: UInt64(seq), dead: dead) }
            return nil
        }
    }

    public func parkedMessages(route: String) async throws -> [ParkedRecord] {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            let rows = try await connection.query(
                "SELECT seq, message FROM parked WHERE hub = \(hub) AND route = \(route) ORDER BY seq",
                logger: logger
            )
            var parked: [ParkedRecord] = []
            for try await (seq, message) in rows.decode((Int64, ByteBuffer).self) {
                parked.append(ParkedRecord(seq: UInt64(seq), message: Array(message.readableBytesView)))
            }
            return parked
        }
    }

    public func jobRecords() async throws -> [[UInt8]] {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            var records: [[UInt8]] = []
            for try await record in try await connection.query("SELECT record FROM jobs WHERE hub = \(hub)", logger: logger).decode(ByteBuffer.self) {
                records.append(Array(record.readableBytesView))
            }
            return records
        }
    }

    public func jobRecord(_ jobId: String) async throws -> [UInt8]? {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            let rows = try await connection.query("SELECT record FROM jobs WHERE hub = \(hub) AND job_id = \(jobId)", logger: logger)
            for try await record in rows.decode(ByteBuffer.self) { return Array(record.readableBytesView) }
            return nil
        }
    }

    public func policies() async throws -> [SharedAccessPolicy] {
        let (hub, logger, sealer) = (self.hub, self.logger, self.sealer)
        return try await database { connection in
            var policies: [SharedAccessPolicy] = []
            for try await record in try await connection.query("SELECT record FROM policies WHERE hub = \(hub) ORDER BY name", logger: logger)
                .decode(ByteBuffer.self)
            {
                policies.append(try PolicyRules.decode(Array(record.readableBytesView), sealer: sealer, legacy: false))
            }
            return policies
        }
    }

    public func serverKey(purpose: String) -> KeyBox { sealer.derivedKey(purpose: purpose) }

    public func backup(into target: DataDirectory) async throws {
        throw StoreError(
            "a PostgreSQL-backed registry is backed up with PostgreSQL's own tools: "
                + "pg_dump --format=custom (or pg_basebackup with WAL archiving for point-in-time recovery)"
        )
    }
}

/// Synchronous chunk reads for the query runner, which runs on a blocking-pool thread: each
/// chunk is fetched by a task on the cooperative pool while this thread waits (never the other
/// way round, which could starve the pool).
final class BlockingFetch: Sendable {
    private let store: PostgresStore
    private let modules: Bool

    init(store: PostgresStore, modules: Bool) {
        self.store = store
        self.modules = modules
    }

    func rows(after: [UInt8]?, limit: Int) throws -> [([UInt8], [UInt8])] {
        let done = DispatchSemaphore(value: 0)
        let result = ResultBox()
        let (store, modules) = (self.store, self.modules)
        Task {
            result.set(await Result { try await store.documentRows(modules: modules, after: after, limit: limit) })
            done.signal()
        }
        done.wait()
        return try result.get()
    }

    private final class ResultBox: @unchecked Sendable {
        // Why unchecked: written once by the task before the semaphore signals, read after it.
        private var result: Result<[([UInt8], [UInt8])], any Error> = .success([])
        func set(_ value: Result<[([UInt8], [UInt8])], any Error>) { result = value }
        func get() throws -> [([UInt8], [UInt8])] { try result.get() }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
