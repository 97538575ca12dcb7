import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Broker-facing routes: EMQX's HTTP authenticator contract and connection-state reports.
struct ConnectionRoutesTests {
    typealias R = RegistryRoutesTests

    static func withAPI(
        deviceAuth: DeviceAuthConfiguration = .init(hostNames: ["hub.example.com"]),
        _ body: @escaping @Sendable (any TestClientProtocol, RegistryStore, String) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(
                store: store,
                authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies),
                configuration: RegistryAPIConfiguration(deviceAuth: deviceAuth),
                now: { R.now }
            )
            try await Application(router: router).test(.router) { client in try await body(client, store, dir) }
            store.close()
        }
    }

    static func emqx(_ client: any TestClientProtocol, username: String, password: String, clientId: String, auth: String = R.token("device"))
        async throws -> R.Reply
    {
        let body: JSONValue = .object(["username": .string(username), "password": .string(password), "clientid": .string(clientId)])
        return try await R.call(client, .post, "/registry/auth/emqx", body: String(decoding: CanonicalJSON.encode(body), as: UTF8.self), auth: auth)
    }

    static func report(_ client: any TestClientProtocol, _ body: String, auth: String = R.token("device")) async throws -> R.Reply {
        try await R.call(client, .post, "/registry/connections", body: body, auth: auth)
    }

    @Test func emqxAuthenticatorFollowsAzureMQTTConvention() async throws {
        try await Self.withAPI { client, _, _ in
            let created = try await R.call(client, .put, "/devices/dev1", body: "{}")
            let key = try #require(created.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            let module = try await R.call(client, .put, "/devices/dev1/modules/m1", body: "{}")
            let moduleKey = try #require(module.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            // Devices name the broker's public host (deviceAuth.hostNames) in tokens and user names.
            let token = DeviceAuthRouteTests.deviceToken("devices/dev1", key: key, host: "hub.example.com")
            let allowed = try await Self.emqx(client, username: "hub.example.com/dev1/?api-version=2021-04-12", password: token, clientId: "dev1")
            #expect(allowed.status == .ok)
            #expect(allowed.json?["result"]?.stringValue == "allow")
            #expect(allowed.json?["is_superuser"] == .bool(false))
            #expect(allowed.json?["expire_at"]?.intValue == R.now + 600)
            let moduleToken = DeviceAuthRouteTests.deviceToken("devices/dev1/modules/m1", key: moduleKey)
            let moduleAllowed = try await Self.emqx(
                client,
                username: "\(R.host)/dev1/m1/?api-version=2021-04-12",
                password: moduleToken,
                clientId: "dev1/m1"
            )
            #expect(moduleAllowed.json?["result"]?.stringValue == "allow")

            func denial(username: String, password: String = token, clientId: String = "dev1") async throws -> String? {
                let reply = try await Self.emqx(client, username: username, password: password, clientId: clientId)
                #expect(reply.status == .ok, "EMQX treats non-2xx as 'ignore'")
                #expect(reply.json?["result"]?.stringValue == "deny")
                return reply.json?["reason"]?.stringValue
            }
            // A client id that is not the user name's identity, or a user name off the convention.
            #expect(try await denial(username: "hub.example.com/dev1/?api-version=2021-04-12", clientId: "dev2") == "malformed")
            #expect(try await denial(username: "hub.example.com/dev1/m1/?api-version=2021-04-12", clientId: "dev1") == "malformed")
            #expect(try await denial(username: "dev1") == "malformed")
            #expect(try await denial(username: "other.example.com/dev1/?api-version=2021-04-12") == "wrongScope")
            #expect(try await denial(username: "hub.example.com/dev1/?api-version=2021-04-12", password: "") == "malformed")
            #expect(try await denial(username: "hub.example.com/dev1/?api-version=2021-04-12", password: moduleToken) == "wrongScope")
            // Disabled on the very next call.
            _ = try await R.call(client, .put, "/devices/dev1", body: #"{"status":"disabled"}"#, ifMatch: "*")
            #expect(try await denial(username: "hub.example.com/dev1/?api-version=2021-04-12") == "disabled")
            // The caller needs DeviceConnect.
            let refused = try await Self.emqx(
                client,
                username: "hub.example.com/dev1/",
                password: token,
                clientId: "dev1",
                auth: R.token("registryReadWrite")
            )
            #expect(refused.status == .unauthorized)
        }
    }

    @Test func emqxModeCanBeTurnedOff() async throws {
        try await Self.withAPI(deviceAuth: .init(emqx: false, connectionReports: false)) { client, _, _ in
            let emqx = try await Self.emqx(client, username: "a/b/", password: "x", clientId: "b")
            #expect(emqx.status == .notFound)
            let report = try await Self.report(client, #"{"deviceId":"d","state":"connected"}"#)
            #expect(report.status == .notFound)
        }
    }

    @Test func connectReportsSetStateWithoutChangingTheEtag() async throws {
        try await Self.withAPI { client, store, dir in
            let created = try await R.call(client, .put, "/devices/dev1", body: "{}")
            let etag = try #require(created.json?["etag"]?.stringValue)
            _ = try await R.call(client, .put, "/devices/dev1/modules/m1", body: "{}")
            _ = try await R.call(client, .put, "/devices/dev2", body: "{}")

            let reply = try await Self.report(client, #"{"deviceId":"dev1","state":"connected","time":"2025-06-15T10:00:00Z"}"#)
            #expect(reply.status == .ok)
            #expect(reply.json?["recorded"]?.intValue == 1)
            let device = try await R.call(client, .get, "/devices/dev1")
            #expect(device.json?["connectionState"]?.stringValue == "Connected")
            #expect(device.json?["connectionStateUpdatedTime"]?.stringValue == "2025-06-15T10:00:00.0000000Z")
            #expect(device.json?["lastActivityTime"]?.stringValue == "2025-06-15T10:00:00.0000000Z")
            #expect(device.json?["etag"]?.stringValue == etag)
            #expect(try await R.call(client, .get, "/statistics/service").json?["connectedDeviceCount"]?.intValue == 1)
            // A pending conditional update made before the connect still succeeds.
            let updated = try await R.call(client, .put, "/devices/dev1", body: #"{"statusReason":"maintenance"}"#, ifMatch: "\"\(etag)\"")
            #expect(updated.status == .ok)
            #expect(updated.json?["connectionState"]?.stringValue == "Connected", "an identity update keeps the runtime state")

            // EMQX rule-engine events, in a batch with a module and an error.
            let batch = try await Self.report(
                client,
                """
                [{"event":"client.connected","clientid":"dev2","connected_at":1750000000000},
                 {"event":"client.connected","clientid":"dev1/m1","connected_at":1750000000000},
                 {"deviceId":"ghost","state":"connected"},
                 {"deviceId":"dev1","state":"disconnected","time":"2025-06-15T09:00:00Z"}]
                """
            )
            #expect(batch.status == .ok, "\(String(describing: batch.json))")
            #expect(batch.json?["recorded"]?.intValue == 2)
            #expect(batch.json?["stale"]?.intValue == 1, "a report older than the recorded state changes nothing")
            guard case .array(let errors)? = batch.json?["errors"] else { Issue.record("no errors array"); return }
            #expect(errors.count == 1)
            #expect(errors.first?["errorCode"]?.stringValue == "DeviceNotFound")
            #expect(errors.first?["index"]?.intValue == 2)
            #expect(try await R.call(client, .get, "/devices/dev1").json?["connectionState"]?.stringValue == "Connected")
            let module = try await R.call(client, .get, "/devices/dev1/modules/m1")
            #expect(module.json?["connectionState"]?.stringValue == "Connected")
            #expect(try await R.call(client, .get, "/statistics/service").json?["connectedDeviceCount"]?.intValue == 2)

            // Disconnect and delete both leave the count right.
            _ = try await Self.report(client, #"{"event":"client.disconnected","clientid":"dev2","disconnected_at":1750000100000}"#)
            #expect(try await R.call(client, .get, "/devices/dev2").json?["connectionState"]?.stringValue == "Disconnected")
            _ = try await R.call(client, .delete, "/devices/dev1")
            #expect(try await R.call(client, .get, "/statistics/service").json?["connectedDeviceCount"]?.intValue == 0)

            // A single report answers its error; a malformed one writes nothing; DeviceConnect is needed.
            R.expectAzureError(try await Self.report(client, #"{"deviceId":"ghost","state":"connected"}"#), .notFound, "DeviceNotFound")
            R.expectAzureError(try await Self.report(client, #"{"deviceId":"dev2","state":"sleeping"}"#), .badRequest, "ArgumentInvalid")
            let headBefore = try store.storage.head().seq
            R.expectAzureError(
                try await Self.report(client, #"[{"deviceId":"dev2","state":"connected"},{"deviceId":"dev2","time":"x","state":"connected"}]"#),
                .badRequest,
                "ArgumentInvalid"
            )
            #expect(try store.storage.head().seq == headBefore)
            #expect(
                try await Self.report(client, #"{"deviceId":"dev2","state":"connected"}"#, auth: R.token("registryReadWrite")).status == .unauthorized
            )
            // The log replays to the same projections (connection events included).
            #expect(try verifyReplay(dir).outcome == .clean)
        }
    }
}
