import LMDB
import RegistryCore

/// Raw-LMDB floors the benchmarks (`registryd-bench`) compare the store against, measured in
/// the same run: the same puts without the registry's work. For tools only, never on a request
/// path; here because only this target may touch LMDB.
public enum LMDBBaseline {
    /// Per record one log append, one device put and one history put, `batchSize` records per
    /// durable commit, with records the size of the writer's. Returns records per second.
    public static func writeRate(root: String, batchSize: Int, count: Int, id: (Int) -> String) throws -> Double {
        let env = try Environment(configuration: .init(path: root, mapSize: 1 << 30))
        let (events, devices, history) = try env.write { txn in
            (try txn.openDatabase("events"), try txn.openDatabase("devices"), try txn.openDatabase("history"))
        }
        let eventBytes = [UInt8](repeating: 0x61, count: 1_250)
        let deviceBytes = [UInt8](repeating: 0x62, count: 900)
        let start = ContinuousClock.now
        var seq: UInt64 = 0
        while seq < UInt64(count) {
            try env.write { txn in
                for _ in 0..<batchSize where seq < UInt64(count) {
                    seq += 1
                    let key = Array(id(Int(seq)).utf8)
                    try txn.put(events, StorageKey.sequence(seq), eventBytes, flags: .append)
                    try txn.put(devices, key, deviceBytes)
                    try txn.put(history, key + [0] + StorageKey.sequence(seq), [])
                }
            }
        }
        return Double(count) / seconds(since: start)
    }

    /// Visits every entry of one of the store's databases (`events`, `devices`, `modules`,
    /// `history`) in key order, in one read transaction.
    public static func scan(_ storage: RegistryStorage, _ database: String, _ visit: ([UInt8], [UInt8]) throws -> Void) throws {
        try storage.read { txn, db in
            try txn.scan(try db.named(database)) { key, value in
                try visit(key, value)
                return true
            }
        }
    }

    /// What an import stored: the log, the documents and the history, in key order each.
    public struct Records: Sendable {
        fileprivate var parts: [(database: String, entries: [([UInt8], [UInt8])])]
        public var count: Int { parts.reduce(0) { $0 + $1.entries.count } }
    }

    public static func records(of directory: DataDirectory) throws -> Records {
        let source = try RegistryStorage(directory: directory, create: false, needsKeys: false)
        var parts: [(String, [([UInt8], [UInt8])])] = []
        for name in ["events", "devices", "history"] {
            var entries: [([UInt8], [UInt8])] = []
            try scan(source, name) { entries.append(($0, $1)) }
            parts.append((name, entries))
        }
        return Records(parts: parts)
    }

    /// Raw LMDB loading `records` into a fresh environment at `path`: in key order, one durable
    /// transaction per `batch` identities (each identity is one entry of each part). Returns the
    /// seconds it took.
    public static func load(_ records: Records, at path: String, batch: Int) throws -> Double {
        let raw = try Environment(configuration: .init(path: path, mapSize: 1 << 30))
        let databases = try raw.write { txn in try records.parts.map { try txn.openDatabase($0.database) } }
        let start = ContinuousClock.now
        let n = records.parts.map(\.entries.count).min() ?? 0
        var i = 0
        while i < n {
            let end = min(n, i + batch)
            try raw.write { txn in
                for (part, database) in zip(records.parts, databases) {
                    for j in i..<end {
                        let (k, v) = part.entries[j]
                        try txn.put(database, k, v, flags: part.database == "events" ? .append : [])
                    }
                }
            }
            i = end
        }
        return seconds(since: start)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

extension RegistryStore {
    /// LMDB's last committed transaction id: the store bench's count of commits.
    public var lastTransactionID: Int { storage.environment.lastTransactionID }
}

extension RegistryDatabases {
    func named(_ name: String) throws -> Database {
        switch name {
        case "events": events
        case "devices": devices
        case "modules": modules
        case "history": history
        default: throw StoreError("no database named \(name)")
        }
    }
}
