import LMDB
import RegistryCore

/// The read side of the store interface on an LMDB environment. Most requirements are the
/// storage's own synchronous reads (a short read transaction on the caller's thread: microseconds,
/// never across an `await`); what can scan the whole registry runs on the blocking pool.
extension RegistryStorage: RegistryReader {
    public func storedDocument(deviceId: String, moduleId: String?) throws -> [UInt8]? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        if let moduleId, (try? Validation.checkId(moduleId, kind: "module")) == nil { return nil }
        return try read { txn, db in
            if let moduleId { return try txn.get(db.modules, StorageKey.module(deviceId, moduleId)) }
            return try txn.get(db.devices, StorageKey.device(deviceId))
        }
    }

    public func runQuery(_ query: DeviceQuery, cursor: QueryCursor?, pageSize: Int, bounds: QueryBounds) async throws -> QueryPage {
        // A query may scan the whole registry: off the cooperative pool, in short read transactions.
        try await BlockingPool.shared.run { [self] in
            try queryPage(query, cursor: cursor, pageSize: pageSize, bounds: bounds)
        }
    }

    public func forEachIdentity(openKeys: Bool, _ visit: @escaping @Sendable (IdentityDocument, _ isModule: Bool) throws -> Void) async throws {
        // One read transaction for the whole scan (one snapshot), on the blocking pool.
        try await BlockingPool.shared.run { [self] in try scanIdentities(openKeys: openKeys, visit) }
    }

    public func verifyLog(progress: (@Sendable (UInt64) -> Void)?) async throws -> Replayer.Report {
        try await BlockingPool.shared.run { [self] in try Replayer.verify(source: self, progress: progress) }
    }

    public func rawEvents(from seq: UInt64, limit: Int) throws -> [[UInt8]] {
        try read { txn, db in
            var records: [[UInt8]] = []
            try txn.scan(db.events, from: StorageKey.sequence(seq)) { _, value in
                records.append(value)
                return records.count < limit
            }
            return records
        }
    }

    public func materialize(until point: ReplayPoint, into target: DataDirectory) async throws -> (events: UInt64, corruption: Replayer.Outcome?) {
        try await BlockingPool.shared.run { [self] in try Replayer.materialize(source: self, until: point, into: target) }
    }

    public func routeCursor(_ route: String) throws -> RouteCursor? {
        try read { txn, db in try txn.get(db.cursors, Array(route.utf8)).map(Self.cursor) }
    }

    public func routeCursors() throws -> [String: RouteCursor] {
        try read { txn, db in
            var cursors: [String: RouteCursor] = [:]
            try txn.scan(db.cursors) { key, value in
                cursors[String(decoding: key, as: UTF8.self)] = try Self.cursor(value)
                return true
            }
            return cursors
        }
    }

    static func cursor(_ bytes: [UInt8]) throws -> RouteCursor {
        let json = try JSONParser.parse(bytes)
        return RouteCursor(seq: UInt64(json["seq"]?.intValue ?? 0), dead: json["dead"]?.boolValue ?? false)
    }

    public func parkedMessages(route: String) throws -> [ParkedRecord] {
        let prefix = StorageKey.parkedPrefix(route)
        return try read { txn, db in
            var out: [ParkedRecord] = []
            try txn.scan(db.parked, from: prefix) { key, value in
                guard StorageKey.hasPrefix(key, prefix), let seq = StorageKey.sequence(from: Array(key[prefix.count...])) else { return false }
                out.append(ParkedRecord(seq: seq, message: value))
                return true
            }
            return out
        }
    }

    public func jobRecords() throws -> [[UInt8]] {
        try read { txn, db in
            var records: [[UInt8]] = []
            try txn.scan(db.jobs) { _, value in
                records.append(value)
                return true
            }
            return records
        }
    }

    public func jobRecord(_ jobId: String) throws -> [UInt8]? {
        try read { txn, db in try txn.get(db.jobs, Array(jobId.utf8)) }
    }

    public func policies() throws -> [SharedAccessPolicy] { try PolicyStore.load(self) }

    public func backup(into target: DataDirectory) async throws {
        try await BlockingPool.shared.run { [self] in
            try target.create()
            // LMDB copies from one read snapshot and never blocks the writer.
            try environment.copy(to: target.environmentPath, compact: true)
        }
    }
}

extension StorageKey {
    /// `route 0x00`: route names never hold 0x00, so it prefixes exactly one route's entries.
    static func parkedPrefix(_ route: String) -> [UInt8] { Array(route.utf8) + [0] }

    static func parked(_ route: String, _ seq: UInt64) -> [UInt8] { parkedPrefix(route) + sequence(seq) }
}
