import Foundation
import Logging
import RegistryAPI
import RegistryCore
import RegistryPostgres
import RegistryTesting
import Testing

/// What one node of a hub may do only while no other does: run the hub's import/export job, and
/// migrate a hub no node serves (the leases of `SessionLocks`), on the cluster `tools/test.sh`
/// starts.
@Suite(.serialized) struct ClusterLeaseTests {
    static func export(_ root: String) -> JSONValue {
        .object(["type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out")])
    }

    @Test func theHubHasOneActiveJobAcrossItsNodes() async throws {
        try await MultiNodeTests.withNodes { nodes in
            try await withTemporaryDirectory { root in
                try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
                let now = Timestamp(unixSeconds: 1_800_000_000)
                let (a, b) = (nodes.map { JobService(store: $0, configuration: JobsConfiguration(roots: [root]), logger: Logger(label: "test")) })
                    .pair
                // A's job is created (the lease taken) but A's runner has not started: it stays
                // active, so B is refused, as a node of the same hub would be.
                let first = try await a.create(Self.export(root), now: now)
                let refused = await #expect(throws: APIError.self) { _ = try await b.create(Self.export(root), now: now) }
                #expect(refused?.code == "JobQuotaExceeded")
                // B restarting meanwhile does not fail A's live job.
                try await b.recoverInterrupted(now: now)
                #expect(try await b.get(first.jobId)?.status == .enqueued)
                // A runs it to the end, which gives the lease up; then B may.
                let running = Task { try await a.run() }
                var finished: JobRecord?
                for _ in 0..<400 where finished?.status.isTerminal != true {
                    finished = try await b.get(first.jobId)
                    try await Task.sleep(for: .milliseconds(25))
                }
                #expect(finished?.status == .completed)
                var second: JobRecord?
                for _ in 0..<200 where second == nil {
                    // The lease's release reaches the database just after the record's save.
                    second = try? await b.create(Self.export(root), now: now)
                    if second == nil { try await Task.sleep(for: .milliseconds(25)) }
                }
                #expect(second?.status == .enqueued)
                running.cancel()
            }
        }
    }

    @Test func aJobLeftUnfinishedByADeadNodeIsFailedByTheNextCreate() async throws {
        try await MultiNodeTests.withNodes { nodes in
            try await withTemporaryDirectory { root in
                try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
                let now = Timestamp(unixSeconds: 1_800_000_000)
                let a = JobService(store: nodes[0], configuration: JobsConfiguration(roots: [root]), logger: Logger(label: "test"))
                let orphan = try await a.create(Self.export(root), now: now)
                // A's node goes away (its session, and with it the lease, ends) with the job enqueued.
                nodes[0].close()
                let b = JobService(store: nodes[1], configuration: JobsConfiguration(roots: [root]), logger: Logger(label: "test"))
                var created: JobRecord?
                for _ in 0..<200 where created == nil {
                    created = try? await b.create(Self.export(root), now: now)
                    if created == nil { try await Task.sleep(for: .milliseconds(25)) }
                }
                #expect(created != nil, "B takes the lease once A's session ended")
                let left = try #require(try await b.get(orphan.jobId))
                #expect(left.status == .failed)
                #expect(left.failureReason?.contains("stopped while the job was") == true)
            }
        }
    }

    @Test func aHubThatANodeServesCannotBeMigratedFrom() async throws {
        try await MultiNodeTests.withNodes(2, servingLease: true) { nodes in
            var reader = PostgresStore.Configuration(location: nodes[0].location, dataKey: MultiNodeTests.dataKey)
            reader.createsHub = false
            let tool = try await PostgresStore.open(reader)
            defer { tool.close() }
            // The nodes take their serving lease as they start (a moment after `open`).
            var refusal: (any Error)?
            for _ in 0..<200 where refusal == nil {
                do { _ = try await tool.whileNoNodeServes { 0 } } catch { refusal = error }
                if refusal == nil { try await Task.sleep(for: .milliseconds(25)) }
            }
            #expect((refusal as? StoreError)?.description.contains("is serving hub") == true, "\(String(describing: refusal))")
            // One node left still serves; none left, the hub may be migrated from.
            nodes[0].close()
            try await Task.sleep(for: .milliseconds(300))
            await #expect(throws: StoreError.self) { _ = try await tool.whileNoNodeServes { 0 } }
            nodes[1].close()
            var ran: Int?
            for _ in 0..<200 where ran == nil {
                ran = try? await tool.whileNoNodeServes { 42 }
                if ran == nil { try await Task.sleep(for: .milliseconds(25)) }
            }
            #expect(ran == 42)
        }
    }
}

extension Array {
    /// The first two elements (a test's two nodes).
    fileprivate var pair: (Element, Element) { (self[0], self[1]) }
}

/// A job whose lease is lost (its database session ended) stops and is recorded failed: another
/// node may start a job meanwhile, so two must never run.
@Suite(.serialized) struct JobLeaseLossTests {
    /// Ends the database session holding the hub's job lease (the advisory lock `jobs:<hub>`),
    /// as a network cut or a failover would, through psql with the test cluster's URL.
    static func endJobLeaseSession(hub: String) throws {
        let url = try #require(ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_URL"])
        let sql = """
            SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
              AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('jobs:\(hub)', 0)
            """
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        psql.arguments = ["psql", "-X", "-q", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql]
        let output = Pipe()
        psql.standardOutput = output
        try psql.run()
        psql.waitUntilExit()
        #expect(psql.terminationStatus == 0)
        let answer = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(answer.contains("t"), "one session held the lease and was ended: \(answer)")
    }

    @Test func aJobWhoseLeaseIsLostStopsAndIsRecordedFailed() async throws {
        try await MultiNodeTests.withNodes(1) { nodes in
            try await withTemporaryDirectory { root in
                try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
                let jobs = JobService(store: nodes[0], configuration: JobsConfiguration(roots: [root]), logger: Logger(label: "test"))
                let job = try await jobs.create(ClusterLeaseTests.export(root), now: Timestamp(unixSeconds: 1_800_000_000))
                try Self.endJobLeaseSession(hub: nodes[0].location.hub)
                var record: JobRecord?
                for _ in 0..<400 where record?.status != .failed {
                    try await Task.sleep(for: .milliseconds(25))
                    record = try await jobs.get(job.jobId)
                }
                #expect(record?.status == .failed)
                #expect(record?.failureReason?.contains("lease was lost") == true)
                // Its runner starting now does not run it: nothing is exported. The next job can
                // be created only once the runner has let go of it.
                let running = Task { try await jobs.run() }
                var second: JobRecord?
                let next: JSONValue = .object([
                    "type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out"), "outputBlobName": .string("second.txt"),
                ])
                for _ in 0..<400 where second == nil {
                    second = try? await jobs.create(next, now: Timestamp(unixSeconds: 1_800_000_001))
                    if second == nil { try await Task.sleep(for: .milliseconds(25)) }
                }
                #expect(second != nil)
                #expect(!FileManager.default.fileExists(atPath: root + "/out/devices.txt"))
                let first = try await jobs.get(job.jobId)
                #expect(first?.status == .failed)
                #expect(first?.failureReason?.contains("lease was lost") == true)
                running.cancel()
            }
        }
    }
}

/// A cancel taken by one node is never overwritten by the node running the job: its saves
/// compare with what it last wrote (`replaceJobRecord`), so it sees the cancel and stops.
@Suite(.serialized) struct CrossNodeCancelTests {
    @Test func aCancelRecordedByAnotherNodeBeforeTheJobStartsIsKept() async throws {
        try await MultiNodeTests.withNodes { nodes in
            try await withTemporaryDirectory { root in
                try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
                let now = Timestamp(unixSeconds: 1_800_000_000)
                let a = JobService(store: nodes[0], configuration: JobsConfiguration(roots: [root]), logger: Logger(label: "test"))
                let b = JobService(store: nodes[1], configuration: JobsConfiguration(roots: [root]), logger: Logger(label: "test"))
                let job = try await a.create(ClusterLeaseTests.export(root), now: now)
                // B takes the cancel while A's runner has not started the job.
                let cancelled = try await b.cancel(job.jobId, now: now)
                #expect(cancelled?.status == .cancelled)
                // A's runner starts it: its first save compares, fails, and the job stops.
                let running = Task { try await a.run() }
                var second: JobRecord?
                for _ in 0..<400 where second == nil {
                    // A lets the job go (and its lease) once its runner has ended it.
                    second = try? await a.create(
                        .object([
                            "type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out"),
                            "outputBlobName": .string("second.txt"),
                        ]),
                        now: now
                    )
                    if second == nil { try await Task.sleep(for: .milliseconds(25)) }
                }
                #expect(second != nil)
                #expect(try await b.get(job.jobId)?.status == .cancelled, "never overwritten by A")
                #expect(!FileManager.default.fileExists(atPath: root + "/out/devices.txt"))
                running.cancel()
            }
        }
    }
}
