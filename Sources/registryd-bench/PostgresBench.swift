import ArgumentParser
import Foundation
import PostgresNIO
import RegistryCore
import RegistryPostgres

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
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("raw PostgreSQL: \(Int(Double(samples.count) / seconds)) rows/s at batch \(batch) (\(samples.count) rows)")
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
