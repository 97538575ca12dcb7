import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// `DeviceAuthenticator` against a real store: which identity types a gateway's policy token may
/// log in (the contract's §2.3, step 5: only `sas` ones).
struct DeviceAuthenticatorTests {
    static let host = "registry.test"
    static let now: Int64 = 1_800_000_000
    static let gateway = SharedAccessPolicy(
        name: "gateway",
        rights: .deviceConnect,
        primaryKey: Data(repeating: 1, count: 32).base64EncodedString(),
        secondaryKey: Data(repeating: 2, count: 32).base64EncodedString()
    )
    static let authenticator = DeviceAuthenticator(hostName: host) { $0 == gateway.name ? gateway : nil }

    /// A store holding a device of each authentication type (and a module of the sas one).
    static func storeWithDevices(_ dir: String) async throws -> RegistryStore {
        let store = try makeStore(dir)
        for spec in [
            DeviceSpec(deviceId: "sas"),
            DeviceSpec(
                deviceId: "selfSigned",
                authentication: AuthenticationSpec(type: .selfSigned, primaryThumbprint: String(repeating: "ab", count: 20))
            ),
            DeviceSpec(deviceId: "none", authentication: AuthenticationSpec(type: AuthenticationType.none)),
            DeviceSpec(deviceId: "ca", authentication: AuthenticationSpec(type: .certificateAuthority)),
        ] {
            _ = try await store.execute(.createDevice(spec), actor: "test", requestId: spec.deviceId)
        }
        _ = try await store.execute(.createModule(ModuleSpec(deviceId: "sas", moduleId: "m")), actor: "test", requestId: "m")
        return store
    }

    static func gatewayToken(_ path: String = "devices", key: String = gateway.primaryKey) -> DeviceCredentials.Credential {
        .token(SharedAccessSignature.make(resource: "\(host)/\(path)", key: key, keyName: gateway.name, expiry: now + 60))
    }

    @Test func aGatewayTokenAdmitsOnlySASIdentities() async throws {
        try await withTemporaryDirectory { dir in
            let store = try await Self.storeWithDevices(dir)
            func check(_ deviceId: String, module: String? = nil, _ credential: DeviceCredentials.Credential = Self.gatewayToken()) throws
                -> DeviceAuthDecision
            {
                try Self.authenticator.check(
                    DeviceCredentials(deviceId: deviceId, moduleId: module, credential: credential),
                    storage: store.storage,
                    now: Self.now
                )
            }
            // What the contract allows: a sas device or module, with either policy key, with the
            // hub-wide scope or the identity's own.
            #expect(try check("sas") == .allow(.sas))
            #expect(try check("sas", Self.gatewayToken(key: Self.gateway.secondaryKey)) == .allow(.sas))
            #expect(try check("sas", Self.gatewayToken("devices/sas")) == .allow(.sas))
            #expect(try check("sas", module: "m") == .allow(.sas))
            #expect(try check("sas", module: "m", Self.gatewayToken("devices/sas/modules/m")) == .allow(.sas))
            // Step 5: X.509 and `none` identities are refused, however well signed the token is.
            for deviceId in ["selfSigned", "none", "ca"] {
                #expect(try check(deviceId) == .deny(.wrongCredentialType), "\(deviceId)")
                #expect(try check(deviceId, Self.gatewayToken("devices/\(deviceId)")) == .deny(.wrongCredentialType), "\(deviceId)")
            }
            // A bad signature stays a bad signature whatever the identity's type (step 4 first).
            let wrongKey = Data(repeating: 9, count: 32).base64EncodedString()
            #expect(try check("selfSigned", Self.gatewayToken(key: wrongKey)) == .deny(.badSignature))
            #expect(try check("sas", Self.gatewayToken(key: wrongKey)) == .deny(.badSignature))
            // The certificate paths those identities do have still work.
            #expect(try check("selfSigned", .thumbprint(String(repeating: "AB", count: 20))) == .allow(.selfSigned))
            #expect(try check("ca", .certificateAuthority) == .allow(.certificateAuthority))
            store.close()
        }
    }
}
