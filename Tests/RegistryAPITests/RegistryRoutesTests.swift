import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Router-level tests (no socket): every status-code path and validation rule of the API.
struct RegistryRoutesTests {
    static let host = "registry.test:8443"
    static let now: Int64 = 1_800_000_000
    static let policies: [SharedAccessPolicy] = {
        var random = SeededRandom(seed: 7)
        return SharedAccessPolicy.builtIn(random: &random)
    }()

    static func token(_ policy: String = "iothubowner", expiry: Int64 = now + 3600, host: String = host, key: String? = nil) -> String {
        let p = policies.first { $0.name == policy }!
        return SharedAccessSignature.make(resource: host, key: key ?? p.primaryKey, keyName: policy, expiry: expiry)
    }

    /// Runs `body` against a router over a fresh store.
    func withAPI(limits: RegistryLimits = .init(), maxBody: Int = 4096, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void)
        async throws
    {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir, limits: limits)
            let authenticator = ServiceAuthenticator(hostName: Self.host, policies: Self.policies)
            let router = buildRouter(
                store: store,
                authenticator: authenticator,
                configuration: RegistryAPIConfiguration(maxRequestBodyBytes: maxBody),
                now: { Self.now }
            )
            let app = Application(router: router)
            try await app.test(.router) { client in try await body(client) }
            store.close()
        }
    }

    struct Reply: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var json: JSONValue?
        var errorCode: String? { headers[HTTPField.Name("iothub-errorcode")!] }
    }

    @discardableResult
    static func call(
        _ client: any TestClientProtocol,
        _ method: HTTPRequest.Method,
        _ uri: String,
        body: String? = nil,
        ifMatch: String? = nil,
        auth: String? = token()
    ) async throws -> Reply {
        var headers = HTTPFields()
        if let auth { headers[.authorization] = auth }
        if let ifMatch { headers[.ifMatch] = ifMatch }
        if body != nil { headers[.contentType] = "application/json; charset=utf-8" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            let bytes = Array(response.body.readableBytesView)
            return Reply(status: response.status, headers: response.headers, json: bytes.isEmpty ? nil : try? JSONParser.parse(bytes))
        }
    }

    static func expectAzureError(_ reply: Reply, _ status: HTTPResponse.Status, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == status, sourceLocation: sourceLocation)
        #expect(reply.errorCode == code, sourceLocation: sourceLocation)
        #expect(reply.headers[.contentType] == "application/json; charset=utf-8", sourceLocation: sourceLocation)
        #expect(reply.json?["Message"]?.stringValue?.hasPrefix("ErrorCode:\(code);") == true, sourceLocation: sourceLocation)
        #expect(reply.json?["ExceptionMessage"]?.stringValue?.hasPrefix("Tracking ID:") == true, sourceLocation: sourceLocation)
    }

    // MARK: authentication

    @Test func everyRouteButHealthNeedsAValidToken() async throws {
        try await withAPI { client in
            #expect(try await Self.call(client, .get, "/healthz", auth: nil).status == .ok)
            #expect(try await Self.call(client, .get, "/readyz", auth: nil).status == .ok)
            for (uri, auth) in [
                ("/devices", nil),
                ("/devices", "Bearer abc"),
                ("/devices", "SharedAccessSignature sr=x"),
                ("/devices", Self.token(expiry: Self.now - 1)),  // expired a second ago: no grace
                ("/devices", Self.token(host: "other.host")),
                ("/devices", Self.token(key: Data(repeating: 9, count: 32).base64EncodedString())),
                ("/statistics/devices", Self.token().replacingOccurrences(of: "skn=iothubowner", with: "skn=nobody")),
            ] as [(String, String?)] {
                Self.expectAzureError(try await Self.call(client, .get, uri, auth: auth), .unauthorized, "IotHubUnauthorizedAccess")
            }
            // Expiring exactly now is still valid; the secondary key works; the host matches case-insensitively.
            #expect(try await Self.call(client, .get, "/devices", auth: Self.token(expiry: Self.now)).status == .ok)
            let owner = Self.policies.first { $0.name == "iothubowner" }!
            #expect(try await Self.call(client, .get, "/devices", auth: Self.token(key: owner.secondaryKey)).status == .ok)
            #expect(try await Self.call(client, .get, "/devices", auth: Self.token(host: "REGISTRY.test:8443")).status == .ok)
        }
    }

    @Test func rightsArePerOperation() async throws {
        try await withAPI { client in
            let read = Self.token("registryRead")
            #expect(try await Self.call(client, .get, "/devices", auth: read).status == .ok)
            #expect(try await Self.call(client, .get, "/statistics/devices", auth: read).status == .ok)
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: "{}", auth: read), .unauthorized, "IotHubUnauthorizedAccess")
            Self.expectAzureError(try await Self.call(client, .get, "/statistics/service", auth: read), .unauthorized, "IotHubUnauthorizedAccess")
            #expect(try await Self.call(client, .put, "/devices/d", body: "{}", auth: Self.token("registryReadWrite")).status == .ok)
            #expect(try await Self.call(client, .get, "/devices/d", auth: Self.token("registryReadWrite")).status == .ok)
            #expect(try await Self.call(client, .get, "/statistics/service", auth: Self.token("service")).status == .ok)
            Self.expectAzureError(
                try await Self.call(client, .get, "/devices", auth: Self.token("service")),
                .unauthorized,
                "IotHubUnauthorizedAccess"
            )
            Self.expectAzureError(
                try await Self.call(client, .get, "/devices", auth: Self.token("device")),
                .unauthorized,
                "IotHubUnauthorizedAccess"
            )
        }
    }

    // MARK: devices

    @Test func deviceLifecycleStatusCodes() async throws {
        try await withAPI { client in
            let created = try await Self.call(
                client,
                .put,
                "/devices/dev-1?api-version=2021-04-12",
                body: #"{"deviceId":"dev-1","status":"enabled"}"#
            )
            #expect(created.status == .ok)  // 200, not 201: the SDKs refuse 201
            let etag = try #require(created.json?["etag"]?.stringValue)
            #expect(created.headers[.eTag] == "\"\(etag)\"")
            #expect(created.json?["authentication"]?["type"] == .string("sas"))
            #expect(created.json?["statusUpdatedTime"] == .string("0001-01-01T00:00:00Z"))
            #expect(created.json?["connectionState"] == .string("Disconnected"))
            let generation = try #require(created.json?["generationId"]?.stringValue)
            #expect(Int64(generation) != nil)

            let fetched = try await Self.call(client, .get, "/devices/dev-1")
            #expect(fetched.status == .ok)
            #expect(fetched.json == created.json)  // read-your-writes

            Self.expectAzureError(try await Self.call(client, .put, "/devices/dev-1", body: "{}"), .conflict, "DeviceAlreadyExists")
            Self.expectAzureError(
                try await Self.call(client, .put, "/devices/dev-1", body: #"{"status":"disabled"}"#, ifMatch: "\"c3RhbGU=\""),
                .preconditionFailed,
                "PreconditionFailed"
            )
            Self.expectAzureError(try await Self.call(client, .put, "/devices/ghost", body: "{}", ifMatch: "\"*\""), .notFound, "DeviceNotFound")

            let disabled = try await Self.call(
                client,
                .put,
                "/devices/dev-1",
                body: #"{"status":"disabled","statusReason":"lost"}"#,
                ifMatch: "W/\"\(etag)\""
            )
            #expect(disabled.status == .ok)
            #expect(disabled.json?["status"] == .string("disabled"))
            let statusTime = try #require(disabled.json?["statusUpdatedTime"]?.stringValue)
            #expect(statusTime.count == 28 && statusTime.hasSuffix("Z"))  // 7 fractional digits
            #expect(disabled.json?["authentication"]?["symmetricKey"] == created.json?["authentication"]?["symmetricKey"])
            let etag2 = try #require(disabled.json?["etag"]?.stringValue)
            #expect(etag2 != etag)

            Self.expectAzureError(
                try await Self.call(client, .delete, "/devices/dev-1", ifMatch: "\"\(etag)\""),
                .preconditionFailed,
                "PreconditionFailed"
            )
            let deleted = try await Self.call(client, .delete, "/devices/dev-1", ifMatch: "\"\(etag2)\"")
            #expect(deleted.status == .noContent)
            Self.expectAzureError(try await Self.call(client, .get, "/devices/dev-1"), .notFound, "DeviceNotFound")
            Self.expectAzureError(try await Self.call(client, .delete, "/devices/dev-1"), .notFound, "DeviceNotFound")
            _ = try await Self.call(client, .put, "/devices/dev-2", body: "{}")
            #expect(try await Self.call(client, .delete, "/devices/dev-2").status == .noContent)  // no If-Match: unconditional
        }
    }

    @Test func bodiesAreReadLeniently() async throws {
        try await withAPI { client in
            // Property names and enum values in any case; read-only, unknown and null fields ignored.
            let body = #"""
                {"DeviceId":"lenient","STATUS":"Disabled","etag":null,"generationId":"123","connectionState":"Connected",
                 "lastActivityTime":"0001-01-01T00:00:00","cloudToDeviceMessageCount":9,"somethingNew":{"x":1},
                 "Authentication":{"Type":"SAS","SymmetricKey":{"primaryKey":null,"secondaryKey":""},"x509Thumbprint":{"primaryThumbprint":null}},
                 "capabilities":{"IotEdge":false},"deviceScope":null}
                """#
            let reply = try await Self.call(client, .put, "/devices/lenient", body: body)
            #expect(reply.status == .ok)
            #expect(reply.json?["status"] == .string("disabled"))
            #expect(reply.json?["connectionState"] == .string("Disconnected"))
            #expect(reply.json?["generationId"] != .string("123"))
            #expect(reply.json?["cloudToDeviceMessageCount"] == .int(0))
            #expect(reply.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue?.count == 44)
        }
    }

    @Test func invalidInputIsRefusedAndChangesNothing() async throws {
        try await withAPI(maxBody: 512) { client in
            Self.expectAzureError(try await Self.call(client, .put, "/devices/bad%23id", body: "{}"), .badRequest, "ArgumentInvalid")
            Self.expectAzureError(try await Self.call(client, .put, "/devices/bad%20id", body: "{}"), .badRequest, "ArgumentInvalid")
            Self.expectAzureError(
                try await Self.call(client, .put, "/devices/" + String(repeating: "a", count: 129), body: "{}"),
                .badRequest,
                "ArgumentInvalid"
            )
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: "{not json"), .badRequest, "IotHubFormatError")
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: "[1]"), .badRequest, "IotHubFormatError")
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: #"{"deviceId":"other"}"#), .badRequest, "ArgumentInvalid")
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: #"{"status":"sleeping"}"#), .badRequest, "ArgumentInvalid")
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: #"{"status":5}"#), .badRequest, "ArgumentInvalid")
            Self.expectAzureError(
                try await Self.call(client, .put, "/devices/d", body: #"{"statusReason":"\#(String(repeating: "r", count: 129))"}"#),
                .badRequest,
                "ArgumentInvalid"
            )
            Self.expectAzureError(
                try await Self.call(
                    client,
                    .put,
                    "/devices/d",
                    body: #"{"authentication":{"symmetricKey":{"primaryKey":"c2hvcnQ=","secondaryKey":"c2hvcnQ="}}}"#
                ),
                .badRequest,
                "ArgumentInvalid"
            )
            Self.expectAzureError(
                try await Self.call(
                    client,
                    .put,
                    "/devices/d",
                    body: #"{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"xyz"}}}"#
                ),
                .badRequest,
                "ArgumentInvalid"
            )
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: ""), .badRequest, "ArgumentNull")
            let big = #"{"statusReason":"\#(String(repeating: "x", count: 600))"}"#
            Self.expectAzureError(try await Self.call(client, .put, "/devices/d", body: big), .contentTooLarge, "MessageTooLarge")
            Self.expectAzureError(try await Self.call(client, .get, "/devices?top=abc"), .badRequest, "ArgumentInvalid")
            // Nothing of the above was written.
            let stats = try await Self.call(client, .get, "/statistics/devices")
            #expect(stats.json?["totalDeviceCount"] == .int(0))
        }
    }

    @Test func pathSegmentsArePercentDecodedOnceAndIdsAreCaseSensitive() async throws {
        try await withAPI { client in
            let id = "acc-sp:ec@ial$'(1)=,!*%"
            let encoded = "acc-sp%3Aec%40ial%24%27%281%29%3D%2C%21%2A%25"
            #expect(try await Self.call(client, .put, "/devices/\(encoded)", body: "{}").json?["deviceId"] == .string(id))
            #expect(try await Self.call(client, .get, "/devices/\(encoded)").status == .ok)
            // %2525 decodes once to "%25", a different id.
            #expect(try await Self.call(client, .get, "/devices/acc-sp%3Aec%40ial%24%27%281%29%3D%2C%21%2A%2525").status == .notFound)
            _ = try await Self.call(client, .put, "/devices/Case", body: "{}")
            #expect(try await Self.call(client, .get, "/devices/case").status == .notFound)
        }
    }

    @Test func listingWithTopAndTrailingSlash() async throws {
        try await withAPI { client in
            for id in ["c", "a", "b"] { _ = try await Self.call(client, .put, "/devices/\(id)", body: "{}") }
            let all = try await Self.call(client, .get, "/devices/?api-version=2021-04-12")
            #expect(all.status == .ok)
            #expect(all.json?.arrayValue?.compactMap { $0["deviceId"]?.stringValue } == ["a", "b", "c"])
            let two = try await Self.call(client, .get, "/devices?top=2&api-version=2021-04-12")
            #expect(two.json?.arrayValue?.count == 2)
            #expect(try await Self.call(client, .get, "/devices?top=0").json?.arrayValue?.count == 3)  // out of range means 1000
            let stats = try await Self.call(client, .get, "/statistics/devices")
            #expect(stats.json == .object(["totalDeviceCount": .int(3), "enabledDeviceCount": .int(3), "disabledDeviceCount": .int(0)]))
            #expect(try await Self.call(client, .get, "/statistics/service").json == .object(["connectedDeviceCount": .int(0)]))
        }
    }

    // MARK: modules

    @Test func moduleStatusCodes() async throws {
        try await withAPI(limits: RegistryLimits(maxModulesPerDevice: 2)) { client in
            Self.expectAzureError(try await Self.call(client, .put, "/devices/host/modules/m1", body: "{}"), .notFound, "DeviceNotFound")
            Self.expectAzureError(try await Self.call(client, .get, "/devices/host/modules"), .notFound, "DeviceNotFound")
            _ = try await Self.call(client, .put, "/devices/host", body: "{}")
            let m1 = try await Self.call(
                client,
                .put,
                "/devices/host/modules/m1",
                body: #"{"moduleId":"m1","deviceId":"host","managedBy":"IotEdge"}"#
            )
            #expect(m1.status == .ok)
            #expect(m1.json?["managedBy"] == .string("IotEdge"))
            #expect(m1.json?["status"] == nil)
            Self.expectAzureError(try await Self.call(client, .put, "/devices/host/modules/m1", body: "{}"), .conflict, "ModuleAlreadyExistsOnDevice")
            Self.expectAzureError(
                try await Self.call(client, .put, "/devices/host/modules/m9", body: #"{"status":"disabled"}"#),
                .badRequest,
                "ArgumentInvalid"
            )
            Self.expectAzureError(
                try await Self.call(client, .put, "/devices/host/modules/m9", body: #"{"moduleId":"other"}"#),
                .badRequest,
                "ArgumentInvalid"
            )
            Self.expectAzureError(try await Self.call(client, .get, "/devices/host/modules/nope"), .notFound, "ModuleNotFound")
            Self.expectAzureError(try await Self.call(client, .delete, "/devices/host/modules/nope"), .notFound, "ModuleNotFound")
            _ = try await Self.call(client, .put, "/devices/host/modules/m2", body: "{}")
            Self.expectAzureError(
                try await Self.call(client, .put, "/devices/host/modules/m3", body: "{}"),
                .contentTooLarge,
                "TooManyModulesOnDevice"
            )
            let etag = try #require(m1.json?["etag"]?.stringValue)
            Self.expectAzureError(
                try await Self.call(client, .put, "/devices/host/modules/m1", body: "{}", ifMatch: "\"stale\""),
                .preconditionFailed,
                "PreconditionFailed"
            )
            #expect(try await Self.call(client, .put, "/devices/host/modules/m1", body: "{}", ifMatch: "\"\(etag)\"").status == .ok)
            #expect(try await Self.call(client, .get, "/devices/host/modules").json?.arrayValue?.count == 2)
            #expect(try await Self.call(client, .delete, "/devices/host/modules/m2", ifMatch: "\"*\"").status == .noContent)
            #expect(try await Self.call(client, .delete, "/devices/host").status == .noContent)
            Self.expectAzureError(try await Self.call(client, .get, "/devices/host/modules/m1"), .notFound, "DeviceNotFound")
        }
    }

    @Test func identityCapIsConfigurable() async throws {
        try await withAPI(limits: RegistryLimits(maxIdentities: 1)) { client in
            #expect(try await Self.call(client, .put, "/devices/one", body: "{}").status == .ok)
            Self.expectAzureError(try await Self.call(client, .put, "/devices/two", body: "{}"), .forbidden, "IotHubQuotaExceeded")
        }
    }

    @Test func unknownRoutesAnswerInAzureFormat() async throws {
        try await withAPI { client in
            Self.expectAzureError(try await Self.call(client, .get, "/nothing/here"), .notFound, "NotFound")
        }
    }
}
