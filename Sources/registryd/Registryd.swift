import ArgumentParser
import Foundation
import RegistryCore
import SystemBytes

/// The one binary: the daemon and its tools as subcommands.
@main
struct Registryd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registryd",
        abstract: "An event-sourced IoT device identity registry (Azure IoT Hub registry compatible) on LMDB or PostgreSQL.",
        version: "0.1.0",
        subcommands: [
            ServeCommand.self, ConnectionStringCommand.self, SASTokenCommand.self, ExportCommand.self, ImportCommand.self, ReplayCommand.self,
            AuditCommand.self, HistoryCommand.self, EventsCommand.self, BackupCommand.self, ConfigCommand.self, PoliciesCommand.self,
            WriteLoadCommand.self, MigrateCommand.self, RabbitMQBridgeCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )

    static func main() async {
        ProcessMemory.keepFreedMemory()
        await main(nil)
    }
}

/// Options every data-directory command shares.
struct DataDirectoryOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory (LMDB environment, data key, lock).")
    var dataDir: String = "./data"

    @Option(help: "A postgres://… storage URL, as `serve --storage` (REGISTRYD_STORAGE_URL); default LMDB in --data-dir.")
    var storage: String?

    /// The selected backend: `--storage`, else `REGISTRYD_STORAGE_URL`, else LMDB in `--data-dir`.
    var selection: StorageSelection {
        get throws { try StorageSelection.resolve(flag: storage, environment: ProcessInfo.processInfo.environment, file: nil) }
    }

    /// A read-only view of the selected store (beside a running daemon).
    func reader(needsKeys: Bool) async throws -> any RegistryReader {
        try await StoreOpening.reader(try selection, directory: DataDirectory(path: dataDir), needsKeys: needsKeys)
    }
}
