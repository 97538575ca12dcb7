import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RegistryAPI
import RegistryCore
import RegistryTesting
import Testing

/// `POST /devices/query` at router level: headers, paging tokens, rights, errors.
struct QueryRouteTests {
    typealias R = RegistryRoutesTests

    static func query(
        _ client: any TestClientProtocol,
        _ text: String,
        pageSize: String? = nil,
        continuation: String? = nil,
        auth: String = R.token("service")
    ) async throws -> (HTTPResponse.Status, HTTPFields, JSONValue?) {
        var headers: HTTPFields = [.authorization: auth, .contentType: "application/json"]
        if let pageSize { headers[HTTPField.Name("x-ms-max-item-count")!] = pageSize }
        if let continuation { headers[HTTPField.Name("x-ms-continuation")!] = continuation }
        let body = String(decoding: CanonicalJSON.encode(.object(["query": .string(text)])), as: UTF8.self)
        return try await client.execute(uri: "/devices/query?api-version=2021-04-12", method: .post, headers: headers, body: ByteBuffer(string: body))
        { response in
            (response.status, response.headers, try? JSONParser.parse(Array(response.body.readableBytesView)))
        }
    }

    @Test func pagesWithOpaqueContinuationsAndItemTypes() async throws {
        try await R().withAPI { client in
            for id in ["a", "b", "c", "query"] { _ = try await R.call(client, .put, "/devices/\(id)", body: "{}") }
            // A device named `query` is still a device for GET.
            #expect(try await R.call(client, .get, "/devices/query").json?["deviceId"] == .string("query"))

            let (status, headers, body) = try await Self.query(client, "SELECT * FROM devices", pageSize: "3")
            #expect(status == .ok)
            #expect(headers[HTTPField.Name("x-ms-item-type")!] == "Twin")
            guard case .array(let first)? = body else { Issue.record("not an array"); return }
            #expect(first.compactMap { $0["deviceId"]?.stringValue } == ["a", "b", "c"])
            let token = try #require(headers[HTTPField.Name("x-ms-continuation")!])
            let (_, lastHeaders, lastBody) = try await Self.query(client, "SELECT * FROM devices", pageSize: "3", continuation: token)
            #expect(lastBody == .array([try #require(lastBody?.arrayValue?.first)]))
            #expect(lastBody?.arrayValue?.first?["deviceId"] == .string("query"))
            #expect(lastHeaders[HTTPField.Name("x-ms-continuation")!] == nil, "absent on the last page")

            let (_, rawHeaders, raw) = try await Self.query(client, "SELECT COUNT() AS n FROM devices")
            #expect(rawHeaders[HTTPField.Name("x-ms-item-type")!] == "Raw")
            #expect(raw == .array([.object(["n": .int(4)])]))

            // A token from another query, a bad page size, a bad query, and the right needed.
            let (otherStatus, _, _) = try await Self.query(client, "SELECT deviceId FROM devices", continuation: token)
            #expect(otherStatus == .badRequest)
            #expect(try await Self.query(client, "SELECT * FROM devices", pageSize: "zero").0 == .badRequest)
            let (badStatus, badHeaders, badBody) = try await Self.query(client, "SELECT * FROM devices WHERE")
            #expect(badStatus == .badRequest)
            #expect(badHeaders[HTTPField.Name("iothub-errorcode")!] == "ArgumentInvalid")
            #expect(badBody?["Message"]?.stringValue?.contains("position 28") == true)
            #expect(try await Self.query(client, "SELECT * FROM devices", auth: R.token("registryReadWrite")).0 == .unauthorized)
            #expect(try await R.call(client, .post, "/devices/a", body: "{}").status == .methodNotAllowed)
        }
    }

    /// Issue 17 item 1: a continuation token is authenticated and range-checked. Before, a token
    /// was base64 JSON bound only to a hash of the query, and `n` = Int.max crashed the daemon
    /// with an integer overflow.
    @Test func forgedOrAlteredContinuationTokensAnswer400() async throws {
        try await R().withAPI { client in
            for id in ["a", "b", "c"] { _ = try await R.call(client, .put, "/devices/\(id)", body: "{}") }
            let text = "SELECT * FROM devices"
            let (_, headers, _) = try await Self.query(client, text, pageSize: "1")
            let token = try #require(headers[HTTPField.Name("x-ms-continuation")!])
            #expect(try await Self.query(client, text, pageSize: "1", continuation: token).0 == .ok, "the issued token works")

            // The old form, which anyone could compute, with a count that overflowed.
            let digest = String(Hex.encode(Array(SHA256.hash(data: Array(text.utf8)))).prefix(16))
            let forged = Data(CanonicalJSON.encode(.object(["k": .string("61"), "n": .int(Int64.max), "q": .string(digest)]))).base64EncodedString()
            let (forgedStatus, forgedHeaders, forgedBody) = try await Self.query(client, text, continuation: forged)
            #expect(forgedStatus == .badRequest)
            #expect(forgedHeaders[HTTPField.Name("iothub-errorcode")!] == "ArgumentInvalid")
            #expect(forgedBody?["Message"]?.stringValue?.contains("x-ms-continuation") == true)

            // Every single-character change of a real token is refused.
            var chars = Array(token)
            for i in chars.indices {
                let original = chars[i]
                chars[i] = original == "A" ? "B" : "A"
                #expect(try await Self.query(client, text, continuation: String(chars)).0 == .badRequest, "changed at \(i)")
                chars[i] = original
            }
            // Bound to the policy that asked: another policy cannot replay it.
            #expect(try await Self.query(client, text, continuation: token, auth: R.token("iothubowner")).0 == .badRequest)
            // Garbage of every shape.
            for junk in [".", "..", "a.b", String(repeating: "A", count: 5000), token + "." + token] {
                #expect(try await Self.query(client, text, continuation: junk).0 == .badRequest)
            }
        }
    }
}
