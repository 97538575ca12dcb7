import Foundation
import RegistryAPI
import RegistryTesting
import Testing

/// Item 7 of the hardening issue: a job root that overlaps the data directory would let an
/// export replace, or an import read, the daemon's own files; `serve` refuses it at start.
@Suite(.serialized) struct JobRootsTests {
    @Test func serveRefusesAJobRootThatContainsTheDataDirectory() async throws {
        try await withTemporaryDirectory { dir in
            let process = Process()
            process.executableURL = try registrydBinary()
            process.arguments = ["serve", "--data-dir", dir + "/data", "--job-roots", dir, "--listen", "127.0.0.1:0", "--plain-http"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            // A refusal exits at once; a daemon that started instead is stopped and reported.
            for _ in 0..<400 where process.isRunning { try await Task.sleep(for: .milliseconds(25)) }
            let refused = !process.isRunning
            if !refused { process.terminate() }
            process.waitUntilExit()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(refused, "serve started with a job root containing its data directory: \(output)")
            #expect(process.terminationStatus != 0)
            #expect(output.contains("jobs.roots") && output.contains("data directory"), "\(output)")
        }
    }

    @Test func jobRootsOverlappingTheDataDirectoryAreRefused() throws {
        try withTemporaryDirectory { dir in
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data + "/tls", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
            // A link to the data directory's parent: the same directory under another name.
            try FileManager.default.createSymbolicLink(atPath: dir + "/alias", withDestinationPath: dir)
            for roots in [[dir], [data], [data + "/tls"], [dir + "/jobs", dir + "/alias"], [dir + "/alias/data/exports"], ["/"]] {
                #expect(throws: ConfigurationFieldError.self, "\(roots)") { try JobsConfiguration(roots: roots).checkApart(fromDataDirectory: data) }
            }
            // Also before the data directory exists (first start), and named relative to the working directory.
            #expect(throws: ConfigurationFieldError.self) { try JobsConfiguration(roots: [dir]).checkApart(fromDataDirectory: dir + "/new/data") }
            #expect(throws: ConfigurationFieldError.self) {
                try JobsConfiguration(roots: [FileManager.default.currentDirectoryPath]).checkApart(fromDataDirectory: "./data")
            }
            // Apart: siblings, including one whose name starts with the data directory's.
            try JobsConfiguration(roots: [dir + "/jobs", dir + "/data-exports"]).checkApart(fromDataDirectory: data)
            try JobsConfiguration(roots: [dir + "/jobs"]).checkApart(fromDataDirectory: dir + "/new/../data")
        }
    }
}
