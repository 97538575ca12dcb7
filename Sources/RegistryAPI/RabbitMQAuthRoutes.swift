import Hummingbird
import RegistryCore
import RegistryTransfer

/// RabbitMQ's HTTP auth backend (`rabbitmq_auth_backend_http`, 3.10 with `http_method = post`),
/// so a RabbitMQ MQTT listener authenticates and authorizes devices through registryd. The
/// broker posts form-encoded questions to four paths and reads a plain-text `allow` or `deny`
/// (anything else, a non-2xx status included, is a deny to it). What it sends was captured with
/// Microsoft's device SDK (README, "Pointing RabbitMQ at registryd"):
///
/// - `user` (`username`, `password`, `client_id`, `vhost`): at CONNECT. The user name and client
///   id follow Azure's convention (`MQTTConnectIdentity`: the broker itself never checks that
///   they agree), the password is the device's SAS token, decided as `/registry/auth/device` does.
/// - `vhost` (`username`, `vhost`, …): only the configured vhost.
/// - `resource` (`resource`, `name`, `permission`, `client_id`): the MQTT plugin's own objects,
///   `amq.topic` (publish, bind) and the client's subscription queues
///   `mqtt-subscription-{clientId}qos0|qos1`; any other exchange or queue is denied.
/// - `topic` (`routing_key`, `permission` write|read, `variable_map.client_id`): the MQTT topic
///   as RabbitMQ rewrote it (`/` → `.`, `+` → `*`), turned back and decided by
///   `TopicAuthorization`. The rewrite loses information, so an id holding `.` or `*` is never
///   allowed a topic (device `a.modules.b` would otherwise speak for module `b` of device `a`),
///   and `$iothub/…` is always denied: RabbitMQ shares those topics between all clients.
///
/// The broker authenticates with a DeviceConnect SAS token as HTTP Basic password (it cannot
/// send other headers; see `SASAuthenticationMiddleware.signature`).
struct RabbitMQAuthRoutes: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes
    let configuration: DeviceAuthConfiguration
    let authenticator: @Sendable () -> DeviceAuthenticator
    let topics: TopicAuthorizationRoute
    let now: @Sendable () -> Int64
    var metrics: RegistryMetrics? = nil

    /// Every field any of the four paths sends (a path lacking one leaves it nil).
    struct Question {
        var username: String?
        var password: String?
        var vhost: String?
        var clientId: String?
        var resource: String?
        var name: String?
        var permission: String?
        var routingKey: String?

        /// A form body (`application/x-www-form-urlencoded`); nil when it is not one, or names a
        /// field twice. Read byte by byte: Hummingbird's Codable form decoder cost a sixth of
        /// the server's CPU in tools/bench-broker.sh.
        init?(form body: [UInt8]) {
            var seen = Set<String>()
            for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
                let equals = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
                guard let key = PercentDecoding.decode(pair[..<equals], plusAsSpace: true),
                    let value = PercentDecoding.decode(equals == pair.endIndex ? pair[equals...] : pair[(equals + 1)...], plusAsSpace: true),
                    seen.insert(key).inserted
                else { return nil }
                switch key {
                case "username": username = value
                case "password": password = value
                case "vhost": vhost = value
                case "client_id": clientId = clientId ?? value
                // The topic path carries the client id only here.
                case "variable_map.client_id": clientId = value
                case "resource": resource = value
                case "name": name = value
                case "permission": permission = value
                case "routing_key": routingKey = value
                default: break
                }
            }
        }

        /// The identity by Azure's convention, with the client id the path carries.
        var identity: MQTTConnectIdentity? {
            guard let username, let clientId else { return nil }
            return MQTTConnectIdentity(username: username, clientId: clientId)
        }
    }

    func register(on router: Router<RegistryRequestContext>) {
        guard configuration.rabbitmq else { return }
        let group = router.group("registry/auth/rabbitmq")
        group.post("user") { request, context in try await answer(request, context) { user($0, callerScope: context.scope) } }
        group.post("vhost") { request, context in
            try await answer(request, context) { $0.identity != nil && $0.vhost == configuration.rabbitmqVhost }
        }
        group.post("resource") { request, context in try await answer(request, context) { resource($0) } }
        group.post("topic") { request, context in try await answer(request, context) { topic($0, callerScope: context.scope) } }
    }

    private func answer(_ request: Request, _ context: RegistryRequestContext, _ decide: (Question) -> Bool) async throws -> Response {
        try context.require(.deviceConnect)
        let body = try await routes.body(request)
        // A question that cannot be read is a deny, never an error (any answer but `allow` is one).
        let allowed = Question(form: body).map(decide) ?? false
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: allowed ? "allow" : "deny"))
        )
    }

    private func user(_ question: Question, callerScope: PolicyScope?) -> Bool {
        guard let identity = question.identity, let password = question.password, !password.isEmpty else {
            metrics?.deviceAuth(route: "rabbitmq", decision: .deny(.malformed))
            return false
        }
        let authenticator = authenticator()
        let decision: DeviceAuthDecision
        if !authenticator.isKnownHost(identity.host) {
            decision = .deny(.wrongScope)
        } else if let checked = try? authenticator.check(
            DeviceCredentials(deviceId: identity.deviceId, moduleId: identity.moduleId, credential: .token(password)),
            storage: store,
            now: now(),
            callerScope: callerScope
        ) {
            decision = checked
        } else {
            decision = .deny(.unknownIdentity)
        }
        metrics?.deviceAuth(route: "rabbitmq", decision: decision)
        if case .allow = decision { return true }
        return false
    }

    private func resource(_ question: Question) -> Bool {
        guard let identity = question.identity, let name = question.name else { return false }
        switch question.resource {
        case "exchange":
            // The MQTT plugin publishes to and binds from its exchange; topics are decided on
            // the topic path (a deny here would leave publishes unacknowledged, not refused).
            return name == configuration.rabbitmqExchange && (question.permission == "write" || question.permission == "read")
        case "queue":
            // The client's own subscription queues only (the plugin names them by client id).
            let clientId = identity.moduleId.map { "\(identity.deviceId)/\($0)" } ?? identity.deviceId
            return name == "mqtt-subscription-\(clientId)qos0" || name == "mqtt-subscription-\(clientId)qos1"
        default:
            return false
        }
    }

    private func topic(_ question: Question, callerScope: PolicyScope?) -> Bool {
        let action: TopicAuthorization.Action? =
            switch question.permission {
            case "write": .publish
            case "read": .subscribe
            default: nil
            }
        var identity = question.identity
        if let id = identity, [id.deviceId, id.moduleId ?? ""].contains(where: { $0.contains(".") || $0.contains("*") }) {
            // Not representable in a routing key: refused whatever the topic.
            identity = nil
        }
        let topic = question.routingKey.map(Self.mqttTopic)
        // A question about another exchange is not about a device's topics: malformed.
        if question.name != configuration.rabbitmqExchange { identity = nil }
        return topics.decide(broker: "rabbitmq", identity: identity, action: action, topic: topic, sessionTopics: false, callerScope: callerScope)
            .allowed
    }

    /// The MQTT topic a routing key came from (RabbitMQ's MQTT plugin writes `/` as `.` and `+`
    /// as `*`; `#` stays).
    static func mqttTopic(_ routingKey: String) -> String {
        String(
            decoding: routingKey.utf8.map { byte in
                switch byte {
                case UInt8(ascii: "."): UInt8(ascii: "/")
                case UInt8(ascii: "*"): UInt8(ascii: "+")
                default: byte
                }
            },
            as: UTF8.self
        )
    }
}
