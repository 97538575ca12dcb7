import CLMDB

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An LMDB environment: one memory-mapped file holding named databases.
///
/// Open each environment once per process ("do not have open an LMDB database twice in the
/// same process"). Transactions exist only inside the closures of `read` and `write`; they are
/// `~Copyable`, so they cannot be stored or returned, and the closures are synchronous, so a
/// transaction can never live across an `await`.
///
/// The map grows by itself: when a write transaction fills it, the transaction is aborted, the
/// map is enlarged while no transaction of this process is open, and the body runs again. A
/// write body must therefore be safe to run more than once (everything it did in the aborted
/// attempt is rolled back by LMDB; it must not have side effects outside the transaction).
public final class Environment: @unchecked Sendable {
    // Why unchecked: MDB_env is thread-safe for beginning transactions when opened with
    // MDB_NOTLS, transactions are confined to the closures below, and map resizes are excluded
    // from open transactions by `resizeLock`.

    /// How an environment is opened.
    public struct Configuration: Sendable {
        /// Directory that holds `data.mdb` and `lock.mdb` (it must exist).
        public var path: String
        /// Initial map size in bytes. Small is fine: the map grows on demand.
        public var mapSize: Int
        /// Upper bound for automatic growth; `nil` means no bound but the address space.
        public var maximumMapSize: Int?
        /// Whether a full map grows automatically (on by default; tests turn it off to reach
        /// the failure paths).
        public var growsAutomatically: Bool
        public var maxDatabases: UInt32
        public var maxReaders: UInt32
        /// Mode of the files LMDB creates. Owner-only by default: the data is sensitive.
        public var fileMode: mode_t
        public var flags: EnvironmentFlags

        public init(
            path: String,
            mapSize: Int = 64 << 20,
            maximumMapSize: Int? = nil,
            growsAutomatically: Bool = true,
            maxDatabases: UInt32 = 16,
            maxReaders: UInt32 = 1024,
            fileMode: mode_t = 0o600,
            flags: EnvironmentFlags = []
        ) {
            self.path = path
            self.mapSize = mapSize
            self.maximumMapSize = maximumMapSize
            self.growsAutomatically = growsAutomatically
            self.maxDatabases = maxDatabases
            self.maxReaders = maxReaders
            self.fileMode = fileMode
            self.flags = flags
        }
    }

    let handle: OpaquePointer
    public let configuration: Configuration
    private let resizeLock = ResizeLock()

    /// Opens (creating if needed) the environment in `configuration.path`, always with
    /// `MDB_NOTLS` (Swift tasks multiplex many logical threads over few OS threads), and clears
    /// reader slots left by crashed processes.
    public init(configuration: Configuration) throws(LMDBError) {
        var env: OpaquePointer?
        try check(mdb_env_create(&env))
        guard let env else { throw LMDBError(code: ENOMEM) }
        // Until `handle` is assigned, this init owns `env` and must close it on every failure
        // (after assignment `deinit` would close it: closing in both places is a double free).
        do throws(LMDBError) {
            try check(mdb_env_set_maxdbs(env, MDB_dbi(configuration.maxDatabases)))
            try check(mdb_env_set_maxreaders(env, configuration.maxReaders))
            try check(mdb_env_set_mapsize(env, configuration.mapSize))
            let flags = UInt32(MDB_NOTLS) | configuration.flags.rawValue
            try check(mdb_env_open(env, configuration.path, flags, configuration.fileMode))
            var dead: Int32 = 0
            try check(mdb_reader_check(env, &dead))
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.handle = env
        self.configuration = configuration
    }

    deinit {
        mdb_env_close(handle)
    }

    /// The current map size in bytes.
    public var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    /// Bytes of the map in use: (last used page + 1) x page size.
    public var usedBytes: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        var stat = MDB_stat()
        mdb_env_stat(handle, &stat)
        return (info.me_last_pgno + 1) * Int(stat.ms_psize)
    }

    /// The last committed transaction id (grows by one per write commit).
    public var lastTransactionID: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_last_txnid
    }

    /// Opens (creating when `flags` contains `.create`) a named database. Call once per name at
    /// startup and keep the handle.
    public func openDatabase(_ name: String, flags: DatabaseFlags = [.create]) throws -> Database {
        try write { txn in try txn.openDatabase(name, flags: flags) }
    }

    /// Runs `body` in a read transaction. Values read are copied out before it ends.
    public func read<R>(_ body: (borrowing ReadTransaction) throws -> R) throws -> R {
        while true {
            let outcome: ReadOutcome<R> = try resizeLock.withShared {
                var txn: OpaquePointer?
                let rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn)
                if rc == MDB_MAP_RESIZED { return .mapResized }
                try check(rc)
                guard let txn else { throw LMDBError(code: EINVAL) }
                defer { mdb_txn_abort(txn) }
                return .done(try body(ReadTransaction(handle: txn)))
            }
            switch outcome {
            case .done(let value): return value
            case .mapResized: try adoptResizeByOtherProcess()
            }
        }
    }

    /// Runs `body` in a write transaction and commits it if `body` returns; aborts it if `body`
    /// throws. A full map is grown and `body` re-run (see the type's documentation).
    ///
    /// Only one thread should write (LMDB serialises writers with a mutex owned by the OS
    /// thread that began the transaction); never nest `write` or `read` inside `body`.
    @discardableResult
    public func write<R>(_ body: (borrowing WriteTransaction) throws -> R) throws -> R {
        while true {
            switch try writeOnce(body) {
            case .done(let value):
                return value
            case .mapResized:
                try adoptResizeByOtherProcess()
            case .mapFull(let error):
                guard configuration.growsAutomatically else { throw error }
                try grow()
            }
        }
    }

    private enum ReadOutcome<R> {
        case done(R)
        case mapResized
    }

    private enum WriteOutcome<R> {
        case done(R)
        case mapResized
        case mapFull(LMDBError)
    }

    private func writeOnce<R>(_ body: (borrowing WriteTransaction) throws -> R) throws -> WriteOutcome<R> {
        try resizeLock.withShared { () throws -> WriteOutcome<R> in
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(handle, nil, 0, &txn)
            if rc == MDB_MAP_RESIZED { return .mapResized }
            try check(rc)
            guard let txn else { throw LMDBError(code: EINVAL) }
            let state = WriteTransaction.State()
            let result: R
            do {
                result = try body(WriteTransaction(handle: txn, state: state))
            } catch {
                mdb_txn_abort(txn)
                if state.mapFull { return .mapFull(.mapFull) }
                throw error
            }
            // mdb_txn_commit frees the transaction whether or not it succeeds: from here on it
            // must never be touched again, in particular never aborted. If the body swallowed a
            // MAP_FULL, the transaction is poisoned: LMDB refuses the commit (MDB_BAD_TXN) and
            // frees it, and we retry with a bigger map.
            let commit = mdb_txn_commit(txn)
            if commit == MDB_MAP_FULL || (commit != 0 && state.mapFull) { return .mapFull(.mapFull) }
            try check(commit)
            return .done(result)
        }
    }

    /// Doubles the map (bounded by `maximumMapSize`) while no transaction of this process is open.
    public func grow() throws(LMDBError) {
        let current = mapSize
        var target = current * 2
        if let maximum = configuration.maximumMapSize {
            guard current < maximum else { throw .mapFull }
            target = min(target, maximum)
        }
        try resizeLock.withExclusive { () throws(LMDBError) in
            // Another thread may have grown it while we waited.
            if mapSize >= target { return }
            try check(mdb_env_set_mapsize(handle, target))
        }
    }

    /// Another process enlarged the map: adopt its size (`mdb_env_set_mapsize(env, 0)`).
    private func adoptResizeByOtherProcess() throws(LMDBError) {
        try resizeLock.withExclusive { () throws(LMDBError) in
            try check(mdb_env_set_mapsize(handle, 0))
        }
    }

    /// Flushes the buffers to disk (useful after `noSync` bulk loads).
    public func sync() throws(LMDBError) {
        try check(mdb_env_sync(handle, 1))
    }

    /// Copies the environment to `directory` (which must exist and be empty) as a consistent
    /// snapshot, compacting it when asked. Safe while writers run.
    public func copy(to directory: String, compact: Bool = true) throws(LMDBError) {
        try check(mdb_env_copy2(handle, directory, compact ? UInt32(MDB_CP_COMPACT) : 0))
    }
}
