import RegistryCore

/// The `deviceAuth` key of the configuration file: how brokers and gateways use the registry.
///
/// ```json
/// {"deviceAuth": {"hostNames": ["hub.example.com"], "emqx": true, "connectionReports": true, "maxReportsPerRequest": 1000,
///                 "sessionTopics": false, "rabbitmq": true, "rabbitmqVhost": "/", "rabbitmqExchange": "amq.topic"}}
/// ```
public struct DeviceAuthConfiguration: Sendable, Hashable {
    /// Host names device tokens and MQTT user names may name besides the daemon's own SAS host
    /// (devices name the broker's public name, not the registry's).
    public var hostNames: [String]
    /// Serve `POST /registry/auth/emqx` (EMQX's HTTP authenticator contract).
    public var emqx: Bool
    /// Accept `POST /registry/connections` (connect and disconnect reports).
    public var connectionReports: Bool
    /// Reports in one `POST /registry/connections` array.
    public var maxReportsPerRequest: Int
    /// The broker keeps Azure's `$iothub/…` topics (twin, direct methods) per client (EMQX with
    /// a per-client mountpoint): only then may devices use them (`TopicAuthorization`).
    public var sessionTopics = false
    /// Serve `/registry/auth/rabbitmq/*` (RabbitMQ's HTTP auth backend contract).
    public var rabbitmq = true
    /// The vhost and exchange RabbitMQ's MQTT plugin uses (its `mqtt.vhost`, `mqtt.exchange`).
    public var rabbitmqVhost = "/"
    public var rabbitmqExchange = "amq.topic"

    public init(
        hostNames: [String] = [],
        emqx: Bool = true,
        connectionReports: Bool = true,
        maxReportsPerRequest: Int = 1000,
        sessionTopics: Bool = false,
        rabbitmq: Bool = true
    ) {
        self.hostNames = hostNames
        self.sessionTopics = sessionTopics
        self.rabbitmq = rabbitmq
        self.emqx = emqx
        self.connectionReports = connectionReports
        self.maxReportsPerRequest = maxReportsPerRequest
    }

    /// Reads the `deviceAuth` object; unknown keys and wrong types are errors naming the field.
    public init(json: JSONValue) throws(ConfigurationFieldError) {
        self.init()
        guard case .object(let fields) = json else { throw ConfigurationFieldError("deviceAuth", "must be an object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            let field = "deviceAuth.\(key)"
            switch key {
            case "hostNames":
                guard case .array(let items) = value else { throw ConfigurationFieldError(field, "must be an array of host names") }
                hostNames = []
                for item in items {
                    guard let name = item.stringValue, !name.isEmpty, !name.contains("/") else {
                        throw ConfigurationFieldError(field, "must hold host names such as hub.example.com or host:port")
                    }
                    hostNames.append(name)
                }
            case "emqx", "connectionReports", "sessionTopics", "rabbitmq":
                guard case .bool(let flag) = value else { throw ConfigurationFieldError(field, "must be true or false") }
                switch key {
                case "emqx": emqx = flag
                case "connectionReports": connectionReports = flag
                case "rabbitmq": rabbitmq = flag
                default: sessionTopics = flag
                }
            case "rabbitmqVhost", "rabbitmqExchange":
                guard let name = value.stringValue, !name.isEmpty, name.utf8.count <= 255 else {
                    throw ConfigurationFieldError(field, "must be a RabbitMQ name (1 to 255 bytes)")
                }
                if key == "rabbitmqVhost" { rabbitmqVhost = name } else { rabbitmqExchange = name }
            case "maxReportsPerRequest":
                guard let n = value.intValue, n > 0, n <= 100_000 else { throw ConfigurationFieldError(field, "must be an integer from 1 to 100000") }
                maxReportsPerRequest = Int(n)
            default:
                throw ConfigurationFieldError(
                    field,
                    "unknown key (known: connectionReports, emqx, hostNames, maxReportsPerRequest, rabbitmq, rabbitmqExchange, rabbitmqVhost, sessionTopics)"
                )
            }
        }
    }
}

/// A configuration value that is not acceptable, with the field's dotted path.
public struct ConfigurationFieldError: Error, CustomStringConvertible, Sendable {
    public var field: String
    public var problem: String
    public init(_ field: String, _ problem: String) {
        self.field = field
        self.problem = problem
    }
    public var description: String { "'\(field)' \(problem)" }
}

extension JSONValue {
    /// A duration setting given in seconds: a number above 0 and at most a day, kept to the
    /// millisecond (rounded up, so a positive setting never becomes zero).
    public func seconds(_ field: String) throws(ConfigurationFieldError) -> Duration {
        guard let number = doubleValue, number > 0, number <= 86_400 else {
            throw ConfigurationFieldError(field, "must be a number of seconds above 0 and at most 86400")
        }
        return .milliseconds(Int64((number * 1000).rounded(.up)))
    }
}
