import ArgumentParser
import Foundation
import RegistryCore
import RegistryTransfer

#if canImport(Glibc)
    import Glibc
#endif

/// `registryd replay`: `--verify` rebuilds the projections from the log and compares them with
/// the live ones (the same code as `audit verify`); `--until SEQ|TIME --out PATH` writes the
/// registry as it was then. Read-only on the data directory: safe beside a running daemon.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Verify the projections against the log, or rebuild the registry as it was at a point in time.",
        discussion: "Exit codes of --verify: 0 clean, 2 the log is corrupt, 3 a projection differs, 1 other errors."
    )

    @OptionGroup var data: DataDirectoryOptions

    @Flag(help: "Compare rebuilt projections with the live ones.")
    var verify = false

    @Option(help: "Replay up to this sequence number, or this ISO-8601 time.")
    var until: String?

    @Option(help: "With --until: a new JSON Lines file of ExportImportDevice ('-' for stdout), or, with --format dir, a new data directory.")
    var out: String?

    @Option(help: "jsonl (default) or dir.")
    var format: String = "jsonl"

    @Option(help: "With --until --format jsonl: where to build the point-in-time environment (default: a temporary directory, removed afterwards).")
    var scratch: String?

    func validate() throws {
        guard verify != (until != nil) else { throw ValidationError("use either --verify or --until SEQ|TIME --out PATH") }
        if let until {
            guard ReplayPoint(until) != nil else { throw ValidationError("--until takes a sequence number or an ISO-8601 time") }
            guard out != nil else { throw ValidationError("--until needs --out") }
            guard ["jsonl", "dir"].contains(format) else { throw ValidationError("--format is jsonl or dir") }
        }
    }

    func run() async throws {
        if verify {
            try await AuditVerify.run(data)
            return
        }
        let storage = try await data.reader(needsKeys: false)
        let point = ReplayPoint(until!)!
        let target: DataDirectory
        let temporary = format == "jsonl"
        if temporary {
            target = DataDirectory(
                path: scratch ?? FileManager.default.temporaryDirectory.appendingPathComponent("registryd-until-\(UUID().uuidString)").path
            )
        } else {
            guard !FileManager.default.fileExists(atPath: out!) || ((try? FileManager.default.contentsOfDirectory(atPath: out!))?.isEmpty ?? false)
            else {
                throw ValidationError("\(out!) exists and is not empty")
            }
            target = DataDirectory(path: out!)
        }
        defer { if temporary { try? FileManager.default.removeItem(atPath: target.path) } }
        let (events, corruption) = try await materialize(storage, until: point, into: target)
        if let corruption, case .logCorrupt(let seq, let reason) = corruption {
            FileHandle.standardError.write(Data("LOG CORRUPT at seq \(seq): \(reason)\n".utf8))
            throw ExitCode(2)
        }
        if !temporary {
            FileHandle.standardError.write(Data("wrote a data directory with \(events) events to \(target.path)\n".utf8))
            return
        }
        let rebuilt = try StoreOpening.reader(target, needsKeys: FileManager.default.fileExists(atPath: target.dataKeyPath))
        let handle: FileHandle
        if out == "-" {
            handle = FileHandle.standardOutput
        } else {
            // The lines carry every device's keys: owner-only from the first byte (`PrivateFile`).
            handle = try PrivateFile.create(out!)
        }
        let counts = try await ImportExportEngine.export(storage: rebuilt, excludeKeys: false) { handle.write($0) }
        FileHandle.standardError.write(Data("replayed \(events) events: \(counts.devices + counts.modules) identities\n".utf8))
    }
}

extension ReplayCommand {
    /// The registry at `point` as a new data directory: LMDB writes it itself; from PostgreSQL
    /// the log up to the point is copied verbatim into a new LMDB directory (with the hub's data
    /// key, so an export shows the keys), each record checked as it is appended.
    func materialize(_ storage: any RegistryReader, until point: ReplayPoint, into target: DataDirectory) async throws -> (
        events: UInt64, corruption: Replayer.Outcome?
    ) {
        guard case .postgres(let postgres) = try data.selection else { return try await storage.materialize(until: point, into: target) }
        let directory = DataDirectory(path: data.dataDir)
        let key = try directory.loadDataKey(create: false, keyPath: postgres.dataKeyPath(directory))
        let destination = try await MigrateCommand.openDestination(target.path, key: key)
        defer { destination.close() }
        let head = try await storage.head()
        return (try await StoreMigration.copyLog(from: storage, to: destination, through: head.seq, until: point), nil)
    }
}

/// `registryd audit verify`: walk the whole log, check sequence continuity and the hash chain,
/// decode every event, and compare every live projection with what the log folds to (in memory,
/// byte for byte: see `LogVerifier`).
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Audit tools.", subcommands: [AuditVerifyCommand.self])
}

struct AuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify the log (continuity, hash chain, decoding) and the projections against a replay.",
        discussion: "Exit codes: 0 clean, 2 the log is corrupt, 3 a projection differs, 1 other errors."
    )

    @OptionGroup var data: DataDirectoryOptions

    func run() async throws { try await AuditVerify.run(data) }
}

/// The one implementation behind `audit verify` and `replay --verify`.
enum AuditVerify {
    static func run(_ data: DataDirectoryOptions) async throws {
        let storage = try await data.reader(needsKeys: false)
        let total = (try? await storage.head().seq) ?? 0
        let terminal = isatty(2) == 1
        let report = try await storage.verifyLog { done in
            // Progress on a terminal only; pipes and logs stay quiet.
            if terminal { FileHandle.standardError.write(Data("\rverified \(done)/\(total) events".utf8)) }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
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
