import ArgumentParser
import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTransfer

/// `registryd-bench bulk-query [--devices N]`: a bulk-by-query job's engine (the count pass, then
/// one change to every selected device, page by page through the writer) against an import of
/// the same number of updates, in the same store and the same run, at the same batch size.
/// Rounds alternate disable and enable so each changes every device; the ratio is
/// identities changed per second by the job over identities updated per second by the import.
struct BulkQueryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulk-query",
        abstract: "Bulk by query vs an import of the same updates, identities changed per second."
    )

    @Option(help: "Devices in the registry (every one tagged and selected).")
    var devices = 100_000

    @Option(help: "Identities per writer batch, for both (a job uses jobs.importBatch).")
    var batch = 10_000

    @Option(help: "Rounds of each, alternating (the median ratio is reported).")
    var rounds = 3

    @Option(help: "Directory for the benchmark's files (removed afterwards).")
    var workDir: String = FileManager.default.temporaryDirectory.path

    func seconds(_ body: () async throws -> Void) async rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try await body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func id(_ i: Int) -> String { "dev-" + String(format: "%07d", i) }

    func run() async throws {
        let root = workDir + "/registryd-bench-bq-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try RegistryStore(
            configuration: .init(dataDirectory: DataDirectory(path: root + "/data"), maxBatchCommands: batch, mapSize: 4 << 30)
        )
        defer { store.close() }
        // The registry: every device tagged, so the query's WHERE has work to do.
        var created = 0
        while created < devices {
            let upper = min(devices, created + batch)
            let commands = (created..<upper).map { Command.createDevice(DeviceSpec(deviceId: id($0), tags: ["fleet": .string("north")])) }
            for result in try await store.execute(commands, actor: "bench", requestId: "seed") { _ = try result.get() }
            created = upper
        }
        let query = try BulkQueryEngine.selection(try QueryParser.parse("SELECT * FROM devices WHERE tags.fleet = 'north'"))
        var ratios: [Double] = []
        var status = DeviceStatus.disabled
        for round in 1...rounds {
            // The job: count, then change every device.
            var counts = BulkQueryEngine.Counts()
            var counting = 0.0
            let job = try await seconds {
                counting = try await seconds {
                    counts.matched = try await BulkQueryEngine.count(
                        store: store,
                        query: query,
                        pageSize: 1000,
                        bounds: QueryBounds(),
                        isCancelled: { false }
                    )
                }
                counts = try await BulkQueryEngine.apply(
                    store: store,
                    query: query,
                    action: .setStatus(status, reason: "bench round \(round)"),
                    counts: counts,
                    batch: batch,
                    bounds: QueryBounds(),
                    actor: "job:bench",
                    requestId: "bench",
                    refused: { _ in },
                    isCancelled: { false },
                    progress: { _ in }
                )
            }
            guard counts.changed == devices else { throw ValidationError("the job changed \(counts.changed) of \(devices)") }
            status = status == .disabled ? .enabled : .disabled
            // The import: the same number of updates (status and reason), keys kept.
            let file = root + "/updates.txt"
            var text = ""
            for i in 0..<devices {
                text += #"{"id":"\#(id(i))","importMode":"update","status":"\#(status.rawValue)","statusReason":"bench round \#(round)"}"# + "\n"
            }
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            var imported = 0
            let load = try await seconds {
                imported = try await ImportExportEngine.importFile(
                    store: store,
                    path: file,
                    batch: batch,
                    actor: "bench",
                    requestId: "bench",
                    errors: { _ in }
                ).imported
            }
            guard imported == devices else { throw ValidationError("the import updated \(imported) of \(devices)") }
            status = status == .disabled ? .enabled : .disabled
            let ratio = load / job
            ratios.append(ratio)
            print(
                String(
                    format:
                        "round %d: bulk by query %.0f identities/s (%.2f s, of which the count pass %.2f s), import %.0f updates/s (%.2f s), ratio %.2f",
                    round,
                    Double(devices) / job,
                    job,
                    counting,
                    Double(devices) / load,
                    load,
                    ratio
                )
            )
        }
        print(String(format: "median ratio (bulk by query / import, identities per second): %.2f", ratios.sorted()[ratios.count / 2]))
    }
}
