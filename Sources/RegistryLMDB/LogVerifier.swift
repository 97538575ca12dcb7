import LMDB
import RegistryCore
import SystemBytes

/// `audit verify` (and `replay --verify`): the whole log checked, and every projection compared
/// with what the log says, byte for byte, without writing a scratch environment.
///
/// Why this equals a replay: each event's payload is the full identity snapshot, so the fold
/// `Projections.apply` leaves, per identity, exactly the payload of its last event (or nothing
/// after a delete), a history entry per event, and counters of the final documents.
///
/// Three ordered passes, no map keyed by identity:
/// 1. The log, in sequence order (canonical form and hashes checked on every core; a record
///    that is not canonical takes the full decode, which refuses it as replay does): per event,
///    its ids (kept in one arena) and where its payload sits in its record.
/// 2. The history index, in key order (device, then sequence): every entry must name an event
///    of that device, and there must be as many entries as events; keys are unique, so the
///    index is then exactly the replayed one. Walking it also groups each device's events in
///    order, which gives each identity's last event in key order.
/// 3. The live documents, in the same key order, merged with those expectations: each must be
///    its identity's last payload (compared in place with the stored record), and every
///    identity alive in the log must have one.
enum LogVerifier {
    /// What pass 1 keeps of one event (entry `seq - 1`); ranges are into the id arena.
    struct Logged {
        var deviceStart: UInt32
        var deviceEnd: UInt32
        /// The module id follows the device id in the arena; empty for a device event.
        var moduleEnd: UInt32
        var payloadStart: UInt32
        var payloadEnd: UInt32
        var isDelete: Bool

        var device: Range<Int> { Int(deviceStart)..<Int(deviceEnd) }
        var module: Range<Int>? { moduleEnd > deviceEnd ? Int(deviceEnd)..<Int(moduleEnd) : nil }
        var payload: Range<Int> { Int(payloadStart)..<Int(payloadEnd) }
    }

    /// An identity alive at the end of the log: the event whose payload its document must be.
    struct Expected {
        var seq: UInt64
    }

    /// Whether each device document of `batch` counts as disabled and as connected.
    @Sendable static func counterMarks(_ batch: EntryBatch) -> [(disabled: Bool, connected: Bool)] {
        batch.values.map { Projections.marks(batch.bytes, $0) }
    }

    static func verify<T: ReadableTransaction & ~Copyable>(
        _ txn: borrowing T,
        _ db: RegistryDatabases,
        batchSize: Int = Replayer.chunk,
        progress: ((UInt64) -> Void)?
    ) throws -> Replayer.Report {
        var report = Replayer.Report()
        let eventCount = try txn.statistics(db.events).entries
        var logged: [Logged] = []
        logged.reserveCapacity(eventCount)
        var arena: [UInt8] = []
        arena.reserveCapacity(eventCount * 24)
        var events: UInt64 = 0

        // 1. The log.
        let corruption = try Replayer.walk(txn, db.events, batchSize: batchSize) { event in
            // Offsets are 32-bit (a million events keep ~20 MB of ids); ids are at most 128
            // bytes each, so stopping short of the limit before appending is enough.
            guard arena.count < Int(UInt32.max) - 512 else {
                throw EventDecodingError("the log's ids exceed 4 GiB: too large for one verification pass")
            }
            let start = arena.count
            arena.append(contentsOf: event.bytes[event.device])
            let deviceEnd = arena.count
            if let module = event.module { arena.append(contentsOf: event.bytes[module]) }
            let payload = event.payloadInRecord
            logged.append(
                Logged(
                    deviceStart: UInt32(start),
                    deviceEnd: UInt32(deviceEnd),
                    moduleEnd: UInt32(arena.count),
                    payloadStart: UInt32(payload.lowerBound),
                    payloadEnd: UInt32(payload.upperBound),
                    isDelete: event.type.isDelete
                )
            )
            events = event.seq
        } afterChunk: {
            progress?(events)
        }
        report.events = events
        if let corruption {
            report.outcome = corruption
            return report
        }

        // 2. The history index, and from it each identity's last event in key order.
        var devices: [Expected] = []
        var modules: [Expected] = []
        var historyCount: UInt64 = 0
        var failure: Replayer.Outcome?
        var group: Range<Int>?  // the current device's id, in the arena
        var lastOwn: UInt64 = 0  // the current device's last event of its own
        var moduleLast: [ArraySlice<UInt8>: UInt64] = [:]
        func closeGroup() {
            if lastOwn > 0, !logged[Int(lastOwn - 1)].isDelete { devices.append(Expected(seq: lastOwn)) }
            if !moduleLast.isEmpty {
                for (_, seq) in moduleLast.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) where !logged[Int(seq - 1)].isDelete {
                    modules.append(Expected(seq: seq))
                }
                moduleLast.removeAll(keepingCapacity: true)
            }
            lastOwn = 0
        }
        try txn.scanBatches(db.history, entries: batchSize) { batch in
            for i in 0..<batch.count {
                let key = batch.keys[i]
                guard let zero = ByteScan.firstIndex(of: [0], in: batch.bytes, from: key.lowerBound, to: key.upperBound),
                    let seq = StorageKey.sequence(from: Array(batch.bytes[(zero + 1)..<key.upperBound]))
                else {
                    failure = .projectionDiffers(database: "history", key: Replayer.describe(batch.key(i), "history"), detail: "not a history key")
                    return false
                }
                let device = key.lowerBound..<zero
                guard seq >= 1, seq <= events, ByteScan.equal(batch.bytes, device, arena, logged[Int(seq - 1)].device) else {
                    failure = .projectionDiffers(
                        database: "history",
                        key: Replayer.describe(batch.key(i), "history"),
                        detail: "present in the live projection, absent from the replay"
                    )
                    return false
                }
                let event = logged[Int(seq - 1)]
                if let current = group, ByteScan.equal(arena, current, arena, event.device) {
                    // Same device: entries come in sequence order.
                } else {
                    closeGroup()
                    group = event.device
                }
                if let module = event.module { moduleLast[arena[module]] = seq } else { lastOwn = seq }
                historyCount += 1
            }
            return true
        }
        closeGroup()
        if let failure {
            report.outcome = failure
            return report
        }
        guard historyCount == events else {
            report.outcome = .projectionDiffers(
                database: "history",
                key: "(\(events - historyCount) entries)",
                detail: "absent from the live projection, present in the replay"
            )
            return report
        }
        report.historyEntries = Int(historyCount)

        // 3. The documents, merged with the expectations (both in key order).
        var disabled: UInt64 = 0
        var connected: UInt64 = 0
        for (database, isModule) in [(db.devices, false), (db.modules, true)] {
            let expected = isModule ? modules : devices
            var next = 0
            var count = 0
            func expectedKey(_ e: Expected) -> [UInt8] {
                let event = logged[Int(e.seq - 1)]
                return Array(arena[event.device]) + (event.module.map { [0] + Array(arena[$0]) } ?? [])
            }
            /// The live key at `batch[range]` against an expected identity, in LMDB's key order.
            func order(_ bytes: [UInt8], _ range: Range<Int>, _ e: Expected) -> Int {
                let event = logged[Int(e.seq - 1)]
                guard let module = event.module else { return ByteScan.compare(bytes, range, arena, event.device) }
                let zero = ByteScan.firstIndex(of: [0], in: bytes, from: range.lowerBound, to: range.upperBound) ?? range.upperBound
                let byDevice = ByteScan.compare(bytes, range.lowerBound..<zero, arena, event.device)
                if byDevice != 0 || zero == range.upperBound { return byDevice != 0 ? byDevice : -1 }
                return ByteScan.compare(bytes, (zero + 1)..<range.upperBound, arena, module)
            }
            // The counters' markers are searched on every core while the documents are copied.
            try txn.scanParallel(database, entries: batchSize, parts: Replayer.shares, transform: isModule ? { _ in [] } : counterMarks) { shares in
                for (batch, marks) in shares {
                    for i in 0..<batch.count {
                        let key = batch.keys[i]
                        let relation = next < expected.count ? order(batch.bytes, key, expected[next]) : -1
                        if relation > 0 {
                            failure = .projectionDiffers(
                                database: database.name,
                                key: Replayer.describe(expectedKey(expected[next]), database.name),
                                detail: "absent from the live projection, present in the replay"
                            )
                            return false
                        }
                        if relation < 0 {
                            failure = .projectionDiffers(
                                database: database.name,
                                key: Replayer.describe(batch.key(i), database.name),
                                detail: "present in the live projection, absent from the replay"
                            )
                            return false
                        }
                        let event = logged[Int(expected[next].seq - 1)]
                        guard
                            try txn.value(db.events, StorageKey.sequence(expected[next].seq), at: event.payload, equals: batch.bytes, batch.values[i])
                                == true
                        else {
                            failure = .projectionDiffers(
                                database: database.name,
                                key: Replayer.describe(batch.key(i), database.name),
                                detail: "value differs from the replayed one"
                            )
                            return false
                        }
                        if !isModule {
                            if marks[i].disabled { disabled += 1 }
                            if marks[i].connected { connected += 1 }
                        }
                        next += 1
                        count += 1
                    }
                }
                return true
            }
            if let failure {
                report.outcome = failure
                return report
            }
            if next < expected.count {
                report.outcome = .projectionDiffers(
                    database: database.name,
                    key: Replayer.describe(expectedKey(expected[next]), database.name),
                    detail: "absent from the live projection, present in the replay"
                )
                return report
            }
            if isModule { report.modules = count } else { report.devices = count }
        }

        for (counter, value) in [(MetaKey.disabledDevices, disabled), (MetaKey.connectedDevices, connected)] {
            let live = try txn.get(db.meta, counter).flatMap(StorageKey.sequence(from:)) ?? 0
            if live != value {
                report.outcome = .projectionDiffers(
                    database: "meta",
                    key: String(decoding: counter, as: UTF8.self),
                    detail: "counter differs from the replayed one"
                )
                return report
            }
        }
        report.outcome = .clean
        return report
    }
}
