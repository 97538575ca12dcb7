import LMDB
import RegistryCore

extension RegistryStorage {
    /// One page of an identity's changes (a device and, with `moduleId`, that module only;
    /// without it, the device and all its modules), from the per-device `history` index, not a
    /// log scan. Keys are compared opened when the data key is at hand and shown only as
    /// `"(rotated)"`; without the data key a re-sealed key shows as `"(sealed, re-written)"`.
    /// The page: the entries with seq above `after`, at most `limit`, and the
    /// seq to pass as `after` for the next page (`nil` on the last). Changes are still computed
    /// against the identity's previous event, wherever it lies; memory stays bounded by the page
    /// (each event is decoded, compared and dropped in turn).
    public func history(deviceId: String, moduleId: String?, after: UInt64, limit: Int) throws -> (entries: [HistoryEntry], next: UInt64?) {
        let prefix = StorageKey.modulePrefix(deviceId)
        var last: [String: [String: JSONValue]] = [:]  // identity → flattened fields
        var lastKeys: [String: [String: String]] = [:]  // identity → key path → opened (or sealed) key
        var entries: [HistoryEntry] = []
        var more = false
        try read { txn, db in
            try txn.scan(db.history, from: prefix) { key, _ in
                guard StorageKey.hasPrefix(key, prefix), let seq = StorageKey.sequence(from: Array(key[prefix.count...])) else { return false }
                guard let bytes = try txn.get(db.events, StorageKey.sequence(seq)) else { return true }
                let record = try EventRecord.decode(bytes)
                guard moduleId == nil || record.moduleId == moduleId else { return true }
                if seq > after && entries.count == limit {
                    more = true
                    return false
                }
                let identity = record.moduleId.map { "\(record.deviceId)/\($0)" } ?? record.deviceId
                let (now, keys) = flatten(record.payload, deviceId: record.deviceId, moduleId: record.moduleId)
                if seq > after {
                    var changes: [FieldChange] = []
                    if !record.type.isDelete {
                        let before = last[identity] ?? [:]
                        for path in Set(before.keys).union(now.keys).sorted() where before[path] != now[path] {
                            changes.append(FieldChange(path: path, old: before[path], new: now[path]))
                        }
                        let keysBefore = lastKeys[identity] ?? [:]
                        for path in Set(keysBefore.keys).union(keys.keys).sorted() where keysBefore[path] != keys[path] {
                            // Keys are never shown: only that they were set, rotated or removed.
                            let change =
                                keysBefore[path] == nil ? "(set)" : keys[path] == nil ? "(removed)" : sealer == nil ? "(re-sealed)" : "(rotated)"
                            changes.append(FieldChange(path: path, old: nil, new: .string(change)))
                        }
                    }
                    entries.append(
                        HistoryEntry(
                            seq: record.seq,
                            time: record.time,
                            type: record.type,
                            deviceId: record.deviceId,
                            moduleId: record.moduleId,
                            actor: record.actor,
                            requestId: record.requestId,
                            changes: changes
                        )
                    )
                }
                last[identity] = record.type.isDelete ? nil : now
                lastKeys[identity] = record.type.isDelete ? nil : keys
                return true
            }
        }
        return (entries, more ? entries.last?.seq : nil)
    }

    /// Dotted paths to leaf values, with the symmetric keys apart (opened when possible).
    func flatten(_ payload: JSONValue, deviceId: String, moduleId: String?) -> ([String: JSONValue], [String: String]) {
        var fields: [String: JSONValue] = [:]
        var keys: [String: String] = [:]
        func walk(_ value: JSONValue, _ path: String) {
            if case .object(let members) = value, !members.isEmpty {
                for (k, v) in members { walk(v, path.isEmpty ? k : "\(path).\(k)") }
                return
            }
            if path.hasPrefix("authentication.symmetricKey.") {
                if case .string(let sealed) = value {
                    let name = String(path.split(separator: ".").last ?? "")
                    let context = IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: name).sealingContext
                    keys[path] = (try? sealer?.open(sealed, for: context)) ?? sealed
                }
                return
            }
            fields[path] = value
        }
        walk(payload, "")
        return (fields, keys)
    }
}
