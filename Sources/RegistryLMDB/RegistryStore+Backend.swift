import LMDB
import RegistryCore

/// The store interface on LMDB: reads go to the environment (`RegistryStorage`), writes to the
/// single writer thread (identity commands through group commit, the typed stores' writes as
/// their own small transactions outside the hash chain).
extension RegistryStore: RegistryBackend {
    // MARK: reads (the storage's)

    public func device(_ deviceId: String) throws -> Device? { try storage.device(deviceId) }
    public func module(_ deviceId: String, _ moduleId: String) throws -> Module? { try storage.module(deviceId, moduleId) }
    public func modules(of deviceId: String) throws -> [Module] { try storage.modules(of: deviceId) }
    public func devices(after: String?, limit: Int) throws -> [Device] { try storage.devices(after: after, limit: limit) }
    public func deviceDocument(_ deviceId: String) throws -> IdentityDocument? { try storage.deviceDocument(deviceId) }
    public func moduleDocument(_ deviceId: String, _ moduleId: String) throws -> IdentityDocument? { try storage.moduleDocument(deviceId, moduleId) }
    public func deviceDocuments(limit: Int) throws -> [IdentityDocument] { try storage.deviceDocuments(limit: limit) }
    public func moduleDocuments(of deviceId: String) throws -> [IdentityDocument]? { try storage.moduleDocuments(of: deviceId) }
    public func storedDocument(deviceId: String, moduleId: String?) throws -> [UInt8]? {
        try storage.storedDocument(deviceId: deviceId, moduleId: moduleId)
    }
    public func forEachIdentity(openKeys: Bool, _ visit: @escaping @Sendable (IdentityDocument, _ isModule: Bool) throws -> Void) async throws {
        try await storage.forEachIdentity(openKeys: openKeys, visit)
    }
    public func credentials(deviceId: String, moduleId: String?) throws -> CredentialRecord? {
        try storage.credentials(deviceId: deviceId, moduleId: moduleId)
    }
    public func statistics() throws -> RegistryStatistics { try storage.statistics() }
    public func runQuery(_ query: DeviceQuery, cursor: QueryCursor?, pageSize: Int, bounds: QueryBounds) async throws -> QueryPage {
        try await storage.runQuery(query, cursor: cursor, pageSize: pageSize, bounds: bounds)
    }
    public func head() throws -> LogHead { try storage.head() }
    public func events(from seq: UInt64, limit: Int) throws -> [EventRecord] { try storage.events(from: seq, limit: limit) }
    public func identity(in record: EventRecord) throws -> Identity { try storage.identity(in: record) }
    public func history(deviceId: String, moduleId: String?, after: UInt64, limit: Int) throws -> (entries: [HistoryEntry], next: UInt64?) {
        try storage.history(deviceId: deviceId, moduleId: moduleId, after: after, limit: limit)
    }
    public func rawEvents(from seq: UInt64, limit: Int) throws -> [[UInt8]] { try storage.rawEvents(from: seq, limit: limit) }
    public func materialize(until point: ReplayPoint, into target: DataDirectory) async throws -> (events: UInt64, corruption: Replayer.Outcome?) {
        try await storage.materialize(until: point, into: target)
    }
    public func verifyLog(progress: (@Sendable (UInt64) -> Void)?) async throws -> Replayer.Report { try await storage.verifyLog(progress: progress) }
    public func metaString(_ key: String) throws -> String? { try storage.metaString(key) }
    public func routeCursor(_ route: String) throws -> RouteCursor? { try storage.routeCursor(route) }
    public func routeCursors() throws -> [String: RouteCursor] { try storage.routeCursors() }
    public func parkedMessages(route: String) throws -> [ParkedRecord] { try storage.parkedMessages(route: route) }
    public func jobRecords() throws -> [[UInt8]] { try storage.jobRecords() }
    public func jobRecord(_ jobId: String) throws -> [UInt8]? { try storage.jobRecord(jobId) }
    public func policies() throws -> [SharedAccessPolicy] { try storage.policies() }
    public func serverKey(purpose: String) -> KeyBox { storage.serverKey(purpose: purpose) }
    public func backup(into target: DataDirectory) async throws { try await storage.backup(into: target) }

    public var storageFootprint: StorageFootprint? {
        StorageFootprint(allocated: storage.environment.mapSize, used: storage.environment.usedBytes)
    }

    // MARK: typed stores, write side

    public func saveRouteCursor(_ route: String, _ cursor: RouteCursor) async throws {
        let key = Array(route.utf8)
        let value = CanonicalJSON.encode(.object(["seq": .int(Int64(cursor.seq)), "dead": .bool(cursor.dead)]))
        try await perform { txn, db in try txn.put(db.cursors, key, value) }
    }

    public func park(route: String, _ messages: [ParkedRecord]) async throws {
        let entries = messages.map { (StorageKey.parked(route, $0.seq), $0.message) }
        try await perform { txn, db in
            for (key, value) in entries { try txn.put(db.parked, key, value) }
        }
    }

    public func unpark(route: String, seq: UInt64) async throws {
        let key = StorageKey.parked(route, seq)
        try await perform { txn, db in _ = try txn.delete(db.parked, key) }
    }

    public func saveJobRecord(_ jobId: String, _ record: [UInt8]) async throws {
        let key = Array(jobId.utf8)
        try await perform { txn, db in try txn.put(db.jobs, key, record) }
    }

    public func replaceJobRecord(_ jobId: String, expected: [UInt8]?, with record: [UInt8]) async throws -> Bool {
        let key = Array(jobId.utf8)
        // Compared and written in the one write transaction (re-runnable: all read from `txn`).
        return try await perform { txn, db in
            guard try txn.get(db.jobs, key) == expected else { return false }
            try txn.put(db.jobs, key, record)
            return true
        }
    }

    public func applyPolicyChange(_ change: PolicyChange, to name: String, ifMatch: ETagCondition) async throws(PolicyError) -> PolicySnapshot {
        try await PolicyStore.apply(change, to: name, ifMatch: ifMatch, store: self)
    }

    public func ensureBuiltInPolicies() async throws -> [SharedAccessPolicy] { try await PolicyStore.ensureBuiltIn(self) }
}

extension RegistryStore {
    public func appendVerbatim(_ records: [[UInt8]]) async throws {
        guard !records.isEmpty else { return }
        let storage = self.storage
        // Re-runnable (map growth): everything is read from `txn`.
        try await perform { txn, db in
            var (seq, hash, _) = try storage.loadHead(txn)
            for bytes in records {
                switch EventRecord.fastVerified(bytes, expectedSeq: seq + 1, prevHash: hash) {
                case .failure(let error):
                    throw StoreError("record \(seq + 1) does not continue the log: \(error)")
                case .success(let event):
                    try txn.put(db.events, StorageKey.sequence(event.seq), bytes, flags: .append)
                    try Projections.apply(event, txn: txn, databases: db)
                    (seq, hash) = (event.seq, event.hash)
                }
            }
        }
    }

    public func installPolicies(_ policies: [SharedAccessPolicy], generation: Int64) async throws {
        try await PolicyStore.install(policies, generation: generation, store: self)
    }
}
