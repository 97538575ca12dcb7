import Logging
import PostgresNIO
import RegistryCore

/// What moving a registry between backends needs of a PostgreSQL store (`StoreMigration`).
extension PostgresStore {
    public func appendVerbatim(_ records: [[UInt8]]) async throws {
        guard !records.isEmpty else { return }
        let (hub, logger, writer) = (self.hub, self.logger, self.writer)
        let (head, folds) = try await database { connection -> (LogHead, [FoldEntry]) in
            try await connection.query("BEGIN", logger: logger)
            do {
                var head = try await writer.lockHead(on: connection)
                var events: [VerifiedEvent] = []
                var folds: [FoldEntry] = []
                events.reserveCapacity(records.count)
                folds.reserveCapacity(records.count)
                for bytes in records {
                    switch EventRecord.fastVerified(bytes, expectedSeq: head.seq + 1, prevHash: head.hash) {
                    case .failure(let error):
                        throw StoreError("record \(head.seq + 1) does not continue the log: \(error)")
                    case .success(let event):
                        events.append(event)
                        folds.append(
                            FoldEntry(
                                seq: event.seq,
                                prevHash: Hash32(head.hash),
                                hash: Hash32(event.hash),
                                type: event.type,
                                deviceId: event.deviceId,
                                moduleId: event.moduleId,
                                payload: event.payloadBytes
                            )
                        )
                        head.seq = event.seq
                        head.hash = event.hash
                    }
                }
                try await PostgresWriter.insert(
                    records,
                    seqs: events.map(\.seq),
                    deviceIds: events.map(\.deviceId),
                    hub: hub,
                    on: connection,
                    logger: logger
                )
                try await PostgresWriter.apply(ProjectionChanges(events), head: head, hub: hub, on: connection, logger: logger)
                try await connection.query("COMMIT", logger: logger)
                return (head, folds)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
        await follower.committed(folds, through: head.seq)
    }

    public func installPolicies(_ policies: [SharedAccessPolicy], generation: Int64) async throws {
        let (hub, logger, sealer) = (self.hub, self.logger, self.sealer)
        try await database { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                try await connection.query("SELECT 1 FROM hubs WHERE hub = \(hub) FOR UPDATE", logger: logger)
                try await connection.query("DELETE FROM policies WHERE hub = \(hub)", logger: logger)
                var random = BufferedSystemRandom()
                for policy in policies {
                    let record = ByteBuffer(bytes: PolicyRules.encode(policy, sealer: sealer, random: &random))
                    try await connection.query("INSERT INTO policies (hub, name, record) VALUES (\(hub), \(policy.name), \(record))", logger: logger)
                }
                let (key, value) = (MetaKey.policyGeneration, String(generation))
                try await connection.query(
                    "INSERT INTO meta (hub, key, value) VALUES (\(hub), \(key), \(value)) ON CONFLICT (hub, key) DO UPDATE SET value = EXCLUDED.value",
                    logger: logger
                )
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    public func routeCursors() async throws -> [String: RouteCursor] {
        let (hub, logger) = (self.hub, self.logger)
        return try await database { connection in
            var cursors: [String: RouteCursor] = [:]
            for try await (route, seq, dead) in try await connection.query("SELECT route, seq, dead FROM cursors WHERE hub = \(hub)", logger: logger)
                .decode((String, Int64, Bool).self)
            {
                cursors[route] = RouteCursor(seq: UInt64(seq), dead: dead)
            }
            return cursors
        }
    }
}
