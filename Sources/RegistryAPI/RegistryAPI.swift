import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOSSL
import RegistryCore

/// Settings of the HTTP layer.
public struct RegistryAPIConfiguration: Sendable {
    /// Request bodies larger than this are refused with 413 before parsing.
    public var maxRequestBodyBytes: Int
    /// Broker-facing settings (`deviceAuth` in the configuration file).
    public var deviceAuth: DeviceAuthConfiguration
    /// Per-class rate limits (`throttling`); empty means off.
    public var throttling: ThrottlingConfiguration
    /// Serve `/metrics` without a token (`metrics.open`).
    public var metricsOpen: Bool
    /// Serve the operator console at `/console/` (its static files without a token).
    public var console = true
    /// Connection timeouts, the connection cap and the header size limit (`connections`).
    public var connections: ConnectionLimits
    /// Event stream caps (`eventStreams`).
    public var eventStreams: EventStreamLimits
    /// Per-request bounds on queries (documented in the README; not a configuration key).
    public var queryBounds = QueryBounds()

    public init(
        maxRequestBodyBytes: Int = 256 * 1024,
        deviceAuth: DeviceAuthConfiguration = .init(),
        throttling: ThrottlingConfiguration = .init(),
        metricsOpen: Bool = false,
        connections: ConnectionLimits = .init(),
        eventStreams: EventStreamLimits = .init()
    ) {
        self.eventStreams = eventStreams
        self.connections = connections
        self.maxRequestBodyBytes = maxRequestBodyBytes
        self.deviceAuth = deviceAuth
        self.throttling = throttling
        self.metricsOpen = metricsOpen
    }
}

/// Builds the router: Azure error format outermost, then SAS authentication, then the routes.
public func buildRouter(
    store: any RegistryBackend,
    authenticator: ServiceAuthenticator,
    configuration: RegistryAPIConfiguration = .init(),
    delivery: (any RouteAdministration)? = nil,
    readiness: Readiness = Readiness(listening: true),
    metrics: RegistryMetrics? = nil,
    accessLog: AccessLogSummary? = nil,
    jobs: JobService? = nil,
    throttleClock: @escaping @Sendable () -> Duration = Throttle.monotonicNow,
    now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
) -> Router<RegistryRequestContext> {
    let router = Router(context: RegistryRequestContext.self)
    router.add(middleware: RequestObservationMiddleware(metrics: metrics, summary: accessLog))
    router.add(middleware: AzureErrorMiddleware())
    router.add(middleware: HeaderSizeMiddleware(maxHeaderBytes: configuration.connections.maxHeaderBytes))
    var openPaths: Set<String> = configuration.metricsOpen ? ["/healthz", "/readyz", "/metrics"] : ["/healthz", "/readyz"]
    if configuration.console { openPaths.formUnion(ConsoleRoute.openPaths) }
    router.add(middleware: SASAuthenticationMiddleware(authenticator: authenticator, now: now, openPaths: openPaths))
    if !configuration.throttling.rates.isEmpty {
        router.add(
            middleware: ThrottlingMiddleware(throttle: Throttle(configuration: configuration.throttling, now: throttleClock), metrics: metrics)
        )
    }
    if let metrics {
        MetricsRoute(store: store, delivery: delivery, metrics: metrics, open: configuration.metricsOpen).register(on: router)
    }
    HealthRoutes(store: store, readiness: readiness).register(on: router)
    let routes = RegistryRoutes(store: store, configuration: configuration)
    routes.register(on: router)
    BulkRoutes(store: store, routes: routes).register(on: router)
    TwinRoutes(store: store, routes: routes).register(on: router)
    if let jobs {
        JobRoutes(jobs: jobs, routes: routes, clock: { Timestamp(unixNanoseconds: Int64(Date().timeIntervalSince1970 * 1e9)) }).register(on: router)
    }
    HistoryRoute(store: store).register(on: router)
    RestoreRoutes(store: store).register(on: router)
    // The same clock as token expiry and device authentication's windows.
    CredentialRoutes(store: store, clock: { Timestamp(unixSeconds: now()) }).register(on: router)
    AuditRoutes(store: store).register(on: router)
    if configuration.console { ConsoleRoute().register(on: router) }
    PolicyRoutes(store: store, routes: routes, authenticator: authenticator).register(on: router)
    let deviceAuth = configuration.deviceAuth
    // Made per check: the host name and policies may change while the daemon runs.
    let deviceAuthenticator: @Sendable () -> DeviceAuthenticator = {
        DeviceAuthenticator(hostName: authenticator.hostName, additionalHostNames: deviceAuth.hostNames, policy: authenticator.policy(named:))
    }
    DeviceAuthRoute(
        store: store,
        routes: routes,
        configuration: deviceAuth,
        authenticator: deviceAuthenticator,
        now: now,
        metrics: metrics
    ).register(on: router)
    let topics = TopicAuthorizationRoute(store: store, routes: routes, configuration: deviceAuth, metrics: metrics)
    topics.register(on: router)
    RabbitMQAuthRoutes(
        store: store,
        routes: routes,
        configuration: deviceAuth,
        authenticator: deviceAuthenticator,
        topics: topics,
        now: now,
        metrics: metrics
    ).register(on: router)
    if deviceAuth.connectionReports {
        ConnectionRoutes(store: store, routes: routes, configuration: deviceAuth).register(on: router)
    }
    if let delivery {
        RouteAdminRoutes(delivery: delivery).register(on: router)
        EventStreamRoute(store: store, hubName: delivery.hubName, limits: configuration.eventStreams).register(on: router)
    }
    return router
}
