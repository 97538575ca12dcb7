import Foundation
import RegistryCore
import RegistryLMDB
import RegistryPostgres
import RegistryTesting
import Synchronization
import Testing

/// `registryd migrate` (issue 19): LMDB → PostgreSQL → LMDB keeps the log byte for byte and
/// the projections, policies, cursors, parked messages and jobs identical.
@Suite(.serialized) struct MigrationTests {
    struct Contents: Equatable {
        var log: [[UInt8]]
        var documents: [String: [UInt8]]
        var policies: [String: SharedAccessPolicy]
        var cursors: [String: RouteCursor]
        var parked: [ParkedRecord]
        var jobs: Set<[UInt8]>
        var settings: [String?]
    }

    static func contents(_ store: any RegistryReader) async throws -> Contents {
        let documents = Documents()
        try await store.forEachIdentity(openKeys: false) { document, isModule in
            let json = try JSONParser.parse(document.json)
            let id = (json["deviceId"]?.stringValue ?? "") + (isModule ? "/" + (json["moduleId"]?.stringValue ?? "") : "")
            documents.add(id, document.json)
        }
        return Contents(
            log: try await store.rawEvents(from: 1, limit: .max),
            documents: documents.all,
            policies: Dictionary(uniqueKeysWithValues: try await store.policies().map { ($0.name, $0) }),
            cursors: try await store.routeCursors(),
            parked: try await store.parkedMessages(route: "r1"),
            jobs: Set(try await store.jobRecords()),
            settings: [try await store.metaString(MetaKey.hubName), try await store.metaString(MetaKey.policyGeneration)]
        )
    }

    static func postgres(_ key: [UInt8]) async throws -> PostgresStore {
        guard let url = ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_URL"] else {
            throw StoreError("REGISTRYD_TEST_POSTGRES_URL is not set: run tools/test.sh, which starts a PostgreSQL cluster for the tests")
        }
        let hub = "migrate-\(UUID().uuidString.prefix(8).lowercased())"
        return try await PostgresStore.open(
            PostgresStore.Configuration(location: try PostgresLocation(url: url + (url.contains("?") ? "&" : "?") + "hub=\(hub)"), dataKey: key)
        )
    }

    @Test func lmdbToPostgresAndBackKeepsEveryByte() async throws {
        try await withTemporaryDirectory { directory in
            let source = try makeStore(directory + "/a", seed: 7)
            defer { source.close() }
            _ = try await source.ensureBuiltInPolicies()
            _ = try await source.rotatePolicy(name: "registryRead", secondary: true)
            for i in 0..<30 {
                _ = try await source.execute(
                    .createDevice(DeviceSpec(deviceId: "d\(i)", status: i % 4 == 0 ? .disabled : nil)),
                    actor: "t",
                    requestId: "\(i)"
                )
            }
            _ = try await source.execute(.createModule(ModuleSpec(deviceId: "d1", moduleId: "m")), actor: "t", requestId: "m")
            _ = try await source.execute(.updateTwin(TwinUpdate(deviceId: "d2", tags: ["site": .string("x")])), actor: "t", requestId: "tw")
            _ = try await source.execute(.deleteDevice(deviceId: "d3", ifMatch: .any), actor: "t", requestId: "del")
            try await source.saveRouteCursor("r1", RouteCursor(seq: 12, dead: false))
            try await source.park(route: "r1", [ParkedRecord(seq: 5, message: Array("{\"m\":5}".utf8))])
            try await source.saveJobRecord("job1", Array("{\"jobId\":\"job1\",\"status\":\"completed\"}".utf8))
            try await source.setMetaString(MetaKey.hubName, "migrated-hub")
            let before = try await Self.contents(source)
            #expect(before.log.count == 33)

            let key = try DataDirectory(path: directory + "/a").loadDataKey(create: false)
            let middle = try await Self.postgres(key)
            defer { middle.close() }
            let there = try await StoreMigration.copy(from: source, to: middle)
            #expect(there.events == 33 && there.policies == 5 && there.routes == 1 && there.parked == 1 && there.jobs == 1)
            #expect(try await Self.contents(middle) == before, "on PostgreSQL: the same log bytes, documents, policies, cursors, jobs")
            // A non-empty destination is refused.
            await #expect(throws: StoreError.self) { try await StoreMigration.copy(from: source, to: middle) }

            try PrivateFile.write(Array((Data(key).base64EncodedString() + "\n").utf8), to: directory + "/b.key", existing: .refuse)
            try DataDirectory(path: directory + "/b").create()
            try FileManager.default.moveItem(atPath: directory + "/b.key", toPath: DataDirectory(path: directory + "/b").dataKeyPath)
            let back = try makeStore(directory + "/b", seed: 8)
            defer { back.close() }
            _ = try await StoreMigration.copy(from: middle, to: back)
            #expect(try await Self.contents(back) == before, "back on LMDB: identical log bytes and projections")
            // The moved registry takes writes where the log ended.
            _ = try await back.execute(.createDevice(DeviceSpec(deviceId: "after")), actor: "t", requestId: "after")
            #expect(try back.storage.head().seq == 34)
            #expect(try await back.verifyLog(progress: nil).outcome == .clean)
        }
    }
}

/// Documents collected from a scan's callback.
final class Documents: Sendable {
    private let items = Mutex<[String: [UInt8]]>([:])
    func add(_ id: String, _ bytes: [UInt8]) { items.withLock { $0[id] = bytes } }
    var all: [String: [UInt8]] { items.withLock { $0 } }
}
