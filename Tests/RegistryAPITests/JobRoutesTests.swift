import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import ServiceLifecycleTestKit
import Testing

/// `/jobs` import and export jobs at router level, over real files under a job root.
@Suite(.serialized) struct JobRoutesTests {
    typealias R = RegistryRoutesTests

    static func withJobs(
        importBatch: Int = 10_000,
        _ body: @escaping @Sendable (any TestClientProtocol, RegistryStore, JobService, String) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { dir in
            let root = dir + "/jobs"
            try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
            let store = try makeStore(dir + "/data")
            let jobs = JobService(
                store: store,
                configuration: JobsConfiguration(roots: [root], importBatch: importBatch),
                logger: Logger(label: "test")
            )
            let router = buildRouter(
                store: store,
                authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies),
                jobs: jobs,
                now: { R.now }
            )
            // The job service runs as `serve` runs it (a service; here without its group).
            let running = Task { try await jobs.run() }
            try await Application(router: router).test(.router) { client in try await body(client, store, jobs, root) }
            running.cancel()
            store.close()
        }
    }

    static func create(_ client: any TestClientProtocol, _ body: JSONValue, auth: String = R.token()) async throws -> R.Reply {
        try await R.call(client, .post, "/jobs/create", body: String(decoding: CanonicalJSON.encode(body), as: UTF8.self), auth: auth)
    }

    /// Polls a job until it reaches a terminal state (bounded by a count, not a clock).
    static func finished(_ client: any TestClientProtocol, _ id: String) async throws -> JSONValue {
        for _ in 0..<2000 {
            let reply = try await R.call(client, .get, "/jobs/\(id)")
            if let status = reply.json?["status"]?.stringValue, ["completed", "failed", "cancelled"].contains(status) {
                return try #require(reply.json)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("job \(id) did not finish")
        return .null
    }

    @Test func exportThenImportRoundTripsWithErrorsLogged() async throws {
        try await Self.withJobs { client, store, _, root in
            for i in 0..<5 { _ = try await R.call(client, .put, "/devices/e\(i)", body: "{}") }
            _ = try await R.call(client, .put, "/devices/e1/modules/m", body: "{}")
            let key = try #require(try store.storage.device("e2")?.authentication.symmetricKey.primaryKey)

            let created = try await Self.create(
                client,
                .object(["type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out"), "excludeKeysInExport": .bool(false)])
            )
            #expect(created.status == .ok)
            let id = try #require(created.json?["jobId"]?.stringValue)
            #expect(created.json?["status"] == .string("enqueued"))
            let done = try await Self.finished(client, id)
            #expect(done["status"] == .string("completed"), "\(done)")
            #expect(done["progress"] == .int(100))
            #expect(done["identities"] == .int(6))
            #expect(done["endTimeUtc"]?.stringValue != nil)
            let exported = try String(contentsOfFile: root + "/out/devices.txt", encoding: .utf8)
            #expect(exported.split(separator: "\n").count == 6)
            #expect(exported.contains(key), "keys are exported unless excluded")
            let listed = try await R.call(client, .get, "/jobs")
            #expect(listed.json?.arrayValue?.count == 1)

            // Import into the same registry: the devices exist (create fails per line), plus a bad line and a new device.
            let input =
                exported.split(separator: "\n").prefix(2).map { $0.replacingOccurrences(of: "\"eTag\"", with: "\"importMode\":\"create\",\"eTag\"") }
                .joined(separator: "\n")
                + "\n{not json\n{\"id\":\"fresh\",\"importMode\":\"create\"}\n"
            try input.write(toFile: root + "/in.txt", atomically: true, encoding: .utf8)
            let imported = try await Self.create(
                client,
                .object([
                    "type": .string("import"), "inputBlobContainerUri": .string("file://\(root)"), "inputBlobName": .string("in.txt"),
                    "outputBlobContainerUri": .string("file://localhost\(root)/out"),
                ])
            )
            #expect(imported.status == .ok, "\(String(describing: imported.json))")
            let importDone = try await Self.finished(client, try #require(imported.json?["jobId"]?.stringValue))
            #expect(importDone["status"] == .string("completed"))
            #expect(importDone["identities"] == .int(1))
            #expect(importDone["failedLines"] == .int(3))
            let errors = try String(contentsOfFile: root + "/out/importErrors.log", encoding: .utf8).split(separator: "\n")
            #expect(errors.count == 3)
            #expect(errors.contains { $0.contains("DeviceAlreadyExists") })
            #expect(try await R.call(client, .get, "/devices/fresh").status == .ok)
            // The import is attributed to the job in the log.
            let history = try await store.storage.history(deviceId: "fresh", moduleId: nil)
            #expect(history.first?.actor == "job:\(try #require(imported.json?["jobId"]?.stringValue))")
        }
    }

    /// Item 8 of the hardening issue: an export that carries keys is owner-only from its first
    /// byte (its temporary file is never chmod'ed after it appeared, nor the finished file).
    #if os(Linux)
        @Test func anExportWithKeysIsOwnerOnlyFromItsFirstByte() async throws {
            try await Self.withJobs { client, _, _, root in
                _ = try await R.call(client, .put, "/devices/k", body: "{}")
                let watch = try DirectoryWatch(root + "/out")
                let body: JSONValue = .object([
                    "type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out"), "excludeKeysInExport": .bool(false),
                ])
                let created = try await Self.create(client, body)
                let done = try await Self.finished(client, try #require(created.json?["jobId"]?.stringValue))
                #expect(done["status"] == .string("completed"), "\(done)")
                let events = watch.events().filter { $0.name.hasPrefix("devices.txt") }
                #expect(!events.isEmpty)
                #expect(events.filter(\.isAttributeChange).isEmpty, "the export was chmod'ed after it appeared: \(events)")
                #expect(try FileManager.default.attributesOfItem(atPath: root + "/out/devices.txt")[.posixPermissions] as? Int == 0o600)
            }
        }
    #endif

    @Test func oneActiveJobAtATimeAndCancel() async throws {
        try await Self.withJobs(importBatch: 1) { client, _, _, root in
            let lines = (0..<20_000).map { "{\"id\":\"c\($0)\",\"importMode\":\"create\"}" }.joined(separator: "\n")
            try lines.write(toFile: root + "/devices.txt", atomically: true, encoding: .utf8)
            let first = try await Self.create(client, .object(["type": .string("import"), "inputBlobContainerUri": .string("file://\(root)")]))
            let id = try #require(first.json?["jobId"]?.stringValue)
            let second = try await Self.create(client, .object(["type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out")]))
            R.expectAzureError(second, .forbidden, "JobQuotaExceeded")
            // Cancel ignores If-Match (C# sends the job id as one).
            let cancel = try await R.call(client, .delete, "/jobs/\(id)", ifMatch: "\"\(id)\"")
            #expect(cancel.status == .ok)
            let done = try await Self.finished(client, id)
            #expect(done["status"] == .string("cancelled"))
            #expect((done["identities"]?.intValue ?? 20_000) < 20_000)
            // The slot is free again.
            let next = try await Self.create(client, .object(["type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out")]))
            #expect(next.status == .ok)
            _ = try await Self.finished(client, try #require(next.json?["jobId"]?.stringValue))
            R.expectAzureError(try await R.call(client, .get, "/jobs/nope"), .notFound, "JobNotFound")
            #expect(
                try await Self.create(
                    client,
                    .object(["type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out")]),
                    auth: R.token("registryRead")
                ).status == .unauthorized
            )
        }
    }

    @Test func containersMustStayInsideTheRoots() async throws {
        try await Self.withJobs { client, _, _, root in
            let outside = (root as NSString).deletingLastPathComponent + "/elsewhere"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: root + "/escape", withDestinationPath: outside)
            try "{}".write(toFile: outside + "/devices.txt", atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: root + "/linked.txt", withDestinationPath: outside + "/devices.txt")
            for (field, uri, blob) in [
                ("outputBlobContainerUri", "file://\(root)/../elsewhere", nil),
                ("outputBlobContainerUri", "file://\(outside)", nil),
                ("outputBlobContainerUri", "file://\(root)/escape", nil),
                ("outputBlobContainerUri", "file:relative/dir", nil),
                ("outputBlobContainerUri", "https://account.blob.core.windows.net/c?sig=x", nil),
                ("outputBlobContainerUri", "file://\(root)/missing", nil),
                ("inputBlobContainerUri", "file://\(root)", "linked.txt"),
                ("inputBlobContainerUri", "file://\(root)", "../elsewhere/devices.txt"),
            ] as [(String, String, String?)] {
                var body: [String: JSONValue] = ["type": .string(field.hasPrefix("input") ? "import" : "export"), field: .string(uri)]
                if let blob { body["inputBlobName"] = .string(blob) }
                let reply = try await Self.create(client, .object(body))
                R.expectAzureError(reply, .badRequest, "ArgumentInvalid")
            }
            R.expectAzureError(try await Self.create(client, .object(["type": .string("backup")])), .badRequest, "ArgumentInvalid")
            #expect(try await R.call(client, .get, "/jobs").json == .array([]), "nothing was recorded")
        }
    }

    @Test func aJobInterruptedByARestartIsMarkedFailed() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            var record = JobRecord(
                jobId: "j1",
                type: .import,
                status: .running,
                startTimeUtc: Timestamp(unixSeconds: 1_800_000_000),
                inputBlobContainerUri: "file:///x",
                inputBlobName: "devices.txt",
                outputBlobContainerUri: nil,
                outputBlobName: nil,
                excludeKeysInExport: false
            )
            record.progress = 40
            let bytes = CanonicalJSON.encode(record.json)
            try await store.saveJobRecord("j1", bytes)
            let jobs = JobService(store: store, configuration: JobsConfiguration(roots: [dir]), logger: Logger(label: "test"))
            try await jobs.recoverInterrupted(now: Timestamp(unixSeconds: 1_800_000_100))
            let after = try #require(try await jobs.get("j1"))
            #expect(after.status == .failed)
            #expect(after.failureReason?.contains("stopped while the job was running") == true)
            #expect(after.endTimeUtc == Timestamp(unixSeconds: 1_800_000_100))
            store.close()
        }
    }

    /// Jobs run inside the service group: a shutdown drains them. A job still queued when the
    /// shutdown begins is run only to record itself cancelled (with the reason), and `run()`
    /// returns once it has, so the store closes after the job's last write.
    @Test func aShutdownDrainsTheJobsBeforeTheStoreCloses() async throws {
        try await withTemporaryDirectory { dir in
            let root = dir + "/jobs"
            try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
            let store = try makeStore(dir + "/data")
            let jobs = JobService(store: store, configuration: JobsConfiguration(roots: [root]), logger: Logger(label: "test"))
            let created = try await jobs.create(JobOutputSafetyTests.export(root), now: Timestamp(unixSeconds: R.now))
            #expect(created.status == .enqueued)
            try await testGracefulShutdown { trigger in
                trigger.triggerGracefulShutdown()
                try await jobs.run()  // returns: the shutdown ended it, with the queued job drained
            }
            let after = try #require(try await jobs.get(created.jobId))
            #expect(after.status == .cancelled)
            #expect(after.failureReason?.contains("shut down") == true, "\(after.json)")
            #expect(!FileManager.default.fileExists(atPath: root + "/out/devices.txt"), "a drained export writes no file")
            // After the shutdown began, a new job is refused, not left enqueued for ever.
            await #expect(throws: APIError.self) { try await jobs.create(JobOutputSafetyTests.export(root), now: Timestamp(unixSeconds: R.now)) }
            #expect(try await jobs.list().allSatisfy(\.status.isTerminal))
            store.close()
        }
    }
}
