import Foundation
import HTTPTypes
import RegistryCore
import RegistryTesting
import Testing

@testable import RegistryAPI

/// Item 7 of the hardening issue: a job writes only a regular file of its own, inside its root,
/// whatever is at the output's name or the container's path when the job runs.
@Suite(.serialized) struct JobOutputSafetyTests {
    typealias R = RegistryRoutesTests
    typealias J = JobRoutesTests

    static func export(_ root: String, name: String? = nil) -> JSONValue {
        var body: [String: JSONValue] = ["type": .string("export"), "outputBlobContainerUri": .string("file://\(root)/out")]
        if let name { body["outputBlobName"] = .string(name) }
        return .object(body)
    }

    @Test func anExportNamingADirectoryFailsAndLeavesTheDirectoryIntact() async throws {
        try await J.withJobs { client, _, _, root in
            _ = try await R.call(client, .put, "/devices/d1", body: "{}")
            let directory = root + "/out/keep"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try "precious\n".write(toFile: directory + "/precious.txt", atomically: false, encoding: .utf8)

            let created = try await J.create(client, Self.export(root, name: "keep"))
            #expect(created.status == .ok)
            let done = try await J.finished(client, try #require(created.json?["jobId"]?.stringValue))
            #expect(done["status"] == .string("failed"), "\(done)")
            #expect(done["failureReason"]?.stringValue?.contains("is a directory") == true, "\(done)")
            #expect(try String(contentsOfFile: directory + "/precious.txt", encoding: .utf8) == "precious\n")
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/out") == ["keep"], "no partial file left behind")
        }
    }

    @Test func aContainerSwappedForALinkAfterTheJobWasCreatedIsRefused() async throws {
        try await J.withJobs { client, _, jobs, root in
            _ = try await R.call(client, .put, "/devices/d1", body: "{}")
            let outside = (root as NSString).deletingLastPathComponent + "/elsewhere"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)

            // Export: the container was a directory under the root when the job was created.
            let (exportRecord, exportPlan) = try jobs.prepare(Self.export(root), now: Timestamp(unixSeconds: R.now))
            try FileManager.default.moveItem(atPath: root + "/out", toPath: root + "/out-before")
            try FileManager.default.createSymbolicLink(atPath: root + "/out", withDestinationPath: outside)
            await jobs.run(exportRecord, exportPlan)
            let exported = try #require(try await jobs.get(exportRecord.jobId))
            #expect(exported.status == .failed, "\(exported.json)")
            #expect(exported.failureReason?.contains("symbolic link") == true, "\(exported.json)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "nothing was written outside the root")

            // Import: its input and its error log, the same.
            try FileManager.default.removeItem(atPath: root + "/out")
            try FileManager.default.moveItem(atPath: root + "/out-before", toPath: root + "/out")
            try "{not json\n".write(toFile: root + "/out/devices.txt", atomically: false, encoding: .utf8)
            try "{\"id\":\"outsider\",\"importMode\":\"create\"}\n".write(toFile: outside + "/devices.txt", atomically: false, encoding: .utf8)
            let body: JSONValue = .object(["type": .string("import"), "inputBlobContainerUri": .string("file://\(root)/out")])
            let (importRecord, importPlan) = try jobs.prepare(body, now: Timestamp(unixSeconds: R.now))
            try FileManager.default.moveItem(atPath: root + "/out", toPath: root + "/out-before")
            try FileManager.default.createSymbolicLink(atPath: root + "/out", withDestinationPath: outside)
            await jobs.run(importRecord, importPlan)
            let imported = try #require(try await jobs.get(importRecord.jobId))
            #expect(imported.status == .failed, "\(imported.json)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["devices.txt"], "no error log was written outside the root")
            #expect(try await R.call(client, .get, "/devices/outsider").status == .notFound, "nothing was read from outside the root")
        }
    }

    /// The name holds the old file until the new one is whole: one rename, never a removal
    /// first, nor a write into the old file.
    #if os(Linux)
        @Test func anExistingOutputFileIsReplacedInOneStep() async throws {
            try await J.withJobs { client, _, _, root in
                _ = try await R.call(client, .put, "/devices/d1", body: "{}")
                let output = root + "/out/devices.txt"
                try "old\n".write(toFile: output, atomically: false, encoding: .utf8)
                let old = try #require(FileHandle(forReadingAtPath: output))
                defer { try? old.close() }
                let watch = try DirectoryWatch(root + "/out")

                let created = try await J.create(client, Self.export(root))
                let done = try await J.finished(client, try #require(created.json?["jobId"]?.stringValue))
                #expect(done["status"] == .string("completed"), "\(done)")
                let events = watch.events().filter { $0.name == "devices.txt" }
                #expect(events.contains { $0.mask & UInt32(IN_MOVED_TO) != 0 }, "\(events)")
                let removedOrWritten = UInt32(IN_DELETE | IN_MODIFY | IN_CREATE)
                #expect(!events.contains { $0.mask & removedOrWritten != 0 }, "the name was removed or written in place: \(events)")
                #expect(String(decoding: old.readDataToEndOfFile(), as: UTF8.self) == "old\n", "the old file was never written to")
                #expect(try String(contentsOfFile: output, encoding: .utf8).contains("\"d1\""))
            }
        }
    #endif
}
