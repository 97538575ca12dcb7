import Foundation
import Hummingbird
import RegistryCore

/// `POST /registry/auth/device`: may this device (or module) connect with this credential, now?
///
/// Body: `{"deviceId", "moduleId"?, and one of "token" (a SAS token), "thumbprint" (SHA-1 or
/// SHA-256 hex of the client certificate), "certificateAuthority": true}`. Answers 200 with
/// `{"result":"allow"|"deny","reason"?,"authenticationType"?}`; the caller needs DeviceConnect.
struct DeviceAuthRoute: Sendable {
    let store: RegistryStore
    let routes: RegistryRoutes
    let authenticator: @Sendable () -> DeviceAuthenticator
    let now: @Sendable () -> Int64

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
            let decision = try authenticator().check(DeviceCredentials(deviceId: deviceId, moduleId: moduleId, credential: credential), storage: store.storage, now: now())
            switch decision {
            case .allow(let type):
                return RegistryRoutes.json(.object(["result": .string("allow"), "authenticationType": .string(type.rawValue)]))
            case .deny(let reason):
                return RegistryRoutes.json(.object(["result": .string("deny"), "reason": .string(reason.rawValue)]))
            }
        }
    }
}
