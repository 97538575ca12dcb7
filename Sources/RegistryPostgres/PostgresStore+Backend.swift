import Logging
import PostgresNIO
import RegistryCore

/// The write side of the store interface on PostgreSQL: identity commands through this node's
/// group-commit writer (`PostgresWriter`); the typed stores (meta, cursors, parked messages,
/// jobs, policies) as plain statements outside the hash chain, as on LMDB.
extension PostgresStore: RegistryBackend {
    public func execute(_ commands: [Command], actor: String, requestId: String) async throws -> [Result<CommandOutcome, RegistryError>] {
        guard !commands.isEmpty else { return [] }
        let pending = PendingCommands()
        guard let ticket = writer.enqueue(queued(commands, actor: actor, requestId: requestId, pending)) else {
            return try await pending.value()
        }
        // As on LMDB: the deadline applies only while the commands wait in the queue (withdrawn,
        // they are never written); once taken, the caller waits for the commit's outcome.
        let timeout = configuration.writer.writeTimeout
        let writer = self.writer
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return }
                if let batch = writer.withdraw(ticket) { batch.complete(.failure(WriteTimeoutError(waited: timeout))) }
            }
            defer { group.cancelAll() }
            return try await pending.value()
        }
    }

    public func submit(_ commands: [Command], actor: String, requestId: String) -> PendingCommands {
        let pending = PendingCommands()
        if commands.isEmpty {
            pending.complete(.success([]))
        } else {
            _ = writer.enqueue(queued(commands, actor: actor, requestId: requestId, pending))
        }
        return pending
    }

    private func queued(_ commands: [Command], actor: String, requestId: String, _ pending: PendingCommands) -> QueuedBatch {
        QueuedBatch(commands: commands, actor: actor, requestId: requestId) { pending.complete($0) }
    }

    /// PostgreSQL reports a full disk as a failed statement; there is no node-local full state
    /// to clear, so the probe is a round trip.
    public func probeStorage() async -> Bool {
        let logger = self.logger
        return (try? await database { connection in try await connection.query("SELECT 1", logger: logger) }) != nil
    }

    public func setMetaString(_ key: String, _ value: String) async throws {
        let (hub, logger) = (self.hub, self.logger)
        try await database { connection in
            try await connection.query(
                "INSERT INTO meta (hub, key, value) VALUES (\(hub), \(key), \(value)) ON CONFLICT (hub, key) DO UPDATE SET value = EXCLUDED.value",
                logger: logger
            )
        }
    }

    public func saveRouteCursor(_ route: String, _ cursor: RouteCursor) async throws {
        let (hub, logger) = (self.hub, self.logger)
        try await database { connection in
            try await connection.query(
                """
                INSERT INTO cursors (hub, route, seq, dead) VALUES (\(hub), \(route), \(Int64(clamping: cursor.seq)), \(cursor.dead))
                ON CONFLICT (hub, route) DO UPDATE SET seq = EXCLUDED.seq, dead = EXCLUDED.dead
                """,
                logger: logger
            )
        }
    }

    public func park(route: String, _ messages: [ParkedRecord]) async throws {
        guard !messages.isEmpty else { return }
        let (hub, logger) = (self.hub, self.logger)
        let seqs = messages.map { Int64(clamping: $0.seq) }
        let bodies = messages.map { ByteBuffer(bytes: $0.message) }
        try await database { connection in
            try await connection.query(
                """
                INSERT INTO parked (hub, route, seq, message) SELECT \(hub), \(route), * FROM UNNEST(\(seqs)::bigint[], \(bodies)::bytea[])
                ON CONFLICT (hub, route, seq) DO UPDATE SET message = EXCLUDED.message
                """,
                logger: logger
            )
        }
    }

    public func unpark(route: String, seq: UInt64) async throws {
        let (hub, logger) = (self.hub, self.logger)
        try await database { connection in
            try await connection.query(
                "DELETE FROM parked WHERE hub = \(hub) AND route = \(route) AND seq = \(Int64(clamping: seq))",
                logger: logger
            )
        }
    }

    public func saveJobRecord(_ jobId: String, _ record: [UInt8]) async throws {
        let (hub, logger) = (self.hub, self.logger)
        let bytes = ByteBuffer(bytes: record)
        try await database { connection in
            try await connection.query(
                "INSERT INTO jobs (hub, job_id, record) VALUES (\(hub), \(jobId), \(bytes)) ON CONFLICT (hub, job_id) DO UPDATE SET record = EXCLUDED.record",
                logger: logger
            )
        }
    }

    public func replaceJobRecord(_ jobId: String, expected: [UInt8]?, with record: [UInt8]) async throws -> Bool {
        let (hub, logger) = (self.hub, self.logger)
        let bytes = ByteBuffer(bytes: record)
        return try await database { connection in
            // One statement each: the comparison and the write are atomic (a row lock on update;
            // the primary key on insert).
            let rows: PostgresRowSequence
            if let expected {
                let old = ByteBuffer(bytes: expected)
                rows = try await connection.query(
                    "UPDATE jobs SET record = \(bytes) WHERE hub = \(hub) AND job_id = \(jobId) AND record = \(old) RETURNING 1",
                    logger: logger
                )
            } else {
                rows = try await connection.query(
                    "INSERT INTO jobs (hub, job_id, record) VALUES (\(hub), \(jobId), \(bytes)) ON CONFLICT (hub, job_id) DO NOTHING RETURNING 1",
                    logger: logger
                )
            }
            var written = false
            for try await _ in rows.decode(Int32.self) { written = true }
            return written
        }
    }

    public func applyPolicyChange(_ change: PolicyChange, to name: String, ifMatch: ETagCondition) async throws(PolicyError) -> PolicySnapshot {
        do {
            return try await policyTransaction { policies, generation, random throws(PolicyError) in
                try PolicyRules.apply(change, to: name, ifMatch: ifMatch, policies: policies, generation: generation, random: &random)
            }
        } catch let error as PolicyError {
            throw error
        } catch {
            throw PolicyError("\(Self.describe(error, location))")
        }
    }

    public func ensureBuiltInPolicies() async throws -> [SharedAccessPolicy] {
        _ = try await policyTransaction { policies, generation, random throws(PolicyError) -> PolicySnapshot? in
            guard policies.isEmpty else { return nil }
            var created: [SharedAccessPolicy] = []
            for var policy in SharedAccessPolicy.builtIn(random: &random) {
                policy.version = generation + 1
                created.append(policy)
            }
            return PolicySnapshot(policy: nil, policies: created, generation: generation + 1)
        }
        return try await policies()
    }

    /// Reads every policy and the generation with the hub's row locked (so policy changes on
    /// all nodes apply one after the other, each to what the one before left), lets `decide`
    /// choose, and writes its snapshot: every policy in it, and the generation. A change is seen
    /// by every node's next request, since requests read policies from the database.
    private func policyTransaction(
        _ decide: @escaping @Sendable ([SharedAccessPolicy], Int64, inout BufferedSystemRandom) throws(PolicyError) -> PolicySnapshot?
    ) async throws -> PolicySnapshot {
        let (hub, logger, sealer) = (self.hub, self.logger, self.sealer)
        return try await database { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                try await connection.query("SELECT 1 FROM hubs WHERE hub = \(hub) FOR UPDATE", logger: logger)
                var policies: [SharedAccessPolicy] = []
                for try await record in try await connection.query("SELECT record FROM policies WHERE hub = \(hub)", logger: logger)
                    .decode(ByteBuffer.self)
                {
                    policies.append(try PolicyRules.decode(Array(record.readableBytesView), sealer: sealer, legacy: false))
                }
                var generation = policies.map(\.version).max() ?? 0
                let key = MetaKey.policyGeneration
                for try await stored in try await connection.query("SELECT value FROM meta WHERE hub = \(hub) AND key = \(key)", logger: logger)
                    .decode(String.self)
                {
                    generation = max(generation, Int64(stored) ?? 0)
                }
                var random = BufferedSystemRandom()
                let snapshot = try decide(policies, generation, &random)
                if let snapshot {
                    let names = Set(snapshot.policies.map(\.name))
                    for policy in policies where !names.contains(policy.name) {
                        try await connection.query("DELETE FROM policies WHERE hub = \(hub) AND name = \(policy.name)", logger: logger)
                    }
                    // Every policy is written again (a few rows), each sealed with a fresh nonce.
                    for policy in snapshot.policies {
                        let record = ByteBuffer(bytes: PolicyRules.encode(policy, sealer: sealer, random: &random))
                        try await connection.query(
                            """
                            INSERT INTO policies (hub, name, record) VALUES (\(hub), \(policy.name), \(record))
                            ON CONFLICT (hub, name) DO UPDATE SET record = EXCLUDED.record
                            """,
                            logger: logger
                        )
                    }
                    let value = String(snapshot.generation)
                    try await connection.query(
                        "INSERT INTO meta (hub, key, value) VALUES (\(hub), \(key), \(value)) ON CONFLICT (hub, key) DO UPDATE SET value = EXCLUDED.value",
                        logger: logger
                    )
                }
                try await connection.query("COMMIT", logger: logger)
                return snapshot ?? PolicySnapshot(policy: nil, policies: policies, generation: generation)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }
}
