import ArgumentParser
import Foundation
import RegistryCore

/// `registryd replay --verify`: rebuilds the projections from the log into a scratch
/// environment and compares them with the live ones. Read-only; safe beside a running daemon.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Rebuild the projections from the event log and compare them with the live ones.",
        discussion: "Exit codes: 0 clean, 2 the log is corrupt, 3 a projection differs, 1 other errors."
    )

    @OptionGroup var data: DataDirectoryOptions

    @Flag(help: "Compare the rebuilt projections with the live ones (the only mode so far).")
    var verify = false

    @Option(help: "Where to build the scratch environment (default: a new temporary directory, removed afterwards).")
    var scratch: String?

    func validate() throws {
        guard verify else { throw ValidationError("replay needs --verify (other modes come with the audit tools)") }
    }

    func run() throws {
        let storage = try RegistryStorage(directory: DataDirectory(path: data.dataDir), create: false, needsKeys: false)
        let scratchPath = scratch ?? FileManager.default.temporaryDirectory.appendingPathComponent("registryd-replay-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratchPath, withIntermediateDirectories: true)
        defer { if scratch == nil { try? FileManager.default.removeItem(atPath: scratchPath) } }
        let report = try Replayer.verify(source: storage, scratchPath: scratchPath)
        print("events: \(report.events)")
        switch report.outcome {
        case .clean:
            print("devices: \(report.devices)  modules: \(report.modules)  history entries: \(report.historyEntries)")
            print("result: projections equal the replay; hash chain verified")
        case .logCorrupt(let seq, let reason):
            print("result: LOG CORRUPT at seq \(seq): \(reason)")
            throw ExitCode(2)
        case .projectionDiffers(let database, let key, let detail):
            print("result: PROJECTION DIFFERS in \(database) at \(key): \(detail)")
            throw ExitCode(3)
        }
    }
}
