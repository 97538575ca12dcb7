import CLMDB

/// A position in one database, valid only inside `withCursor`. Entries are returned as copies.
public struct Cursor: ~Copyable {
    let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }

    public typealias Entry = (key: [UInt8], value: [UInt8])

    public mutating func first() throws(LMDBError) -> Entry? { try move(MDB_FIRST) }
    public mutating func last() throws(LMDBError) -> Entry? { try move(MDB_LAST) }
    public mutating func next() throws(LMDBError) -> Entry? { try move(MDB_NEXT) }
    public mutating func previous() throws(LMDBError) -> Entry? { try move(MDB_PREV) }

    /// Positions at the first key `>= key`.
    public mutating func seek(atLeast key: [UInt8]) throws(LMDBError) -> Entry? {
        try move(MDB_SET_RANGE, key: key)
    }

    /// Positions at exactly `key`.
    public mutating func seek(exactly key: [UInt8]) throws(LMDBError) -> Entry? {
        try move(MDB_SET_KEY, key: key)
    }

    private mutating func move(_ op: MDB_cursor_op, key: [UInt8]? = nil) throws(LMDBError) -> Entry? {
        let (rc, entry) = key.map { key in key.withUnsafeBytes { Self.get(handle, op, $0) } } ?? Self.get(handle, op, nil)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc)
        return entry
    }

    private static func get(_ handle: OpaquePointer, _ op: MDB_cursor_op, _ keyBytes: UnsafeRawBufferPointer?) -> (Int32, Entry?) {
        var k = MDB_val(
            mv_size: keyBytes?.count ?? 0,
            mv_data: keyBytes.flatMap { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
        )
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, op)
        return (rc, rc == 0 ? (copyBytes(k), copyBytes(v)) : nil)
    }
}
