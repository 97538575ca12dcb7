import ArgumentParser
import Foundation
import RegistryCore
import RegistryLMDB
import RegistryPostgres

/// `registryd migrate --from SRC --to DST`: moves a registry between backends (a data directory
/// and a `postgres://` URL, either way; `StoreMigration` does the copy and the checks).
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move a registry between LMDB (a data directory) and PostgreSQL (a postgres:// URL), either way.",
        discussion: """
            Copies the log verbatim, rebuilds the projections at the destination, carries policies, \
            route cursors, parked messages, jobs and the hub's settings, then verifies the destination \
            (chain and projections) before it says done. Refuses a destination that is not empty and a \
            source that a daemon holds (a data directory's lock, a PostgreSQL hub's serving lease). Stop the daemons on the source first.
            """
    )

    @Option(help: "The source: a data directory or a postgres:// URL.")
    var from: String

    @Option(help: "The destination: a new (absent or empty) data directory or a postgres:// URL (with ?hub= for another hub).")
    var to: String

    @Option(help: "The data key file when neither end is a data directory holding it (default: the data directory's data.key).")
    var dataKey: String?

    func validate() throws {
        guard PostgresLocation.isURL(from) != PostgresLocation.isURL(to) || dataKey != nil else {
            throw ValidationError("between two PostgreSQL URLs, name the data key with --data-key")
        }
    }

    func run() async throws {
        let key = try loadKey()
        var lock: DirectoryLock?
        defer { lock?.release() }
        let source: any RegistryReader
        if PostgresLocation.isURL(from) {
            var configuration = PostgresStore.Configuration(location: try PostgresLocation(url: from), dataKey: key)
            configuration.createsHub = false
            source = try await PostgresStore.open(configuration)
        } else {
            let directory = DataDirectory(path: from)
            guard directory.exists else { throw ValidationError("\(from) is not a registryd data directory") }
            // The daemon holds this lock while it runs: a source being written is refused.
            do {
                lock = try DirectoryLock(path: directory.lockPath)
            } catch {
                throw ValidationError("\(from) is in use by a running registryd (\(error)); stop it first")
            }
            source = try RegistryStorage(directory: directory, create: false, needsKeys: true)
        }
        let terminal = isatty(2) == 1
        let to = self.to
        let copy: @Sendable () async throws -> StoreMigration.Summary = {
            let destination = try await Self.openDestination(to, key: key)
            defer { destination.close() }
            return try await StoreMigration.copy(from: source, to: destination) { copied in
                if terminal { FileHandle.standardError.write(Data("\rcopied \(copied) events".utf8)) }
            }
        }
        // A hub that nodes serve is being written: refused before anything is made at the
        // destination (and no node takes the hub meanwhile).
        let summary: StoreMigration.Summary
        if let served = source as? PostgresStore {
            summary = try await served.whileNoNodeServes(copy)
        } else {
            summary = try await copy()
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        print(
            "migrated \(summary.events) events, \(summary.policies) policies, \(summary.routes) route cursors "
                + "(\(summary.parked) parked messages), \(summary.jobs) jobs; the destination verifies (chain and projections)"
        )
    }

    /// The destination store: a PostgreSQL hub, or a new data directory holding `key` (also
    /// `replay --until`'s, from PostgreSQL).
    static func openDestination(_ to: String, key: [UInt8]) async throws -> any RegistryBackend {
        if PostgresLocation.isURL(to) {
            return try await PostgresStore.open(PostgresStore.Configuration(location: try PostgresLocation(url: to), dataKey: key))
        }
        let directory = DataDirectory(path: to)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: to)) ?? []
        guard entries.isEmpty else { throw ValidationError("\(to) exists and is not empty; migrate only into a new data directory") }
        try directory.create()
        // The destination's log holds keys sealed under this key: it goes with them.
        try PrivateFile.write(Array((Data(key).base64EncodedString() + "\n").utf8), to: directory.dataKeyPath, existing: .refuse)
        return try StoreOpening.writer(directory, mapSize: 1 << 30)
    }

    /// The data key: `--data-key`, else the data directory end's.
    private func loadKey() throws -> [UInt8] {
        if let dataKey {
            let key = try DataDirectory(path: ".").loadDataKey(create: false, keyPath: dataKey)
            // The log's device keys are sealed under the source's key: another key at the
            // destination would copy keys it can never open.
            if !PostgresLocation.isURL(from), try DataDirectory(path: from).loadDataKey(create: false) != key {
                throw ValidationError("--data-key is not \(from)'s data key; the moved registry needs the key its device keys are sealed under")
            }
            return key
        }
        guard !PostgresLocation.isURL(from) else {
            throw ValidationError("from PostgreSQL, name the hub's data key file with --data-key (it becomes the new directory's)")
        }
        return try DataDirectory(path: from).loadDataKey(create: false)
    }
}
