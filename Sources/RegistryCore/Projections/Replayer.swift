import Dispatch
import Foundation
import LMDB
import Synchronization

/// Rebuilds projections from the log and compares them with live ones.
///
/// Replay runs `Projections.apply`, the very code the writer runs, from sequence 1 into an empty
/// environment, checking sequence continuity and the hash chain on the way.
public enum Replayer {
    /// What a verification found.
    public enum Outcome: Sendable, Hashable {
        case clean
        /// The log itself is bad at `seq` (gap, broken chain, undecodable or non-canonical record).
        case logCorrupt(seq: UInt64, reason: String)
        /// The log is fine but a live projection differs from the rebuilt one.
        case projectionDiffers(database: String, key: String, detail: String)
    }

    public struct Report: Sendable, Hashable {
        public var events: UInt64 = 0
        public var devices = 0
        public var modules = 0
        public var historyEntries = 0
        public var outcome: Outcome = .clean
        public init() {}
    }

    /// Events verified per parallel chunk (and applied per scratch transaction).
    static let chunk = 10_000

    /// Verifies the whole log of `source` and compares every projection with it, byte for
    /// byte, against one consistent snapshot (safe while a daemon writes). See `LogVerifier`.
    public static func verify(source: RegistryStorage, progress: ((UInt64) -> Void)? = nil) throws -> Report {
        try source.read { txn, live in try LogVerifier.verify(txn, live, progress: progress) }
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
        var pending: [(event: VerifiedEvent, bytes: [UInt8])] = []
        var applied: UInt64 = 0
        let corruption = try walk(txn, events, until: point) { event, bytes in
            pending.append((event, bytes))
        } afterChunk: {
            let records = pending
            try target.write { out in
                for (event, bytes) in records {
                    if copyEvents { try out.put(targetDatabases.events, StorageKey.sequence(event.seq), bytes, flags: .append) }
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
    /// hash, and hands every good event to `visit`; `afterChunk` runs after each chunk of
    /// events (and once at the end). Stops at the first bad record (returned) or past `point`.
    ///
    /// Each record's own hash needs only its bytes and its stored prevHash, so a chunk is
    /// checked on every core at once; the chain links then run in order.
    static func walk<T: ReadableTransaction & ~Copyable>(
        _ txn: borrowing T,
        _ events: Database,
        until point: ReplayPoint? = nil,
        visit: (VerifiedEvent, [UInt8]) throws -> Void,
        afterChunk: () throws -> Void = {}
    ) throws -> Outcome? {
        var expected: UInt64 = 1
        var prevHash = EventRecord.genesisHash
        var corruption: Outcome?
        var raw: [([UInt8], [UInt8])] = []
        func process() throws -> Bool {
            let checks = parallelMap(raw) { entry in EventRecord.selfCheck(entry.1) }
            defer { raw.removeAll(keepingCapacity: true) }
            for ((key, value), check) in zip(raw, checks) {
                let result: Result<VerifiedEvent, EventDecodingError>
                switch check {
                case .none:
                    result = EventRecord.fastVerified(value, expectedSeq: expected, prevHash: prevHash)
                case .some(let (fast, hashMatches)):
                    if fast.seq != expected {
                        result = .failure(EventDecodingError("sequence \(fast.seq) where \(expected) was expected"))
                    } else if fast.prevHash != prevHash {
                        result = .failure(EventDecodingError("prevHash does not match the previous event's hash"))
                    } else if !hashMatches {
                        result = .failure(EventDecodingError("hash does not match the content"))
                    } else {
                        result = .success(fast.event)
                    }
                }
                switch result {
                case .failure(let error):
                    corruption = .logCorrupt(seq: StorageKey.sequence(from: key) ?? expected, reason: error.description)
                    try afterChunk()
                    return false
                case .success(let event):
                    // Point-in-time stops need the event's time: decode only then.
                    if let point, !point.includes(try EventRecord.decode(value)) {
                        try afterChunk()
                        return false
                    }
                    try visit(event, value)
                    prevHash = event.hash
                    expected += 1
                }
            }
            try afterChunk()
            return true
        }
        var going = true
        try txn.scan(events) { key, value in
            raw.append((key, value))
            if raw.count >= chunk { going = try process() }
            return going
        }
        if going { _ = try process() }
        return corruption
    }

    /// `transform` over `items`, split across the cores (Dispatch's pool, not the cooperative one).
    static func parallelMap<T: Sendable>(_ items: [([UInt8], [UInt8])], _ transform: @Sendable (([UInt8], [UInt8])) -> T) -> [T] {
        let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        guard items.count >= 64, parts > 1 else { return items.map(transform) }
        let results = Mutex<[[T]]>(Array(repeating: [], count: parts))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let local = items[(items.count * part / parts)..<(items.count * (part + 1) / parts)].map(transform)
            results.withLock { $0[part] = local }
        }
        return results.withLock { $0.flatMap { $0 } }
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
