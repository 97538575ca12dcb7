import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import RegistryAPI
import RegistryCore
import RegistryDelivery
import RegistryLMDB
import RegistryTesting
import Testing

/// Scoped policies (issue 22, item 3), route by route: a policy whose scope is device id
/// prefixes or a condition on the twin reads, lists, queries, counts and writes only inside it;
/// registry-wide routes refuse it; brokers and gateways holding it hear only about identities
/// inside it.
@Suite(.serialized) struct ScopedPolicyTests {
    typealias R = RegistryRoutesTests
    typealias A = DeviceAuthRouteTests

    /// The harness: built-in policies from the store, `lyon` (prefix `lyon-`: every right) and
    /// `tagged` (condition `tags.site = 'lyon'`: read and write) added through the API.
    struct Harness: Sendable {
        let client: any TestClientProtocol
        let owner: String
        let lyon: String
        let tagged: String
        let lyonKey: String
        /// The built-in `device` policy's token (a broker's).
        let device: String

        func call(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil, as token: String? = nil) async throws -> R.Reply {
            try await R.call(client, method, uri, body: body, auth: token ?? owner)
        }
    }

    static func token(_ name: String, _ key: String) -> String {
        SharedAccessSignature.make(resource: R.host, key: key, keyName: name, expiry: R.now + 3600)
    }

    static func withHarness(_ body: @escaping @Sendable (Harness) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let policies = try await PolicyStore.ensureBuiltIn(store)
            let owner = try #require(policies.first { $0.name == "iothubowner" })
            let jobs = JobService(store: store, configuration: JobsConfiguration(roots: [dir]), logger: Logger(label: "test"))
            // With delivery, so that the event stream and route administration exist.
            let delivery = DeliveryService(store: store, hubName: "hub", configuration: DeliveryConfiguration(), logger: Logger(label: "t"))
            let router = buildRouter(
                store: store,
                authenticator: ServiceAuthenticator(hostName: R.host, policies: policies),
                delivery: delivery,
                metrics: RegistryMetrics(),
                jobs: jobs,
                now: { R.now }
            )
            let running = Task { try await jobs.run() }
            let ownerToken = Self.token("iothubowner", owner.primaryKey)
            try await Application(router: router).test(.router) { client in
                let lyon = try await R.call(
                    client,
                    .put,
                    "/registry/policies/lyon",
                    body: #"{"rights": "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect", "scope": {"deviceIdPrefixes": ["lyon-"]}}"#,
                    auth: ownerToken
                )
                #expect(lyon.status == .ok, "\(String(describing: lyon.json))")
                let tagged = try await R.call(
                    client,
                    .put,
                    "/registry/policies/tagged",
                    body: #"{"rights": "RegistryWrite, ServiceConnect", "scope": {"condition": "tags.site = 'lyon'"}}"#,
                    auth: ownerToken
                )
                #expect(tagged.status == .ok)
                let lyonKey = try #require(lyon.json?["primaryKey"]?.stringValue)
                let harness = Harness(
                    client: client,
                    owner: ownerToken,
                    lyon: Self.token("lyon", lyonKey),
                    tagged: Self.token("tagged", try #require(tagged.json?["primaryKey"]?.stringValue)),
                    lyonKey: lyonKey,
                    device: Self.token("device", try #require(policies.first { $0.name == "device" }).primaryKey)
                )
                // The fleet: two Lyon devices (one tagged), a Paris device tagged lyon by mistake, a Paris one.
                for id in ["lyon-1", "lyon-2", "paris-1", "paris-2"] { _ = try await harness.call(.put, "/devices/\(id)", body: "{}") }
                _ = try await harness.call(.patch, "/twins/lyon-1", body: #"{"tags": {"site": "lyon"}}"#)
                _ = try await harness.call(.patch, "/twins/paris-1", body: #"{"tags": {"site": "lyon"}}"#)
                _ = try await harness.call(.put, "/devices/lyon-1/modules/m", body: "{}")
                _ = try await harness.call(.put, "/devices/paris-2/modules/m", body: "{}")
                try await body(harness)
            }
            running.cancel()
            store.close()
        }
    }

    static func ids(_ reply: R.Reply) -> [String] { (reply.json?.arrayValue ?? []).compactMap { $0["deviceId"]?.stringValue }.sorted() }

    @Test func readsListsQueriesAndCountsSeeOnlyTheScope() async throws {
        try await Self.withHarness { h in
            #expect(try await h.call(.get, "/devices/lyon-2", as: h.lyon).status == .ok)
            R.expectAzureError(try await h.call(.get, "/devices/paris-1", as: h.lyon), .notFound, "DeviceNotFound")
            #expect(try await h.call(.get, "/devices/lyon-1/modules/m", as: h.lyon).status == .ok)
            // A module of a device outside the scope: as if the device were absent.
            R.expectAzureError(try await h.call(.get, "/devices/paris-2/modules/m", as: h.lyon), .notFound, "DeviceNotFound")
            R.expectAzureError(try await h.call(.get, "/devices/paris-2/modules", as: h.lyon), .notFound, "DeviceNotFound")
            #expect(Self.ids(try await h.call(.get, "/devices/lyon-1/modules", as: h.lyon)) == ["lyon-1"])
            #expect(Self.ids(try await h.call(.get, "/devices", as: h.lyon)) == ["lyon-1", "lyon-2"])
            #expect(Self.ids(try await h.call(.get, "/devices?top=1", as: h.lyon)) == ["lyon-1"])
            // The condition scope: by tags, whatever the id.
            #expect(Self.ids(try await h.call(.get, "/devices", as: h.tagged)) == ["lyon-1", "paris-1"])
            #expect(try await h.call(.get, "/twins/paris-1", as: h.tagged).status == .ok)
            R.expectAzureError(try await h.call(.get, "/twins/lyon-2", as: h.tagged), .notFound, "DeviceNotFound")

            let query = #"{"query": "SELECT * FROM devices"}"#
            #expect(Self.ids(try await h.call(.post, "/devices/query", body: query, as: h.lyon)) == ["lyon-1", "lyon-2"])
            #expect(Self.ids(try await h.call(.post, "/devices/query", body: query, as: h.tagged)) == ["lyon-1", "paris-1"])
            let modules = try await h.call(.post, "/devices/query", body: #"{"query": "SELECT * FROM devices.modules"}"#, as: h.lyon)
            #expect(Self.ids(modules) == ["lyon-1"])
            let count = try await h.call(.post, "/devices/query", body: #"{"query": "SELECT COUNT() AS n FROM devices"}"#, as: h.lyon)
            #expect(count.json == .array([.object(["n": .int(2)])]))
            let stats = try await h.call(.get, "/statistics/devices", as: h.lyon)
            #expect(stats.json?["totalDeviceCount"] == .int(2))
            #expect(try await h.call(.get, "/statistics/devices").json?["totalDeviceCount"] == .int(4))

            #expect(try await h.call(.get, "/registry/devices/lyon-1/history", as: h.lyon).status == .ok)
            R.expectAzureError(try await h.call(.get, "/registry/devices/paris-1/history", as: h.lyon), .notFound, "DeviceNotFound")
        }
    }

    @Test func writesOutsideTheScopeAreRefusedAndChangeNothing() async throws {
        try await Self.withHarness { h in
            #expect(try await h.call(.put, "/devices/lyon-3", body: "{}", as: h.lyon).status == .ok)
            R.expectAzureError(try await h.call(.put, "/devices/paris-3", body: "{}", as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
            R.expectAzureError(try await h.call(.delete, "/devices/paris-2", as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
            R.expectAzureError(
                try await h.call(.put, "/devices/paris-2/modules/n", body: "{}", as: h.lyon),
                .unauthorized,
                "IotHubUnauthorizedAccess"
            )
            #expect(try await h.call(.get, "/devices/paris-2").status == .ok)
            R.expectAzureError(try await h.call(.get, "/devices/paris-3"), .notFound, "DeviceNotFound")
            // A condition scope: a write that would take the identity out of it is refused too.
            R.expectAzureError(
                try await h.call(.patch, "/twins/paris-1", body: #"{"tags": {"site": "paris"}}"#, as: h.tagged),
                .unauthorized,
                "IotHubUnauthorizedAccess"
            )
            #expect(try await h.call(.get, "/twins/paris-1").json?["tags"]?["site"] == .string("lyon"))
            #expect(try await h.call(.patch, "/twins/paris-1", body: #"{"tags": {"floor": 2}}"#, as: h.tagged).status == .ok)
            // Creating an untagged device is outside a tag scope.
            R.expectAzureError(try await h.call(.put, "/devices/new", body: "{}", as: h.tagged), .unauthorized, "IotHubUnauthorizedAccess")

            // Bulk: entries outside fail one by one; the others are applied.
            let bulk =
                #"[{"id": "lyon-4", "importMode": "create"}, {"id": "paris-4", "importMode": "create"}, {"id": "paris-2", "importMode": "delete"}]"#
            let reply = try await h.call(.post, "/devices", body: bulk, as: h.lyon)
            #expect(reply.status == .badRequest)
            let errors = reply.json?["errors"]?.arrayValue ?? []
            #expect(errors.map { $0["deviceId"]?.stringValue ?? "" }.sorted() == ["paris-2", "paris-4"])
            #expect(errors.allSatisfy { $0["errorCode"] == .string("IotHubUnauthorizedAccess") })
            #expect(try await h.call(.get, "/devices/lyon-4").status == .ok)
            #expect(try await h.call(.get, "/devices/paris-2").status == .ok)

            // Undelete outside the scope is a write outside it.
            _ = try await h.call(.delete, "/devices/paris-2")
            R.expectAzureError(try await h.call(.post, "/registry/devices/paris-2/restore", as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
        }
    }

    @Test func registryWideRoutesRefuseAScopedPolicyAndJobsStayInsideIt() async throws {
        try await Self.withHarness { h in
            for (method, uri) in [
                (HTTPRequest.Method.get, "/registry/log/head"), (.post, "/registry/audit/verify"), (.get, "/registry/policies"),
                (.get, "/registry/events?from=1&limit=1"), (.get, "/registry/routes"),
            ] {
                R.expectAzureError(try await h.call(method, uri, as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
            }
            let export = #"{"type": "export", "outputBlobContainerUri": "file:///tmp"}"#
            R.expectAzureError(try await h.call(.post, "/jobs/create", body: export, as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
            // A bulk-by-query job of a scoped policy selects and changes inside the scope only.
            let job = #"{"type": "bulkByQuery", "query": "SELECT * FROM devices", "change": {"action": "disable"}}"#
            let created = try await h.call(.post, "/jobs/create", body: job, as: h.lyon)
            #expect(created.status == .ok, "\(String(describing: created.json))")
            let id = try #require(created.json?["jobId"]?.stringValue)
            var done = JSONValue.null
            for _ in 0..<2000 {
                done = try await h.call(.get, "/jobs/\(id)").json ?? .null
                if done["status"] == .string("completed") || done["status"] == .string("failed") { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(done["status"] == .string("completed"), "\(done)")
            #expect(done["matched"] == .int(2))
            #expect(done["changed"] == .int(2))
            let disabled = try await h.call(.post, "/devices/query", body: #"{"query": "SELECT deviceId FROM devices WHERE status = 'disabled'"}"#)
            #expect(Self.ids(disabled) == ["lyon-1", "lyon-2"])
        }
    }

    @Test func brokersAndGatewaysHoldingAScopedPolicyReachOnlyItsIdentities() async throws {
        try await Self.withHarness { h in
            let key = try #require(try await h.call(.get, "/devices/paris-2").json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            let lyonKey = try #require(try await h.call(.get, "/devices/lyon-2").json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            func ask(_ device: String, _ token: String, as broker: String) async throws -> String? {
                let (_, result, reason) = try await A.check(h.client, .object(["deviceId": .string(device), "token": .string(token)]), auth: broker)
                return result == "allow" ? "allow" : reason
            }
            // A broker holding the scoped policy: outside the scope, the identity is unknown to it.
            #expect(try await ask("lyon-2", A.deviceToken("devices/lyon-2", key: lyonKey), as: h.lyon) == "allow")
            #expect(try await ask("paris-2", A.deviceToken("devices/paris-2", key: key), as: h.lyon) == "unknownIdentity")
            #expect(try await ask("paris-2", A.deviceToken("devices/paris-2", key: key), as: h.device) == "allow")
            // A gateway token signed with the scoped policy: only identities in its scope.
            let gateway = SharedAccessSignature.make(resource: "\(R.host)/devices", key: h.lyonKey, keyName: "lyon", expiry: R.now + 600)
            #expect(try await ask("lyon-2", gateway, as: h.device) == "allow")
            #expect(try await ask("paris-2", gateway, as: h.device) == "wrongScope")
        }
    }

    /// What a review found: jobs, history, module lookups, restore, existence and metrics.
    @Test func nothingOutsideTheScopeLeaksThroughJobsHistoryRestoreOrMetrics() async throws {
        try await Self.withHarness { h in
            // Jobs: a scoped caller sees and cancels only its own.
            let ownerJob = try await h.call(
                .post,
                "/jobs/create",
                body: #"{"type": "bulkByQuery", "query": "SELECT * FROM devices", "change": {"action": "disable"}, "dryRun": true}"#
            )
            let ownerJobId = try #require(ownerJob.json?["jobId"]?.stringValue)
            #expect(ownerJob.json?["createdBy"] == .string("iothubowner"))
            R.expectAzureError(try await h.call(.get, "/jobs/\(ownerJobId)", as: h.lyon), .notFound, "JobNotFound")
            R.expectAzureError(try await h.call(.delete, "/jobs/\(ownerJobId)", as: h.lyon), .notFound, "JobNotFound")
            #expect(try await h.call(.get, "/jobs", as: h.lyon).json?.arrayValue?.isEmpty == true)
            #expect(try await h.call(.get, "/jobs").json?.arrayValue?.count == 1)

            // A device's history shows only the modules in the scope (a tag scope: lyon-1 is
            // in it, its module m is not).
            let history = try await h.call(.get, "/registry/devices/lyon-1/history", as: h.tagged)
            #expect(history.status == .ok)
            #expect(history.json?.arrayValue?.allSatisfy { $0["moduleId"] == .null || $0["moduleId"] == nil } == true)
            #expect(try await h.call(.get, "/registry/devices/lyon-1/history").json?.arrayValue?.contains { $0["moduleId"] == .string("m") } == true)
            // A module lookup on a device outside the scope answers as if the device were absent.
            R.expectAzureError(try await h.call(.get, "/devices/paris-2/modules/none", as: h.lyon), .notFound, "DeviceNotFound")

            // Existence outside the prefixes is not told: a delete of an absent id is refused as
            // one of a present id is.
            R.expectAzureError(try await h.call(.delete, "/devices/paris-none", as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
            R.expectAzureError(try await h.call(.post, "/registry/devices/paris-none/restore", as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
            // A seq that is another identity's event: the answer names no other identity.
            let wrong = try await h.call(.post, "/registry/devices/lyon-2/restore?seq=1", as: h.lyon)
            R.expectAzureError(wrong, .badRequest, "ArgumentInvalid")
            #expect(wrong.json?["Message"]?.stringValue?.contains("paris") == false)
            #expect(wrong.json?["Message"]?.stringValue?.contains("lyon-1") == false)

            // A tag scope: a module on a device outside it cannot be created, and a device whose
            // module is outside cannot be deleted with it.
            R.expectAzureError(
                try await h.call(.put, "/devices/lyon-2/modules/n", body: #"{}"#, as: h.tagged),
                .unauthorized,
                "IotHubUnauthorizedAccess"
            )
            R.expectAzureError(try await h.call(.delete, "/devices/lyon-1", as: h.tagged), .unauthorized, "IotHubUnauthorizedAccess")
            #expect(try await h.call(.get, "/devices/lyon-1/modules/m").status == .ok)

            R.expectAzureError(try await h.call(.get, "/metrics", as: h.lyon), .unauthorized, "IotHubUnauthorizedAccess")
        }
    }

    @Test func scopesAreManagedThroughThePolicyRoutes() async throws {
        try await Self.withHarness { h in
            let listed = try await h.call(.get, "/registry/policies")
            let lyon = listed.json?.arrayValue?.first { $0["name"] == .string("lyon") }
            #expect(lyon?["scope"] == .object(["deviceIdPrefixes": .array([.string("lyon-")])]))
            #expect(listed.json?.arrayValue?.first { $0["name"] == .string("iothubowner") }?["scope"] == nil)
            for body in [
                #"{"rights": "RegistryRead", "scope": {}}"#, #"{"rights": "RegistryRead", "scope": {"condition": "tags.site ="}}"#,
                #"{"rights": "RegistryRead", "scope": {"deviceIdPrefixes": [""]}}"#, #"{"rights": "RegistryRead", "scope": {"prefix": "x"}}"#,
                #"{"rights": "RegistryRead", "scope": {"deviceIdPrefixes": "x"}}"#,
            ] {
                R.expectAzureError(try await h.call(.put, "/registry/policies/bad", body: body), .badRequest, "ArgumentInvalid")
            }
            // Built-in policies stay unscoped.
            let builtIn = #"{"rights": "RegistryRead", "scope": {"deviceIdPrefixes": ["x"]}}"#
            R.expectAzureError(try await h.call(.put, "/registry/policies/registryRead", body: builtIn), .badRequest, "ArgumentInvalid")
            // Some unscoped policy keeps all four rights: a scoped owner does not count.
            let scopedOwner = #"{"rights": "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect", "scope": {"deviceIdPrefixes": ["x"]}}"#
            #expect(try await h.call(.put, "/registry/policies/owner2", body: scopedOwner).status == .ok)
            R.expectAzureError(try await h.call(.delete, "/registry/policies/iothubowner"), .badRequest, "ArgumentInvalid")
            // Unscoped again: PUT without scope.
            let unscoped = try await h.call(.put, "/registry/policies/lyon", body: #"{"rights": "RegistryRead"}"#)
            #expect(unscoped.json?["scope"] == nil)
        }
    }
}
