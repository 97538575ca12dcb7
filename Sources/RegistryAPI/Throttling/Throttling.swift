import RegistryCore
import Synchronization

/// Operation classes that can be throttled separately (the `throttling` key of the config file).
public enum OperationClass: String, Sendable, Hashable, CaseIterable {
    case registryReads
    case registryWrites
    case bulk
    case queries
    case deviceAuth

    /// The class of a request, from its method and path (before routing: the router's own
    /// resolution happens inside). Health probes and metrics are never throttled (`nil`).
    ///
    /// Classified on the path's non-empty segments, as the router matches them: `//devices/query`,
    /// `/devices/query/` and `/devices//query` reach the same route as `/devices/query`, so they
    /// must land in the same class (before, they escaped the query and bulk budgets).
    static func of(method: String, path: String) -> OperationClass? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let isPost = method == "POST"
        switch segments.first {
        case "healthz" where segments.count == 1, "readyz" where segments.count == 1, "metrics" where segments.count == 1:
            return nil
        case "registry" where segments.count >= 2 && (segments[1] == "auth" || segments[1] == "connections"):
            return .deviceAuth
        case "registry" where segments.count >= 2 && segments[1] == "audit":
            // A verification reads the whole log.
            return .bulk
        case "devices" where isPost && segments.count == 2 && segments[1] == "query":
            return .queries
        case "twins" where segments.count >= 2 && segments[1] == "query":
            return .queries
        case "jobs":
            return .bulk
        case "devices" where isPost && segments.count == 1:
            return .bulk
        default:
            return method == "GET" || method == "HEAD" ? .registryReads : .registryWrites
        }
    }
}

/// `throttling` settings: operations per second per class; a class without a rate is not
/// throttled. Off by default (Azure's limits depend on the tier; ours are the operator's).
///
/// ```json
/// {"throttling": {"registryReads": 1000, "registryWrites": 500, "bulk": 10, "queries": 20, "deviceAuth": 5000, "burstSeconds": 1}}
/// ```
public struct ThrottlingConfiguration: Sendable, Hashable {
    public var rates: [OperationClass: Double]
    /// The bucket holds this many seconds of the rate (at least one operation): the burst allowed.
    public var burstSeconds: Double

    public init(rates: [OperationClass: Double] = [:], burstSeconds: Double = 1) {
        self.rates = rates
        self.burstSeconds = burstSeconds
    }

    public init(json: JSONValue) throws(ConfigurationFieldError) {
        self.init()
        guard case .object(let fields) = json else { throw ConfigurationFieldError("throttling", "must be an object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            let field = "throttling.\(key)"
            guard let number = value.doubleValue, number > 0, number.isFinite else {
                throw ConfigurationFieldError(field, "must be a positive number")
            }
            if key == "burstSeconds" {
                burstSeconds = number
            } else if let operationClass = OperationClass(rawValue: key) {
                rates[operationClass] = number
            } else {
                throw ConfigurationFieldError(
                    field,
                    "unknown key (known: \((OperationClass.allCases.map(\.rawValue) + ["burstSeconds"]).joined(separator: ", ")))"
                )
            }
        }
    }
}

/// Token buckets, one per configured class, on an injected monotonic clock (tests drive it).
public final class Throttle: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: Duration
    }

    let configuration: ThrottlingConfiguration
    let now: @Sendable () -> Duration
    private let buckets: Mutex<[OperationClass: Bucket]>

    public init(configuration: ThrottlingConfiguration, now: @escaping @Sendable () -> Duration = Throttle.monotonicNow) {
        self.configuration = configuration
        self.now = now
        let start = now()
        var initial: [OperationClass: Bucket] = [:]
        for (operationClass, rate) in configuration.rates {
            initial[operationClass] = Bucket(tokens: max(1, rate * configuration.burstSeconds), updated: start)
        }
        buckets = Mutex(initial)
    }

    public static let monotonicNow: @Sendable () -> Duration = {
        let origin = ContinuousClock.now
        return { ContinuousClock.now - origin }
    }()

    /// Takes one token: `nil` when allowed, else how long until a token is available.
    func acquire(_ operationClass: OperationClass) -> Duration? {
        guard let rate = configuration.rates[operationClass] else { return nil }
        let capacity = max(1, rate * configuration.burstSeconds)
        let time = now()
        return buckets.withLock { all -> Duration? in
            var bucket = all[operationClass] ?? Bucket(tokens: capacity, updated: time)
            let elapsed = time - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(capacity, bucket.tokens + max(0, seconds) * rate)
            bucket.updated = time
            defer { all[operationClass] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return .nanoseconds(Int64(((1 - bucket.tokens) / rate * 1e9).rounded(.up)))
        }
    }
}
