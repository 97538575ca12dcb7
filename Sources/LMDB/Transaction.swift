import CLMDB

/// Operations available in both read and write transactions.
///
/// Everything returned is a copy: LMDB's pointers into the map are valid only until the next
/// update or the end of the transaction, so no pointer ever leaves this module.
public protocol ReadableTransaction: ~Copyable {
    /// The raw `MDB_txn`, for this module's helpers.
    var txnHandle: OpaquePointer { get }
}

extension ReadableTransaction where Self: ~Copyable {
    /// The value stored under `key`, or `nil`.
    public func get(_ db: Database, _ key: [UInt8]) throws(LMDBError) -> [UInt8]? {
        var result: [UInt8]?
        var rc: Int32 = 0
        key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var v = MDB_val()
            rc = mdb_get(txnHandle, db.dbi, &k, &v)
            if rc == 0 { result = copyBytes(v) }
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return result
    }

    /// Whether `key` is present.
    public func contains(_ db: Database, _ key: [UInt8]) throws(LMDBError) -> Bool {
        var rc: Int32 = 0
        key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var v = MDB_val()
            rc = mdb_get(txnHandle, db.dbi, &k, &v)
        }
        if rc == MDB_NOTFOUND { return false }
        try check(rc)
        return true
    }

    /// Entry count and page statistics of `db` as seen by this transaction.
    public func statistics(_ db: Database) throws(LMDBError) -> DatabaseStatistics {
        var stat = MDB_stat()
        try check(mdb_stat(txnHandle, db.dbi, &stat))
        return DatabaseStatistics(
            entries: stat.ms_entries,
            depth: Int(stat.ms_depth),
            leafPages: stat.ms_leaf_pages,
            branchPages: stat.ms_branch_pages,
            overflowPages: stat.ms_overflow_pages,
            pageSize: Int(stat.ms_psize)
        )
    }

    /// Runs `body` with a cursor over `db`; the cursor is closed when `body` returns.
    public func withCursor<R>(_ db: Database, _ body: (inout Cursor) throws -> R) throws -> R {
        var cursorHandle: OpaquePointer?
        try check(mdb_cursor_open(txnHandle, db.dbi, &cursorHandle))
        guard let cursorHandle else { throw LMDBError(code: MDB_BAD_TXN) }
        defer { mdb_cursor_close(cursorHandle) }
        var cursor = Cursor(handle: cursorHandle)
        return try body(&cursor)
    }

    /// Visits entries in key order starting at the first key `>= start` (or the first key),
    /// until `body` returns `false` or the database ends.
    public func scan(
        _ db: Database,
        from start: [UInt8]? = nil,
        _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool
    ) throws {
        try withCursor(db) { cursor in
            var entry = try start.map { key throws(LMDBError) in try cursor.seek(atLeast: key) } ?? cursor.first()
            while let (key, value) = entry {
                guard try body(key, value) else { return }
                entry = try cursor.next()
            }
        }
    }
}

@inline(__always)
func copyBytes(_ value: MDB_val) -> [UInt8] {
    guard value.mv_size > 0, let data = value.mv_data else { return [] }
    return Array(UnsafeRawBufferPointer(start: data, count: value.mv_size))
}

/// A read-only snapshot of the environment, valid only inside `Environment.read`.
///
/// Readers never block the writer and see a consistent snapshot for their whole life.
public struct ReadTransaction: ~Copyable, ReadableTransaction {
    public let txnHandle: OpaquePointer
    init(handle: OpaquePointer) { self.txnHandle = handle }
}

/// A write transaction, valid only inside `Environment.write`. It sees its own writes.
public struct WriteTransaction: ~Copyable, ReadableTransaction {
    /// Shared, mutable facts about the attempt (a class because the transaction is borrowed).
    final class State {
        /// A put or delete hit `MDB_MAP_FULL`; the transaction is poisoned.
        var mapFull = false
    }

    public let txnHandle: OpaquePointer
    let state: State

    init(handle: OpaquePointer, state: State) {
        self.txnHandle = handle
        self.state = state
    }

    /// Stores `value` under `key`.
    public func put(_ db: Database, _ key: [UInt8], _ value: [UInt8], flags: PutFlags = []) throws(LMDBError) {
        var rc: Int32 = 0
        key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var v = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                rc = mdb_put(txnHandle, db.dbi, &k, &v, flags.rawValue)
            }
        }
        try record(rc)
    }

    /// Removes `key`; returns whether it was present.
    @discardableResult
    public func delete(_ db: Database, _ key: [UInt8]) throws(LMDBError) -> Bool {
        var rc: Int32 = 0
        key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            rc = mdb_del(txnHandle, db.dbi, &k, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        try record(rc)
        return true
    }

    /// Removes every entry of `db` (the database itself stays).
    public func clear(_ db: Database) throws(LMDBError) {
        try record(mdb_drop(txnHandle, db.dbi, 0))
    }

    /// Opens (creating when asked) a named database inside this transaction.
    public func openDatabase(_ name: String, flags: DatabaseFlags = [.create]) throws(LMDBError) -> Database {
        var dbi: MDB_dbi = 0
        try record(mdb_dbi_open(txnHandle, name, flags.rawValue, &dbi))
        return Database(dbi: dbi, name: name)
    }

    private func record(_ rc: Int32) throws(LMDBError) {
        if rc == MDB_MAP_FULL { state.mapFull = true }
        try check(rc)
    }
}
