import ArgumentParser
import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTransfer
import Synchronization

/// `registryd-bench import-export [--devices N]`: the import and export engines against raw LMDB
/// in the same run. Import vs loading the very records the import produced (log, device
/// documents, history) into a fresh environment in key order, one transaction per batch; export
/// vs a raw scan that parses and re-encodes every document; plus the time to open the loaded
/// store (start to ready).
struct ImportExportBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import-export", abstract: "Import and export vs raw LMDB on the same records.")

    @Option(help: "Devices to generate (10% disabled, own keys, as `registryd export` writes them).")
    var devices = 1_000_000

    @Option(help: "Import this export-shaped file instead of generating one.")
    var input: String?

    @Option(help: "Directory for the benchmark's files (removed afterwards).")
    var workDir: String = FileManager.default.temporaryDirectory.path

    @Option(help: "Lines per import transaction.")
    var batch = 10_000

    @Option(help: "Import and raw load rounds, alternating (the median ratio is reported).")
    var rounds = 3

    func seconds(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    /// CPU seconds (user + system) this process has used so far: with the wall time it shows
    /// how many of the cores a load kept busy.
    func cpuSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
            getrusage(RUSAGE_SELF.rawValue, &usage)  // an enum in Glibc's headers, an Int32 in Darwin's
        #else
            getrusage(RUSAGE_SELF, &usage)
        #endif
        func value(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return value(usage.ru_utime) + value(usage.ru_stime)
    }

    /// CPU seconds (user + system) the store's writer thread has used, read from Linux's
    /// `/proc/self/task` (nil elsewhere, or if no thread has the name). Each store has its own
    /// writer thread, so read before the store closes this is that import's serial path: with
    /// the process's CPU over the cores, the two lower bounds of the import's wall time.
    func writerThreadCPUSeconds() -> Double? {
        #if os(Linux)
            guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
            for task in tasks {
                let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
                guard comm.trimmingCharacters(in: .whitespacesAndNewlines) == RegistryStore.writerThreadName,
                    let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { continue }
                // After the name in parentheses: state is field 3, utime and stime fields 14 and 15.
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
                return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        #endif
        return nil
    }

    /// Imports in its own scope, so the store (and its directory lock) is gone when it returns.
    func importInto(_ directory: DataDirectory, file: String) async throws -> (counts: ImportExportEngine.ImportCounts, writerCPU: Double?) {
        let store = try RegistryStore(configuration: .init(dataDirectory: directory, maxBatchCommands: batch, mapSize: 1 << 30))
        defer { store.close() }
        let counts = try await ImportExportEngine.importFile(
            store: store,
            path: file,
            batch: batch,
            actor: "bench",
            requestId: "bench",
            errors: { _ in }
        )
        return (counts, writerThreadCPUSeconds())
    }

    /// Start to ready of the storage, in its own scope for the same reason.
    func open(_ directory: DataDirectory) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let store = try RegistryStore(configuration: .init(dataDirectory: directory))
        defer { store.close() }
        _ = try store.storage.statistics()
        return seconds(start)
    }

    func run() async throws {
        let root = workDir + "/registryd-bench-ie-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }

        // The input: an export-shaped file in key order.
        let file = input ?? root + "/devices.txt"
        if input == nil { try generate(file) }

        // Import through the writer.
        try await measure(root: root, file: file)
    }

    /// Both loads start from the same state: earlier writes flushed (their write-back must not
    /// land on the durable commits being timed), and 2.5 GB of page cache just written and
    /// freed. On this VM, pages the kernel has not used lately cost several times more to fill
    /// (the kernel's copy into the page cache dominated the profile); the raw load took 7.3-7.7 s
    /// from that state and 2.7 s from this one, the import 16.5 s and 15.1 s. Equal states make
    /// the ratio the cost of the import's own work, not of the VM's memory history.
    func settle(_ root: String) {
        sync()
        let path = root + "/settle"
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else { return }
        let chunk = Data(count: 64 << 20)
        for _ in 0..<40 { handle.write(chunk) }
        try? handle.close()
        try? FileManager.default.removeItem(atPath: path)
        sync()
    }

    /// `devices` devices, 10% disabled, each with its own keys, in key order, in the very shape
    /// `registryd export` writes (members sorted, nulls and empty scopes kept, etags, no import
    /// mode: createOrUpdate), so the import measured is that of an exported file.
    func generate(_ file: String) throws {
        guard FileManager.default.createFile(atPath: file, contents: nil) else { throw ValidationError("cannot write \(file)") }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        var buffer = ""
        var keyBytes = [UInt8](repeating: 7, count: 32)
        for i in 0..<devices {
            for slot in 0..<8 { keyBytes[slot] = UInt8(truncatingIfNeeded: i >> (8 * slot)) }
            keyBytes[8] = 1
            let primary = Data(keyBytes).base64EncodedString()
            keyBytes[8] = 2
            let secondary = Data(keyBytes).base64EncodedString()
            let id = "dev-" + String(format: "%07d", i)
            let etag = Data(String(i + 1).utf8).base64EncodedString()
            buffer +=
                #"{"authentication":{"symmetricKey":{"primaryKey":"\#(primary)","secondaryKey":"\#(secondary)"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"deviceScope":null,"eTag":"\#(etag)","id":"\#(id)","parentScopes":[],"status":"\#(i % 10 == 0 ? "disabled" : "enabled")","statusReason":null,"twinETag":"AAAAAAAAAAE="}"#
            buffer += "\n"
            if buffer.utf8.count > 1 << 20 {
                out.write(Data(buffer.utf8))
                buffer = ""
            }
        }
        out.write(Data(buffer.utf8))
        try out.close()
    }

    /// Raw LMDB loading `records` into a fresh environment at `path` (see `LMDBBaseline.load`).
    func rawLoad(_ records: LMDBBaseline.Records, at path: String) throws -> Double {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return try LMDBBaseline.load(records, at: path, batch: batch)
    }

    func measure(root: String, file: String) async throws {
        // Import and raw load alternate in rounds, each from the same settled state, and the
        // ratio reported is the median of the rounds' ratios: on these VMs a single raw load of
        // the same records took from 2.4 s to 7 s depending on the neighbours.
        var ratios: [Double] = []
        var records: LMDBBaseline.Records?
        var imported = DataDirectory(path: root + "/imported-1")
        for round in 1...max(1, rounds) {
            if round > 1 {
                try FileManager.default.removeItem(atPath: imported.path)
                imported = DataDirectory(path: root + "/imported-\(round)")
            }
            settle(root)
            let start = DispatchTime.now().uptimeNanoseconds
            let cpuBefore = cpuSeconds()
            let (counts, writerCPU) = try await importInto(imported, file: file)
            let importSeconds = seconds(start)
            let importCPU = cpuSeconds() - cpuBefore
            // The raw baseline loads the very records the import produced (log, documents and
            // history entries); every round's are alike, so the first round's serve them all.
            let loaded = try records ?? LMDBBaseline.records(of: imported)
            records = loaded
            settle(root)
            let rawPath = root + "/raw-\(round)"
            let rawCPUBefore = cpuSeconds()
            let rawLoadSeconds = try rawLoad(loaded, at: rawPath)
            let rawCPU = cpuSeconds() - rawCPUBefore
            try FileManager.default.removeItem(atPath: rawPath)
            ratios.append(rawLoadSeconds / importSeconds)
            print(
                String(
                    format:
                        "round %d: import %d identities (%d failed) in %.2f s = %.0f/s (CPU %.2f s, %.1f cores busy); raw LMDB loading the same %d records (log, document, history; batch %d) %.2f s (CPU %.2f s) -> import = %.0f%% of raw",
                    round,
                    counts.imported,
                    counts.failed,
                    importSeconds,
                    Double(counts.imported) / importSeconds,
                    importCPU,
                    importCPU / importSeconds,
                    loaded.count,
                    batch,
                    rawLoadSeconds,
                    rawCPU,
                    100 * rawLoadSeconds / importSeconds
                )
            )
            if let writerCPU {
                // The import cannot take less than either: its writer's serial work, or all its
                // CPU spread over every core (the kernel's write-back threads not even counted).
                let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
                print(
                    String(
                        format: "  lower bounds of the import's wall time: writer thread on CPU %.2f s; process CPU / %.0f cores %.2f s",
                        writerCPU,
                        cores,
                        importCPU / cores
                    )
                )
            }
        }
        let sorted = ratios.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        print(
            String(
                format: "import = %.0f%% of raw LMDB (median of %d rounds; rounds %@)",
                100 * median,
                ratios.count,
                ratios.map { String(format: "%.0f%%", 100 * $0) }.joined(separator: " ")
            )
        )
        let source = try RegistryStorage(directory: imported, create: false, needsKeys: false)
        var start = DispatchTime.now().uptimeNanoseconds

        // Export vs raw scan + parse + encode of every document (the last round's import).
        var exportedBytes = 0
        let exportedCounter = ByteCounter()
        let exported = try await ImportExportEngine.export(storage: source, excludeKeys: true) { exportedCounter.add($0.count) }
        exportedBytes = exportedCounter.total
        let exportSeconds = seconds(start)
        start = DispatchTime.now().uptimeNanoseconds
        var encodedBytes = 0
        try LMDBBaseline.scan(source, "devices") { _, value in encodedBytes += CanonicalJSON.encode(try JSONParser.parse(value)).count }
        let rawEncodeSeconds = seconds(start)

        // Start to ready: opening the loaded store (lock, environment, head, writer thread).
        let openSeconds = try open(imported)

        print(
            String(
                format: "export:   %d devices, %d modules, %.0f MB in %.2f s",
                exported.devices,
                exported.modules,
                Double(exportedBytes) / 1e6,
                exportSeconds
            )
        )
        print(
            String(
                format: "raw scan + parse + encode of every document (%.0f MB): %.2f s -> export = %.0f%% of raw",
                Double(encodedBytes) / 1e6,
                rawEncodeSeconds,
                100 * rawEncodeSeconds / exportSeconds
            )
        )
        print(String(format: "open the loaded store (start to ready of the storage): %.3f s", openSeconds))
    }
}

/// Bytes an export wrote (its visitor runs on the backend's thread).
final class ByteCounter: Sendable {
    private let count = Mutex<Int>(0)
    func add(_ n: Int) { count.withLock { $0 += n } }
    var total: Int { count.withLock { $0 } }
}
