import CLMDB

/// An LMDB return code other than success, with LMDB's own message as its description.
///
/// Missing keys are not errors in this wrapper: lookups return `nil` instead of throwing
/// `notFound`.
public struct LMDBError: Error, Hashable, CustomStringConvertible, Sendable {
    /// The raw return code (an LMDB `MDB_*` code or an `errno` value).
    public let code: Int32

    public init(code: Int32) { self.code = code }

    public var description: String {
        "LMDB error \(code): \(String(cString: mdb_strerror(code)))"
    }

    public static let notFound = LMDBError(code: MDB_NOTFOUND)
    public static let keyExists = LMDBError(code: MDB_KEYEXIST)
    /// The map is full. `Environment.write` grows the map and retries, so callers see this only
    /// when growth is disabled or the maximum size is reached.
    public static let mapFull = LMDBError(code: MDB_MAP_FULL)
    /// Another process grew the map; handled internally by adopting the new size.
    public static let mapResized = LMDBError(code: MDB_MAP_RESIZED)
    public static let badTransaction = LMDBError(code: MDB_BAD_TXN)
    public static let badReaderSlot = LMDBError(code: MDB_BAD_RSLOT)
    public static let readersFull = LMDBError(code: MDB_READERS_FULL)
    public static let databasesFull = LMDBError(code: MDB_DBS_FULL)
    public static let badValueSize = LMDBError(code: MDB_BAD_VALSIZE)
}

@inline(__always)
func check(_ rc: Int32) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc) }
}
