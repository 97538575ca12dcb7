import Dispatch
import Foundation
import LMDB
import RegistryCore
import Synchronization

/// Rebuilds projections from the log and compares them with live ones.
///
/// Replay runs `Projections.apply`, the very code the writer runs, from sequence 1 into an empty
/// environment, checking sequence continuity and the hash chain on the way.
extension Replayer {

    /// Verifies the whole log of `source` and compares every projection with it, byte for
    /// byte, against one consistent snapshot (safe while a daemon writes). See `LogVerifier`.
    /// `batchSize` is the entries per scan batch (tests make it small to cross batch boundaries).
    public static func verify(source: RegistryStorage, batchSize: Int = chunk, progress: ((UInt64) -> Void)? = nil) throws -> Report {
        try source.read { txn, live in try LogVerifier.verify(txn, live, batchSize: batchSize, progress: progress) }
    }

    /// Applies every event of `events` (verified; up to `point` when given) to the projections in
    /// `target`, copying the events too when asked. Returns the corruption found, if any.
    public static func rebuild<T: ReadableTransaction & ~Copyable>(
        from txn: borrowing T,
        _ events: Database,
        into target: Environment,
        _ targetDatabases: RegistryDatabases,
        report: inout Report,
        until point: ReplayPoint? = nil,
        copyEvents: Bool = false,
        progress: ((UInt64) -> Void)? = nil
    ) throws -> Outcome? {
        var pending: [(event: VerifiedEvent, record: [UInt8]?)] = []
        var applied: UInt64 = 0
        let corruption = try walk(txn, events, until: point) { event in
            pending.append((event.verifiedEvent, copyEvents ? event.recordBytes : nil))
        } afterChunk: {
            let records = pending
            try target.write { out in
                for (event, record) in records {
                    if let record { try out.put(targetDatabases.events, StorageKey.sequence(event.seq), record, flags: .append) }
                    try Projections.apply(event, txn: out, databases: targetDatabases)
                }
            }
            applied += UInt64(records.count)
            pending.removeAll(keepingCapacity: true)
            progress?(applied)
        }
        report.events = applied
        return corruption
    }

    /// Walks the log in order, verifying sequence continuity, the hash chain and each record's
    /// hash, and hands every good event to `visit`; `afterChunk` runs after each batch of
    /// events. Stops at the first bad record (returned) or past `point`.
    ///
    /// Each record's own hash needs only its bytes and its stored prevHash, so every batch is
    /// copied out of the map and checked on all cores at once (`scanParallel`); the chain links
    /// then run in order on this thread.
    static func walk<T: ReadableTransaction & ~Copyable>(
        _ txn: borrowing T,
        _ events: Database,
        until point: ReplayPoint? = nil,
        batchSize: Int = chunk,
        visit: (borrowing WalkedEvent) throws -> Void,
        afterChunk: () throws -> Void = {}
    ) throws -> Outcome? {
        var expected: UInt64 = 1
        var prevHash = Hash32(EventRecord.genesisHash)
        var corruption: Outcome?
        try txn.scanParallel(events, entries: batchSize, parts: shares, transform: selfChecks) { shares in
            for (batch, checks) in shares {
                for i in 0..<batch.count {
                    let event: WalkedEvent
                    switch WalkedEvent.accept(batch.bytes, record: batch.values[i], checked: checks[i], expectedSeq: expected, prevHash: prevHash) {
                    case .success(let good): event = good
                    case .failure(let error):
                        corruption = .logCorrupt(seq: StorageKey.sequence(from: batch.key(i)) ?? expected, reason: error.description)
                        try afterChunk()
                        return false
                    }
                    // Point-in-time stops need the event's time: decode only then.
                    if let point, !point.includes(try EventRecord.decode(event.recordBytes)) {
                        try afterChunk()
                        return false
                    }
                    try visit(event)
                    prevHash = event.hash
                    expected += 1
                }
            }
            try afterChunk()
            return true
        }
        return corruption
    }

    /// Every record of `batch` checked on its own (one core's share of a scan batch).
    @Sendable static func selfChecks(_ batch: EntryBatch) -> [(RecordLayout, Bool)?] {
        var scratch = [UInt8](repeating: 0, count: 32)
        return batch.values.map { EventRecord.selfCheck(batch.bytes, $0, scratch: &scratch) }
    }

    /// A readable form of a projection key: `device`, `device/module` or `device@seq`.
    static func describe(_ key: [UInt8], _ database: String) -> String {
        guard let zero = key.firstIndex(of: 0) else { return String(decoding: key, as: UTF8.self) }
        let device = String(decoding: key[..<zero], as: UTF8.self)
        let rest = Array(key[(zero + 1)...])
        if database == "history", let seq = StorageKey.sequence(from: rest) { return "\(device)@\(seq)" }
        return "\(device)/\(String(decoding: rest, as: UTF8.self))"
    }
}
