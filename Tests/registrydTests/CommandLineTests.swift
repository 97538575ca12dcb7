import ArgumentParser
import Foundation
import LMDB
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

@testable import registryd

@Suite(.serialized) struct CommandLineTests {
    @Test func parsesReplayOptions() throws {
        let command = try Registryd.parseAsRoot(["replay", "--data-dir", "/tmp/x", "--verify"])
        let replay = try #require(command as? ReplayCommand)
        #expect(replay.data.dataDir == "/tmp/x")
        #expect(replay.verify)
        #expect(throws: (any Error).self) { try Registryd.parseAsRoot(["replay", "--data-dir", "/tmp/x"]) }
    }

    @Test func replayVerifyExitCodesDistinguishTheOutcomes() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            for i in 0..<10 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d\(i)")), actor: "t", requestId: "\(i)") }
            store.close()

            var result = try runRegistryd(["replay", "--data-dir", dir, "--verify"])
            #expect(result.status == 0)
            #expect(result.output.contains("events: 10"))
            #expect(result.output.contains("projections equal the replay"))

            let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
            try storage.environment.write { txn in try txn.delete(storage.databases.devices, StorageKey.device("d4")) }
            result = try runRegistryd(["replay", "--data-dir", dir, "--verify"])
            #expect(result.status == 3)
            #expect(result.output.contains("PROJECTION DIFFERS in devices at d4"))

            try storage.environment.write { txn in
                var value = try txn.get(storage.databases.events, StorageKey.sequence(8))!
                value[value.count - 3] ^= 1
                try txn.put(storage.databases.events, StorageKey.sequence(8), value)
            }
            result = try runRegistryd(["replay", "--data-dir", dir, "--verify"])
            #expect(result.status == 2)
            #expect(result.output.contains("LOG CORRUPT at seq 8"))

            result = try runRegistryd(["replay", "--data-dir", dir + "/nothing-here", "--verify"])
            #expect(result.status == 1)
            #expect(result.output.contains("not a registryd data directory"))
        }
    }

    @Test func serveRefusesADirectoryAnotherWriterHolds() throws {
        try withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let result = try runRegistryd(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"])
            #expect(result.status != 0)
            #expect(result.output.contains("in use by another registryd process"))
            store.close()
        }
    }

    @Test func serveShutsDownOnSIGTERM() throws {
        try withTemporaryDirectory { dir in
            let process = Process()
            process.executableURL = try registrydBinary()
            process.arguments = ["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            // Bounded: a daemon that never starts is killed, which ends the read loop below.
            DispatchQueue.global().asyncAfter(deadline: .now() + 60) { if process.isRunning { process.interrupt() } }
            // Wait until it reports that it listens.
            var output = ""
            while !output.contains("listening") {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                output += String(decoding: chunk, as: UTF8.self)
            }
            process.terminate()  // SIGTERM
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(output.contains("listening"))
            #expect(FileManager.default.fileExists(atPath: dir + "/tls/ca.pem"))
            // The lock was released: another writer may open it now.
            let store = try makeStore(dir)
            store.close()
        }
    }
}
