import ArgumentParser
import Foundation
import RegistryAPI
import RegistryCore

#if canImport(Glibc)
import Glibc
#endif

/// `registryd export`: every device and module as JSON Lines of `ExportImportDevice`, from one
/// consistent snapshot. Read-only: safe while the daemon runs.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export identities as JSON Lines (ExportImportDevice).")

    @OptionGroup var data: DataDirectoryOptions

    @Flag(help: "Leave symmetric keys out (an import then generates new ones).")
    var excludeKeys = false

    func run() throws {
        let storage = try RegistryStorage(directory: DataDirectory(path: data.dataDir), create: false, needsKeys: !excludeKeys)
        let out = FileHandle.standardOutput
        var buffer: [UInt8] = []
        var counts = (devices: 0, modules: 0)
        try storage.forEachIdentity(openKeys: !excludeKeys) { document, isModule in
            let json = try JSONParser.parse(document.json)
            buffer += CanonicalJSON.encode(ExportImportDevice.line(from: json, excludeKeys: excludeKeys))
            buffer.append(10)
            if isModule { counts.modules += 1 } else { counts.devices += 1 }
            if buffer.count > 1 << 20 {
                out.write(Data(buffer))
                buffer.removeAll(keepingCapacity: true)
            }
        }
        out.write(Data(buffer))
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

    @Option(help: "Where to write the per-line errors.")
    var errors: String = "importErrors.log"

    @Option(help: "Lines per transaction.")
    var batch = 10_000

    func run() async throws {
        let store: RegistryStore
        do {
            store = try RegistryStore(configuration: .init(dataDirectory: DataDirectory(path: data.dataDir), maxBatchCommands: batch, mapSize: 1 << 30))
        } catch {
            throw ValidationError("cannot open \(data.dataDir) for writing: \(error)")
        }
        defer { store.close() }
        guard let reader = LineReader(path: file) else { throw ValidationError("cannot read \(file)") }
        guard FileManager.default.createFile(atPath: errors, contents: nil) else { throw ValidationError("cannot write \(errors)") }
        guard let errorLog = FileHandle(forWritingAtPath: errors) else { throw ValidationError("cannot write \(errors)") }
        let progress = isatty(2) == 1
        var lineNumber = 0
        var pending: [(line: Int, key: [UInt8], command: Command, operation: String)] = []
        var imported = 0
        var failed = 0

        func logError(_ line: Int, _ deviceId: String, _ moduleId: String?, _ code: String, _ message: String, _ operation: String) {
            let json = JSONValue.object([
                "line": .int(Int64(line)), "deviceId": .string(deviceId), "moduleId": JSONValue(moduleId),
                "errorCode": .string(code), "errorStatus": .string(message), "operation": .string(operation),
            ])
            errorLog.write(Data(CanonicalJSON.encode(json) + [10]))
            failed += 1
        }

        func flush() async throws {
            // Key order: a device before its modules, and sequential inserts into LMDB's B-trees.
            pending.sort { $0.key.lexicographicallyPrecedes($1.key) }
            let results = try await store.execute(pending.map(\.command), actor: "import", requestId: (file as NSString).lastPathComponent)
            for (result, entry) in zip(results, pending) {
                switch result {
                case .success: imported += 1
                case .failure(let error): logError(entry.line, entry.command.deviceId, entry.command.moduleId, error.code.name, error.message, entry.operation)
                }
            }
            pending.removeAll(keepingCapacity: true)
            if progress { FileHandle.standardError.write(Data("\rimported \(imported) identities, \(failed) errors".utf8)) }
        }

        while let line = reader.next() {
            lineNumber += 1
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            do {
                let json = try JSONParser.parse(line)
                let (command, operation) = try ExportImportDevice.command(from: json)
                pending.append((lineNumber, StorageKey.module(command.deviceId, command.moduleId ?? ""), command, operation))
            } catch let error as ExportImportDevice.EntryError {
                logError(lineNumber, error.deviceId, error.moduleId, error.code, error.message, error.operation)
            } catch {
                logError(lineNumber, "", nil, "DeserializationError", "\(error)", "unknown")
            }
            if pending.count >= batch { try await flush() }
        }
        if !pending.isEmpty { try await flush() }
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        print("imported \(imported) identities; \(failed) lines failed (see \(errors))")
        if failed > 0 { throw ExitCode(4) }
    }
}

/// Reads a file line by line without loading it whole.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var done = false

    init?(path: String) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        self.handle = handle
    }

    func next() -> [UInt8]? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 10) {
                defer { start = newline + 1 }
                return Array(buffer[start..<newline])
            }
            if done {
                guard start < buffer.count else { return nil }
                defer { start = buffer.count }
                return Array(buffer[start...])
            }
            let chunk = handle.readData(ofLength: 1 << 20)
            buffer.removeFirst(start)
            start = 0
            if chunk.isEmpty { done = true } else { buffer += chunk }
        }
    }
}
