import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import RegistryCore
import RegistryDelivery
import RegistryLMDB
import ServiceLifecycle
import Synchronization

/// `registryd-bench delivery`: (1) latency from a create's commit to a local webhook receiver
/// getting its lifecycle message, at a paced create rate; (2) messages per second a file
/// endpoint absorbs when a route catches up on a backlog.
struct DeliveryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delivery", abstract: "Lifecycle delivery latency and file throughput.")

    @Option(help: "Creates per second in the latency run.")
    var rate = 1000

    @Option(help: "Seconds of the latency run.")
    var seconds = 10

    @Option(help: "Backlog size for the file throughput run.")
    var backlog = 100_000

    @Option(help: "Directory for the benchmark's data (removed afterwards).")
    var workDir: String = FileManager.default.temporaryDirectory.path

    func run() async throws {
        let root = workDir + "/registryd-bench-delivery-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await latency(root: root + "/latency")
        try await fileThroughput(root: root + "/file")
    }

    func latency(root: String) async throws {
        let store = try RegistryStore(configuration: .init(dataDirectory: DataDirectory(path: root)))
        let received = TimeRecorder()
        let router = Router()
        router.post("hook") { request, _ -> Response in
            var body = try await request.body.collect(upTo: 1 << 20)
            let json = try JSONParser.parse(body.readBytes(length: body.readableBytes) ?? [])
            if let id = json["applicationProperties"]?["deviceId"]?.stringValue {
                let now = DispatchTime.now().uptimeNanoseconds
                received.record(id, now)
            }
            return Response(status: .noContent)
        }
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        let commits = TimeRecorder()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            var ports = portStream.makeAsyncIterator()
            let port = await ports.next() ?? 0
            var configuration = DeliveryConfiguration(
                endpoints: [
                    .init(
                        name: "hook",
                        kind: .webhook(url: "http://127.0.0.1:\(port)/hook", secret: [UInt8](repeating: 1, count: 32), caFile: nil, timeoutMs: 5000)
                    )
                ],
                routes: [.init(name: "all", source: .deviceLifecycleEvents, condition: .alwaysTrue, endpointName: "hook", isEnabled: true)]
            )
            configuration.retry.initialBackoffMs = 10
            let delivery = DeliveryService(store: store, hubName: "bench", configuration: configuration, logger: logger)
            try await delivery.prepareCursors()
            group.addTask { try await delivery.run() }

            let total = rate * seconds
            let interval = 1_000_000_000 / UInt64(rate)
            let start = DispatchTime.now().uptimeNanoseconds
            try await withThrowingTaskGroup(of: Void.self) { creates in
                for i in 0..<total {
                    let due = start + UInt64(i) * interval
                    let now = DispatchTime.now().uptimeNanoseconds
                    if due > now { try await Task.sleep(for: .nanoseconds(Int64(due - now))) }
                    creates.addTask {
                        let id = "lat-\(i)"
                        _ = try await store.execute(.createDevice(DeviceSpec(deviceId: id)), actor: "bench", requestId: id)
                        let committed = DispatchTime.now().uptimeNanoseconds
                        commits.record(id, committed)
                    }
                }
                try await creates.waitForAll()
            }
            let achieved = Double(total) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            for _ in 0..<3000 where received.count < total { try await Task.sleep(for: .milliseconds(10)) }
            let (sent, got) = (commits.all, received.all)
            var latencies = sent.compactMap { id, t in got[id].map { Double(Int64($0) - Int64(t)) / 1e6 } }.sorted()
            if latencies.isEmpty { latencies = [0] }
            print(
                String(
                    format: "webhook delivery at %.0f creates/s: %d/%d delivered, latency from commit p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                    achieved,
                    got.count,
                    total,
                    latencies[latencies.count / 2],
                    latencies[min(latencies.count - 1, latencies.count * 99 / 100)],
                    latencies.last!
                )
            )
            group.cancelAll()
        }
        store.close()
    }

    func fileThroughput(root: String) async throws {
        let store = try RegistryStore(configuration: .init(dataDirectory: DataDirectory(path: root), mapSize: 1 << 30))
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        var i = 0
        while i < backlog {
            let batch = (i..<min(backlog, i + 1000)).map { Command.createDevice(DeviceSpec(deviceId: "file-\($0)")) }
            _ = try await store.execute(batch, actor: "bench", requestId: "b")
            i += batch.count
        }
        let configuration = DeliveryConfiguration(
            endpoints: [.init(name: "file", kind: .file(path: root + "/out.jsonl", maxFileBytes: 1 << 30, maxFiles: 2))],
            routes: [.init(name: "all", source: .deviceLifecycleEvents, condition: .alwaysTrue, endpointName: "file", isEnabled: true)]
        )
        // The route's cursor starts at 0 so it has the whole backlog to deliver.
        try await store.saveRouteCursor("all", RouteCursor(seq: 0, dead: false))
        let delivery = DeliveryService(store: store, hubName: "bench", configuration: configuration, logger: logger)
        let start = DispatchTime.now().uptimeNanoseconds
        let task = Task { try await delivery.run() }
        while await delivery.statuses().first.map({ $0.cursor < UInt64(backlog) }) ?? true { try await Task.sleep(for: .milliseconds(5)) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        task.cancel()
        _ = await task.result
        print(
            String(
                format: "file endpoint: %d messages in %.2f s = %.0f messages/s (fsync per batch of up to 512)",
                backlog,
                elapsed,
                Double(backlog) / elapsed
            )
        )
        store.close()
    }
}

/// Ids with the time they were seen (shared between tasks).
final class TimeRecorder: Sendable {
    private let times = Mutex<[String: UInt64]>([:])
    func record(_ id: String, _ time: UInt64) { times.withLock { $0[id] = time } }
    var count: Int { times.withLock { $0.count } }
    var all: [String: UInt64] { times.withLock { $0 } }
}
