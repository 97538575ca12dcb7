import Logging
import NIOPosix
import PostgresNIO
import RegistryCore
import Synchronization

/// Leases across the nodes of a hub (DESIGN §10), as session-level advisory locks, each held on
/// a connection of its own (outside the pool, which long-held leases would otherwise use up):
///
/// - `route:<hub>/<route>`: the delivery lease of a route, sought until taken (`withRouteLease`);
/// - `jobs:<hub>`: the one active import/export job of the hub (`withExclusiveLease("jobs")`);
/// - `serving:<hub>`: held shared by every serving node, so a migration (which takes it
///   exclusively) refuses a source that nodes are writing (`whileNoNodeServes`).
///
/// When a node dies its session ends and PostgreSQL frees its locks (the session settings make the
/// server notice a silent client within seconds). A holder gives a lease up when its connection
/// closes (checked every 0.1 s) or when a `SELECT 1` does not answer within `leaseCheck`, so two
/// nodes overlap by about that at most, which at-least-once delivery tolerates.
extension PostgresStore {
    static let leaseCheck: Duration = .seconds(1)

    enum LockMode {
        case exclusive, shared

        var tryFunction: String { self == .exclusive ? "pg_try_advisory_lock" : "pg_try_advisory_lock_shared" }
        var unlockFunction: String { self == .exclusive ? "pg_advisory_unlock" : "pg_advisory_unlock_shared" }
    }

    public func withRouteLease(_ route: String, _ body: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled, writer.isOpen {
            switch await attemptSessionLock("route:\(hub)/\(route)", .exclusive, body) {
            case .ran(finished: true): return
            case .ran(finished: false), .heldElsewhere, .failed: try? await Task.sleep(for: Self.leaseCheck)
            }
        }
    }

    public func withExclusiveLease(_ name: String, _ body: @escaping @Sendable () async -> Void) async throws -> Bool {
        switch await attemptSessionLock("\(name):\(hub)", .exclusive, body) {
        case .ran: return true
        case .heldElsewhere: return false
        case .failed(let error): throw Self.describe(error, location)
        }
    }

    /// Held shared by a serving node while its store is open (see the type's comment), sought
    /// again whenever lost.
    func holdServingLease() async {
        while !Task.isCancelled, writer.isOpen {
            _ = await attemptSessionLock("serving:\(hub)", .shared) {
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            }
            try? await Task.sleep(for: Self.leaseCheck)
        }
    }

    /// Runs `body` while no node serves this hub (the serving lease taken exclusively, so a node
    /// starting meanwhile does not take it either); throws at once when one does.
    public func whileNoNodeServes<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let attempt = await attemptSessionLock("serving:\(hub)", .exclusive) {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
        }
        switch attempt {
        case .heldElsewhere:
            throw StoreError("a registryd node is serving hub '\(hub)' on \(location); stop every node of the hub first")
        case .failed(let error):
            throw Self.describe(error, location)
        case .ran:
            guard let result = outcome.withLock({ $0 }) else {
                throw StorageUnavailableError("the database session holding hub '\(hub)' was lost before the work finished")
            }
            return try result.get()
        }
    }

    enum LockAttempt {
        /// Taken, and `body` ran: to its end (`finished`) or until the session was lost.
        case ran(finished: Bool)
        case heldElsewhere
        case failed(any Error)
    }

    /// One attempt at the advisory lock `name` (hashed) in `mode`, on a connection of its own,
    /// running `body` while the session lives.
    func attemptSessionLock(_ name: String, _ mode: LockMode, _ body: @escaping @Sendable () async -> Void) async -> LockAttempt {
        let (location, logger) = (self.location, self.logger)
        // A closed store holds no lease (its node is going away).
        let isOpen: @Sendable () -> Bool = { [writer] in writer.isOpen }
        var binds = PostgresBindings()
        binds.append(name)
        var connection: PostgresConnection?
        let attempt: LockAttempt
        do {
            let configuration = try location.connectionConfiguration()
            let opened = try await withDeadline(.seconds(5), "connecting for a lease") {
                try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.any(),
                    configuration: configuration,
                    id: Int.random(in: 1_000_000..<Int.max),
                    logger: logger
                )
            }
            connection = opened
            let taken = try await withDeadline(Self.leaseCheck * 5, "taking a lease") { [binds] in
                var held = false
                let query = PostgresQuery(unsafeSQL: "SELECT \(mode.tryFunction)(hashtextextended($1, 0))", binds: binds)
                for try await acquired in try await opened.query(query, logger: logger).decode(Bool.self) { held = acquired }
                return held
            }
            if taken {
                logger.info("lease taken", metadata: ["lease": "\(name)"])
                let finished = await Self.whileSessionLives(opened, isOpen: isOpen, logger: logger, body)
                _ = try? await withDeadline(.seconds(2), "releasing a lease") { [binds] in
                    try await opened.run(
                        PostgresQuery(unsafeSQL: "SELECT \(mode.unlockFunction)(hashtextextended($1, 0))", binds: binds),
                        logger: logger
                    )
                }
                attempt = .ran(finished: finished)
            } else {
                attempt = .heldElsewhere
            }
        } catch {
            logger.debug("lease attempt failed", metadata: ["lease": "\(name)", "error": "\(error)"])
            attempt = .failed(error)
        }
        if let connection { _ = try? await withDeadline(.seconds(2), "closing a lease connection") { try await connection.close() } }
        return attempt
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
                            (try? await withDeadline(leaseCheck, "the lease check") { try await connection.run("SELECT 1", logger: logger) })
                            != nil
                    }
                    if !alive {
                        logger.warning("lease lost with its database session; what it guarded stops on this node")
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
