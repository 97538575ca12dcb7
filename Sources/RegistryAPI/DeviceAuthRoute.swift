import Foundation
import Hummingbird
import RegistryCore
import RegistryTransfer

/// Device authentication for brokers and gateways, decided from the current state on every call.
///
/// `POST /registry/auth/device`: body `{"deviceId", "moduleId"?, and one of "token" (a SAS
/// token), "thumbprint" (SHA-1 or SHA-256 hex of the client certificate),
/// "certificateAuthority": true}`. Answers 200 with
/// `{"result":"allow"|"deny","reason"?,"authenticationType"?}`.
///
/// `POST /registry/auth/emqx`: EMQX's HTTP authenticator contract. Body
/// `{"username","password","clientid"}` with Azure's MQTT convention (user name
/// `{host}/{deviceId}[/{moduleId}]/?api-version=...`, client id `{deviceId}[/{moduleId}]`, password
/// a SAS token); answers 200 `{"result":"allow"|"deny","is_superuser":false,"reason"?,"expire_at"?}`
/// (`expire_at` is the token's expiry, so the broker disconnects the client when it lapses).
///
/// Both need DeviceConnect.
struct DeviceAuthRoute: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes
    let configuration: DeviceAuthConfiguration
    let authenticator: @Sendable () -> DeviceAuthenticator
    let now: @Sendable () -> Int64
    /// Counts every answer by decision (`registryd_device_auth_decisions_total`).
    var metrics: RegistryMetrics? = nil

    func register(on router: Router<RegistryRequestContext>) {
        router.post("registry/auth/device") { request, context in
            try context.require(.deviceConnect)
            let json = try IdentityRequestDecoder.parse(try await routes.body(request))
            guard let deviceId = try IdentityRequestDecoder.string(json, "deviceId") else {
                throw APIError(status: .badRequest, code: "ArgumentNull", message: "deviceId is required.")
            }
            let moduleId = try IdentityRequestDecoder.string(json, "moduleId")
            let credential: DeviceCredentials.Credential
            if let token = try IdentityRequestDecoder.string(json, "token") {
                credential = .token(token)
            } else if let thumbprint = try IdentityRequestDecoder.string(json, "thumbprint") {
                credential = .thumbprint(thumbprint)
            } else if try IdentityRequestDecoder.bool(json, "certificateAuthority") == true {
                credential = .certificateAuthority
            } else {
                throw APIError.invalid("Give one of token, thumbprint or certificateAuthority.")
            }
            let decision = try authenticator().check(
                DeviceCredentials(deviceId: deviceId, moduleId: moduleId, credential: credential),
                storage: store,
                now: now(),
                callerScope: context.scope
            )
            metrics?.deviceAuth(route: "device", decision: decision)
            return Response(
                status: .ok,
                headers: [.contentType: jsonContentType],
                body: .init(byteBuffer: ByteBuffer(bytes: Self.answers[decision] ?? CanonicalJSON.encode(Self.answer(decision))))
            )
        }
        guard configuration.emqx else { return }
        router.post("registry/auth/emqx") { request, context in
            try context.require(.deviceConnect)
            let json = try IdentityRequestDecoder.parse(try await routes.body(request))
            return RegistryRoutes.json(try emqxDecision(json, callerScope: context.scope))
        }
    }

    /// The answer to a decision: `{"result":"allow","authenticationType":…}` or
    /// `{"result":"deny","reason":…}`.
    static func answer(_ decision: DeviceAuthDecision) -> JSONValue {
        switch decision {
        case .allow(let type): .object(["result": .string("allow"), "authenticationType": .string(type.rawValue)])
        case .deny(let reason): .object(["result": .string("deny"), "reason": .string(reason.rawValue)])
        }
    }

    /// Every answer encoded once: there are only a dozen, and building and encoding one per
    /// check was a measurable part of the route.
    static let answers: [DeviceAuthDecision: [UInt8]] = Dictionary(
        uniqueKeysWithValues: (AuthenticationType.allCases.map(DeviceAuthDecision.allow) + DeviceAuthDenial.allCases.map(DeviceAuthDecision.deny))
            .map { ($0, CanonicalJSON.encode(answer($0))) }
    )

    /// EMQX answers: always 200 (a 4xx would make EMQX skip to its next authenticator), a
    /// deny for anything that is not a valid Azure-convention login.
    func emqxDecision(_ json: JSONValue, callerScope: PolicyScope? = nil) throws -> JSONValue {
        func deny(_ reason: DeviceAuthDenial) -> JSONValue {
            metrics?.deviceAuth(route: "emqx", decision: .deny(reason))
            return .object(["result": .string("deny"), "is_superuser": .bool(false), "reason": .string(reason.rawValue)])
        }
        guard let username = try IdentityRequestDecoder.string(json, "username"),
            let clientId = try IdentityRequestDecoder.string(json, "clientid"),
            let identity = MQTTConnectIdentity(username: username, clientId: clientId)
        else { return deny(.malformed) }
        let authenticator = authenticator()
        guard authenticator.isKnownHost(identity.host) else { return deny(.wrongScope) }
        guard let password = try IdentityRequestDecoder.string(json, "password"), !password.isEmpty else { return deny(.malformed) }
        let credentials = DeviceCredentials(deviceId: identity.deviceId, moduleId: identity.moduleId, credential: .token(password))
        switch try authenticator.check(credentials, storage: store, now: now(), callerScope: callerScope) {
        case .allow(let type):
            metrics?.deviceAuth(route: "emqx", decision: .allow(type))
            var answer: [String: JSONValue] = ["result": .string("allow"), "is_superuser": .bool(false)]
            if let token = SharedAccessSignature(credential: password) { answer["expire_at"] = .int(token.expiry) }
            return .object(answer)
        case .deny(let reason):
            return deny(reason)
        }
    }
}
