import Logging
import PostgresNIO
import RegistryCore

/// The tables of a PostgreSQL-backed registry and their versioned migrations (DESIGN §10).
///
/// Every table is keyed by hub: each hub has its own log, chain and head, so one database can
/// hold several hubs even though a daemon serves one. Identity keys are the LMDB backend's byte
/// keys (`deviceId`, `deviceId 0x00 moduleId`) in `bytea`, which PostgreSQL orders bytewise as
/// LMDB does: listings, query pages and their continuation tokens are the same on both.
///
/// Migrations run at start, in one transaction holding a transaction-level advisory lock, so
/// two nodes starting at once apply each step once; DDL is transactional in PostgreSQL, so a
/// failed step leaves the previous version intact. A database written by a newer registryd is
/// refused.
enum PostgresSchema {
    /// The schema version this binary writes and the newest it can read.
    static let version = 1

    /// Lock key of the migration step (any constant both nodes agree on).
    static let migrationLock: Int64 = 0x7265_6769_7374_7279  // "registry"

    /// Each migration's statements, in order: index 0 takes an empty database to version 1.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE hubs (hub text PRIMARY KEY, key_fingerprint text NOT NULL,
              created timestamptz NOT NULL DEFAULT now())
            """,
            "CREATE TABLE log_head (hub text PRIMARY KEY REFERENCES hubs, seq bigint NOT NULL, hash bytea NOT NULL)",
            """
            CREATE TABLE events (hub text NOT NULL, seq bigint NOT NULL, device_id text NOT NULL,
              record bytea NOT NULL, PRIMARY KEY (hub, seq))
            """,
            "CREATE INDEX events_by_device ON events (hub, device_id, seq)",
            """
            CREATE TABLE devices (hub text NOT NULL, key bytea NOT NULL, doc bytea NOT NULL,
              disabled boolean NOT NULL, connected boolean NOT NULL, PRIMARY KEY (hub, key))
            """,
            """
            CREATE TABLE modules (hub text NOT NULL, key bytea NOT NULL, device_id text NOT NULL,
              doc bytea NOT NULL, PRIMARY KEY (hub, key))
            """,
            "CREATE INDEX modules_by_device ON modules (hub, device_id, key)",
            "CREATE TABLE cursors (hub text NOT NULL, route text NOT NULL, seq bigint NOT NULL, dead boolean NOT NULL, PRIMARY KEY (hub, route))",
            "CREATE TABLE parked (hub text NOT NULL, route text NOT NULL, seq bigint NOT NULL, message bytea NOT NULL, PRIMARY KEY (hub, route, seq))",
            "CREATE TABLE jobs (hub text NOT NULL, job_id text NOT NULL, record bytea NOT NULL, PRIMARY KEY (hub, job_id))",
            "CREATE TABLE policies (hub text NOT NULL, name text NOT NULL, record bytea NOT NULL, PRIMARY KEY (hub, name))",
            "CREATE TABLE meta (hub text NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY (hub, key))",
        ]
    ]

    /// Brings the database to `version` (creating it from nothing) and registers `hub` with the
    /// data key's fingerprint, or checks it against the one registered.
    /// - Throws: `StoreError` for a newer schema or another data key.
    /// - Parameter createHub: register the hub if it is new (a daemon); a reader (the tools, a
    ///   migration's source) is refused a hub that does not exist instead of creating it.
    static func prepare(_ client: PostgresClient, hub: String, keyFingerprint: String, createHub: Bool, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS registryd_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)",
                logger: logger
            )
            var current = 0
            for try await (stored) in try await connection.query("SELECT version FROM registryd_schema", logger: logger).decode(Int.self) {
                current = stored
            }
            guard current <= version else {
                throw StoreError(
                    "the database's registryd schema is version \(current), newer than this registryd supports (\(version)); run a newer registryd"
                )
            }
            for step in current..<version {
                for statement in migrations[step] { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                logger.notice("database schema migrated", metadata: ["schema.version": "\(step + 1)"])
            }
            try await connection.query(
                "INSERT INTO registryd_schema (id, version) VALUES (1, \(version)) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                logger: logger
            )
            if createHub {
                try await connection.query(
                    "INSERT INTO hubs (hub, key_fingerprint) VALUES (\(hub), \(keyFingerprint)) ON CONFLICT (hub) DO NOTHING",
                    logger: logger
                )
            }
            var registered = ""
            for try await (fingerprint) in try await connection.query("SELECT key_fingerprint FROM hubs WHERE hub = \(hub)", logger: logger)
                .decode(String.self)
            {
                registered = fingerprint
            }
            guard !registered.isEmpty else {
                throw StoreError("hub '\(hub)' does not exist in this database (no registryd has served it); check the URL's ?hub=")
            }
            guard registered == keyFingerprint else {
                throw StoreError(
                    "this node's data key is not the one hub '\(hub)' was created with (fingerprint \(keyFingerprint.prefix(12))…, "
                        + "the database expects \(registered.prefix(12))…); every node needs the same data key file"
                )
            }
            try await connection.query(
                "INSERT INTO log_head (hub, seq, hash) VALUES (\(hub), 0, \(ByteBuffer(bytes: EventRecord.genesisHash))) ON CONFLICT (hub) DO NOTHING",
                logger: logger
            )
        }
    }
}
