import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// `/registry/policies` on a running router: iothubowner only, changes effective at once.
struct PolicyRoutesTests {
    typealias R = RegistryRoutesTests

    @Test func addRotateRemoveTakeEffectOnTheNextRequest() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let policies = try await PolicyStore.ensureBuiltIn(store)
            let owner = try #require(policies.first { $0.name == "iothubowner" })
            let authenticator = ServiceAuthenticator(hostName: R.host, policies: policies)
            let router = buildRouter(store: store, authenticator: authenticator, now: { R.now })
            @Sendable func token(_ name: String, _ key: String) -> String {
                SharedAccessSignature.make(resource: R.host, key: key, keyName: name, expiry: R.now + 600)
            }
            let ownerToken = token("iothubowner", owner.primaryKey)
            try await Application(router: router).test(.router) { client in
                let listed = try await R.call(client, .get, "/registry/policies", auth: ownerToken)
                #expect(listed.json?.arrayValue?.count == 5)
                #expect(listed.json?.arrayValue?.allSatisfy { $0["primaryKey"] == nil } == true, "the list shows no keys")
                // Only all-rights callers.
                let readWrite = try #require(policies.first { $0.name == "registryReadWrite" })
                #expect(
                    try await R.call(client, .get, "/registry/policies", auth: token("registryReadWrite", readWrite.primaryKey)).status
                        == .unauthorized
                )

                // Add: its token works at once.
                let added = try await R.call(client, .put, "/registry/policies/ops-reader", body: #"{"rights":"RegistryRead"}"#, auth: ownerToken)
                #expect(added.status == .ok)
                let key = try #require(added.json?["primaryKey"]?.stringValue)
                let opsToken = token("ops-reader", key)
                #expect(try await R.call(client, .get, "/devices", auth: opsToken).status == .ok)
                #expect(try await R.call(client, .put, "/devices/x", body: "{}", auth: opsToken).status == .unauthorized)

                // Rotate the primary: the old token stops at once, the secondary still works.
                let rotated = try await R.call(client, .post, "/registry/policies/ops-reader/rotate", body: #"{"key":"primary"}"#, auth: ownerToken)
                let newKey = try #require(rotated.json?["primaryKey"]?.stringValue)
                #expect(newKey != key)
                #expect(try await R.call(client, .get, "/devices", auth: opsToken).status == .unauthorized)
                #expect(try await R.call(client, .get, "/devices", auth: token("ops-reader", newKey)).status == .ok)
                let secondary = try #require(rotated.json?["secondaryKey"]?.stringValue)
                #expect(try await R.call(client, .get, "/devices", auth: token("ops-reader", secondary)).status == .ok)

                // Change rights, then remove.
                _ = try await R.call(
                    client,
                    .put,
                    "/registry/policies/ops-reader",
                    body: #"{"rights":"RegistryRead, RegistryWrite"}"#,
                    auth: ownerToken
                )
                #expect(try await R.call(client, .put, "/devices/y", body: "{}", auth: token("ops-reader", newKey)).status == .ok)
                #expect(try await R.call(client, .delete, "/registry/policies/ops-reader", auth: ownerToken).status == .noContent)
                #expect(try await R.call(client, .get, "/devices", auth: token("ops-reader", newKey)).status == .unauthorized)

                // Refusals: the last all-rights policy, bad names and rights, unknown policies.
                R.expectAzureError(
                    try await R.call(client, .delete, "/registry/policies/iothubowner", auth: ownerToken),
                    .badRequest,
                    "ArgumentInvalid"
                )
                R.expectAzureError(
                    try await R.call(client, .put, "/registry/policies/iothubowner", body: #"{"rights":"RegistryRead"}"#, auth: ownerToken),
                    .badRequest,
                    "ArgumentInvalid"
                )
                R.expectAzureError(
                    try await R.call(client, .put, "/registry/policies/bad%20name", body: #"{"rights":"RegistryRead"}"#, auth: ownerToken),
                    .badRequest,
                    "ArgumentInvalid"
                )
                R.expectAzureError(
                    try await R.call(client, .put, "/registry/policies/p", body: #"{"rights":"Everything"}"#, auth: ownerToken),
                    .badRequest,
                    "ArgumentInvalid"
                )
                R.expectAzureError(try await R.call(client, .delete, "/registry/policies/ghost", auth: ownerToken), .notFound, "PolicyNotFound")
                // Changes are stored: a new authenticator loads them.
                #expect(
                    try PolicyStore.load(store.storage).map(\.name).sorted() == [
                        "device", "iothubowner", "registryRead", "registryReadWrite", "service",
                    ]
                )
            }
            store.close()
        }
    }

    /// The `Metrics` right through the policy API: a metrics-only policy can be added (and reads
    /// nothing), and an owner that also holds `Metrics` still counts as the all-rights policy.
    @Test func metricsPoliciesAndOwnersWithMetrics() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let policies = try await PolicyStore.ensureBuiltIn(store)
            let owner = try #require(policies.first { $0.name == "iothubowner" })
            let authenticator = ServiceAuthenticator(hostName: R.host, policies: policies)
            let router = buildRouter(store: store, authenticator: authenticator, now: { R.now })
            @Sendable func token(_ name: String, _ key: String) -> String {
                SharedAccessSignature.make(resource: R.host, key: key, keyName: name, expiry: R.now + 600)
            }
            let ownerToken = token("iothubowner", owner.primaryKey)
            try await Application(router: router).test(.router) { client in
                let added = try await R.call(client, .put, "/registry/policies/prometheus", body: #"{"rights":"Metrics"}"#, auth: ownerToken)
                #expect(added.status == .ok)
                #expect(added.json?["rights"]?.stringValue == "Metrics")
                let key = try #require(added.json?["primaryKey"]?.stringValue)
                R.expectAzureError(
                    try await R.call(client, .get, "/devices", auth: token("prometheus", key)),
                    .unauthorized,
                    "IotHubUnauthorizedAccess"
                )

                let all = "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect, Metrics"
                let widened = try await R.call(client, .put, "/registry/policies/iothubowner", body: #"{"rights":"\#(all)"}"#, auth: ownerToken)
                #expect(widened.status == .ok)
                #expect(widened.json?["rights"]?.stringValue == all)
                #expect(try await R.call(client, .get, "/registry/policies", auth: ownerToken).status == .ok)
                // Still the last owner: it cannot lose an Azure right.
                R.expectAzureError(
                    try await R.call(client, .put, "/registry/policies/iothubowner", body: #"{"rights":"RegistryRead, Metrics"}"#, auth: ownerToken),
                    .badRequest,
                    "ArgumentInvalid"
                )
            }
            store.close()
        }
    }

    /// A rotation and a rights update that both read the policy before either wrote (the race
    /// that restored rotated keys): the update made against the stale etag is refused with 412
    /// in Azure's format, and an update without If-Match applies to the record as it is by then.
    @Test func aStaleRightsUpdateCannotRestoreARotatedKey() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let policies = try await PolicyStore.ensureBuiltIn(store)
            let owner = try #require(policies.first { $0.name == "iothubowner" })
            let authenticator = ServiceAuthenticator(hostName: R.host, policies: policies)
            let router = buildRouter(store: store, authenticator: authenticator, now: { R.now })
            @Sendable func token(_ name: String, _ key: String) -> String {
                SharedAccessSignature.make(resource: R.host, key: key, keyName: name, expiry: R.now + 600)
            }
            let ownerToken = token("iothubowner", owner.primaryKey)
            try await Application(router: router).test(.router) { client in
                // Both callers read the policy, and its etag, before either writes.
                let seenByRotator = try await R.call(client, .get, "/registry/policies/registryRead", auth: ownerToken)
                let seenByEditor = try await R.call(client, .get, "/registry/policies/registryRead", auth: ownerToken)
                let etag = try #require(seenByRotator.headers[.eTag])
                #expect(seenByEditor.headers[.eTag] == etag)
                #expect(seenByRotator.json?["etag"]?.stringValue.map { "\"\($0)\"" } == etag)
                let oldKey = try #require(seenByEditor.json?["primaryKey"]?.stringValue)

                let rotated = try await R.call(
                    client,
                    .post,
                    "/registry/policies/registryRead/rotate",
                    body: #"{"key":"primary"}"#,
                    ifMatch: etag,
                    auth: ownerToken
                )
                #expect(rotated.status == .ok)
                let newKey = try #require(rotated.json?["primaryKey"]?.stringValue)
                #expect(newKey != oldKey)
                #expect(rotated.headers[.eTag] != etag)

                // The editor's update, made against what it read, is refused: nothing changes.
                let stale = try await R.call(
                    client,
                    .put,
                    "/registry/policies/registryRead",
                    body: #"{"rights":"RegistryRead, ServiceConnect"}"#,
                    ifMatch: etag,
                    auth: ownerToken
                )
                R.expectAzureError(stale, .preconditionFailed, "PreconditionFailed")
                R.expectAzureError(
                    try await R.call(
                        client,
                        .post,
                        "/registry/policies/registryRead/rotate",
                        body: #"{"key":"secondary"}"#,
                        ifMatch: etag,
                        auth: ownerToken
                    ),
                    .preconditionFailed,
                    "PreconditionFailed"
                )
                R.expectAzureError(
                    try await R.call(client, .delete, "/registry/policies/registryRead", ifMatch: etag, auth: ownerToken),
                    .preconditionFailed,
                    "PreconditionFailed"
                )
                var stored = try #require(try PolicyStore.load(store.storage).first { $0.name == "registryRead" })
                #expect(stored.primaryKey == newKey)
                #expect(stored.rights == .registryRead)
                #expect(try await R.call(client, .get, "/devices", auth: token("registryRead", oldKey)).status == .unauthorized)
                #expect(try await R.call(client, .get, "/devices", auth: token("registryRead", newKey)).status == .ok)

                // Without If-Match the change is computed from the record as it is now: the
                // rights change and the rotated key stays.
                let updated = try await R.call(
                    client,
                    .put,
                    "/registry/policies/registryRead",
                    body: #"{"rights":"RegistryRead, ServiceConnect"}"#,
                    auth: ownerToken
                )
                #expect(updated.status == .ok)
                #expect(updated.json?["primaryKey"]?.stringValue == newKey)
                stored = try #require(try PolicyStore.load(store.storage).first { $0.name == "registryRead" })
                #expect(stored.primaryKey == newKey)
                #expect(stored.rights == [.registryRead, .serviceConnect])
                #expect(try await R.call(client, .get, "/devices", auth: token("registryRead", oldKey)).status == .unauthorized)
                // The current etag is accepted.
                let current = try #require(updated.headers[.eTag])
                #expect(try await R.call(client, .delete, "/registry/policies/registryRead", ifMatch: current, auth: ownerToken).status == .noContent)
                // If-Match on a policy that does not exist: not found, nothing created.
                R.expectAzureError(
                    try await R.call(
                        client,
                        .put,
                        "/registry/policies/registryRead",
                        body: #"{"rights":"RegistryRead"}"#,
                        ifMatch: current,
                        auth: ownerToken
                    ),
                    .notFound,
                    "PolicyNotFound"
                )
                #expect(try PolicyStore.load(store.storage).contains { $0.name == "registryRead" } == false)
            }
            store.close()
        }
    }
}
