import Foundation
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryTesting
import Testing

/// Brokers asking about topics at router level: EMQX's HTTP authorization contract.
struct TopicAuthorizationRouteTests {
    typealias R = RegistryRoutesTests
    typealias C = ConnectionRoutesTests

    static func emqx(_ client: any TestClientProtocol, _ fields: [String: String], auth: String = R.token("device")) async throws -> R.Reply {
        let body = String(decoding: CanonicalJSON.encode(.object(fields.mapValues(JSONValue.string))), as: UTF8.self)
        return try await R.call(client, .post, "/registry/auth/emqx/authorize", body: body, auth: auth)
    }

    /// EMQX's question for the client `id` (`dev` or `dev/module`, logged in by Azure's convention).
    static func ask(_ client: any TestClientProtocol, _ action: String, _ topic: String, as id: String = "dev1") async throws -> String? {
        try await result(client, username: "hub.example.com/\(id)/?api-version=2021-04-12", clientId: id, action: action, topic: topic)
    }

    static func result(_ client: any TestClientProtocol, username: String, clientId: String, action: String, topic: String) async throws -> String? {
        let reply = try await emqx(client, ["username": username, "clientid": clientId, "action": action, "topic": topic])
        #expect(reply.status == .ok, "EMQX treats non-2xx as 'ignore'")
        return reply.json?["result"]?.stringValue
    }

    @Test func emqxAuthorizationAllowsOnlyTheIdentitysOwnTopics() async throws {
        try await C.withAPI { client, _, _ in
            _ = try await R.call(client, .put, "/devices/dev1", body: "{}")
            _ = try await R.call(client, .put, "/devices/dev1/modules/m1", body: "{}")
            _ = try await R.call(client, .put, "/devices/dev2", body: "{}")
            let user = "hub.example.com/dev1/?api-version=2021-04-12"
            #expect(try await Self.ask(client, "publish", "devices/dev1/messages/events/a=1") == "allow")
            #expect(try await Self.ask(client, "subscribe", "devices/dev1/messages/devicebound/#") == "allow")
            #expect(try await Self.ask(client, "publish", "devices/dev2/messages/events/") == "deny")
            #expect(try await Self.ask(client, "subscribe", "devices/+/messages/devicebound/#") == "deny")
            // $iothub topics are shared on the broker unless deviceAuth.sessionTopics says otherwise.
            #expect(try await Self.ask(client, "subscribe", "$iothub/twin/res/#") == "deny")
            // The module, by its own client id.
            #expect(
                try await Self.ask(client, "publish", "devices/dev1/modules/m1/messages/events/", as: "dev1/m1")
                    == "allow"
            )
            #expect(try await Self.ask(client, "publish", "devices/dev1/messages/events/", as: "dev1/m1") == "deny")
            // Malformed questions are denied, still with 200.
            #expect(
                try await Self.result(client, username: user, clientId: "dev2", action: "publish", topic: "devices/dev1/messages/events/") == "deny"
            )
            #expect(try await Self.ask(client, "all", "devices/dev1/messages/events/") == "deny")
            #expect(try await Self.emqx(client, ["username": user, "clientid": "dev1", "action": "publish"]).json?["result"]?.stringValue == "deny")
            // An unknown or disabled identity is denied even on its own topics.
            #expect(
                try await Self.ask(client, "publish", "devices/ghost/messages/events/", as: "ghost")
                    == "deny"
            )
            _ = try await R.call(client, .put, "/devices/dev1", body: #"{"status":"disabled"}"#, ifMatch: "*")
            #expect(try await Self.ask(client, "publish", "devices/dev1/messages/events/") == "deny")
            // DeviceConnect is required.
            let refused = try await Self.emqx(
                client,
                ["username": user, "clientid": "dev1", "action": "publish", "topic": "devices/dev1/messages/events/"],
                auth: R.token("registryRead")
            )
            #expect(refused.status == .unauthorized)
        }
    }

    @Test func sessionTopicsWhenTheBrokerKeepsThemPerClient() async throws {
        try await C.withAPI(deviceAuth: .init(hostNames: ["hub.example.com"], sessionTopics: true)) { client, _, _ in
            _ = try await R.call(client, .put, "/devices/dev1", body: "{}")
            #expect(try await Self.ask(client, "subscribe", "$iothub/twin/res/#") == "allow")
            #expect(try await Self.ask(client, "publish", "$iothub/twin/GET/?$rid=1") == "allow")
            #expect(try await Self.ask(client, "publish", "$iothub/twin/res/200") == "deny")
        }
    }
}
