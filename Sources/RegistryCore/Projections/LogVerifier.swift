import LMDB

/// `audit verify` (and `replay --verify`): the whole log checked, and every projection compared
/// with what the log says, byte for byte, without writing a scratch environment.
///
/// Why this equals a replay: each event's payload is the full identity snapshot, so the fold
/// `Projections.apply` leaves, per identity, exactly the payload of its last event (or nothing
/// after a delete), a history entry per event, and counters of the final documents. One pass
/// over the log (hashes checked on every core) records, per identity key, the sequence number of
/// its last event; a second pass walks each live projection in key order and compares each
/// document with the payload of that event, read back from the log.
enum LogVerifier {
    struct Expectation {
        /// The last event of the identity's own (0 when only its modules' events were seen).
        var seq: UInt64
        var deleted: Bool
        var seen = false
        /// Devices only: its number, for the history check.
        var index: UInt32 = 0
    }

    static func verify<T: ReadableTransaction & ~Copyable>(
        _ txn: borrowing T,
        _ db: RegistryDatabases,
        progress: ((UInt64) -> Void)?
    ) throws -> Replayer.Report {
        var report = Replayer.Report()
        var devices: [ByteKey: Expectation] = [:]
        var modules: [ByteKey: Expectation] = [:]
        // Sized for the log up front: a million-entry map must not rehash as it grows.
        let eventCount = try txn.statistics(db.events).entries
        devices.reserveCapacity(eventCount)
        // History: the device (its `index`) each event belongs to.
        var deviceOfEvent: [UInt32] = [0]  // seq 0 unused
        deviceOfEvent.reserveCapacity(eventCount + 1)
        var events: UInt64 = 0

        let corruption = try Replayer.walk(txn, db.events) { event, _ in
            let deviceKey = ByteKey(StorageKey.device(event.deviceId))
            let isModule = event.moduleId != nil
            let index: UInt32
            if let known = devices[deviceKey] {
                index = known.index
                if !isModule { devices[deviceKey] = Expectation(seq: event.seq, deleted: event.type.isDelete, index: index) }
            } else {
                index = UInt32(devices.count)
                devices[deviceKey] = Expectation(seq: isModule ? 0 : event.seq, deleted: isModule || event.type.isDelete, index: index)
            }
            deviceOfEvent.append(index)
            if let moduleId = event.moduleId {
                modules[ByteKey(StorageKey.module(event.deviceId, moduleId))] = Expectation(seq: event.seq, deleted: event.type.isDelete)
            }
            events = event.seq
        } afterChunk: {
            progress?(events)
        }
        report.events = events
        if let corruption {
            report.outcome = corruption
            return report
        }

        // Documents: each live one must be its identity's last logged payload, and every
        // identity alive in the log must have one.
        var disabled: UInt64 = 0
        var connected: UInt64 = 0
        for (database, isModule) in [(db.devices, false), (db.modules, true)] {
            var count = 0
            var failure: Replayer.Outcome?
            try txn.scan(database) { rawKey, value in
                let key = ByteKey(rawKey)
                let expectation = isModule ? modules[key] : devices[key]
                guard let expectation, !expectation.deleted else {
                    failure = .projectionDiffers(database: database.name, key: Replayer.describe(rawKey, database.name), detail: "present in the live projection, absent from the replay")
                    return false
                }
                guard let record = try txn.get(db.events, StorageKey.sequence(expectation.seq)), payloadEquals(record, value) else {
                    failure = .projectionDiffers(database: database.name, key: Replayer.describe(rawKey, database.name), detail: "value differs from the replayed one")
                    return false
                }
                if isModule { modules[key]?.seen = true } else { devices[key]?.seen = true }
                if !isModule {
                    if Projections.isDisabled(value) { disabled += 1 }
                    if Projections.isConnected(value) { connected += 1 }
                }
                count += 1
                return true
            }
            if let failure {
                report.outcome = failure
                return report
            }
            let expected = isModule ? modules : devices
            if let missing = expected.first(where: { !$0.value.deleted && !$0.value.seen })?.key {
                report.outcome = .projectionDiffers(database: database.name, key: Replayer.describe(missing.bytes, database.name), detail: "absent from the live projection, present in the replay")
                return report
            }
            if isModule { report.modules = count } else { report.devices = count }
        }

        // History: one entry per event, under the event's device. Keys are unique and each names
        // one event of its own device, so equal counts make it exactly the replayed set.
        var historyCount: UInt64 = 0
        var failure: Replayer.Outcome?
        var lastDevice: [UInt8] = []
        var lastIndex: UInt32?
        try txn.scan(db.history) { key, _ in
            guard let zero = key.firstIndex(of: 0), let seq = StorageKey.sequence(from: Array(key[(zero + 1)...])) else {
                failure = .projectionDiffers(database: "history", key: Replayer.describe(key, "history"), detail: "not a history key")
                return false
            }
            let device = Array(key[..<zero])
            if device != lastDevice {
                lastDevice = device
                lastIndex = devices[ByteKey(device)]?.index
            }
            guard let index = lastIndex, seq >= 1, seq <= events, deviceOfEvent[Int(seq)] == index else {
                failure = .projectionDiffers(database: "history", key: Replayer.describe(key, "history"), detail: "present in the live projection, absent from the replay")
                return false
            }
            historyCount += 1
            return true
        }
        if let failure {
            report.outcome = failure
            return report
        }
        guard historyCount == events else {
            report.outcome = .projectionDiffers(database: "history", key: "(\(events - historyCount) entries)", detail: "absent from the live projection, present in the replay")
            return report
        }
        report.historyEntries = Int(historyCount)

        for (counter, value) in [(MetaKey.disabledDevices, disabled), (MetaKey.connectedDevices, connected)] {
            let live = try txn.get(db.meta, counter).flatMap(StorageKey.sequence(from:)) ?? 0
            if live != value {
                report.outcome = .projectionDiffers(database: "meta", key: String(decoding: counter, as: UTF8.self), detail: "counter differs from the replayed one")
                return report
            }
        }
        report.outcome = .clean
        return report
    }

    /// Whether a stored event record's payload is exactly `document`. The payload member sits
    /// between `,"payload":` and the last `,"prevHash":"` (canonical member order).
    static func payloadEquals(_ record: [UInt8], _ document: [UInt8]) -> Bool {
        guard let start = ByteSearch.first(EventRecord.payloadMember, in: record), let end = ByteSearch.last(EventRecord.prevHashMember, in: record) else {
            return false
        }
        let from = start + EventRecord.payloadMember.count
        return from <= end && ByteScan.equal(record, from..<end, document)
    }
}
