import ArgumentParser
import Foundation
import RegistryCore
import RegistryTransfer

#if canImport(Glibc)
    import Glibc
#endif

/// `registryd export`: every device and module as JSON Lines of `ExportImportDevice`, from one
/// consistent snapshot. Read-only: safe while the daemon runs.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export identities as JSON Lines (ExportImportDevice).")

    @OptionGroup var data: DataDirectoryOptions

    @Flag(help: "Leave symmetric keys out (an import then generates new ones).")
    var excludeKeys = false

    func run() async throws {
        let storage = try await data.reader(needsKeys: !excludeKeys)
        let counts = try await ImportExportEngine.export(storage: storage, excludeKeys: excludeKeys) { FileHandle.standardOutput.write($0) }
        FileHandle.standardError.write(Data("exported \(counts.devices) devices and \(counts.modules) modules\n".utf8))
    }
}

/// `registryd import`: applies an `ExportImportDevice` JSON Lines file through the writer in
/// large, key-sorted batches. A writer: it takes the data directory's lock, so it runs only
/// while the daemon is stopped. Bad lines go to the errors file; the import goes on.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Import identities from JSON Lines (ExportImportDevice).")

    @OptionGroup var data: DataDirectoryOptions

    @Argument(help: "The JSON Lines file (an export, or any ExportImportDevice lines).")
    var file: String

    @Option(help: "Where to write the per-line errors (default: importErrors.log in the data directory).")
    var errors: String?

    @Option(help: "Lines per transaction.")
    var batch = 10_000

    func run() async throws {
        let store: any RegistryBackend
        do {
            store = try StoreOpening.writer(DataDirectory(path: data.dataDir), maxBatchCommands: batch, mapSize: 1 << 30)
        } catch {
            throw ValidationError("cannot open \(data.dataDir) for writing: \(error)")
        }
        defer { store.close() }
        // Never the working directory unasked: an import run from a checkout once left its empty
        // errors file there. The data directory exists by now (the store created it).
        let errors = self.errors ?? Self.defaultErrorsPath(dataDirectory: data.dataDir)
        guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("cannot read \(file)") }
        guard FileManager.default.createFile(atPath: errors, contents: nil) else { throw ValidationError("cannot write \(errors)") }
        guard let errorLog = FileHandle(forWritingAtPath: errors) else { throw ValidationError("cannot write \(errors)") }
        let showProgress = isatty(2) == 1
        let counts = try await ImportExportEngine.importFile(
            store: store,
            path: file,
            batch: batch,
            actor: "import",
            requestId: (file as NSString).lastPathComponent,
            errors: { errorLog.write(Data(CanonicalJSON.encode($0) + [10])) },
            progress: { counts in
                if showProgress { FileHandle.standardError.write(Data("\rimported \(counts.imported) identities, \(counts.failed) errors".utf8)) }
            }
        )
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        print("imported \(counts.imported) identities; \(counts.failed) lines failed (see \(errors))")
        if counts.failed > 0 { throw ExitCode(4) }
    }

    static func defaultErrorsPath(dataDirectory: String) -> String { dataDirectory + "/importErrors.log" }
}
