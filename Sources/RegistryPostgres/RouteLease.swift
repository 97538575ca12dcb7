import Logging
import PostgresNIO
import RegistryCore

/// Route delivery leases across nodes (DESIGN §10): a session-level advisory lock per hub and
/// route, held on a connection of its own for as long as this node delivers the route. When
/// the node dies its session ends and PostgreSQL frees the lock; another node takes it and
/// continues from the persisted cursor. A holder checks its session every `leaseCheck`: when
/// the connection is gone it stops delivering (the lock may already be another node's), so two
/// nodes overlap at most that long, which at-least-once delivery tolerates.
extension PostgresStore {
    static let leaseCheck: Duration = .seconds(1)

    public func withRouteLease(_ route: String, _ body: @escaping @Sendable () async -> Void) async {
        let (hub, logger, client) = (self.hub, self.logger, self.client)
        let key = "\(hub)/\(route)"
        while !Task.isCancelled {
            var finished = false
            do {
                try await client.withConnection { connection in
                    var held = false
                    for try await acquired in try await connection.query("SELECT pg_try_advisory_lock(hashtextextended(\(key), 0))", logger: logger)
                        .decode(Bool.self)
                    {
                        held = acquired
                    }
                    guard held else { return }
                    logger.info("route lease taken: this node delivers the route", metadata: ["route": "\(route)"])
                    finished = await Self.whileSessionLives(connection, logger: logger, body)
                    if finished {
                        _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(key), 0))", logger: logger)
                    }
                }
            } catch {
                logger.debug("route lease attempt failed", metadata: ["route": "\(route)", "error": "\(error)"])
            }
            if finished || Task.isCancelled { return }
            try? await Task.sleep(for: Self.leaseCheck)
        }
    }

    /// Runs `body` until it returns (true) or the session stops answering (false: `body` is
    /// cancelled).
    private static func whileSessionLives(
        _ connection: PostgresConnection,
        logger: Logger,
        _ body: @escaping @Sendable () async -> Void
    ) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await body()
                return true
            }
            // The connection closing (this node shutting down, or a reset from the server) ends
            // the lease within a tenth of a second; a session that stopped answering, within
            // `leaseCheck`. (Polled: waiting on the close future could not be cancelled.)
            group.addTask {
                var sinceQuery: Duration = .zero
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    if Task.isCancelled { return true }
                    sinceQuery += .milliseconds(100)
                    var alive = !connection.isClosed
                    if alive, sinceQuery >= leaseCheck {
                        sinceQuery = .zero
                        alive = (try? await connection.query("SELECT 1", logger: logger)) != nil
                    }
                    if !alive {
                        logger.warning("route lease lost with its database session; delivery stops on this node")
                        return false
                    }
                }
                return true
            }
            let first = await group.next() ?? true
            group.cancelAll()
            return first
        }
    }
}
