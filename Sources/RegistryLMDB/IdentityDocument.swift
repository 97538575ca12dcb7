import LMDB
import RegistryCore

extension RegistryStorage {
    public func deviceDocument(_ deviceId: String) throws -> IdentityDocument? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        return try read { txn, db in try txn.get(db.devices, StorageKey.device(deviceId)) }.map {
            try documents.open($0, deviceId: deviceId, moduleId: nil)
        }
    }

    public func moduleDocument(_ deviceId: String, _ moduleId: String) throws -> IdentityDocument? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil, (try? Validation.checkId(moduleId, kind: "module")) != nil
        else { return nil }
        return try read { txn, db in try txn.get(db.modules, StorageKey.module(deviceId, moduleId)) }
            .map { try documents.open($0, deviceId: deviceId, moduleId: moduleId) }
    }

    /// Up to `limit` device documents in id order.
    public func deviceDocuments(limit: Int) throws -> [IdentityDocument] {
        let raw = try read { txn, db in
            var entries: [([UInt8], [UInt8])] = []
            try txn.scan(db.devices) { key, value in
                entries.append((key, value))
                return entries.count < limit
            }
            return entries
        }
        return try raw.map { key, value in try documents.open(value, deviceId: String(decoding: key, as: UTF8.self), moduleId: nil) }
    }

    /// The device's module documents in id order, or `nil` when the device does not exist.
    public func moduleDocuments(of deviceId: String) throws -> [IdentityDocument]? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        let prefix = StorageKey.modulePrefix(deviceId)
        let raw = try read { txn, db -> [([UInt8], [UInt8])]? in
            guard try txn.contains(db.devices, StorageKey.device(deviceId)) else { return nil }
            var entries: [([UInt8], [UInt8])] = []
            try txn.scan(db.modules, from: prefix) { key, value in
                guard StorageKey.hasPrefix(key, prefix) else { return false }
                entries.append((key, value))
                return true
            }
            return entries
        }
        return try raw?.map { key, value in
            try documents.open(value, deviceId: deviceId, moduleId: String(decoding: key[prefix.count...], as: UTF8.self))
        }
    }
}

extension RegistryStorage {
    /// Visits every device, each followed by its modules, in key order, from one consistent
    /// snapshot (one read transaction: safe while a daemon writes). Keys are opened when the
    /// storage has the data key and `openKeys` is set.
    public func scanIdentities(openKeys: Bool, _ visit: (IdentityDocument, _ isModule: Bool) throws -> Void) throws {
        try read { txn, db in
            try txn.withCursor(db.modules) { modules in
                var module = try modules.first()
                try txn.scan(db.devices) { key, value in
                    let deviceId = String(decoding: key, as: UTF8.self)
                    try visit(try documents.document(value, deviceId: deviceId, moduleId: nil, open: openKeys), false)
                    let prefix = key + [0]
                    // Modules whose device sorts before this one cannot exist; skip defensively.
                    while let (mkey, _) = module, !StorageKey.hasPrefix(mkey, prefix), mkey.lexicographicallyPrecedes(prefix) {
                        module = try modules.next()
                    }
                    while let (mkey, mvalue) = module, StorageKey.hasPrefix(mkey, prefix) {
                        let moduleId = String(decoding: mkey[prefix.count...], as: UTF8.self)
                        try visit(try documents.document(mvalue, deviceId: deviceId, moduleId: moduleId, open: openKeys), true)
                        module = try modules.next()
                    }
                    return true
                }
            }
        }
    }
}
