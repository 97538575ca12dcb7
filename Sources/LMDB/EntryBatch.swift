import CLMDB
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Consecutive entries of one database copied into one buffer, with where each key and value
/// sit in it. Scanning a million records as fresh `[UInt8]` pairs spent more on the allocator
/// than on the copy; a batch costs one copy per entry into reused storage, and a batch is
/// `Sendable`, so its records can be checked on every core at once.
public struct EntryBatch: Sendable {
    public fileprivate(set) var bytes: [UInt8] = []
    public fileprivate(set) var keys: [Range<Int>] = []
    public fileprivate(set) var values: [Range<Int>] = []

    public init() {}

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// The key of entry `i` as its own array (for the rare caller that must keep it).
    public func key(_ i: Int) -> [UInt8] { Array(bytes[keys[i]]) }
    public func value(_ i: Int) -> [UInt8] { Array(bytes[values[i]]) }

    fileprivate mutating func append(_ key: MDB_val, _ value: MDB_val) {
        append(key.mv_data, key.mv_size, value.mv_data, value.mv_size)
    }

    fileprivate mutating func append(_ key: UnsafeRawPointer?, _ keySize: Int, _ value: UnsafeRawPointer?, _ valueSize: Int) {
        keys.append(copy(key, keySize))
        values.append(copy(value, valueSize))
    }

    fileprivate mutating func copy(_ data: UnsafeRawPointer?, _ size: Int) -> Range<Int> {
        let start = bytes.count
        if size > 0, let data {
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size))
        }
        return start..<bytes.count
    }

    fileprivate mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
    }
}

extension ReadableTransaction where Self: ~Copyable {
    /// Visits the entries of `db` in key order from the first key `>= start`, in batches of up
    /// to `entries` entries or about `bytes` bytes, until `body` returns `false` or the
    /// database ends. The batch's storage is reused for the next one unless `body` kept it.
    public func scanBatches(
        _ db: Database,
        from start: [UInt8]? = nil,
        entries: Int = 4096,
        bytes: Int = 8 << 20,
        _ body: (EntryBatch) throws -> Bool
    ) throws {
        var batch = EntryBatch()
        var stopped = false
        try forEachMapped(db, from: start) { k, v in
            batch.append(k, v)
            if batch.count >= entries || batch.bytes.count >= bytes {
                guard try body(batch) else {
                    stopped = true
                    return false
                }
                batch.reset()
            }
            return true
        }
        if !stopped, !batch.isEmpty { _ = try body(batch) }
    }

    /// Visits the entries of `db` from the first key `>= start` (or the first) as they lie in
    /// the map, until `visit` returns `false` or the database ends.
    fileprivate func forEachMapped(_ db: Database, from start: [UInt8]?, _ visit: (MDB_val, MDB_val) throws -> Bool) throws {
        var cursorHandle: OpaquePointer?
        try check(mdb_cursor_open(txnHandle, db.dbi, &cursorHandle))
        guard let cursorHandle else { throw LMDBError(code: MDB_BAD_TXN) }
        defer { mdb_cursor_close(cursorHandle) }
        var k = MDB_val()
        var v = MDB_val()
        var rc: Int32
        if let start {
            rc = start.withUnsafeBytes { startBytes in
                k = MDB_val(mv_size: startBytes.count, mv_data: UnsafeMutableRawPointer(mutating: startBytes.baseAddress))
                return mdb_cursor_get(cursorHandle, &k, &v, MDB_SET_RANGE)
            }
        } else {
            rc = mdb_cursor_get(cursorHandle, &k, &v, MDB_FIRST)
        }
        while rc == 0 {
            guard try visit(k, v) else { return }
            rc = mdb_cursor_get(cursorHandle, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc) }
    }

    /// Whether the value under `key` holds `other[otherRange]` at `range` (`nil` when the key is
    /// absent): compares in place, without copying the stored value out.
    public func value(_ db: Database, _ key: [UInt8], at range: Range<Int>, equals other: [UInt8], _ otherRange: Range<Int>) throws(LMDBError)
        -> Bool?
    {
        var rc: Int32 = 0
        var equal = false
        key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var v = MDB_val()
            rc = mdb_get(txnHandle, db.dbi, &k, &v)
            guard rc == 0, range.lowerBound >= 0, range.upperBound <= v.mv_size, range.count == otherRange.count,
                otherRange.lowerBound >= 0, otherRange.upperBound <= other.count
            else { return }
            guard !range.isEmpty else {
                equal = true
                return
            }
            equal = other.withUnsafeBufferPointer { o in
                memcmp(v.mv_data! + range.lowerBound, o.baseAddress! + otherRange.lowerBound, range.count) == 0
            }
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return equal
    }
}

/// Where one entry lies in the map. Valid while the read transaction that found it lives (its
/// pages cannot be reused before then), which `scanParallel` outlives on every thread.
private struct MappedEntry: @unchecked Sendable {
    var key: UnsafeRawPointer?
    var keySize: Int
    var value: UnsafeRawPointer?
    var valueSize: Int
}

extension ReadableTransaction where Self: ~Copyable {
    /// `scanBatches` with the copying and a per-entry `transform` spread over `parts` cores:
    /// this thread walks the cursor and notes where each entry lies in the map; each core then
    /// copies its share of the batch into an `EntryBatch` of its own and transforms it; `body`
    /// gets every share, in key order, with its results, back on this thread.
    ///
    /// Why this is safe: a read transaction's pages are never reused while it lives, and this
    /// function returns only after every core is done, inside the transaction. Only this thread
    /// touches the cursor or the transaction.
    public func scanParallel<R: Sendable>(
        _ db: Database,
        from start: [UInt8]? = nil,
        entries: Int = 8192,
        parts: Int,
        transform: @escaping @Sendable (EntryBatch) -> R,
        _ body: ([(batch: EntryBatch, result: R)]) throws -> Bool
    ) throws {
        let parts = max(1, parts)
        // Double-buffered: the cores copy and transform batch k+1 while `body` runs on batch k
        // here, and this thread joins them when `body` is done, so the ordered work of `body`
        // overlaps the parallel work. (The calling thread helps rather than only waiting: it
        // may itself be a pool thread, and the pool does not always add one while it waits.)
        let inFlight = DispatchGroup()
        defer { inFlight.wait() }  // no core may read the map after the transaction ends
        func launch(_ found: [MappedEntry]) -> Shares<R> {
            let shares = Shares<R>(parts: parts) { part in
                var batch = EntryBatch()
                let range = (found.count * part / parts)..<(found.count * (part + 1) / parts)
                var total = 0
                for i in range { total += found[i].keySize + found[i].valueSize }
                batch.bytes.reserveCapacity(total)
                batch.keys.reserveCapacity(range.count)
                batch.values.reserveCapacity(range.count)
                for i in range { batch.append(found[i].key, found[i].keySize, found[i].value, found[i].valueSize) }
                return (batch, transform(batch))
            }
            if found.count >= 64 {
                for _ in 0..<min(parts, helpers) { DispatchQueue.global().async(group: inFlight) { shares.run() } }
            }
            return shares
        }
        var previous: Shares<R>?
        var pending: [MappedEntry] = []
        pending.reserveCapacity(entries)
        func advance() throws -> Bool {
            let next = launch(pending)
            pending.removeAll(keepingCapacity: true)
            let going = try previous.map { try body($0.collected) } ?? true
            next.run()
            inFlight.wait()
            previous = next
            return going
        }
        var stopped = false
        try forEachMapped(db, from: start) { k, v in
            pending.append(
                MappedEntry(key: UnsafeRawPointer(k.mv_data), keySize: k.mv_size, value: UnsafeRawPointer(v.mv_data), valueSize: v.mv_size)
            )
            if pending.count >= entries {
                guard try advance() else {
                    stopped = true
                    return false
                }
            }
            return true
        }
        guard !stopped else { return }
        if !pending.isEmpty {
            guard try advance() else { return }
        }
        if let previous { _ = try body(previous.collected) }
    }
}

/// Cores that help the calling thread with a batch.
private let helpers = 8

/// One batch's shares: taken one at a time by whichever thread is free, results kept in order.
private final class Shares<R: Sendable>: Sendable {
    private let work: @Sendable (Int) -> (batch: EntryBatch, result: R)
    private let next = Atomic<Int>(0)
    private let parts: Int
    private let results: Mutex<[(batch: EntryBatch, result: R)?]>

    init(parts: Int, work: @escaping @Sendable (Int) -> (batch: EntryBatch, result: R)) {
        self.parts = parts
        self.work = work
        self.results = Mutex(Array(repeating: nil, count: parts))
    }

    /// Takes shares until none is left.
    func run() {
        while true {
            let part = next.add(1, ordering: .relaxed).oldValue
            guard part < parts else { return }
            let done = work(part)
            results.withLock { $0[part] = done }
        }
    }

    /// Every share, in order (after `run` has returned on every thread that took one).
    var collected: [(batch: EntryBatch, result: R)] { results.withLock { $0.compactMap { $0 } } }
}
