import Foundation
import RegistryCore
import RegistryPostgres
import RegistryTesting
import Synchronization
import Testing

/// Several registryd nodes on one PostgreSQL database (issue 19, DESIGN §10), each a full
/// `PostgresStore` with its own connection pool, group-commit writer and log follower, on the
/// cluster `tools/test.sh` starts. In one process, but sharing nothing except the database, as
/// two daemons would.
@Suite(.serialized) struct MultiNodeTests {
    /// Two nodes on a fresh hub (the same data key, as every node of a hub must have).
    static func withNodes(
        _ count: Int = 2,
        servingLease: Bool = false,
        pollInterval: Duration = .milliseconds(200),
        _ body: ([PostgresStore]) async throws -> Void
    ) async throws {
        guard let url = ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_URL"] else {
            throw StoreError("REGISTRYD_TEST_POSTGRES_URL is not set: run tools/test.sh, which starts a PostgreSQL cluster for the tests")
        }
        let hub = "nodes-\(UUID().uuidString.prefix(8).lowercased())"
        let location = try PostgresLocation(url: url + (url.contains("?") ? "&" : "?") + "hub=\(hub)")
        let key = dataKey
        var nodes: [PostgresStore] = []
        for i in 0..<count {
            var configuration = PostgresStore.Configuration(location: location, dataKey: key)
            configuration.pollInterval = pollInterval
            configuration.holdsServingLease = servingLease
            nodes.append(try await PostgresStore.open(configuration, random: SeededRandom(seed: UInt64(100 + i))))
        }
        defer { for node in nodes { node.close() } }
        try await body(nodes)
    }

    /// The data key of every node `withNodes` opens.
    static var dataKey: [UInt8] {
        var random = SeededRandom(seed: 19)
        return (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &random) }
    }

    static func create(_ id: String) -> Command { .createDevice(DeviceSpec(deviceId: id)) }

    @Test func concurrentWritesOnTwoNodesMakeOneGaplessChain() async throws {
        try await Self.withNodes { nodes in
            // 2 nodes × 8 writers × 15 creates, all at once.
            let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
                for (n, node) in nodes.enumerated() {
                    for w in 0..<8 {
                        group.addTask {
                            var ids: [String] = []
                            for i in 0..<15 {
                                let id = "n\(n)-w\(w)-\(i)"
                                _ = try await node.execute(Self.create(id), actor: "test", requestId: id)
                                ids.append(id)
                            }
                            return ids
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(acknowledged.count == 240)
            let records = try await nodes[1].rawEvents(from: 1, limit: .max).map { try EventRecord.decode($0) }
            #expect(records.map(\.seq) == Array(1...240), "seqs gapless across both nodes")
            var previous = EventRecord.genesisHash
            for record in records {
                #expect(record.prevHash == previous && record.hash == record.computedHash, "linear chain at seq \(record.seq)")
                previous = record.hash
            }
            #expect(Set(records.map(\.deviceId)) == Set(acknowledged), "every acknowledged write is in the log")
            for node in nodes {
                #expect(try await node.verifyLog(progress: nil).outcome == .clean)
                #expect(try await node.statistics().totalDeviceCount == 240)
            }
        }
    }

    /// A writer decides a create against its node's view when the view is current (nothing
    /// read); when the other node committed since, it must read the tables instead. Both nodes
    /// creating the same ids at once: each id is created exactly once, every other attempt is
    /// refused as a duplicate, and nothing is appended for a refusal.
    @Test func theSameDevicesCreatedThroughBothNodesAtOnceAreCreatedOnce() async throws {
        try await Self.withNodes { nodes in
            let ids = (0..<30).map { "same-\($0)" }
            let counts = try await withThrowingTaskGroup(of: (created: Int, refused: Int).self) { group in
                for (n, node) in nodes.enumerated() {
                    for w in 0..<4 {
                        group.addTask {
                            var (created, refused) = (0, 0)
                            // Each writer walks the ids from its own starting point.
                            let start = (n * 4 + w) * 7 % ids.count
                            for id in ids[start...] + ids[..<start] {
                                do {
                                    _ = try await node.execute(Self.create(id), actor: "test", requestId: "\(n)-\(w)-\(id)")
                                    created += 1
                                } catch let error as RegistryError where error.code == .deviceAlreadyExists {
                                    refused += 1
                                }
                            }
                            return (created, refused)
                        }
                    }
                }
                return try await group.reduce(into: (created: 0, refused: 0)) {
                    $0.created += $1.created; $0.refused += $1.refused
                }
            }
            #expect(counts.created == ids.count)
            #expect(counts.refused == ids.count * 7)
            let records = try await nodes[0].rawEvents(from: 1, limit: .max).map { try EventRecord.decode($0) }
            #expect(records.map(\.deviceId).sorted() == ids.sorted(), "one event per id")
            for node in nodes { #expect(try await node.verifyLog(progress: nil).outcome == .clean) }
        }
    }

    /// A failover that lost commits node A had folded, after which node B committed other events
    /// at the same seqs: A's view is at the head's seq but not at its hash. A must not decide
    /// against that view (a create of a device B made would overwrite it), and its view must
    /// reload once it sees the log no longer continues from it.
    @Test func aViewAtTheHeadsSeqButNotItsHashIsNotTakenForTheStoredState() async throws {
        // No poll (an hour): only what this test does moves the views.
        try await Self.withNodes(pollInterval: .seconds(3600)) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            for id in ["x1", "x2", "x3"] { _ = try await a.execute(Self.create(id), actor: "test", requestId: id) }
            #expect(try a.credentials(deviceId: "x3", moduleId: nil) != nil)
            // The failover: seqs 2 and 3 are gone from the database (the new primary never had
            // them), and the head is back at seq 1.
            try Self.sql(
                """
                BEGIN;
                DELETE FROM events WHERE hub = '\(a.location.hub)' AND seq >= 2;
                DELETE FROM devices WHERE hub = '\(a.location.hub)' AND key IN ('x2'::bytea, 'x3'::bytea);
                UPDATE log_head SET seq = 1, hash = (
                  SELECT decode(substring(convert_from(record, 'UTF8') from '"hash":"([0-9a-f]{64})"'), 'hex')
                  FROM events WHERE hub = '\(a.location.hub)' AND seq = 1)
                WHERE hub = '\(a.location.hub)';
                COMMIT;
                """
            )
            // Node B writes seqs 2 and 3 anew.
            for id in ["z2", "z3"] { _ = try await b.execute(Self.create(id), actor: "test", requestId: id) }
            #expect(try await b.head().seq == 3)
            await #expect(throws: RegistryError.self, "z3 exists: a duplicate create is refused") {
                try await a.execute(Self.create("z3"), actor: "test", requestId: "again")
            }
            #expect(try await a.device("z3")?.generationId == (try await b.device("z3")?.generationId))
            // A's next commit does not continue its view: the view reloads from the tables.
            _ = try await a.execute(Self.create("a4"), actor: "test", requestId: "a4")
            for _ in 0..<500 where try a.credentials(deviceId: "z2", moduleId: nil) == nil {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try a.credentials(deviceId: "z2", moduleId: nil) != nil)
            #expect(try a.credentials(deviceId: "x2", moduleId: nil) == nil, "what the failover lost no longer authenticates")
            for node in nodes { #expect(try await node.verifyLog(progress: nil).outcome == .clean) }
        }
    }

    /// Runs SQL on the test cluster through psql.
    static func sql(_ statements: String) throws {
        let url = try #require(ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_URL"])
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        psql.arguments = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", statements]
        try psql.run()
        psql.waitUntilExit()
        #expect(psql.terminationStatus == 0)
    }

    @Test func ifMatchReadModifyWriteFromBothNodesLosesNoUpdate() async throws {
        try await Self.withNodes { nodes in
            _ = try await nodes[0].execute(Self.create("counter"), actor: "test", requestId: "c")
            // Each client reads the device on its node, adds its tag, and writes back with If-Match;
            // on 412 it reads again. Every tag must survive.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (n, node) in nodes.enumerated() {
                    for c in 0..<3 {
                        group.addTask {
                            for i in 0..<4 {
                                while true {
                                    let device = try #require(try await node.device("counter"))
                                    var tags = device.twin?.tags ?? [:]
                                    tags["n\(n)c\(c)i\(i)"] = .bool(true)
                                    let etag = ETagCondition.exact(device.twin?.etag ?? TwinState.initialEtag)
                                    let update = TwinUpdate(deviceId: "counter", tags: tags, ifMatch: etag)
                                    do {
                                        _ = try await node.execute(.updateTwin(update), actor: "test", requestId: "t")
                                        break
                                    } catch let error as RegistryError where error.code == .preconditionFailed {
                                        continue
                                    }
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let tags = try #require(try await nodes[1].device("counter")?.twin?.tags)
            #expect(tags.count == 24, "no lost update: \(tags.count) of 24 tags")
        }
    }

    /// Point reads come from the node's view of the log (`ReadFence`): still, a write that
    /// returned on one node is what the other node's next read answers, at once.
    @Test func aWriteOnOneNodeIsWhatTheOtherNodeReadsNext() async throws {
        try await Self.withNodes { nodes in
            _ = try await nodes[0].execute(Self.create("seen"), actor: "test", requestId: "c")
            _ = try await nodes[0].execute(.createModule(ModuleSpec(deviceId: "seen", moduleId: "m")), actor: "test", requestId: "m")
            for i in 0..<40 {
                let writer = nodes[i % 2]
                let reader = nodes[(i + 1) % 2]
                _ = try await writer.execute(
                    .updateTwin(TwinUpdate(deviceId: "seen", tags: ["round": .int(Int64(i))], ifMatch: .any)),
                    actor: "test",
                    requestId: "t\(i)"
                )
                let written = try #require(try await writer.device("seen")?.twin?.etag)
                #expect(try await reader.device("seen")?.twin?.etag == written, "round \(i)")
                #expect(try await reader.module("seen", "m") != nil)
            }
            _ = try await nodes[0].execute(.deleteDevice(deviceId: "seen", ifMatch: .any), actor: "test", requestId: "d")
            #expect(try await nodes[1].device("seen") == nil)
            #expect(try await nodes[1].module("seen", "m") == nil)
        }
    }

    @Test func aDisableOnOneNodeReachesTheOtherNodesDeviceAuthentication() async throws {
        try await Self.withNodes { nodes in
            _ = try await nodes[0].execute(Self.create("sensor"), actor: "test", requestId: "1")
            try await Self.caughtUp(nodes[1], to: try await nodes[0].head().seq)
            #expect(try nodes[1].credentials(deviceId: "sensor", moduleId: nil)?.deviceDisabled == false)
            _ = try await nodes[0].execute(
                .replaceDevice(DeviceSpec(deviceId: "sensor", status: .disabled), ifMatch: .any),
                actor: "test",
                requestId: "2"
            )
            try await Self.caughtUp(nodes[1], to: try await nodes[0].head().seq)
            #expect(try nodes[1].credentials(deviceId: "sensor", moduleId: nil)?.deviceDisabled == true)
            _ = try await nodes[0].execute(.deleteDevice(deviceId: "sensor", ifMatch: .any), actor: "test", requestId: "3")
            try await Self.caughtUp(nodes[1], to: try await nodes[0].head().seq)
            #expect(try nodes[1].credentials(deviceId: "sensor", moduleId: nil) == nil)
        }
    }

    @Test func theCommitSignalOnOneNodeFollowsTheOtherNodesWritesInOrder() async throws {
        try await Self.withNodes { nodes in
            let updates = nodes[1].commits.updates()
            for i in 0..<5 { _ = try await nodes[0].execute(Self.create("s\(i)"), actor: "test", requestId: "\(i)") }
            var seen: [UInt64] = []
            for await seq in updates {
                seen.append(seq)
                if seq >= 5 { break }
            }
            #expect(seen == seen.sorted(), "the signal only moves forward")
            let streamed = try await nodes[1].events(from: 1, limit: 10)
            #expect(streamed.map(\.deviceId) == (0..<5).map { "s\($0)" })
        }
    }

    @Test func aRoutesLeaseIsHeldByOneNodeAndTakenOverWhenItsHolderGoesAway() async throws {
        try await Self.withNodes { nodes in
            let log = Events()
            let aHolds = AsyncStream<Void>.makeStream()
            let a = Task {
                await nodes[0].withRouteLease("r") {
                    log.add("A in")
                    aHolds.continuation.yield()
                    // Holds until its lease goes (its session ends when node A closes).
                    while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
                    log.add("A out")
                }
            }
            var iterator = aHolds.stream.makeAsyncIterator()
            _ = await iterator.next()
            let bIn = AsyncStream<Void>.makeStream()
            let b = Task {
                await nodes[1].withRouteLease("r") {
                    log.add("B in")
                    bIn.continuation.yield()
                }
            }
            // B tries while A holds (its first attempt is at once); only A's end lets it in.
            try await Task.sleep(for: .milliseconds(300))
            nodes[0].close()
            var bIterator = bIn.stream.makeAsyncIterator()
            _ = await bIterator.next()
            #expect(log.all == ["A in", "A out", "B in"], "one holder at a time; B took over after A went")
            a.cancel()
            await b.value
        }
    }

    @Test func aReaderIsRefusedAHubNoNodeServedAndANodeWithAnotherDataKey() async throws {
        try await Self.withNodes(1) { nodes in
            // A tool opening a mistyped hub gets an error, not a new empty registry.
            var reader = PostgresStore.Configuration(
                location: try PostgresLocation(url: Self.url + (Self.url.contains("?") ? "&" : "?") + "hub=never-served"),
                dataKey: Array(repeating: 7, count: 32)
            )
            reader.createsHub = false
            await #expect(throws: StoreError.self) { _ = try await PostgresStore.open(reader) }
            // The hub of the running node, opened with another data key: refused.
            var stranger = PostgresStore.Configuration(location: nodes[0].location, dataKey: Array(repeating: 9, count: 32))
            stranger.createsHub = false
            let error = await #expect(throws: StoreError.self) { _ = try await PostgresStore.open(stranger) }
            #expect(error?.description.contains("data key") == true)
        }
    }

    static var url: String { ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_URL"] ?? "" }

    /// Waits until `node`'s log follower has folded `seq` (its commit signal).
    static func caughtUp(_ node: PostgresStore, to seq: UInt64) async throws {
        _ = await node.commits.wait(after: seq - 1)
    }
}

/// Strings appended from several tasks, in order.
final class Events: Sendable {
    private let items = Mutex<[String]>([])
    func add(_ item: String) { items.withLock { $0.append(item) } }
    var all: [String] { items.withLock { $0 } }
}
