import Foundation
import RegistryCore

/// The `endpoints`, `routes` and `delivery` keys of the configuration file.
///
/// ```json
/// {"endpoints": [
///    {"name": "audit", "type": "file", "path": "/var/lib/registryd/lifecycle.jsonl"},
///    {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9000/events", "secret": "whsec_<base64>"}],
///  "routes": [
///    {"name": "all", "source": "DeviceLifecycleEvents", "condition": "true", "endpointNames": ["audit"], "isEnabled": true}],
///  "delivery": {"initialBackoffMs": 100, "maxBackoffMs": 30000, "retryWindowSeconds": 3600}}
/// ```
public struct DeliveryConfiguration: Sendable, Hashable {
    public var endpoints: [Endpoint] = []
    public var routes: [Route] = []
    public var retry = RetryPolicy()

    public init(endpoints: [Endpoint] = [], routes: [Route] = [], retry: RetryPolicy = RetryPolicy()) {
        self.endpoints = endpoints
        self.routes = routes
        self.retry = retry
    }

    public struct Endpoint: Sendable, Hashable {
        public var name: String
        public var kind: Kind

        public init(name: String, kind: Kind) {
            self.name = name
            self.kind = kind
        }

        public enum Kind: Sendable, Hashable {
            /// JSON Lines, fsync'd before the cursor moves, rotated at `maxFileBytes` keeping `maxFiles` old files.
            case file(path: String, maxFileBytes: Int, maxFiles: Int)
            /// Standard Webhooks POST; `secret` is the key bytes (from `whsec_<base64>`).
            case webhook(url: String, secret: [UInt8], caFile: String?, timeoutMs: Int)
        }

        public var typeName: String {
            switch kind {
            case .file: "file"
            case .webhook: "webhook"
            }
        }
    }

    public struct Route: Sendable, Hashable {
        public var name: String
        public var source: RouteSource
        public var condition: RouteCondition
        public var endpointName: String
        public var isEnabled: Bool

        public init(name: String, source: RouteSource, condition: RouteCondition, endpointName: String, isEnabled: Bool) {
            self.name = name
            self.source = source
            self.condition = condition
            self.endpointName = endpointName
            self.isEnabled = isEnabled
        }
    }

    /// Backoff and parking.
    public struct RetryPolicy: Sendable, Hashable {
        public var initialBackoffMs: Int = 100
        public var maxBackoffMs: Int = 30_000
        /// How long a message is retried before it is parked and the route moves on.
        public var retryWindowSeconds: Double = 3600
        public init() {}

        /// The delay before attempt `attempt` (0-based), with full jitter in [d/2, d].
        func backoff(attempt: Int, random: inout some RandomNumberGenerator) -> Duration {
            let base = min(Double(maxBackoffMs), Double(initialBackoffMs) * pow(2, Double(min(attempt, 30))))
            return .milliseconds(Int(Double.random(in: (base / 2)...max(base / 2, base), using: &random)))
        }
    }

    public static let namePattern = "^[A-Za-z0-9-._]{1,64}$"

    static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy {
                ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 46 || $0 == 95
            }
    }

    /// Reads the three keys from the configuration object (others are the caller's business).
    public init(configuration json: [String: JSONValue]) throws(DeliveryConfigurationError) {
        func fail(_ field: String, _ why: String) -> DeliveryConfigurationError { DeliveryConfigurationError("\(field): \(why)") }
        if let list = json["endpoints"] {
            guard case .array(let items) = list else { throw fail("endpoints", "must be an array") }
            for (i, item) in items.enumerated() {
                let field = "endpoints[\(i)]"
                guard case .object(let o) = item else { throw fail(field, "must be an object") }
                for key in o.keys where !["name", "type", "path", "maxFileBytes", "maxFiles", "url", "secret", "caFile", "timeoutMs"].contains(key) {
                    throw fail("\(field).\(key)", "unknown key")
                }
                guard let name = o["name"]?.stringValue, Self.validName(name) else { throw fail("\(field).name", "must match \(Self.namePattern)") }
                guard !endpoints.contains(where: { $0.name == name }) else { throw fail("\(field).name", "duplicate endpoint '\(name)'") }
                func int(_ key: String, _ fallback: Int) throws(DeliveryConfigurationError) -> Int {
                    guard let v = o[key] else { return fallback }
                    guard let i = v.intValue, i > 0 else { throw fail("\(field).\(key)", "must be a positive integer") }
                    return Int(i)
                }
                switch o["type"]?.stringValue?.lowercased() {
                case "file":
                    guard let path = o["path"]?.stringValue, path.hasPrefix("/") else { throw fail("\(field).path", "must be an absolute path") }
                    endpoints.append(
                        Endpoint(
                            name: name,
                            kind: .file(path: path, maxFileBytes: try int("maxFileBytes", 64 << 20), maxFiles: try int("maxFiles", 5))
                        )
                    )
                case "webhook":
                    guard let url = o["url"]?.stringValue, let parsed = URL(string: url),
                        ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
                        parsed.host != nil
                    else { throw fail("\(field).url", "must be an http or https URL") }
                    guard let secretText = o["secret"]?.stringValue else { throw fail("\(field).secret", "is required (whsec_<base64>)") }
                    let encoded = secretText.hasPrefix("whsec_") ? String(secretText.dropFirst(6)) : secretText
                    guard let secret = Data(base64Encoded: encoded), secret.count >= 16 else {
                        throw fail("\(field).secret", "must be whsec_ followed by base64 of at least 16 bytes")
                    }
                    let caFile = o["caFile"]?.stringValue
                    if let caFile, !FileManager.default.isReadableFile(atPath: caFile) { throw fail("\(field).caFile", "cannot read \(caFile)") }
                    endpoints.append(
                        Endpoint(name: name, kind: .webhook(url: url, secret: Array(secret), caFile: caFile, timeoutMs: try int("timeoutMs", 5000)))
                    )
                default:
                    throw fail("\(field).type", "must be 'file' or 'webhook'")
                }
            }
        }
        if let list = json["routes"] {
            guard case .array(let items) = list else { throw fail("routes", "must be an array") }
            for (i, item) in items.enumerated() {
                let field = "routes[\(i)]"
                guard case .object(let o) = item else { throw fail(field, "must be an object") }
                for key in o.keys where !["name", "source", "condition", "endpointNames", "isEnabled"].contains(key) {
                    throw fail("\(field).\(key)", "unknown key")
                }
                guard let name = o["name"]?.stringValue, Self.validName(name) else { throw fail("\(field).name", "must match \(Self.namePattern)") }
                guard !routes.contains(where: { $0.name == name }) else { throw fail("\(field).name", "duplicate route '\(name)'") }
                guard let sourceText = o["source"]?.stringValue,
                    let source = RouteSource.allCases.first(where: { $0.rawValue.lowercased() == sourceText.lowercased() })
                else { throw fail("\(field).source", "must be one of \(RouteSource.allCases.map(\.rawValue).joined(separator: ", "))") }
                let condition: RouteCondition
                do {
                    condition = try RouteCondition(o["condition"]?.stringValue ?? "true")
                } catch {
                    throw fail("\(field).condition", error.description)
                }
                guard case .array(let names)? = o["endpointNames"], names.count == 1, let endpoint = names[0].stringValue else {
                    throw fail("\(field).endpointNames", "must name exactly one endpoint")
                }
                guard endpoints.contains(where: { $0.name == endpoint }) else {
                    throw fail("\(field).endpointNames", "no endpoint named '\(endpoint)'")
                }
                if let enabled = o["isEnabled"], enabled.boolValue == nil { throw fail("\(field).isEnabled", "must be true or false") }
                routes.append(
                    Route(name: name, source: source, condition: condition, endpointName: endpoint, isEnabled: o["isEnabled"]?.boolValue ?? true)
                )
            }
        }
        if let delivery = json["delivery"] {
            guard case .object(let o) = delivery else { throw fail("delivery", "must be an object") }
            for (key, value) in o {
                switch key {
                case "initialBackoffMs", "maxBackoffMs":
                    guard let v = value.intValue, v > 0 else { throw fail("delivery.\(key)", "must be a positive integer") }
                    if key == "initialBackoffMs" { retry.initialBackoffMs = Int(v) } else { retry.maxBackoffMs = Int(v) }
                case "retryWindowSeconds":
                    let seconds: Double? =
                        switch value {
                        case .int(let i): Double(i)
                        case .number(let text): Double(text)
                        default: nil
                        }
                    guard let seconds, seconds > 0 else { throw fail("delivery.\(key)", "must be a positive number") }
                    retry.retryWindowSeconds = seconds
                default:
                    throw fail("delivery.\(key)", "unknown key")
                }
            }
        }
    }

    public func endpoint(named name: String) -> Endpoint? { endpoints.first { $0.name == name } }
}

public struct DeliveryConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
