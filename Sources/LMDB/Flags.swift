import CLMDB

/// Flags for `Environment.openDatabase` (the `mdb_dbi_open` flags).
public struct DatabaseFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Create the named database if it does not exist.
    public static let create = DatabaseFlags(rawValue: UInt32(MDB_CREATE))
    /// Keys are compared in reverse byte order.
    public static let reverseKey = DatabaseFlags(rawValue: UInt32(MDB_REVERSEKEY))
    /// Keys are native-endian binary integers (we use big-endian byte keys instead; kept for completeness).
    public static let integerKey = DatabaseFlags(rawValue: UInt32(MDB_INTEGERKEY))
    /// Duplicate keys, sorted values.
    public static let duplicateSort = DatabaseFlags(rawValue: UInt32(MDB_DUPSORT))
}

/// Flags for `WriteTransaction.put` (the `mdb_put` flags).
public struct PutFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Fail with `LMDBError.keyExists` instead of overwriting.
    public static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// The key is greater than every key in the database: a fast append. Out-of-order keys fail
    /// with `LMDBError.keyExists` instead of being inserted silently.
    public static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
    /// Fail if the key/value pair already exists (duplicate-sort databases).
    public static let noDuplicateData = PutFlags(rawValue: UInt32(MDB_NODUPDATA))
}

/// Flags for `mdb_env_open` that the wrapper lets callers choose. `MDB_NOTLS` is always set.
public struct EnvironmentFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Don't flush on commit (an OS crash can lose or corrupt recent transactions). Benchmarks only.
    public static let noSync = EnvironmentFlags(rawValue: UInt32(MDB_NOSYNC))
    /// Flush data but not the meta page on commit (an OS crash can roll back the last commit).
    public static let noMetaSync = EnvironmentFlags(rawValue: UInt32(MDB_NOMETASYNC))
    /// Open read-only (the lock file must still be writable).
    public static let readOnly = EnvironmentFlags(rawValue: UInt32(MDB_RDONLY))
}
