/// One page of an identity's changes, folded from its device's events in seq order (the
/// device's and its modules'; with `moduleId`, only that module's count). Changes are computed
/// against the identity's previous event, wherever it lies, so the fold starts at the device's
/// first event; memory stays bounded by the page (each event is decoded, compared and dropped in
/// turn). Keys are compared opened when the data key is at hand and shown only as
/// `"(rotated)"`; without it a re-sealed key shows as `"(re-sealed)"`.
public struct HistoryFold {
    let moduleId: String?
    let after: UInt64
    let limit: Int
    let documents: StoredDocuments
    var last: [String: [String: JSONValue]] = [:]  // identity → flattened fields
    var lastKeys: [String: [String: String]] = [:]  // identity → key path → opened (or sealed) key
    var entries: [HistoryEntry] = []
    var more = false

    /// - Parameters:
    ///   - after: the page holds the entries with seq above this.
    ///   - limit: at most this many entries.
    public init(moduleId: String?, after: UInt64, limit: Int, documents: StoredDocuments) {
        self.moduleId = moduleId
        self.after = after
        self.limit = limit
        self.documents = documents
    }

    /// Folds in the device's next event. Returns false once the page is full: stop feeding.
    public mutating func add(_ record: EventRecord) -> Bool {
        guard moduleId == nil || record.moduleId == moduleId else { return true }
        if record.seq > after && entries.count == limit {
            more = true
            return false
        }
        let identity = record.moduleId.map { "\(record.deviceId)/\($0)" } ?? record.deviceId
        let (now, keys) = flatten(record.payload, deviceId: record.deviceId, moduleId: record.moduleId)
        if record.seq > after {
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
                        keysBefore[path] == nil
                        ? "(set)" : keys[path] == nil ? "(removed)" : documents.sealer == nil ? "(re-sealed)" : "(rotated)"
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

    /// The entries so far and the seq to pass as `after` for the next page (`nil` on the last).
    public var page: (entries: [HistoryEntry], next: UInt64?) { (entries, more ? entries.last?.seq : nil) }

    /// Dotted paths to leaf values, with the symmetric keys apart (opened when possible).
    func flatten(_ payload: JSONValue, deviceId: String, moduleId: String?) -> ([String: JSONValue], [String: String]) {
        var fields: [String: JSONValue] = [:]
        var keys: [String: String] = [:]
        let sealer = documents.sealer
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
