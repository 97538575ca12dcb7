import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import RegistryTransfer
import Testing

/// Twin tags: `/twins`, their own etag, queries over them, bulk twin modes, export lines.
struct TwinRoutesTests {
    typealias R = RegistryRoutesTests

    @Test func tagsHaveTheirOwnEtagAndNeverTouchTheIdentity() async throws {
        try await R().withAPI { client in
            let created = try await R.call(client, .put, "/devices/t1", body: "{}")
            let identityEtag = try #require(created.json?["etag"]?.stringValue)
            let fresh = try await R.call(client, .get, "/twins/t1")
            #expect(fresh.status == .ok)
            #expect(fresh.json?["tags"] == .object([:]))
            #expect(fresh.json?["etag"] == .string("AAAAAAAAAAE="))
            #expect(fresh.json?["deviceEtag"] == .string(identityEtag))

            let patched = try await R.call(
                client,
                .patch,
                "/twins/t1",
                body: #"{"tags":{"location":{"region":"eu","site":"a"},"owner":"ops"}}"#,
                ifMatch: "\"AAAAAAAAAAE=\""
            )
            #expect(patched.status == .ok)
            #expect(patched.json?["tags"]?["location"]?["region"] == .string("eu"))
            let twinEtag = try #require(patched.json?["etag"]?.stringValue)
            #expect(twinEtag != "AAAAAAAAAAE=")
            #expect(patched.headers[.eTag] == "\"\(twinEtag)\"")
            #expect(patched.json?["version"] == .int(3))
            // Merge: null removes, objects merge.
            let merged = try await R.call(client, .patch, "/twins/t1", body: #"{"tags":{"location":{"site":null,"floor":2},"owner":null}}"#)
            #expect(merged.json?["tags"] == .object(["location": .object(["region": .string("eu"), "floor": .int(2)])]))
            // The identity etag and document are untouched (no twin member in Device JSON).
            let device = try await R.call(client, .get, "/devices/t1")
            #expect(device.json?["etag"] == .string(identityEtag))
            #expect(device.json?["twin"] == nil)
            #expect(device.json?["tags"] == nil)
            // A stale twin etag is 412; an identity etag is not a twin etag.
            R.expectAzureError(
                try await R.call(client, .patch, "/twins/t1", body: #"{"tags":{"x":1}}"#, ifMatch: "\"\(twinEtag)\""),
                .preconditionFailed,
                "PreconditionFailed"
            )
            R.expectAzureError(
                try await R.call(client, .patch, "/twins/t1", body: #"{"tags":{"x":1}}"#, ifMatch: "\"\(identityEtag)\""),
                .preconditionFailed,
                "PreconditionFailed"
            )
            // An identity update with the identity etag still works after tag changes, and keeps the tags.
            #expect(try await R.call(client, .put, "/devices/t1", body: #"{"status":"disabled"}"#, ifMatch: "\"\(identityEtag)\"").status == .ok)
            #expect(try await R.call(client, .get, "/twins/t1").json?["tags"]?["location"]?["floor"] == .int(2))
            // PUT replaces.
            let replaced = try await R.call(client, .put, "/twins/t1", body: #"{"tags":{"only":true}}"#)
            #expect(replaced.json?["tags"] == .object(["only": .bool(true)]))

            // Limits and out-of-scope properties.
            R.expectAzureError(
                try await R.call(client, .patch, "/twins/t1", body: #"{"properties":{"desired":{"x":1}}}"#),
                .badRequest,
                "ArgumentInvalid"
            )
            R.expectAzureError(try await R.call(client, .patch, "/twins/t1", body: #"{"tags":{"a.b":1}}"#), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .patch, "/twins/t1", body: #"{"tags":{"list":[1,2]}}"#), .badRequest, "ArgumentInvalid")
            // Size limits (bodies this large exceed the test router's body limit: checked directly).
            let big = String(repeating: "x", count: 3000)
            #expect(throws: RegistryError.self) { try Validation.checkTags(["a": .string(big), "b": .string(big), "c": .string(big)]) }
            #expect(throws: RegistryError.self) { try Validation.checkTags(["a": .string(String(repeating: "y", count: 4097))]) }
            var deep: JSONValue = .int(1)
            for _ in 0..<10 { deep = .object(["n": deep]) }
            #expect(throws: RegistryError.self) { try Validation.checkTags(["d": deep]) }
            try Validation.checkTags(["a": .string(big), "b": .string(big)])
            R.expectAzureError(try await R.call(client, .get, "/twins/ghost"), .notFound, "DeviceNotFound")
            #expect(try await R.call(client, .patch, "/twins/t1", body: #"{"tags":{"x":1}}"#, auth: R.token("registryRead")).status == .unauthorized)

            // Modules have twins too.
            _ = try await R.call(client, .put, "/devices/t1/modules/m", body: "{}")
            let moduleTwin = try await R.call(client, .patch, "/twins/t1/modules/m", body: #"{"tags":{"role":"filter"}}"#)
            #expect(moduleTwin.json?["moduleId"] == .string("m"))
            #expect(moduleTwin.json?["tags"]?["role"] == .string("filter"))
            R.expectAzureError(try await R.call(client, .get, "/twins/t1/modules/none"), .notFound, "ModuleNotFound")
        }
    }

    @Test func tagsInQueriesBulkModesAndExport() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in
                let bulk = try await R.call(
                    client,
                    .post,
                    "/devices",
                    body: """
                        [{"id":"eu-1","importMode":"create","tags":{"location":{"region":"eu"}}},
                         {"id":"us-1","importMode":"create","tags":{"location":{"region":"us"}}},
                         {"id":"none","importMode":"create"}]
                        """
                )
                #expect(bulk.status == .ok, "\(String(describing: bulk.json))")
                let twinOfUS = try #require(try await R.call(client, .get, "/twins/us-1").json?["etag"]?.stringValue)
                let twinModes = try await R.call(
                    client,
                    .post,
                    "/devices",
                    body: """
                        [{"id":"none","importMode":"updateTwin","tags":{"location":{"region":"eu"}}},
                         {"id":"us-1","importMode":"updateTwinIfMatchETag","twinETag":"\(twinOfUS)","tags":{"location":{"region":"us","zone":"2"}}},
                         {"id":"eu-1","importMode":"updateTwinIfMatchETag","twinETag":"AAAAAAAAAHs=","tags":{"x":1}}]
                        """
                )
                #expect(twinModes.status == .badRequest, "the stale twin etag fails that entry only")
                #expect(twinModes.json?["errors"]?.arrayValue?.first?["deviceId"] == .string("eu-1"))

                let page = try store.storage.queryPage(
                    try QueryParser.parse("SELECT deviceId FROM devices WHERE tags.location.region = 'eu'"),
                    cursor: nil,
                    pageSize: 10
                )
                #expect(page.items == [.object(["deviceId": .string("eu-1")]), .object(["deviceId": .string("none")])])
                let zone = try store.storage.queryPage(
                    try QueryParser.parse("SELECT * FROM devices WHERE IS_DEFINED(tags.location.zone)"),
                    cursor: nil,
                    pageSize: 10
                )
                #expect(zone.items.map { $0["deviceId"] } == [.string("us-1")])
                #expect(zone.items.first?["tags"]?["location"]?["zone"] == .string("2"))

                // Export lines carry the tags and the twin etag; importing them restores the tags.
                let collected = ByteCollector()
                _ = try await ImportExportEngine.export(storage: store.storage, excludeKeys: true) { collected.append($0) }
                let lines = try collected.text.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
                let us = try #require(lines.first { $0["id"] == .string("us-1") })
                #expect(us["tags"]?["location"]?["zone"] == .string("2"))
                #expect(us["twinETag"]?.stringValue != "AAAAAAAAAAE=")
                #expect(lines.first { $0["id"] == .string("none") }?["tags"]?["location"]?["region"] == .string("eu"))
            }
            try await withTemporaryDirectory { copy in
                let target = try makeStore(copy)
                let file = copy + "/devices.txt"
                let collected = ByteCollector()
                _ = try await ImportExportEngine.export(storage: store.storage, excludeKeys: true) { collected.append($0) }
                let text = collected.text
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                let counts = try await ImportExportEngine.importFile(
                    store: target,
                    path: file,
                    batch: 100,
                    actor: "t",
                    requestId: "t",
                    errors: { _ in }
                )
                #expect(counts.failed == 0)
                #expect(try target.storage.device("us-1")?.twin?.tags["location"] == .object(["region": .string("us"), "zone": .string("2")]))
                target.close()
            }
            store.close()
        }
    }
}

extension TwinRoutesTests {
    /// Tags are the user's: a tag that looks like an identity field never counts as one.
    @Test func tagsThatLookLikeIdentityFieldsChangeNothingElse() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in
                let created = try await R.call(client, .put, "/devices/look-alike", body: "{}")
                let key = try #require(created.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
                let tags =
                    #"{"tags":{"status":"disabled","connectionState":"Connected","twin":{"etag":"x"},"primaryKey":"aes256gcm:zz","type":"selfSigned"}}"#
                #expect(try await R.call(client, .patch, "/twins/look-alike", body: tags).status == .ok)
                let stats = try await R.call(client, .get, "/statistics/devices")
                #expect(stats.json?["disabledDeviceCount"] == .int(0))
                #expect(try await R.call(client, .get, "/statistics/service", auth: R.token("service")).json?["connectedDeviceCount"] == .int(0))
                let device = try await R.call(client, .get, "/devices/look-alike")
                #expect(device.json?["status"] == .string("enabled"))
                #expect(device.json?["authentication"]?["symmetricKey"]?["primaryKey"] == .string(key))
                #expect(device.json?["twin"] == nil)
                // Device auth reads the identity's own status and type.
                let token = DeviceAuthRouteTests.deviceToken("devices/look-alike", key: key)
                let check = try await DeviceAuthRouteTests.check(client, .object(["deviceId": .string("look-alike"), "token": .string(token)]))
                #expect(check.1 == "allow")
                let query = try store.storage.queryPage(
                    try QueryParser.parse("SELECT deviceId FROM devices WHERE status = 'disabled'"),
                    cursor: nil,
                    pageSize: 10
                )
                #expect(query.items.isEmpty)

                // A self-signed device with only a secondary thumbprint and no keys: tags named like
                // the missing members must not stand in for them.
                let real = String(repeating: "ab", count: 20)
                let planted = String(repeating: "cd", count: 20)
                _ = try await R.call(
                    client,
                    .put,
                    "/devices/cam",
                    body: #"{"authentication":{"type":"selfSigned","x509Thumbprint":{"secondaryThumbprint":"\#(real)"}}}"#
                )
                let planting = #"{"tags":{"primaryThumbprint":"\#(planted)","primaryKey":"aes256gcm:zz"}}"#
                #expect(try await R.call(client, .patch, "/twins/cam", body: planting).status == .ok)
                #expect(
                    try await DeviceAuthRouteTests.check(client, .object(["deviceId": .string("cam"), "thumbprint": .string(planted)])).2
                        == "badSignature"
                )
                #expect(
                    try await DeviceAuthRouteTests.check(client, .object(["deviceId": .string("cam"), "thumbprint": .string(real)])).1 == "allow"
                )
                #expect(try await R.call(client, .get, "/devices/cam").status == .ok)
            }
            #expect(try verifyReplay(dir).outcome == .clean)
            store.close()
        }
    }
}
