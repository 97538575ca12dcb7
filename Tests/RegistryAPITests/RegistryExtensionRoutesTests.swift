import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import RegistryAPI
import RegistryCore
import RegistryDelivery
import RegistryLMDB
import RegistryTesting
import Testing

/// Our `/registry/...` extensions at router level: the SSE event stream and route status.
struct RegistryExtensionRoutesTests {
    typealias R = RegistryRoutesTests

    func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, RegistryStore) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            var configuration = DeliveryConfiguration(
                endpoints: [.init(name: "audit", kind: .file(path: dir + "/out.jsonl", maxFileBytes: 1 << 20, maxFiles: 2))],
                routes: [.init(name: "all", source: .deviceLifecycleEvents, condition: .alwaysTrue, endpointName: "audit", isEnabled: true)]
            )
            configuration.retry.initialBackoffMs = 5
            let delivery = DeliveryService(store: store, hubName: "hub", configuration: configuration, logger: Logger(label: "t"))
            let authenticator = ServiceAuthenticator(hostName: R.host, policies: R.policies)
            let router = buildRouter(store: store, authenticator: authenticator, delivery: delivery, now: { R.now })
            try await Application(router: router).test(.router) { client in try await body(client, store) }
            store.close()
        }
    }

    func events(_ client: any TestClientProtocol, _ uri: String, lastEventId: String? = nil, auth: String = R.token()) async throws -> (
        HTTPResponse.Status, [(id: String, event: String, data: JSONValue)]
    ) {
        var headers: HTTPFields = [.authorization: auth]
        if let lastEventId { headers[HTTPField.Name("Last-Event-ID")!] = lastEventId }
        return try await client.execute(uri: uri, method: .get, headers: headers) { response in
            let text = String(buffer: response.body)
            let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.compactMap { block -> (String, String, JSONValue)? in
                var fields: [String: String] = [:]
                for line in block.split(separator: "\n") {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    fields[String(line[..<colon])] = String(line[line.index(colon, offsetBy: 2)...])
                }
                guard let id = fields["id"], let event = fields["event"], let data = fields["data"], let json = try? JSONParser.parse(data) else {
                    return nil
                }
                return (id, event, json)
            }
            return (response.status, events)
        }
    }

    @Test func eventStreamServesMessagesAndResumes() async throws {
        try await withAPI { client, store in
            for id in ["a", "b"] { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: id)), actor: "t", requestId: id) }
            _ = try await store.execute(.replaceDevice(DeviceSpec(deviceId: "a", status: .disabled), ifMatch: .any), actor: "t", requestId: "u")
            _ = try await store.execute(.deleteDevice(deviceId: "b", ifMatch: .any), actor: "t", requestId: "d")

            let (status, lifecycle) = try await events(client, "/registry/events?from=1&limit=3")
            #expect(status == .ok)
            #expect(lifecycle.map(\.id) == ["hub-1", "hub-2", "hub-4"])  // the update is not a lifecycle event
            #expect(lifecycle.map(\.event) == ["createDeviceIdentity", "createDeviceIdentity", "deleteDeviceIdentity"])
            #expect(lifecycle[0].data["body"]?["deviceId"] == .string("a"))

            let (_, changes) = try await events(client, "/registry/events?source=DeviceIdentityChangeEvents&limit=2", lastEventId: "hub-2")
            #expect(changes.map(\.id) == ["hub-3", "hub-4"])
            #expect(changes[0].data["body"]?["status"] == .string("disabled"))

            let (_, filtered) = try await events(
                client,
                "/registry/events?from=1&limit=1&condition=" + "opType = 'deleteDeviceIdentity'".addingPercentEncoding(
                    withAllowedCharacters: .alphanumerics
                )!
            )
            #expect(filtered.map(\.id) == ["hub-4"])

            #expect(try await events(client, "/registry/events?from=1&limit=1", auth: R.token("registryRead")).0 == .unauthorized)
            #expect(try await events(client, "/registry/events?from=1&limit=1", auth: R.token("service")).0 == .ok)
            #expect(try await events(client, "/registry/events?source=Nope").0 == .badRequest)
            #expect(try await events(client, "/registry/events?condition=opType%20%3D").0 == .badRequest)
        }
    }

    @Test func routeStatusAndAdministration() async throws {
        try await withAPI { client, _ in
            let routes = try await R.call(client, .get, "/registry/routes")
            #expect(routes.status == .ok)
            let first = try #require(routes.json?.arrayValue?.first)
            #expect(first["name"] == .string("all"))
            #expect(first["endpointType"] == .string("file"))
            #expect(first["health"] == .string("healthy"))
            #expect(try await R.call(client, .get, "/registry/routes/all/parked").json == .array([]))
            R.expectAzureError(try await R.call(client, .get, "/registry/routes/nope/parked"), .notFound, "RouteNotFound")
            R.expectAzureError(
                try await R.call(client, .post, "/registry/routes/all/enable", auth: R.token("registryRead")),
                .unauthorized,
                "IotHubUnauthorizedAccess"
            )
            #expect(try await R.call(client, .post, "/registry/routes/all/parked/redeliver").status == .accepted)
            #expect(try await R.call(client, .post, "/registry/routes/all/enable").status == .ok)
        }
    }
}
