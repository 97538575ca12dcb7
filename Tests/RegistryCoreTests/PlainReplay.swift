import LMDB
import RegistryCore
import RegistryLMDB

/// The reference `LogVerifier` is held to: the log read record by record with the full decode
/// (`EventRecord.verified`: parse, canonical form, sequence, chain, hash), each payload decoded
/// into an identity and folded with the domain's `evolve` into plain dictionaries, and that state
/// compared, as values, with the live projections. Slow and obvious on purpose: no byte search,
/// no parallel pass, no assumption about member order.
enum PlainReplay {
    /// What a verification concluded, in terms both verifiers share.
    enum Verdict: Hashable, CustomStringConvertible {
        case clean
        case logCorrupt(seq: UInt64, reason: String)
        /// A live projection entry differs from the replayed state (`key` as the verifier names it).
        case stateDiffers(database: String, key: String)

        init(_ outcome: Replayer.Outcome) {
            switch outcome {
            case .clean: self = .clean
            case .logCorrupt(let seq, let reason): self = .logCorrupt(seq: seq, reason: reason)
            case .projectionDiffers(let database, let key, _): self = .stateDiffers(database: database, key: key)
            }
        }

        var description: String {
            switch self {
            case .clean: "clean"
            case .logCorrupt(let seq, let reason): "log corrupt at \(seq): \(reason)"
            case .stateDiffers(let database, let key): "\(database) differs at \(key)"
            }
        }
    }

    struct Result {
        var verdict: Verdict
        /// The state folded from the log (up to its first bad record).
        var state: RegistrySnapshot
        var events: UInt64
        /// Each live identity's last event: its seq, by projection key.
        var lastEvents: [[UInt8]: UInt64]
    }

    static func run(_ storage: RegistryStorage) throws -> Result {
        let log = try storage.read { txn, db in
            var records: [(key: [UInt8], value: [UInt8])] = []
            try txn.scan(db.events) { key, value in
                records.append((key, value))
                return true
            }
            return records
        }
        var state = RegistrySnapshot()
        var history: Set<[UInt8]> = []
        var lastEvents: [[UInt8]: UInt64] = [:]
        var previous = EventRecord.genesisHash
        var expected: UInt64 = 1
        for (key, value) in log {
            let record: EventRecord
            switch EventRecord.verified(value, expectedSeq: expected, prevHash: previous) {
            case .success(let good): record = good
            case .failure(let error):
                let seq = StorageKey.sequence(from: key) ?? expected
                return Result(verdict: .logCorrupt(seq: seq, reason: error.description), state: state, events: expected - 1, lastEvents: lastEvents)
            }
            // Keys stay sealed: the projections are read without the data key too.
            let identity = try IdentityCodec.decode(record.payload) { sealed, _ in sealed }
            state = evolve(state, RegistryEvent(seq: record.seq, time: record.time, type: record.type, identity: identity))
            history.insert(StorageKey.history(record.deviceId, record.seq))
            let identityKey = record.moduleId.map { StorageKey.module(record.deviceId, $0) } ?? StorageKey.device(record.deviceId)
            lastEvents[identityKey] = record.type.isDelete ? nil : record.seq
            previous = record.hash
            expected += 1
        }
        let verdict = try compare(state, history: history, with: storage)
        return Result(verdict: verdict, state: state, events: expected - 1, lastEvents: lastEvents)
    }

    /// The first difference between the replayed state and the live projections, in the order
    /// the verifier checks them (history, devices, modules, counters; each in key order).
    static func compare(_ state: RegistrySnapshot, history: Set<[UInt8]>, with storage: RegistryStorage) throws -> Verdict {
        // The live projections, read in one snapshot.
        var live = (
            history: [[UInt8]](), devices: [(key: [UInt8], value: [UInt8])](), modules: [(key: [UInt8], value: [UInt8])](), disabled: 0, connected: 0
        )
        try storage.read { txn, db in
            try txn.scan(db.history) { key, _ in
                live.history.append(key)
                return true
            }
            try txn.scan(db.devices) { key, value in
                live.devices.append((key, value))
                return true
            }
            try txn.scan(db.modules) { key, value in
                live.modules.append((key, value))
                return true
            }
            live.disabled = Int(try txn.get(db.meta, MetaKey.disabledDevices).flatMap(StorageKey.sequence(from:)) ?? 0)
            live.connected = Int(try txn.get(db.meta, MetaKey.connectedDevices).flatMap(StorageKey.sequence(from:)) ?? 0)
        }

        for key in live.history where !history.contains(key) { return .stateDiffers(database: "history", key: describeHistory(key)) }
        if live.history.count != history.count {
            return .stateDiffers(database: "history", key: "(\(history.count - live.history.count) entries)")
        }

        var replayed: [[UInt8]: Identity] = [:]
        for device in state.devices.values { replayed[StorageKey.device(device.deviceId)] = .device(device) }
        var replayedModules: [[UInt8]: Identity] = [:]
        for module in state.modules.values { replayedModules[StorageKey.module(module.deviceId, module.moduleId)] = .module(module) }
        for (database, entries, expected) in [("devices", live.devices, replayed), ("modules", live.modules, replayedModules)] {
            // Every key of either side, in LMDB's order (bytes), with the first that differs.
            let keys = Set(entries.map(\.key)).union(expected.keys).sorted { $0.lexicographicallyPrecedes($1) }
            let documents = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            for key in keys {
                let stored = try documents[key].map { try IdentityCodec.decode(JSONParser.parse($0)) { sealed, _ in sealed } }
                if stored != expected[key] { return .stateDiffers(database: database, key: describe(key)) }
            }
        }

        if live.disabled != state.devices.values.count(where: { $0.status == .disabled }) {
            return .stateDiffers(database: "meta", key: "stats.disabledDevices")
        }
        if live.connected != state.devices.values.count(where: { $0.connectionState == .connected }) {
            return .stateDiffers(database: "meta", key: "stats.connectedDevices")
        }
        return .clean
    }

    /// `device` or `device/module`, as the verifier names a projection key.
    static func describe(_ key: [UInt8]) -> String {
        guard let zero = key.firstIndex(of: 0) else { return String(decoding: key, as: UTF8.self) }
        return String(decoding: key[..<zero], as: UTF8.self) + "/" + String(decoding: key[(zero + 1)...], as: UTF8.self)
    }

    /// `device@seq`.
    static func describeHistory(_ key: [UInt8]) -> String {
        guard let zero = key.firstIndex(of: 0), let seq = StorageKey.sequence(from: Array(key[(zero + 1)...])) else {
            return String(decoding: key, as: UTF8.self)
        }
        return String(decoding: key[..<zero], as: UTF8.self) + "@\(seq)"
    }
}
