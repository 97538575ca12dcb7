import Foundation
import Prometheus
import RegistryCore
import Synchronization

/// The daemon's Prometheus metrics, in its own registry (no process-global metrics system, so
/// every test router has its own). Counters and histograms move as work happens; the gauges of
/// state (map use, identities, routes, certificate expiry) are read when `/metrics` is scraped.
public final class RegistryMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let requestCounters = Mutex<[String: Counter]>([:])
    private let latencies = Mutex<[String: DurationHistogram]>([:])
    private let commitCommands: ValueHistogram
    private let commitLatency: DurationHistogram
    private let eventsAppended: Counter
    private let commitPhases = Mutex<[String: DurationHistogram]>([:])
    private let throttled = Mutex<[String: Counter]>([:])
    /// Broker → action → detail → counter, made up front (no lock, no label string per question).
    private let topicDecisions: [String: [String: [String: Counter]]]
    /// Device-authentication answers by route and decision, made up front (a dozen decisions per
    /// route): counting one is an atomic increment, no lock and no label string per check.
    private let deviceAuthDecisions: [String: [DeviceAuthDecision: Counter]]
    /// Seconds since the Unix epoch when the served certificate expires (set by `serve`).
    private let certificateExpiry = Mutex<Double?>(nil)

    static let latencyBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
    ]

    public init() {
        commitCommands = registry.makeValueHistogram(
            descriptor: Self.name("registryd_writer_batch_commands", "Commands per durable commit (group commit)"),
            buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        )
        commitLatency = registry.makeDurationHistogram(
            descriptor: Self.name("registryd_writer_commit_seconds", "Write transaction including its durable commit"),
            buckets: Self.latencyBuckets
        )
        eventsAppended = registry.makeCounter(descriptor: Self.name("registryd_events_appended_total", "Events appended to the log"))
        let decisions = AuthenticationType.allCases.map(DeviceAuthDecision.allow) + DeviceAuthDenial.allCases.map(DeviceAuthDecision.deny)
        let registry = registry
        var byRoute: [String: [DeviceAuthDecision: Counter]] = [:]
        for route in ["device", "emqx", "rabbitmq"] {
            byRoute[route] = Dictionary(
                uniqueKeysWithValues: decisions.map { decision in
                    let (result, detail) =
                        switch decision {
                        case .allow(let type): ("allow", type.rawValue)
                        case .deny(let reason): ("deny", reason.rawValue)
                        }
                    let descriptor = Self.name(
                        "registryd_device_auth_decisions_total",
                        "Device authentication answers by route, result and detail (the identity's authentication type for an allow, the reason for a deny)"
                    )
                    return (
                        decision, registry.makeCounter(descriptor: descriptor, labels: [("route", route), ("result", result), ("detail", detail)])
                    )
                }
            )
        }
        deviceAuthDecisions = byRoute
        var topics: [String: [String: [String: Counter]]] = [:]
        let descriptor = Self.name(
            "registryd_topic_decisions_total",
            "Broker questions about a device's topic by broker, action, result and detail (the reason for a deny)"
        )
        for broker in ["emqx", "rabbitmq"] {
            for action in TopicAuthorization.Action.allCases.map(\.rawValue) + ["unknown"] {
                for detail in Self.topicDetails {
                    topics[broker, default: [:]][action, default: [:]][detail] = registry.makeCounter(
                        descriptor: descriptor,
                        labels: [("broker", broker), ("action", action), ("result", detail == "allowed" ? "allow" : "deny"), ("detail", detail)]
                    )
                }
            }
        }
        topicDecisions = topics
    }

    /// Every detail a topic decision may carry: `allowed`, or why not.
    static let topicDetails =
        ["allowed", "malformedRequest", DeviceAuthDenial.unknownIdentity.rawValue, DeviceAuthDenial.disabled.rawValue]
        + TopicAuthorization.Denial.allCases.map(\.rawValue)

    /// A metric name with its help text (swift-prometheus' descriptor; the unit is in the name).
    static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    // MARK: recording

    /// One answered request. `operation` is the route template (never the raw path: bounded labels).
    func request(operation: String, method: String, status: Int, duration: Duration) {
        let opKey = "\(method) \(operation)"
        Self.made(in: requestCounters, "\(opKey) \(status)") {
            registry.makeCounter(
                descriptor: Self.name("registryd_http_requests_total", "Requests answered, by operation and status"),
                labels: [("operation", opKey), ("status", String(status))]
            )
        }
        .increment()
        Self.made(in: latencies, opKey) {
            registry.makeDurationHistogram(
                descriptor: Self.name("registryd_http_request_duration_seconds", "Request latency, by operation"),
                labels: [("operation", opKey)],
                buckets: Self.latencyBuckets
            )
        }
        .record(duration)
    }

    /// The metric of a label set, made the first time it is asked for (labels seen at run time:
    /// routes, phases, classes; each set bounded by the code, never by input).
    private static func made<Metric>(in cache: borrowing Mutex<[String: Metric]>, _ key: String, _ make: () -> Metric) -> Metric {
        cache.withLock { metrics in
            if let metric = metrics[key] { return metric }
            let metric = make()
            metrics[key] = metric
            return metric
        }
    }

    /// The writer's commit observer.
    public func commit(_ observation: CommitObservation) {
        commitCommands.record(Double(observation.commands))
        commitLatency.record(observation.duration)
        if observation.events > 0 { eventsAppended.increment(by: Int64(observation.events)) }
        for (phase, duration) in observation.phases {
            Self.made(in: commitPhases, phase) {
                registry.makeDurationHistogram(
                    descriptor: Self.name("registryd_writer_phase_seconds", "The writer's time per commit, by phase (their sum is its cycle)"),
                    labels: [("phase", phase)],
                    buckets: Self.latencyBuckets
                )
            }
            .record(duration)
        }
    }

    /// One device-authentication answer of `route` (`device` or `emqx`).
    func deviceAuth(route: String, decision: DeviceAuthDecision) {
        deviceAuthDecisions[route]?[decision]?.increment()
    }

    /// One broker question about a topic: `detail` is `allowed` or the reason for a deny (one of
    /// `topicDetails`).
    func topicDecision(broker: String, action: String, detail: String) {
        topicDecisions[broker]?[action]?[detail]?.increment()
    }

    func throttledRequest(operationClass: String) {
        Self.made(in: throttled, operationClass) {
            registry.makeCounter(
                descriptor: Self.name("registryd_throttled_requests_total", "Requests refused with 429, by operation class"),
                labels: [("class", operationClass)]
            )
        }
        .increment()
    }

    public func setCertificateExpiry(_ date: Date) {
        certificateExpiry.withLock { $0 = date.timeIntervalSince1970 }
    }

    // MARK: scrape

    /// Refreshes the state gauges and renders the text format.
    func scrape(store: any RegistryBackend, delivery: (any RouteAdministration)?) async -> [UInt8] {
        // The embedded backend's map (names kept from when LMDB was the only backend).
        if let footprint = store.storageFootprint {
            registry.makeGauge(descriptor: Self.name("registryd_lmdb_map_size_bytes", "LMDB map size")).set(Double(footprint.allocated))
            registry.makeGauge(descriptor: Self.name("registryd_lmdb_map_used_bytes", "LMDB map bytes in use")).set(Double(footprint.used))
        }
        if let stats = try? await store.statistics() {
            let identities: [(String, String, Int)] = [
                ("device", "enabled", stats.enabledDeviceCount), ("device", "disabled", stats.disabledDeviceCount),
                ("module", "any", stats.totalModuleCount),
            ]
            for (kind, status, value) in identities {
                registry.makeGauge(
                    descriptor: Self.name("registryd_identities", "Identities by kind and status"),
                    labels: [("kind", kind), ("status", status)]
                )
                .set(Double(value))
            }
            registry.makeGauge(descriptor: Self.name("registryd_connected_devices", "Devices a broker last reported connected")).set(
                Double(stats.connectedDeviceCount)
            )
        }
        if let head = try? await store.head() {
            registry.makeGauge(descriptor: Self.name("registryd_log_head_sequence", "Sequence number of the last event")).set(Double(head.seq))
        }
        for route in await delivery?.statuses() ?? [] {
            let labels = [("route", route.name)]
            registry.makeGauge(descriptor: Self.name("registryd_route_delivered_messages", "Messages delivered by the route"), labels: labels).set(
                Double(route.delivered)
            )
            registry.makeGauge(descriptor: Self.name("registryd_route_failed_attempts", "Failed delivery attempts of the route"), labels: labels).set(
                Double(route.failedAttempts)
            )
            registry.makeGauge(descriptor: Self.name("registryd_route_parked_messages", "Messages parked after the retry window"), labels: labels)
                .set(Double(route.parked))
            registry.makeGauge(descriptor: Self.name("registryd_route_lag_events", "Events committed but not yet delivered"), labels: labels).set(
                Double(route.lag)
            )
            for health in ["healthy", "unhealthy", "dead"] {
                registry.makeGauge(
                    descriptor: Self.name("registryd_route_health", "1 for the route endpoint's current health"),
                    labels: labels + [("health", health)]
                )
                .set(route.health.rawValue == health ? 1.0 : 0.0)
            }
        }
        if let expiry = certificateExpiry.withLock({ $0 }) {
            registry.makeGauge(descriptor: Self.name("registryd_tls_certificate_expiry_seconds", "Unix time when the served certificate expires"))
                .set(expiry)
        }
        return registry.emitToBuffer()
    }
}
