import Hummingbird
import RegistryCore
import RegistryTransfer

/// Brokers ask which topics a connected device may use (`TopicAuthorization` decides).
///
/// `POST /registry/auth/emqx/authorize`: EMQX's HTTP authorization contract. Body
/// `{"username","clientid","topic","action":"publish"|"subscribe"}` (configured in EMQX with its
/// `${username}`, `${clientid}`, `${topic}`, `${action}` placeholders); answers 200
/// `{"result":"allow"|"deny"}`, never an error status (EMQX would fall through to its next
/// authorizer). DeviceConnect.
///
/// Besides the topic, the identity must still exist and be enabled (read from the same
/// credentials view device authentication uses): disabling a connected device stops its
/// publishes and subscriptions at the next question, not only its next connection.
struct TopicAuthorizationRoute: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes
    let configuration: DeviceAuthConfiguration
    var metrics: RegistryMetrics? = nil

    /// A decision and the word the counters record for it (`allowed` or why not).
    struct Decision: Sendable, Hashable {
        var allowed: Bool
        var detail: String
        static let allowed = Decision(allowed: true, detail: "allowed")
        static func denied(_ detail: String) -> Decision { Decision(allowed: false, detail: detail) }
    }

    /// Whether the identity the broker authenticated may `action` `topic`.
    /// - Parameter sessionTopics: overrides `deviceAuth.sessionTopics` (a broker known to share them).
    func decide(
        broker: String,
        identity: MQTTConnectIdentity?,
        action: TopicAuthorization.Action?,
        topic: String?,
        sessionTopics: Bool? = nil,
        callerScope: PolicyScope? = nil
    ) -> Decision {
        let decision: Decision
        if let identity, let action, let topic {
            decision = decide(identity, action, topic, sessionTopics: sessionTopics ?? configuration.sessionTopics, callerScope: callerScope)
        } else {
            decision = .denied("malformedRequest")
        }
        metrics?.topicDecision(broker: broker, action: action?.rawValue ?? "unknown", detail: decision.detail)
        return decision
    }

    private func decide(
        _ identity: MQTTConnectIdentity,
        _ action: TopicAuthorization.Action,
        _ topic: String,
        sessionTopics: Bool,
        callerScope: PolicyScope?
    ) -> Decision {
        guard let credentials = try? store.credentials(deviceId: identity.deviceId, moduleId: identity.moduleId) else {
            return .denied(DeviceAuthDenial.unknownIdentity.rawValue)
        }
        // A broker holding a scoped policy hears about identities outside it as unknown.
        if let callerScope, !credentials.isInside(callerScope, deviceId: identity.deviceId) {
            return .denied(DeviceAuthDenial.unknownIdentity.rawValue)
        }
        if credentials.deviceDisabled { return .denied(DeviceAuthDenial.disabled.rawValue) }
        if let denial = TopicAuthorization.decide(
            deviceId: identity.deviceId,
            moduleId: identity.moduleId,
            action: action,
            topic: topic,
            sessionTopics: sessionTopics
        ) {
            return .denied(denial.rawValue)
        }
        return .allowed
    }

    func register(on router: Router<RegistryRequestContext>) {
        guard configuration.emqx else { return }
        router.post("registry/auth/emqx/authorize") { request, context in
            try context.require(.deviceConnect)
            let json = try IdentityRequestDecoder.parse(try await routes.body(request))
            let username = try? IdentityRequestDecoder.string(json, "username")
            let clientId = try? IdentityRequestDecoder.string(json, "clientid")
            let identity = username.flatMap { username in clientId.flatMap { MQTTConnectIdentity(username: username, clientId: $0) } }
            let action = (try? IdentityRequestDecoder.string(json, "action")).flatMap { $0.flatMap(TopicAuthorization.Action.init(rawValue:)) }
            let topic = (try? IdentityRequestDecoder.string(json, "topic")) ?? nil
            let decision = decide(broker: "emqx", identity: identity, action: action, topic: topic, callerScope: context.scope)
            return Response(
                status: .ok,
                headers: [.contentType: jsonContentType],
                body: .init(byteBuffer: ByteBuffer(bytes: decision.allowed ? Self.allowJSON : Self.denyJSON))
            )
        }
    }

    static let allowJSON = CanonicalJSON.encode(.object(["result": .string("allow")]))
    static let denyJSON = CanonicalJSON.encode(.object(["result": .string("deny")]))
}
