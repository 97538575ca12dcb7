import Crypto
import LMDB
import RegistryCore

/// An open registry environment: the LMDB environment, its databases and the key sealer, with
/// the read side of the store interface.
///
/// Reads are short read transactions on the caller's thread (microseconds; never across an
/// `await`). Opening does not take the writer lock, so read-only tools (replay --verify, audit,
/// export) can open a directory that a running daemon writes.
public final class RegistryStorage: Sendable {
    /// The data-format version this binary writes and the newest it can read.
    public static let formatVersion = 1

    public let directory: DataDirectory
    public let environment: Environment
    public let databases: RegistryDatabases
    /// Decoding and key opening of the stored documents (shared with the other backends).
    let documents: StoredDocuments
    var sealer: KeySealer? { documents.sealer }

    /// Opens an existing data directory (or creates it when `create` is set).
    /// - Parameters:
    ///   - needsKeys: load the data key so identity reads return plaintext keys.
    public init(
        directory: DataDirectory,
        create: Bool,
        needsKeys: Bool = true,
        mapSize: Int = 64 << 20,
        flags: EnvironmentFlags = []
    ) throws {
        if create {
            try directory.create()
        } else if !directory.exists {
            throw StoreError("\(directory.path) is not a registryd data directory (no lmdb/data.mdb)")
        }
        self.directory = directory
        documents = StoredDocuments(sealer: needsKeys ? try KeySealer(keyBytes: directory.loadDataKey(create: create)) : nil)
        environment = try Environment(configuration: .init(path: directory.environmentPath, mapSize: mapSize, flags: flags))
        databases = try environment.write { txn in
            let dbs = try RegistryDatabases.open(in: txn)
            if let stored = try txn.get(dbs.meta, MetaKey.format) {
                let version = Int(String(decoding: stored, as: UTF8.self)) ?? Int.max
                guard version <= Self.formatVersion else {
                    throw StoreError(
                        "\(directory.path) has data format \(version), newer than this registryd supports "
                            + "(\(Self.formatVersion)); run a newer registryd"
                    )
                }
            } else {
                try txn.put(dbs.meta, MetaKey.format, Array(String(Self.formatVersion).utf8))
            }
            return dbs
        }
    }

    /// A server-side secret for `purpose` (see `KeySealer.derivedKey`). Without the data key
    /// (read-only tools), a random key for this process only.
    public func serverKey(purpose: String) -> KeyBox {
        sealer?.derivedKey(purpose: purpose) ?? KeyBox(key: Crypto.SymmetricKey(size: .bits256))
    }

    // MARK: reads

    /// Runs `body` in a short read transaction.
    public func read<R>(_ body: (borrowing ReadTransaction, RegistryDatabases) throws -> R) throws -> R {
        try environment.read { txn in try body(txn, databases) }
    }

    public func device(_ deviceId: String) throws -> Device? {
        try read { txn, _ in try loadDevice(deviceId, txn) }
    }

    public func module(_ deviceId: String, _ moduleId: String) throws -> Module? {
        try read { txn, _ in try loadModule(deviceId, moduleId, txn) }
    }

    /// The device's modules in id order.
    public func modules(of deviceId: String) throws -> [Module] {
        try read { txn, _ in try loadModules(of: deviceId, txn) }
    }

    /// Up to `limit` devices in id order, starting after `after`.
    public func devices(after: String? = nil, limit: Int) throws -> [Device] {
        try read { txn, db in
            var devices: [Device] = []
            try txn.scan(db.devices, from: after.map { StorageKey.device($0) + [0] }) { _, value in
                devices.append(try documents.decodeDevice(value))
                return devices.count < limit
            }
            return devices
        }
    }

    /// Registry counts (Azure's /statistics/devices plus modules).
    public func statistics() throws -> RegistryStatistics {
        try read { txn, db in
            let devices = try txn.statistics(db.devices).entries
            let disabled = Int(try txn.get(db.meta, MetaKey.disabledDevices).flatMap(StorageKey.sequence(from:)) ?? 0)
            return RegistryStatistics(
                totalDeviceCount: devices,
                enabledDeviceCount: devices - disabled,
                disabledDeviceCount: disabled,
                totalModuleCount: try txn.statistics(db.modules).entries,
                connectedDeviceCount: Int(try txn.get(db.meta, MetaKey.connectedDevices).flatMap(StorageKey.sequence(from:)) ?? 0)
            )
        }
    }

    /// The last committed sequence number and its hash (zeros for an empty log).
    public func head() throws -> (seq: UInt64, hash: [UInt8], time: Timestamp) {
        try read { txn, _ in try loadHead(txn) }
    }

    public func identity(in record: EventRecord) throws -> Identity { try documents.decodeIdentity(record.payloadBytes) }

    /// Up to `limit` stored events from `seq` on, decoded (not verified).
    public func events(from seq: UInt64, limit: Int) throws -> [EventRecord] {
        try read { txn, db in
            var records: [EventRecord] = []
            try txn.scan(db.events, from: StorageKey.sequence(seq)) { _, value in
                records.append(try EventRecord.decode(value))
                return records.count < limit
            }
            return records
        }
    }

    // MARK: helpers shared with the writer (they take either kind of transaction)

    func loadHead<T: ReadableTransaction & ~Copyable>(_ txn: borrowing T) throws -> (seq: UInt64, hash: [UInt8], time: Timestamp) {
        let last = try txn.withCursor(databases.events) { cursor in try cursor.last() }
        guard let last else { return (0, EventRecord.genesisHash, .unset) }
        let record = try EventRecord.decode(last.value)
        return (record.seq, record.hash, record.time)
    }

    func loadDevice<T: ReadableTransaction & ~Copyable>(_ deviceId: String, _ txn: borrowing T) throws -> Device? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        return try txn.get(databases.devices, StorageKey.device(deviceId)).map { try documents.decodeDevice($0) }
    }

    func loadModule<T: ReadableTransaction & ~Copyable>(_ deviceId: String, _ moduleId: String, _ txn: borrowing T) throws -> Module? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil, (try? Validation.checkId(moduleId, kind: "module")) != nil
        else { return nil }
        return try txn.get(databases.modules, StorageKey.module(deviceId, moduleId)).map { try documents.decodeModule($0) }
    }

    func loadModules<T: ReadableTransaction & ~Copyable>(of deviceId: String, _ txn: borrowing T) throws -> [Module] {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return [] }
        let prefix = StorageKey.modulePrefix(deviceId)
        var modules: [Module] = []
        try txn.scan(databases.modules, from: prefix) { key, value in
            guard StorageKey.hasPrefix(key, prefix) else { return false }
            modules.append(try documents.decodeModule(value))
            return true
        }
        return modules
    }

    func countModules<T: ReadableTransaction & ~Copyable>(of deviceId: String, _ txn: borrowing T) throws -> Int {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return 0 }
        let prefix = StorageKey.modulePrefix(deviceId)
        var count = 0
        try txn.scan(databases.modules, from: prefix) { key, _ in
            guard StorageKey.hasPrefix(key, prefix) else { return false }
            count += 1
            return true
        }
        return count
    }
}
