import ArgumentParser
import Foundation
import RegistryCore
import RegistryLMDB
import SystemBytes

#if canImport(Glibc)
    import Glibc
#endif

/// `registryd-bench store`: durable creates through the writer at concurrency 1, 16 and 256,
/// and, in the same run, raw LMDB doing the same puts (log append, device put, history put) at
/// the batch sizes the writer reached, plus an fsync probe that shows the disk's regime.
/// Ratios measured in one run are what the targets judge; absolute rates are reported beside them.
/// The benchmarks' own binary (built with the package, never part of the daemon): run by hand,
/// not in CI (`tools/bench-*.sh` build it in release mode).
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registryd-bench",
        abstract: "Benchmarks (run by hand, not in CI).",
        subcommands: [
            StoreBench.self, DeliveryBench.self, AuditBench.self, QueryBench.self, ImportExportBench.self, PostgresRawBench.self,
            PostgresStoreBench.self, BulkQueryBench.self,
        ]
    )

    static func main() async {
        ProcessMemory.keepFreedMemory()  // as the daemon does (see `ProcessMemory`)
        await main(nil)
    }
}

/// Options every data-directory benchmark shares (as the daemon's tools name them).
struct DataDirectoryOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory (LMDB environment, data key, lock).")
    var dataDir: String = "./data"
}

struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Durable creates through the writer vs raw LMDB.")

    @Option(help: "Directory for the benchmark's environments (removed afterwards).")
    var workDir: String = FileManager.default.temporaryDirectory.path

    @Option(help: "Creates per measurement at concurrency 1.")
    var serialCreates = 2_000

    @Option(help: "Creates per measurement at concurrency 16 and 256.")
    var creates = 50_000

    @Option(help: "Concurrency levels.")
    var concurrency: [Int] = [1, 16, 256]

    @Flag(help: "Measure only raw LMDB at --batch (used by tools/bench-http.sh).")
    var rawOnly = false

    @Option(help: "Batch size for --raw-only.")
    var batch = 100

    func run() async throws {
        let root = workDir + "/registryd-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }

        if rawOnly {
            let raw = try rawRun(root: root + "/raw", batchSize: batch, count: creates)
            print(String(format: "raw LMDB same puts, batch %d: %.0f", batch, raw))
            return
        }
        guard let probe = DiskProbe.fsync(path: root + "/probe") else { throw ValidationError("cannot create \(root)/probe") }
        print(String(format: "fsync probe: 4 KiB write + fdatasync: %.0f/s, p50 %.3f ms (fast regime ~0.1 ms, slow ~4 ms)", probe.rate, probe.p50Ms))

        var writerRates: [Int: Double] = [:]
        for c in concurrency {
            let n = c == 1 ? serialCreates : creates
            let result = try await writerRun(root: root + "/writer-\(c)", concurrency: c, count: n)
            let raw = try rawRun(root: root + "/raw-\(c)", batchSize: max(1, Int(result.eventsPerCommit.rounded())), count: n)
            writerRates[c] = result.rate
            print(
                String(
                    format:
                        "c=%-4d writer %9.0f creates/s  (%.1f events/commit, p50 %.2f ms, p99 %.2f ms)  raw LMDB same puts, batch %d: %9.0f/s  writer/raw = %.2f",
                    c,
                    result.rate,
                    result.eventsPerCommit,
                    result.p50Ms,
                    result.p99Ms,
                    max(1, Int(result.eventsPerCommit.rounded())),
                    raw,
                    result.rate / raw
                )
            )
        }
        if let top = concurrency.max(), let base = writerRates[1], let high = writerRates[top], top != 1 {
            print(String(format: "group commit: writer c=%d / writer c=1 = %.1fx", top, high / base))
        }
    }

    struct WriterResult {
        var rate: Double
        var eventsPerCommit: Double
        var p50Ms: Double
        var p99Ms: Double
    }

    func writerRun(root: String, concurrency: Int, count: Int) async throws -> WriterResult {
        let store = try RegistryStore(configuration: .init(dataDirectory: DataDirectory(path: root), maxBatchCommands: 1024, mapSize: 1 << 30))
        let startTxn = store.lastTransactionID
        let start = DispatchTime.now().uptimeNanoseconds
        let latencies = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var local: [UInt64] = []
                    var i = worker
                    while i < count {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        _ = try await store.execute(.createDevice(DeviceSpec(deviceId: benchId(i))), actor: "bench", requestId: "r")
                        local.append(DispatchTime.now().uptimeNanoseconds - t0)
                        i += concurrency
                    }
                    return local
                }
            }
            var all: [UInt64] = []
            for try await part in group { all += part }
            return all.sorted()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let commits = store.lastTransactionID - startTxn
        store.close()
        return WriterResult(
            rate: Double(count) / seconds,
            eventsPerCommit: Double(count) / Double(max(1, commits)),
            p50Ms: Double(latencies[latencies.count / 2]) / 1e6,
            p99Ms: Double(latencies[latencies.count * 99 / 100]) / 1e6
        )
    }

    /// Raw LMDB: per event one log append, one device put and one history put, `batchSize` per
    /// durable commit, with records the size of the writer's.
    func rawRun(root: String, batchSize: Int, count: Int) throws -> Double {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return try LMDBBaseline.writeRate(root: root, batchSize: batchSize, count: count, id: benchId)
    }

}

/// Scattered 20-character ids, the same in the writer and raw runs (random-key index cost).
func benchId(_ i: Int) -> String {
    var x = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15
    x ^= x >> 29
    let hex = String(x, radix: 16)
    return "dev-" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
}
