import Logging
import RegistryAPI
import RegistryCore
import RegistryLMDB

/// Where the daemon and its tools choose a storage backend: the one file of the CLI that names
/// one. Today that is LMDB in `--data-dir` (the embedded default); everything else speaks to the
/// store interface (`RegistryReader`, `RegistryBackend`).
enum StoreOpening {
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
