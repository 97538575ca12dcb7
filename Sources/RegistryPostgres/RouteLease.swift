import Logging
import NIOPosix
import PostgresNIO
import RegistryCore
import Synchronization

/// Route delivery leases across nodes (DESIGN §10): a session-level advisory lock per hub and
/// route, held on a connection of its own (outside the pool, which leases would otherwise use
/// up) for as long as this node delivers the route. When the node dies its session ends and
/// PostgreSQL frees the lock (the session settings make the server notice a silent client
/// within seconds); another node takes it and continues from the persisted cursor. A holder
/// gives the lease up when its connection closes (checked every 0.1 s) or when a `SELECT 1`
/// does not answer within `leaseCheck`, so two nodes overlap by about that at most, which
/// at-least-once delivery tolerates.
extension PostgresStore {
    static let leaseCheck: Duration = .seconds(1)

    public func withRouteLease(_ route: String, _ body: @escaping @Sendable () async -> Void) async {
        let (location, logger) = (self.location, self.logger)
        let key = "\(location.hub)/\(route)"
        // A closed store holds no lease (its node is going away).
        let isOpen: @Sendable () -> Bool = { [writer] in writer.isOpen }
        while !Task.isCancelled, isOpen() {
            var connection: PostgresConnection?
            // Whether `body` returned on its own (then so does this), not because the lease went.
            var finished = false
            do {
                let configuration = try location.connectionConfiguration()
                let opened = try await withDeadline(.seconds(5), "connecting for a route lease") {
                    try await PostgresConnection.connect(
                        on: MultiThreadedEventLoopGroup.singleton.any(),
                        configuration: configuration,
                        id: Int.random(in: 1_000_000..<Int.max),
                        logger: logger
                    )
                }
                connection = opened
                let held = try await withDeadline(Self.leaseCheck * 5, "taking a route lease") {
                    var held = false
                    for try await acquired in try await opened.query("SELECT pg_try_advisory_lock(hashtextextended(\(key), 0))", logger: logger)
                        .decode(Bool.self)
                    {
                        held = acquired
                    }
                    return held
                }
                if held {
                    logger.info("route lease taken: this node delivers the route", metadata: ["route": "\(route)"])
                    finished = await Self.whileSessionLives(opened, isOpen: isOpen, logger: logger, body)
                    _ = try? await withDeadline(.seconds(2), "releasing a route lease") {
                        try await opened.run("SELECT pg_advisory_unlock(hashtextextended(\(key), 0))", logger: logger)
                    }
                }
            } catch {
                logger.debug("route lease attempt failed", metadata: ["route": "\(route)", "error": "\(error)"])
            }
            if let connection { _ = try? await withDeadline(.seconds(2), "closing a route lease connection") { try await connection.close() } }
            if finished || Task.isCancelled || !isOpen() { return }
            try? await Task.sleep(for: Self.leaseCheck)
        }
    }

    /// Runs `body` until it returns (true) or the session is lost (false; `body` is cancelled).
    private static func whileSessionLives(
        _ connection: PostgresConnection,
        isOpen: @escaping @Sendable () -> Bool,
        logger: Logger,
        _ body: @escaping @Sendable () async -> Void
    ) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await body()
                return true
            }
            group.addTask {
                var sinceQuery: Duration = .zero
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    if Task.isCancelled { return true }
                    sinceQuery += .milliseconds(100)
                    var alive = !connection.isClosed && isOpen()
                    if alive, sinceQuery >= leaseCheck {
                        sinceQuery = .zero
                        alive =
                            (try? await withDeadline(leaseCheck, "the route lease check") { try await connection.run("SELECT 1", logger: logger) })
                            != nil
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
