import LMDB
import RegistryCore

extension RegistryStorage {
    /// One page of an identity's changes (a device and, with `moduleId`, that module only;
    /// without it, the device and all its modules), from the per-device `history` index, not a
    /// log scan, folded by `HistoryFold` (see there for how keys show).
    /// The page: the entries with seq above `after`, at most `limit`, and the
    /// seq to pass as `after` for the next page (`nil` on the last).
    public func history(deviceId: String, moduleId: String?, after: UInt64, limit: Int) throws -> (entries: [HistoryEntry], next: UInt64?) {
        let prefix = StorageKey.modulePrefix(deviceId)
        var fold = HistoryFold(moduleId: moduleId, after: after, limit: limit, documents: documents)
        try read { txn, db in
            try txn.scan(db.history, from: prefix) { key, _ in
                guard StorageKey.hasPrefix(key, prefix), let seq = StorageKey.sequence(from: Array(key[prefix.count...])) else { return false }
                guard let bytes = try txn.get(db.events, StorageKey.sequence(seq)) else { return true }
                return fold.add(try EventRecord.decode(bytes))
            }
        }
        return fold.page
    }
}
