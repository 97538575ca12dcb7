import ArgumentParser
import Foundation
import PostgresNIO
import RegistryCore
import RegistryPostgres
import Synchronization

/// `registryd-bench postgres-raw`: the baseline of `tools/bench-postgres.sh`: one client
/// inserting what a create writes on PostgreSQL (its event record and its device row, the same
/// bytes a real create makes) in transactions of `--batch` rows, each one prepared multi-row
/// insert per table (UNNEST of arrays, as the writer sends them), into tables shaped as
/// registryd's. No head lock, no decision, no projection logic: what the database alone costs.
struct PostgresRawBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postgres-raw",
        abstract: "Raw PostgreSQL inserting a create's rows (event + device) at a batch size, one client."
    )

    @Option(help: "A postgres:// URL (the benchmark creates and drops its own tables there).")
    var url: String

    @Option(help: "Rows per transaction (the batch size the server reached).")
    var batch = 100

    @Option(help: "Rows in all.")
    var rows = 50_000

    func run() async throws {
        let rate = try await Self.rate(url: url, batch: batch, rows: rows)
        print("raw PostgreSQL: \(Int(rate)) rows/s at batch \(batch) (\(rows) rows)")
    }

    /// Rows per second, each transaction `batch` rows of both tables.
    static func rate(url: String, batch: Int, rows: Int) async throws -> Double {
        let samples = try Self.samples(rows)
        let location = try PostgresLocation(url: url)
        let client = PostgresClient(configuration: try location.clientConfiguration())
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        let suffix = "\(getpid())"
        let (events, devices) = ("bench_events_\(suffix)", "bench_devices_\(suffix)")
        try await client.query(
            PostgresQuery(
                unsafeSQL:
                    "CREATE TABLE \(events) (hub text NOT NULL, seq bigint NOT NULL, device_id text NOT NULL, record bytea NOT NULL, PRIMARY KEY (hub, seq))"
            )
        )
        try await client.query(PostgresQuery(unsafeSQL: "CREATE INDEX ON \(events) (hub, device_id, seq)"))
        try await client.query(
            PostgresQuery(
                unsafeSQL:
                    "CREATE TABLE \(devices) (hub text NOT NULL, key bytea NOT NULL, doc bytea NOT NULL, disabled boolean NOT NULL, connected boolean NOT NULL, PRIMARY KEY (hub, key))"
            )
        )
        let started = ContinuousClock.now
        var next = 0
        while next < samples.count {
            let chunk = samples[next..<min(samples.count, next + batch)]
            let first = next
            try await client.withTransaction(logger: Logger(label: "bench")) { connection in
                var binds = PostgresBindings()
                binds.append("bench")
                binds.append(chunk.indices.map { Int64($0 + 1) })
                binds.append(chunk.map(\.id))
                binds.append(chunk.map { ByteBuffer(bytes: $0.record) })
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL:
                            "INSERT INTO \(events) (hub, seq, device_id, record) SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::bytea[])",
                        binds: binds
                    ),
                    logger: Logger(label: "bench")
                )
                var deviceBinds = PostgresBindings()
                deviceBinds.append("bench")
                deviceBinds.append(chunk.map { ByteBuffer(bytes: Array($0.id.utf8)) })
                deviceBinds.append(chunk.map { ByteBuffer(bytes: $0.doc) })
                deviceBinds.append(chunk.map { _ in false })
                deviceBinds.append(chunk.map { _ in false })
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL:
                            "INSERT INTO \(devices) (hub, key, doc, disabled, connected) SELECT $1, * FROM UNNEST($2::bytea[], $3::bytea[], $4::boolean[], $5::boolean[])",
                        binds: deviceBinds
                    ),
                    logger: Logger(label: "bench")
                )
            }
            next = first + chunk.count
        }
        let elapsed = ContinuousClock.now - started
        try await client.query(PostgresQuery(unsafeSQL: "DROP TABLE \(events), \(devices)"))
        return Double(samples.count) / elapsed.seconds
    }

    /// The rows real creates make: the domain decides a create, the event is prepared (keys
    /// sealed, canonical JSON) and chained as the writer does.
    static func samples(_ count: Int) throws -> [(id: String, record: [UInt8], doc: [UInt8])] {
        var random = SystemRandomNumberGenerator()
        let sealer = try KeySealer(keyBytes: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &random) })
        var hash = EventRecord.genesisHash
        let now = SystemClock().now()
        return try (0..<count).map { i in
            let id = "raw-\(i)"
            let events = try decide(
                .createDevice(DeviceSpec(deviceId: id)),
                state: CommandState(),
                context: DecisionContext(now: now, sequence: UInt64(i + 1)),
                random: &random
            )
            var prepared = DecidedEvent(events[0], actor: "iothubowner", requestId: "bench-\(i)", random: &random).prepare(sealer: sealer)
            hash = prepared.parts.chain(to: hash)
            return (id, prepared.parts.record, prepared.payloadBytes)
        }
    }
}

/// `registryd-bench postgres-store`: durable creates through a PostgreSQL node's writer, without
/// HTTP (`--concurrency` callers of `execute`, as the routes are), then, in the same run, raw
/// PostgreSQL inserting the same rows at the batch size the writer reached. The ratio is what the
/// backend costs over the database alone; `tools/bench-postgres.sh` measures the same over HTTPS,
/// where the front end shares the two cores.
struct PostgresStoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postgres-store",
        abstract: "Creates through a PostgreSQL node's writer (no HTTP) vs raw PostgreSQL at the same batch size."
    )

    @Option(help: "A postgres:// URL (the benchmark writes a hub of its own there, and raw tables it drops).")
    var url: String

    @Option(help: "Concurrent callers.")
    var concurrency = 256

    @Option(help: "Creates in all.")
    var creates = 50_000

    func run() async throws {
        var random = SystemRandomNumberGenerator()
        let hub = "bench-store-\(getpid())"
        var configuration = PostgresStore.Configuration(
            location: try PostgresLocation(url: url + (url.contains("?") ? "&" : "?") + "hub=\(hub)"),
            dataKey: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        )
        let commits = Mutex((count: 0, phases: [String: Duration]()))
        configuration.commitObserver = { observation in
            commits.withLock { c in
                c.count += 1
                for (phase, duration) in observation.phases { c.phases[phase, default: .zero] += duration }
            }
        }
        let store = try await PostgresStore.open(configuration)
        let (count, concurrency) = (creates, self.concurrency)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var i = worker
                    while i < count {
                        _ = try await store.execute(.createDevice(DeviceSpec(deviceId: benchId(i))), actor: "bench", requestId: "r")
                        i += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - started
        store.close()
        let (made, phases) = commits.withLock { ($0.count, $0.phases) }
        let rate = Double(count) / elapsed.seconds
        let batch = max(1, Int((Double(count) / Double(max(1, made))).rounded()))
        let order = ["idle", "lease", "begin", "lock", "load", "decide", "seal", "write", "commit", "release", "fold"]
        let perCommit = order.compactMap { phase in
            phases[phase].map { String(format: "%@ %.2f", phase, $0.seconds * 1000 / Double(max(1, made))) }
        }
        print("  writer ms per commit: " + perCommit.joined(separator: ", "))
        let raw = try await PostgresRawBench.rate(url: url, batch: batch, rows: count)
        print(
            String(
                format:
                    "PostgreSQL writer (no HTTP), c=%d: %.0f creates/s at %d commands per commit; raw PostgreSQL same rows at batch %d: %.0f rows/s; writer / raw = %.2f",
                concurrency,
                rate,
                batch,
                batch,
                raw,
                rate / raw
            )
        )
    }
}

extension Duration {
    /// In seconds, as the benchmarks report rates.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
