import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryTesting
import Testing

/// RabbitMQ's HTTP auth backend at router level: the four paths as the broker posts them
/// (form-encoded, HTTP Basic with a DeviceConnect token as password, plain-text answers).
struct RabbitMQAuthRoutesTests {
    typealias R = RegistryRoutesTests
    typealias C = ConnectionRoutesTests

    /// The Authorization header RabbitMQ sends for `https://device:TOKEN@host/…`: the password
    /// as written in the URL, percent-encoded.
    static func basic(_ token: String = R.token("device")) -> String {
        let encoded = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token
        return "Basic " + Data("device:\(encoded)".utf8).base64EncodedString()
    }

    static func form(_ fields: [String: String]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.sorted { $0.key < $1.key }
            .map {
                "\($0.key.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)"
            }
            .joined(separator: "&")
    }

    /// The broker's question; answers the status and the plain-text body.
    static func ask(_ client: any TestClientProtocol, _ path: String, _ fields: [String: String], auth: String = basic()) async throws -> Answer {
        var headers = HTTPFields()
        headers[.authorization] = auth
        headers[.contentType] = "application/x-www-form-urlencoded"
        return try await client.execute(
            uri: "/registry/auth/rabbitmq/\(path)",
            method: .post,
            headers: headers,
            body: ByteBuffer(string: form(fields))
        ) { response in Answer(status: response.status, text: String(buffer: response.body)) }
    }

    struct Answer: Equatable {
        var status: HTTPResponse.Status
        var text: String
    }

    static let user = "hub.example.com/dev1/?api-version=2021-04-12&DeviceClientType=py-azure-iot-device%2F2.14.0"

    @Test func theFourPathsDecideAsTheBrokerNeeds() async throws {
        try await C.withAPI { client, _, _ in
            let created = try await R.call(client, .put, "/devices/dev1", body: "{}")
            let key = try #require(created.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            _ = try await R.call(client, .put, "/devices/dev2", body: "{}")
            let token = DeviceAuthRouteTests.deviceToken("devices/dev1", key: key, host: "hub.example.com")
            func login(username: String = Self.user, password: String = token, clientId: String = "dev1") async throws -> String {
                try await Self.ask(client, "user", ["username": username, "password": password, "client_id": clientId, "vhost": "/"]).text
            }
            #expect(try await login() == "allow")
            #expect(try await login(clientId: "dev2") == "deny", "the broker does not check the client id against the user name")
            #expect(try await login(password: "SharedAccessSignature sr=x&sig=y&se=1") == "deny")
            #expect(try await login(username: "other.example.com/dev1/?api-version=2021-04-12") == "deny")
            #expect(try await Self.ask(client, "user", ["username": Self.user]).text == "deny")

            #expect(try await Self.ask(client, "vhost", ["username": Self.user, "vhost": "/", "client_id": "dev1"]).text == "allow")
            #expect(try await Self.ask(client, "vhost", ["username": Self.user, "vhost": "other", "client_id": "dev1"]).text == "deny")

            func resource(_ kind: String, _ name: String, _ permission: String) async throws -> String {
                let fields = ["username": Self.user, "vhost": "/", "client_id": "dev1", "resource": kind, "name": name, "permission": permission]
                return try await Self.ask(client, "resource", fields).text
            }
            #expect(try await resource("exchange", "amq.topic", "write") == "allow")
            #expect(try await resource("exchange", "amq.topic", "read") == "allow")
            #expect(try await resource("exchange", "amq.topic", "configure") == "deny")
            #expect(try await resource("exchange", "amq.direct", "write") == "deny")
            #expect(try await resource("queue", "mqtt-subscription-dev1qos1", "configure") == "allow")
            #expect(try await resource("queue", "mqtt-subscription-dev2qos1", "read") == "deny")
            #expect(try await resource("queue", "amq.gen-1", "read") == "deny")

            func topic(_ routingKey: String, _ permission: String, as username: String = Self.user, clientId: String = "dev1") async throws -> String
            {
                let fields = [
                    "username": username, "vhost": "/", "resource": "topic", "name": "amq.topic", "permission": permission,
                    "routing_key": routingKey, "variable_map.client_id": clientId, "variable_map.username": username,
                ]
                return try await Self.ask(client, "topic", fields).text
            }
            #expect(try await topic("devices.dev1.messages.events.", "write") == "allow")
            #expect(try await topic("devices.dev1.messages.events.%24.ct=application%2Fjson", "write") == "allow")
            #expect(try await topic("devices.dev2.messages.events.", "write") == "deny")
            #expect(try await topic("devices.dev1.messages.devicebound.#", "read") == "allow")
            #expect(try await topic("devices.*.messages.devicebound.#", "read") == "deny")
            #expect(try await topic("devices.dev1.messages.devicebound.#", "write") == "deny")
            #expect(try await topic("#", "read") == "deny")
            // Shared by every client on RabbitMQ.
            #expect(try await topic("$iothub.twin.res.#", "read") == "deny")
            #expect(try await topic("$iothub.methods.POST.#", "read") == "deny")
        }
    }

    /// Form bodies as RabbitMQ's HTTP client writes them: spaces as `+`, everything else
    /// percent-encoded; a body that is not a form, or names a field twice, is a deny.
    @Test func formBodiesAreReadByTheByte() async throws {
        try await C.withAPI { client, _, _ in
            let created = try await R.call(client, .put, "/devices/dev1", body: "{}")
            let key = try #require(created.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            let token = DeviceAuthRouteTests.deviceToken("devices/dev1", key: key, host: "hub.example.com")
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~ ")
            let password = token.addingPercentEncoding(withAllowedCharacters: allowed)!.replacingOccurrences(of: " ", with: "+")
            let user = Self.user.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            func raw(_ body: String) async throws -> String {
                var headers = HTTPFields()
                headers[.authorization] = Self.basic()
                return try await client.execute(uri: "/registry/auth/rabbitmq/user", method: .post, headers: headers, body: ByteBuffer(string: body))
                {
                    String(buffer: $0.body)
                }
            }
            #expect(try await raw("username=\(user)&password=\(password)&client_id=dev1&vhost=%2F") == "allow")
            #expect(try await raw("username=\(user)&password=\(password)&client_id=dev1&client_id=dev1") == "deny", "a field twice")
            #expect(try await raw("username=\(user)&password=\(password)%G1&client_id=dev1") == "deny", "not percent-encoding")
            #expect(try await raw("username=\(user)&password=%FF&client_id=dev1") == "deny", "not UTF-8")
            #expect(try await raw("{\"username\": \"x\"}") == "deny", "not a form")
        }
    }

    @Test func idsARoutingKeyCannotTellApartAreNeverAllowedATopic() async throws {
        try await C.withAPI { client, _, _ in
            // Device `a.modules.b` writes the routing key of module `b` of device `a`.
            _ = try await R.call(client, .put, "/devices/a.modules.b", body: "{}")
            _ = try await R.call(client, .put, "/devices/st*r", body: "{}")
            for (id, key) in [("a.modules.b", "devices.a.modules.b.messages.events."), ("st*r", "devices.st*r.messages.events.")] {
                let username = "hub.example.com/\(id)/?api-version=2021-04-12"
                let fields = [
                    "username": username, "vhost": "/", "resource": "topic", "name": "amq.topic", "permission": "write",
                    "routing_key": key, "variable_map.client_id": id,
                ]
                #expect(try await Self.ask(client, "topic", fields).text == "deny", "\(id)")
            }
        }
    }

    @Test func theBrokerMustPresentADeviceConnectToken() async throws {
        try await C.withAPI { client, _, _ in
            let fields = ["username": Self.user, "vhost": "/", "client_id": "dev1"]
            let answer1 = try await Self.ask(client, "vhost", fields)
            #expect(answer1.status == .ok)
            let answer2 = try await Self.ask(client, "vhost", fields, auth: Self.basic(R.token("registryRead")))
            #expect(answer2.status == .unauthorized)
            let answer3 = try await Self.ask(client, "vhost", fields, auth: "Basic " + Data("device:nonsense".utf8).base64EncodedString())
            #expect(answer3.status == .unauthorized)
            let answer4 = try await Self.ask(client, "vhost", fields, auth: "Basic !!")
            #expect(answer4.status == .unauthorized)
            // The token also works as it is, in the usual header.
            #expect(try await Self.ask(client, "vhost", fields, auth: R.token("device")).text == "allow")
        }
    }

    @Test func offWhenTheOperatorSaysSo() async throws {
        try await C.withAPI(deviceAuth: .init(hostNames: ["hub.example.com"], rabbitmq: false)) { client, _, _ in
            let answer5 = try await Self.ask(client, "vhost", ["username": Self.user, "vhost": "/", "client_id": "dev1"])
            #expect(answer5.status == .notFound)
        }
    }
}
