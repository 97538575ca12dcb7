import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// `POST /registry/auth/device` decides from the current state on every call.
struct DeviceAuthRouteTests {
    typealias R = RegistryRoutesTests

    static func check(_ client: any TestClientProtocol, _ body: JSONValue, auth: String = R.token("device")) async throws -> (
        HTTPResponse.Status, String?, String?
    ) {
        let reply = try await R.call(
            client,
            .post,
            "/registry/auth/device",
            body: String(decoding: CanonicalJSON.encode(body), as: UTF8.self),
            auth: auth
        )
        return (reply.status, reply.json?["result"]?.stringValue, reply.json?["reason"]?.stringValue)
    }

    static func deviceToken(_ path: String, key: String, expiry: Int64 = R.now + 600, host: String = R.host) -> String {
        SharedAccessSignature.make(resource: "\(host)/\(path)", key: key, keyName: nil, expiry: expiry)
    }

    @Test func sasTokensThumbprintsAndCA() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in
                let created = try await R.call(client, .put, "/devices/dev1", body: "{}")
                let key = try #require(created.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
                let secondary = try #require(created.json?["authentication"]?["symmetricKey"]?["secondaryKey"]?.stringValue)
                let module = try await R.call(client, .put, "/devices/dev1/modules/m1", body: "{}")
                let moduleKey = try #require(module.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
                _ = try await R.call(
                    client,
                    .put,
                    "/devices/cam",
                    body: #"{"authentication":{"x509Thumbprint":{"primaryThumbprint":"\#(String(repeating: "AB", count: 20))"}}}"#
                )
                _ = try await R.call(client, .put, "/devices/ca", body: #"{"authentication":{"type":"certificateAuthority"}}"#)

                func token(_ t: String, device: String = "dev1", module: String? = nil) -> JSONValue {
                    .object(["deviceId": .string(device), "moduleId": JSONValue(module), "token": .string(t)])
                }
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key))) == (.ok, "allow", nil))
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: secondary))) == (.ok, "allow", nil))
                #expect(
                    try await Self.check(client, token(Self.deviceToken("devices/dev1/modules/m1", key: moduleKey), module: "m1")) == (
                        .ok, "allow", nil
                    )
                )
                // Resource forms the SDKs do not send but the scope rules accept (the host in
                // another case, a trailing slash) take the general comparison, not the exact one.
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1/", key: key))) == (.ok, "allow", nil))
                #expect(
                    try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key, host: R.host.uppercased()))) == (.ok, "allow", nil)
                )
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev10", key: key))).2 == "wrongScope")
                // Denials with their reasons.
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: moduleKey))).2 == "badSignature")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key, expiry: R.now - 1))).2 == "expired")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/other", key: key))).2 == "wrongScope")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key, host: "evil.example"))).2 == "wrongScope")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key), module: "m1")).2 == "wrongScope")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/ghost", key: key), device: "ghost")).2 == "unknownIdentity")
                #expect(try await Self.check(client, token("SharedAccessSignature nonsense")).2 == "malformed")
                var tampered = Self.deviceToken("devices/dev1", key: key)
                tampered = tampered.replacingOccurrences(of: "se=\(R.now + 600)", with: "se=\(R.now + 6000)")
                #expect(try await Self.check(client, token(tampered)).2 == "badSignature")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/cam", key: key), device: "cam")).2 == "wrongCredentialType")
                // A gateway's policy token (DeviceConnect) covering every device.
                let policyKey = R.policies.first { $0.name == "device" }!.primaryKey
                let gateway = SharedAccessSignature.make(resource: "\(R.host)/devices", key: policyKey, keyName: "device", expiry: R.now + 60)
                #expect(try await Self.check(client, token(gateway)).1 == "allow")
                let noRight = SharedAccessSignature.make(
                    resource: "\(R.host)/devices",
                    key: R.policies.first { $0.name == "registryRead" }!.primaryKey,
                    keyName: "registryRead",
                    expiry: R.now + 60
                )
                #expect(try await Self.check(client, token(noRight)).2 == "badSignature")
                // Thumbprints and CA.
                #expect(
                    try await Self.check(client, .object(["deviceId": .string("cam"), "thumbprint": .string(String(repeating: "ab", count: 20))])).1
                        == "allow"
                )
                #expect(
                    try await Self.check(client, .object(["deviceId": .string("cam"), "thumbprint": .string(String(repeating: "cd", count: 20))])).2
                        == "badSignature"
                )
                #expect(try await Self.check(client, .object(["deviceId": .string("ca"), "certificateAuthority": .bool(true)])).1 == "allow")
                #expect(
                    try await Self.check(client, .object(["deviceId": .string("dev1"), "certificateAuthority": .bool(true)])).2
                        == "wrongCredentialType"
                )

                // Disabled: denied on the very next call; the module too.
                _ = try await R.call(client, .put, "/devices/dev1", body: #"{"status":"disabled"}"#, ifMatch: "*")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key))).2 == "disabled")
                #expect(
                    try await Self.check(client, token(Self.deviceToken("devices/dev1/modules/m1", key: moduleKey), module: "m1")).2 == "disabled"
                )
                // Deleted and re-created with a new key: the old token is refused.
                _ = try await R.call(client, .delete, "/devices/dev1")
                _ = try await R.call(client, .put, "/devices/dev1", body: "{}")
                #expect(try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key))).2 == "badSignature")
                // Only callers with DeviceConnect may ask.
                #expect(
                    try await Self.check(client, token(Self.deviceToken("devices/dev1", key: key)), auth: R.token("registryReadWrite")).0
                        == .unauthorized
                )
            }
            store.close()
        }
    }

    /// The contract's §2.3 step 5 through the route: a gateway's DeviceConnect policy token logs
    /// in sas devices and modules only; X.509 and `none` devices are refused.
    @Test func gatewayTokensAdmitOnlySASDevices() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in
                #expect(try await R.call(client, .put, "/devices/dev1", body: "{}").status == .ok)
                #expect(try await R.call(client, .put, "/devices/dev1/modules/m1", body: "{}").status == .ok)
                let thumbprint = String(repeating: "AB", count: 20)
                let selfSigned = #"{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"\#(thumbprint)"}}}"#
                #expect(try await R.call(client, .put, "/devices/cam", body: selfSigned).status == .ok)
                #expect(try await R.call(client, .put, "/devices/bare", body: #"{"authentication":{"type":"none"}}"#).status == .ok)
                #expect(try await R.call(client, .put, "/devices/ca", body: #"{"authentication":{"type":"certificateAuthority"}}"#).status == .ok)

                let device = R.policies.first { $0.name == "device" }!
                func gateway(_ path: String = "devices", key: String = device.primaryKey) -> String {
                    SharedAccessSignature.make(resource: "\(R.host)/\(path)", key: key, keyName: "device", expiry: R.now + 60)
                }
                func token(_ t: String, device: String, module: String? = nil) -> JSONValue {
                    .object(["deviceId": .string(device), "moduleId": JSONValue(module), "token": .string(t)])
                }
                // Allowed by the contract: sas identities, hub-wide or own scope, either key.
                let allowed: (HTTPResponse.Status, String?, String?) = (.ok, "allow", nil)
                #expect(try await Self.check(client, token(gateway(), device: "dev1")) == allowed)
                #expect(try await Self.check(client, token(gateway("devices/dev1", key: device.secondaryKey), device: "dev1")) == allowed)
                #expect(try await Self.check(client, token(gateway(), device: "dev1", module: "m1")) == allowed)
                let sasAnswer = try await R.call(
                    client,
                    .post,
                    "/registry/auth/device",
                    body: String(decoding: CanonicalJSON.encode(token(gateway(), device: "dev1")), as: UTF8.self),
                    auth: R.token("device")
                )
                #expect(sasAnswer.json?["authenticationType"]?.stringValue == "sas")
                // Refused: a valid gateway token does not log in an X.509 or `none` device.
                for deviceId in ["cam", "bare", "ca"] {
                    #expect(try await Self.check(client, token(gateway(), device: deviceId)) == (.ok, "deny", "wrongCredentialType"), "\(deviceId)")
                    #expect(
                        try await Self.check(client, token(gateway("devices/\(deviceId)"), device: deviceId)) == (.ok, "deny", "wrongCredentialType"),
                        "\(deviceId)"
                    )
                }
                // Those devices' own credentials still work.
                #expect(try await Self.check(client, .object(["deviceId": .string("cam"), "thumbprint": .string(thumbprint)])).1 == "allow")
                #expect(try await Self.check(client, .object(["deviceId": .string("ca"), "certificateAuthority": .bool(true)])).1 == "allow")
            }
            store.close()
        }
    }
}
