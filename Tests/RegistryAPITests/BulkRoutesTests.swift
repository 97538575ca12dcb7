import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

struct BulkRoutesTests {
    typealias R = RegistryRoutesTests

    func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, RegistryStore) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in try await body(client, store) }
            store.close()
        }
    }

    static func bulk(_ client: any TestClientProtocol, _ entries: [String]) async throws -> R.Reply {
        try await R.call(client, .post, "/devices?api-version=2021-04-12", body: "[" + entries.joined(separator: ",") + "]")
    }

    @Test func mixedOperationsInOneCall() async throws {
        try await withAPI { client, store in
            _ = try await R.call(client, .put, "/devices/existing", body: "{}")
            _ = try await R.call(client, .put, "/devices/doomed", body: "{}")
            let key = Data(repeating: 5, count: 32).base64EncodedString()
            let reply = try await Self.bulk(
                client,
                [
                    #"{"id":"new-1","importMode":"create","status":"enabled"}"#,
                    #"{"id":"new-2","importMode":"Create","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"\#(key)","secondaryKey":"\#(key)"}}}"#,
                    #"{"id":"existing","importMode":"update","status":"disabled"}"#,
                    #"{"id":"upserted","status":"enabled"}"#,  // default mode: createOrUpdate
                    #"{"id":"doomed","importMode":"delete"}"#,
                    #"{"id":"new-1","moduleId":"m1","importMode":"create","status":"enabled","authentication":{"type":"certificateAuthority"}}"#,
                ]
            )
            #expect(reply.status == .ok)
            #expect(reply.json?["isSuccessful"] == .bool(true))
            #expect(reply.json?["errors"] == .array([]))
            #expect(try store.storage.device("new-1")?.authentication.symmetricKey.primaryKey?.count == 44)  // generated
            #expect(try store.storage.device("new-2")?.status == .disabled)
            #expect(try store.storage.device("new-2")?.authentication.symmetricKey.primaryKey == key)
            #expect(try store.storage.device("existing")?.status == .disabled)
            #expect(try store.storage.device("upserted") != nil)
            #expect(try store.storage.device("doomed") == nil)
            #expect(try store.storage.module("new-1", "m1")?.authentication.type == .certificateAuthority)
            // One transaction, one event per identity changed.
            #expect(try store.storage.head().seq == 2 + 6)
        }
    }

    /// An entry is named by `id` (a `deviceId` member beside it is ignored, whatever its value),
    /// and enum values match ignoring ASCII case; an unknown value is still refused.
    @Test func entriesAreNamedByIdAndEnumsIgnoreCase() async throws {
        try await withAPI { client, store in
            let reply = try await Self.bulk(
                client,
                [
                    #"{"id":"named","deviceId":"other","importMode":"CREATE","status":"DISABLED","authentication":{"type":"SAS"}}"#,
                    #"{"id":"typed","deviceId":7,"importMode":"createorupdate","status":"Enabled"}"#,
                ]
            )
            #expect(reply.status == .ok)
            #expect(try store.storage.device("named")?.status == .disabled)
            #expect(try store.storage.device("named")?.authentication.type == .sas)
            #expect(try store.storage.device("other") == nil)
            #expect(try store.storage.device("typed")?.status == .enabled)
            let bad = try await Self.bulk(client, [#"{"id":"bad","importMode":"create","status":"paused"}"#])
            #expect(bad.status == .badRequest)
            #expect(try store.storage.device("bad") == nil)
        }
    }

    @Test func partialFailureAnswers400WithPerEntryErrors() async throws {
        try await withAPI { client, store in
            let created = try await R.call(client, .put, "/devices/taken", body: "{}")
            let etag = try #require(created.json?["etag"]?.stringValue)
            let reply = try await Self.bulk(
                client,
                [
                    #"{"id":"taken","importMode":"create"}"#,
                    #"{"id":"fine","importMode":"create"}"#,
                    #"{"id":"other-taken","importMode":"updateIfMatchETag","eTag":"\"stale\"","status":"disabled"}"#,
                    #"{"id":"ghost","importMode":"delete"}"#,
                    #"{"id":"bad id","importMode":"create"}"#,
                    #"{"id":"tagged","importMode":"create","properties":{"desired":{"a":1}}}"#,
                    #"{"id":"odd","importMode":"teleport"}"#,
                ]
            )
            #expect(reply.status == .badRequest)
            #expect(reply.json?["isSuccessful"] == .bool(false))
            let errors = reply.json?["errors"]?.arrayValue ?? []
            let codes = Dictionary(uniqueKeysWithValues: errors.map { ($0["deviceId"]?.stringValue ?? "", $0["errorCode"]?.stringValue ?? "") })
            #expect(
                codes == [
                    "taken": "DeviceAlreadyExists", "other-taken": "DeviceNotFound", "ghost": "DeviceNotFound", "bad id": "ArgumentInvalid",
                    "tagged": "ArgumentInvalid", "odd": "ArgumentInvalid",
                ]
            )
            #expect(errors.first { $0["deviceId"] == .string("taken") }?["operation"] == .string("create"))
            #expect(try store.storage.device("fine") != nil)  // its neighbours' failures did not stop it
            // deleteIfMatchETag with the right etag, and the stale one refused.
            let again = try await Self.bulk(client, [#"{"id":"taken","importMode":"deleteIfMatchETag","eTag":"nope"}"#])
            #expect(again.json?["errors"]?.arrayValue?.first?["errorCode"] == .string("PreconditionFailed"))
            #expect(try await Self.bulk(client, [#"{"id":"taken","importMode":"deleteIfMatchETag","etag":"\"\#(etag)\""}"#]).status == .ok)
        }
    }

    @Test func wholeCallRejectionsWriteNothing() async throws {
        try await withAPI { client, store in
            let tooMany = (0...100).map { #"{"id":"d\#($0)","importMode":"create"}"# }
            R.expectAzureError(try await Self.bulk(client, tooMany), .contentTooLarge, "TooManyDevices")
            R.expectAzureError(
                try await Self.bulk(client, [#"{"id":"a"}"#, #"{"id":"b"}"#, #"{"id":"a","importMode":"delete"}"#]),
                .badRequest,
                "DeviceDefinedMultipleTimes"
            )
            R.expectAzureError(try await Self.bulk(client, []), .badRequest, "ArgumentNull")
            R.expectAzureError(try await R.call(client, .post, "/devices", body: #"{"id":"a"}"#), .badRequest, "IotHubFormatError")
            R.expectAzureError(
                try await R.call(client, .post, "/devices", body: "[{}]", auth: R.token("registryRead")),
                .unauthorized,
                "IotHubUnauthorizedAccess"
            )
            #expect(try store.storage.head().seq == 0)
            // The same device id with different modules is not a duplicate.
            _ = try await R.call(client, .put, "/devices/host", body: "{}")
            #expect(
                try await Self.bulk(
                    client,
                    [#"{"id":"host","moduleId":"a","importMode":"create"}"#, #"{"id":"host","moduleId":"b","importMode":"create"}"#]
                ).status == .ok
            )
        }
    }
}

struct HistoryRouteTests {
    typealias R = RegistryRoutesTests

    @Test func historyOverTheAPI() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in
                _ = try await R.call(client, .put, "/devices/h", body: "{}")
                _ = try await R.call(client, .put, "/devices/h", body: #"{"status":"disabled"}"#, ifMatch: "*")
                _ = try await R.call(client, .put, "/devices/h/modules/m", body: "{}")
                let all = try await R.call(client, .get, "/registry/devices/h/history", auth: R.token("registryRead"))
                #expect(all.status == .ok)
                #expect(all.json?.arrayValue?.map { $0["type"]?.stringValue } == ["deviceCreated", "deviceUpdated", "moduleCreated"])
                #expect(all.json?.arrayValue?.first?["actor"] == .string("iothubowner"))
                let module = try await R.call(client, .get, "/registry/devices/h/history?moduleId=m")
                #expect(module.json?.arrayValue?.count == 1)
                R.expectAzureError(try await R.call(client, .get, "/registry/devices/nobody/history"), .notFound, "DeviceNotFound")
                R.expectAzureError(
                    try await R.call(client, .get, "/registry/devices/h/history", auth: R.token("service")),
                    .unauthorized,
                    "IotHubUnauthorizedAccess"
                )
            }
            store.close()
        }
    }

    /// Issue 17 item 6: history comes in bounded pages; the changes of each entry are the same
    /// whether it is read in one page or many (a page's first entry still diffs against the
    /// identity's previous event on an earlier page).
    @Test func historyPagesAgreeWithTheWholeHistory() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in
                _ = try await R.call(client, .put, "/devices/p", body: "{}")
                _ = try await R.call(client, .put, "/devices/p/modules/m", body: "{}")
                for i in 0..<6 {
                    _ = try await R.call(client, .put, "/devices/p", body: #"{"status":"disabled","statusReason":"r\#(i)"}"#, ifMatch: "*")
                    _ = try await R.call(client, .put, "/devices/p/modules/m", body: #"{"managedBy":"m\#(i)"}"#, ifMatch: "*")
                }
                let whole = try #require(try await R.call(client, .get, "/registry/devices/p/history").json?.arrayValue)
                #expect(whole.count == 14)
                var paged: [JSONValue] = []
                var after: String?
                var pages = 0
                repeat {
                    let page = try await R.call(client, .get, "/registry/devices/p/history?limit=3" + (after.map { "&after=\($0)" } ?? ""))
                    #expect(page.status == .ok)
                    paged += page.json?.arrayValue ?? []
                    after = page.headers[HTTPField.Name("x-ms-continuation")!]
                    pages += 1
                } while after != nil && pages < 20
                #expect(pages == 5)
                #expect(paged == whole)
                // The continuation header also works sent back as a header.
                var headers = HTTPFields()
                headers[.authorization] = R.token()
                headers[HTTPField.Name("x-ms-continuation")!] = "13"
                let tail = try await client.execute(uri: "/registry/devices/p/history", method: .get, headers: headers) { response in
                    try JSONParser.parse(Array(response.body.readableBytesView))
                }
                #expect(tail.arrayValue == Array(whole.suffix(1)))
                #expect(try await R.call(client, .get, "/registry/devices/p/history?limit=0").status == .badRequest)
                #expect(try await R.call(client, .get, "/registry/devices/p/history?after=x").status == .badRequest)
            }
            store.close()
        }
    }
}
