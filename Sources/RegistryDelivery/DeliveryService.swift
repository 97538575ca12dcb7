import Foundation
import Logging
import RegistryCore
import ServiceLifecycle
import Synchronization

/// The lifecycle router: one worker per enabled route tails the log from the route's persisted
/// cursor, filters by source and condition, delivers to the endpoint in order, and moves the
/// cursor only after the endpoint confirmed. It never runs on the write path: it wakes on the
/// committed-sequence signal and reads through short read transactions.
public final class DeliveryService: Service, RouteAdministration, Sendable {
    let store: any RegistryBackend
    public let hubName: String
    let logger: Logger
    let clock: DeliveryClock
    /// Each route worker starts from a copy (its backoff jitter): seeded in tests.
    let random: any RandomNumberGenerator & Sendable
    let state: Mutex<State>
    /// Events read per step (bounds memory and the cursor-persistence interval).
    static let readBatch = 256

    struct State {
        var configuration: DeliveryConfiguration
        var routes: [String: RouteStatus] = [:]
        var wakeups: [String: AsyncStream<Void>.Continuation] = [:]
        var redeliver: Set<String> = []
        var reload: AsyncStream<Void>.Continuation?
        /// Per route, the committed sequence number its worker has finished with at its last
        /// step (delivered, filtered out, parked, or found its route dead): how a test knows a
        /// commit was handled, and so that nothing more will happen for it.
        var settled: [String: UInt64] = [:]
    }

    /// - Parameters:
    ///   - clock: the retry window, the backoff sleeps and the webhook timestamps (manual in tests).
    ///   - random: the backoff jitter (seeded in tests); each route worker starts from a copy.
    public init(
        store: any RegistryBackend,
        hubName: String,
        configuration: DeliveryConfiguration,
        logger: Logger,
        clock: DeliveryClock = .system,
        random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()
    ) {
        self.store = store
        self.hubName = hubName
        self.logger = logger
        self.clock = clock
        self.random = random
        self.state = Mutex(State(configuration: configuration))
    }

    // MARK: operator actions (API, SIGHUP)

    /// Replaces the routes and endpoints; running workers stop and start again from their cursors.
    public func reload(_ configuration: DeliveryConfiguration) {
        let signal = state.withLock { s in
            s.configuration = configuration
            return s.reload
        }
        signal?.yield()
    }

    public func statuses() async -> [RouteStatus] {
        let (configuration, known) = state.withLock { ($0.configuration, $0.routes) }
        let committed = store.commits.committed
        var statuses: [RouteStatus] = []
        for route in configuration.routes {
            var status = known[route.name] ?? Self.initialStatus(route, configuration)
            status.lag = committed > status.cursor ? committed - status.cursor : 0
            status.parked = (try? await store.parkedMessages(route: route.name).count) ?? status.parked
            statuses.append(status)
        }
        return statuses
    }

    /// The committed sequence number `route`'s worker has finished with (nil before its first
    /// step): once it reaches a commit, nothing more happens for that commit until a wakeup
    /// (redeliver, enable, reload) asks for it.
    func settled(route: String) -> UInt64? { state.withLock { $0.settled[route] } }

    public func routeExists(_ name: String) -> Bool { state.withLock { s in s.configuration.routes.contains { $0.name == name } } }

    public func parkedMessages(route: String) async throws -> [ParkedMessage] {
        try await store.parkedMessages(route: route).map { ParkedMessage(seq: $0.seq, message: try JSONParser.parse($0.message)) }
    }

    /// Asks the route's worker to deliver its parked messages again (in sequence order).
    public func redeliverParked(route: String) {
        let wakeup = state.withLock { s in
            s.redeliver.insert(route)
            return s.wakeups[route]
        }
        wakeup?.yield()
    }

    /// Re-enables a dead endpoint's route: its cursor moves again.
    public func enable(route: String) async throws {
        try await persistCursor(route: route, seq: try await currentCursor(route), dead: false)
        let wakeup = state.withLock { s in
            s.routes[route]?.health = .healthy
            return s.wakeups[route]
        }
        wakeup?.yield()
    }

    // MARK: running

    /// Gives every configured route without a cursor one at the current head, so it carries the
    /// changes from this moment on. `serve` calls it before the API accepts requests, so no
    /// change made after start can slip past a new route.
    public func prepareCursors() async throws {
        let routes = state.withLock { $0.configuration.routes }
        for route in routes where try await loadCursor(route: route.name) == nil {
            try await persistCursor(route: route.name, seq: store.commits.committed, dead: false)
        }
    }

    public func run() async throws {
        let (reloads, reloadContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        state.withLock { $0.reload = reloadContinuation }
        await cancelWhenGracefulShutdown {
            var reloadIterator = reloads.makeAsyncIterator()
            while !Task.isCancelled {
                let configuration = self.state.withLock { $0.configuration }
                do {
                    try await self.prepareCursors()
                } catch {
                    self.logger.error("cannot prepare route cursors", metadata: ["error": "\(error)"])
                }
                await withTaskGroup(of: Void.self) { group in
                    let sinks = self.makeSinks(configuration)
                    for route in configuration.routes where route.isEnabled {
                        guard let sink = sinks[route.endpointName] else { continue }
                        group.addTask { await self.runRoute(route, configuration: configuration, sink: sink) }
                    }
                    group.addTask { await self.forwardCommits(to: configuration.routes.map(\.name)) }
                    _ = await reloadIterator.next()
                    group.cancelAll()
                    await group.waitForAll()
                    for sink in sinks.values { await sink.shutdown() }
                }
                if !Task.isCancelled {
                    self.logger.info("delivery configuration reloaded", metadata: ["delivery.routes": "\(configuration.routes.count)"])
                }
            }
        }
    }

    func makeSinks(_ configuration: DeliveryConfiguration) -> [String: any Sink] {
        var sinks: [String: any Sink] = [:]
        for endpoint in configuration.endpoints {
            switch endpoint.kind {
            case .file(let path, let maxFileBytes, let maxFiles):
                sinks[endpoint.name] = FileSink(path: path, maxFileBytes: maxFileBytes, maxFiles: maxFiles)
            case .webhook(let url, let secret, let caFile, let timeoutMs):
                do {
                    sinks[endpoint.name] = try WebhookSink(url: url, secret: secret, caFile: caFile, timeoutMs: timeoutMs, now: clock.unixSeconds)
                } catch {
                    logger.error("webhook endpoint unusable", metadata: ["endpoint": "\(endpoint.name)", "error": "\(error)"])
                }
            }
        }
        return sinks
    }

    /// Wakes every route after each commit.
    func forwardCommits(to routes: [String]) async {
        for await _ in store.commits.updates() {
            if Task.isCancelled { return }
            let wakeups = state.withLock { s in routes.compactMap { s.wakeups[$0] } }
            for wakeup in wakeups { wakeup.yield() }
        }
    }

    static func initialStatus(_ route: DeliveryConfiguration.Route, _ configuration: DeliveryConfiguration) -> RouteStatus {
        RouteStatus(
            name: route.name,
            source: route.source.rawValue,
            condition: route.condition.description,
            endpoint: route.endpointName,
            endpointType: configuration.endpoint(named: route.endpointName)?.typeName ?? "?",
            isEnabled: route.isEnabled,
            health: .healthy,
            cursor: 0,
            lag: 0,
            delivered: 0,
            failedAttempts: 0,
            parked: 0,
            undefinedConditions: 0,
            lastError: nil
        )
    }

    func update(_ route: String, _ change: (inout RouteStatus) -> Void) {
        state.withLock { s in
            if var status = s.routes[route] {
                change(&status)
                s.routes[route] = status
            }
        }
    }

    // MARK: cursors

    typealias Cursor = RouteCursor

    func loadCursor(route: String) async throws -> Cursor? { try await store.routeCursor(route) }

    func currentCursor(_ route: String) async throws -> UInt64 { try await loadCursor(route: route)?.seq ?? 0 }

    func persistCursor(route: String, seq: UInt64, dead: Bool) async throws {
        try await store.saveRouteCursor(route, RouteCursor(seq: seq, dead: dead))
    }
}
