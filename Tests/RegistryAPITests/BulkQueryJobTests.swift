import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import RegistryTransfer
import Synchronization
import Testing

/// `bulkByQuery` jobs (issue 22, item 1): one change to every identity a query selects, at
/// router level over a real store, and the engine's per-identity etag check and cancellation.
@Suite(.serialized) struct BulkQueryJobTests {
    typealias R = RegistryRoutesTests
    typealias J = JobRoutesTests

    static func bulk(_ query: String, _ change: JSONValue, dryRun: Bool? = nil) -> JSONValue {
        var body: [String: JSONValue] = ["type": .string("bulkByQuery"), "query": .string(query), "change": change]
        if let dryRun { body["dryRun"] = .bool(dryRun) }
        return .object(body)
    }

    static func device(_ store: RegistryStore, _ id: String) throws -> Device? { try store.storage.device(id) }

    /// Six devices: sites a (d0, d2, d4) and b (d1, d3, d5); d0 with a module.
    static func seed(_ client: any TestClientProtocol) async throws {
        for i in 0..<6 {
            #expect(try await R.call(client, .put, "/devices/d\(i)", body: "{}").status == .ok)
            let tags = "{\"tags\": {\"site\": \"\(i % 2 == 0 ? "a" : "b")\", \"floor\": \(i)}}"
            #expect(try await R.call(client, .patch, "/twins/d\(i)", body: tags).status == .ok)
        }
        #expect(try await R.call(client, .put, "/devices/d0/modules/m", body: "{}").status == .ok)
    }

    @Test func disablesWhatTheQuerySelectsWithAReasonAsTheJob() async throws {
        try await J.withJobs { client, store, _, _ in
            try await Self.seed(client)
            let before = try #require(try Self.device(store, "d1"))
            let created = try await J.create(
                client,
                Self.bulk(
                    "SELECT * FROM devices WHERE tags.site = 'a'",
                    .object(["action": .string("disable"), "statusReason": .string("site closed")])
                )
            )
            #expect(created.status == .ok, "\(String(describing: created.json))")
            #expect(created.json?["type"] == .string("bulkByQuery"))
            let id = try #require(created.json?["jobId"]?.stringValue)
            let done = try await J.finished(client, id)
            #expect(done["status"] == .string("completed"), "\(done)")
            #expect(done["progress"] == .int(100))
            #expect(done["matched"] == .int(3))
            #expect(done["changed"] == .int(3))
            #expect(done["skipped"] == .int(0))
            #expect(done["results"] == .array([]))
            #expect(done["change"] == .object(["action": .string("disable"), "statusReason": .string("site closed")]))
            for i in [0, 2, 4] {
                let d = try #require(try Self.device(store, "d\(i)"))
                #expect(d.status == .disabled)
                #expect(d.statusReason == "site closed")
                let history = try await store.storage.history(deviceId: "d\(i)", moduleId: nil)
                #expect(history.last?.actor == "job:\(id)")
                #expect(history.last?.requestId == id)
            }
            // The others are untouched: same etag, still enabled.
            #expect(try Self.device(store, "d1") == before)
            #expect(try Self.device(store, "d3")?.status == .enabled)

            // And back: enable by the same selection, status reason cleared.
            let enabled = try await J.create(
                client,
                Self.bulk("SELECT deviceId FROM devices WHERE status = 'disabled'", .object(["action": .string("enable")]))
            )
            let enabledDone = try await J.finished(client, try #require(enabled.json?["jobId"]?.stringValue))
            #expect(enabledDone["changed"] == .int(3))
            #expect(try Self.device(store, "d0")?.status == .enabled)
            #expect(try Self.device(store, "d0")?.statusReason == nil)
        }
    }

    @Test func aDryRunOnlyCounts() async throws {
        try await J.withJobs { client, store, _, _ in
            try await Self.seed(client)
            let head = try store.head()
            let created = try await J.create(
                client,
                Self.bulk("SELECT * FROM devices WHERE tags.floor >= 2", .object(["action": .string("delete")]), dryRun: true)
            )
            let done = try await J.finished(client, try #require(created.json?["jobId"]?.stringValue))
            #expect(done["status"] == .string("completed"))
            #expect(done["dryRun"] == .bool(true))
            #expect(done["matched"] == .int(4))
            #expect(done["changed"] == .int(0))
            let after = try store.head()
            #expect(after.seq == head.seq, "a dry run writes nothing")
        }
    }

    @Test func regeneratesTheKeysAskedForAndReportsIdentitiesWithoutKeys() async throws {
        try await J.withJobs { client, store, _, _ in
            try await Self.seed(client)
            let thumbprint = String(repeating: "A", count: 40)
            let x509 = "{\"authentication\": {\"type\": \"selfSigned\", \"x509Thumbprint\": {\"primaryThumbprint\": \"\(thumbprint)\"}}}"
            #expect(try await R.call(client, .put, "/devices/x", body: x509).status == .ok)
            let old = try #require(try Self.device(store, "d1")?.authentication.symmetricKey)
            let created = try await J.create(
                client,
                Self.bulk(
                    "SELECT * FROM devices WHERE tags.site = 'b' OR deviceId = 'x'",
                    .object(["action": .string("regenerateKeys"), "keys": .string("primary")])
                )
            )
            let done = try await J.finished(client, try #require(created.json?["jobId"]?.stringValue))
            #expect(done["status"] == .string("completed"), "\(done)")
            #expect(done["matched"] == .int(4))
            #expect(done["changed"] == .int(3))
            #expect(done["failed"] == .int(1))
            let results = try #require(done["results"]?.arrayValue)
            #expect(results.count == 1)
            #expect(results.first?["deviceId"] == .string("x"))
            #expect(results.first?["errorCode"] == .string("ArgumentInvalid"))
            let new = try #require(try Self.device(store, "d1")?.authentication.symmetricKey)
            #expect(new.primaryKey != old.primaryKey)
            #expect(new.secondaryKey == old.secondaryKey)
            // The x509 device is refused, not changed.
            #expect(try store.storage.device("x")?.authentication.x509Thumbprint.primaryThumbprint == thumbprint)
        }
    }

    @Test func setsAndRemovesTagsOnModulesAndDeletesDevicesWithTheirModules() async throws {
        try await J.withJobs { client, store, _, _ in
            try await Self.seed(client)
            #expect(try await R.call(client, .put, "/devices/d1/modules/m", body: "{}").status == .ok)
            let set = try await J.create(
                client,
                Self.bulk(
                    "SELECT * FROM devices.modules WHERE moduleId = 'm'",
                    .object(["action": .string("setTags"), "tags": .object(["role": .string("gw")])])
                )
            )
            #expect(try await J.finished(client, try #require(set.json?["jobId"]?.stringValue))["changed"] == .int(2))
            let twin = try await R.call(client, .get, "/twins/d1/modules/m")
            #expect(twin.json?["tags"] == .object(["role": .string("gw")]))

            let removed = try await J.create(
                client,
                Self.bulk("SELECT * FROM devices", .object(["action": .string("removeTags"), "tags": .array([.string("floor")])]))
            )
            #expect(try await J.finished(client, try #require(removed.json?["jobId"]?.stringValue))["changed"] == .int(6))
            #expect(try await R.call(client, .get, "/twins/d3").json?["tags"] == .object(["site": .string("b")]))

            let deleted = try await J.create(client, Self.bulk("SELECT * FROM devices WHERE tags.site = 'a'", .object(["action": .string("delete")])))
            #expect(try await J.finished(client, try #require(deleted.json?["jobId"]?.stringValue))["changed"] == .int(3))
            #expect(try await R.call(client, .get, "/devices/d0").status == .notFound)
            #expect(try await R.call(client, .get, "/devices/d0/modules/m").status == .notFound)
            #expect(try await R.call(client, .get, "/devices/d1/modules/m").status == .ok)
            let statistics = try store.statistics()
            #expect(statistics.totalDeviceCount == 3)
        }
    }

    @Test func badRequestsAreRefusedAndCreateNoJob() async throws {
        try await J.withJobs { client, _, _, _ in
            let cases: [(JSONValue, String, String)] = [
                (.object(["type": .string("bulkByQuery"), "change": .object(["action": .string("delete")])]), "ArgumentNull", "query"),
                (Self.bulk("SELECT * FROM devices", .null), "ArgumentNull", "change"),
                (Self.bulk("SELECT COUNT() AS n FROM devices", .object(["action": .string("delete")])), "ArgumentInvalid", "aggregate"),
                (Self.bulk("SELECT * FROM devices WHERE", .object(["action": .string("delete")])), "ArgumentInvalid", "query"),
                (Self.bulk("SELECT * FROM devices.modules", .object(["action": .string("disable")])), "ArgumentInvalid", "Modules"),
                (Self.bulk("SELECT * FROM devices", .object(["action": .string("explode")])), "ArgumentInvalid", "explode"),
                (Self.bulk("SELECT * FROM devices", .object(["action": .string("delete"), "tags": .array([])])), "ArgumentInvalid", "change.tags"),
                (
                    Self.bulk("SELECT * FROM devices", .object(["action": .string("regenerateKeys"), "keys": .string("tertiary")])),
                    "ArgumentInvalid", "keys"
                ),
                (Self.bulk("SELECT * FROM devices", .object(["action": .string("setTags"), "tags": .object([:])])), "ArgumentInvalid", "tags"),
                (Self.bulk("SELECT * FROM devices", .object(["action": .string("removeTags"), "tags": .string("a")])), "ArgumentInvalid", "tags"),
                (
                    Self.bulk(
                        "SELECT * FROM devices",
                        .object(["action": .string("disable"), "statusReason": .string(String(repeating: "r", count: 129))])
                    ),
                    "ArgumentInvalid", "statusReason"
                ),
            ]
            for (body, code, mention) in cases {
                let reply = try await J.create(client, body)
                #expect(reply.status == .badRequest, "\(body)")
                #expect(reply.errorCode == code, "\(body)")
                #expect(reply.json?["Message"]?.stringValue?.contains(mention) == true, "\(String(describing: reply.json))")
            }
            // Creating one changes the registry: the registryRead policy cannot.
            let read = try await J.create(
                client,
                Self.bulk("SELECT * FROM devices", .object(["action": .string("delete")])),
                auth: R.token("registryRead")
            )
            #expect(read.status == .unauthorized)
            #expect(try await R.call(client, .get, "/jobs").json?.arrayValue?.isEmpty == true)
        }
    }

    /// The etags checked are those the job read: an identity written between the job's read of
    /// its page and the writer applying it is reported as skipped and keeps the other write.
    /// With a batch of one, the second page is read before the first batch settles (the
    /// progress callback), where the test writes to it.
    @Test func anIdentityChangedAfterTheJobReadItIsSkippedNotOverwritten() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir + "/data")
            defer { store.close() }
            for i in 0..<3 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "s\(i)")), actor: "t", requestId: "t") }
            let query = try BulkQueryEngine.selection(try QueryParser.parse("SELECT * FROM devices"))
            let refusals = Mutex<[BulkQueryEngine.Refusal]>([])
            let writes = Mutex(0)
            let counts = try await BulkQueryEngine.apply(
                store: store,
                query: query,
                action: .setStatus(.disabled, reason: "bulk"),
                counts: .init(),
                batch: 1,
                bounds: QueryBounds(),
                actor: "job:x",
                requestId: "x",
                refused: { r in refusals.withLock { $0.append(r) } },
                isCancelled: { false },
                progress: { _ in
                    guard
                        writes.withLock({ n in
                            defer { n += 1 }; return n == 0
                        })
                    else { return }
                    _ = try? await store.execute(
                        .replaceDevice(DeviceSpec(deviceId: "s1", statusReason: "someone else"), ifMatch: .any),
                        actor: "other",
                        requestId: "o"
                    )
                }
            )
            #expect(counts.processed == 3)
            #expect(counts.changed == 2)
            #expect(counts.skipped == 1)
            let refused = refusals.withLock { $0 }
            #expect(refused.map(\.deviceId) == ["s1"])
            #expect(refused.first?.errorCode == "PreconditionFailed")
            let s1 = try #require(try store.storage.device("s1"))
            #expect(s1.status == .enabled)
            #expect(s1.statusReason == "someone else")
            #expect(try store.storage.device("s2")?.status == .disabled)
        }
    }

    /// A twin written since the read counts too: a tag change is checked against the twin's etag.
    @Test func aTwinChangedAfterTheJobReadItIsSkipped() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir + "/data")
            defer { store.close() }
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "t")), actor: "t", requestId: "t")
            let device = try #require(try store.storage.device("t"))
            _ = try await store.execute(.updateTwin(TwinUpdate(deviceId: "t", tags: ["a": .int(1)])), actor: "t", requestId: "t")
            let stale = IdentityChange(deviceId: "t", action: .delete, etag: device.etag, twinEtag: TwinState.initialEtag)
            let result = try await store.execute([.change(stale)], actor: "job:y", requestId: "y")
            guard case .failure(let error) = result.first else {
                Issue.record("a change read before the twin write must be refused")
                return
            }
            #expect(error.code == .preconditionFailed)
            #expect(try store.storage.device("t") != nil)
        }
    }

    @Test func aCancelledJobStopsBetweenBatches() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir + "/data")
            defer { store.close() }
            for i in 0..<5 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "c\(i)")), actor: "t", requestId: "t") }
            let query = try BulkQueryEngine.selection(try QueryParser.parse("SELECT * FROM devices"))
            let cancelled = Atomic(false)
            await #expect(throws: ImportExportEngine.Cancelled.self) {
                _ = try await BulkQueryEngine.apply(
                    store: store,
                    query: query,
                    action: .delete,
                    counts: .init(),
                    batch: 2,
                    bounds: QueryBounds(),
                    actor: "job:c",
                    requestId: "c",
                    refused: { _ in },
                    isCancelled: { cancelled.load(ordering: .relaxed) },
                    progress: { _ in cancelled.store(true, ordering: .relaxed) }
                )
            }
            // The first batch settled (and the second, already with the writer, too); no third.
            let left = try store.statistics().totalDeviceCount
            #expect(left == 1)
        }
    }
}
