import Foundation
import Logging
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryPostgres

/// Where the daemon and its tools choose a storage backend: the one file of the CLI that names
/// one. LMDB in `--data-dir` (the embedded default) or PostgreSQL (`StorageSelection`);
/// everything else speaks to the store interface (`RegistryReader`, `RegistryBackend`).
enum StoreOpening {
    /// The daemon's store on the selected backend.
    static func daemon(
        _ selection: StorageSelection,
        directory: DataDirectory,
        limits: RegistryLimits,
        writer: WriterLimits,
        metrics: RegistryMetrics,
        logger: Logger
    ) async throws -> any RegistryBackend {
        guard case .postgres(let postgres) = selection else {
            return try daemon(directory, limits: limits, writer: writer, metrics: metrics, logger: logger)
        }
        var configuration = PostgresStore.Configuration(
            location: try postgres.location(),
            dataKey: try dataKey(at: postgres.dataKeyPath(directory), directory: directory)
        )
        configuration.limits = limits
        configuration.writer = writer
        configuration.commitObserver = { metrics.commit($0) }
        configuration.holdsServingLease = true
        let store = try await PostgresStore.open(configuration, logger: logger)
        logger.notice("storage: PostgreSQL", metadata: ["storage.location": "\(configuration.location)"])
        return store
    }

    /// A reader on the selected backend (PostgreSQL: a full node without listeners, closed by
    /// the process's end).
    static func reader(_ selection: StorageSelection, directory: DataDirectory, needsKeys: Bool) async throws -> any RegistryReader {
        guard case .postgres = selection else { return try reader(directory, needsKeys: needsKeys) }
        return try await backend(selection, directory: directory)
    }

    /// A tool's writable view of a PostgreSQL hub (beside running nodes: a policy change);
    /// LMDB needs the daemon stopped (`writer`).
    static func backend(_ selection: StorageSelection, directory: DataDirectory) async throws -> any RegistryBackend {
        guard case .postgres(let postgres) = selection else { return try writer(directory) }
        var configuration = PostgresStore.Configuration(
            location: try postgres.location(),
            dataKey: try dataKey(at: postgres.dataKeyPath(directory), directory: directory, create: false)
        )
        configuration.createsHub = false
        return try await PostgresStore.open(configuration)
    }

    /// The data key for a PostgreSQL node: read from `path`, or made there on a first start
    /// (owner-only, never over an existing file).
    private static func dataKey(at path: String, directory: DataDirectory, create: Bool = true) throws -> [UInt8] {
        if create, path == directory.dataKeyPath {
            try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        return try directory.loadDataKey(create: create && path == directory.dataKeyPath, keyPath: path)
    }

    /// A read-only view of an existing data directory, safe beside a running daemon.
    /// - Parameter needsKeys: load the data key so identity reads return plaintext keys.
    static func reader(_ directory: DataDirectory, needsKeys: Bool) throws -> any RegistryReader {
        try RegistryStorage(directory: directory, create: false, needsKeys: needsKeys)
    }

    /// The daemon's store: the writer with the configured limits, its commits counted in `metrics`.
    static func daemon(
        _ directory: DataDirectory,
        limits: RegistryLimits,
        writer: WriterLimits,
        metrics: RegistryMetrics,
        logger: Logger
    ) throws -> any RegistryBackend {
        var configuration = RegistryStore.Configuration(dataDirectory: directory, limits: limits)
        configuration.commitObserver = { metrics.commit($0) }
        configuration.writer = writer
        return try RegistryStore(configuration: configuration, logger: logger)
    }

    /// The writer of a data directory (creating it if needed); it holds the directory's lock
    /// until `close()`.
    static func writer(_ directory: DataDirectory, maxBatchCommands: Int = 1024, mapSize: Int = 64 << 20) throws -> any RegistryBackend {
        try RegistryStore(configuration: .init(dataDirectory: directory, maxBatchCommands: maxBatchCommands, mapSize: mapSize))
    }
}
