import CLMDB

/// A handle to a named database inside an `Environment`.
///
/// Handles are opened once, at startup, in one write transaction (`mdb_dbi_open` must not run
/// in concurrent transactions) and never closed (`mdb_dbi_close` is "normally unnecessary").
public struct Database: Sendable, Hashable {
    let dbi: MDB_dbi
    /// The name it was opened with, for diagnostics.
    public let name: String
}

/// Entry counts and sizes of one database (`mdb_stat`).
public struct DatabaseStatistics: Sendable, Equatable {
    public var entries: Int
    public var depth: Int
    public var leafPages: Int
    public var branchPages: Int
    public var overflowPages: Int
    public var pageSize: Int
}
