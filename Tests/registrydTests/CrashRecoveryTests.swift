import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Durability: a process killed with SIGKILL under load loses nothing whose create had returned.
@Suite(.serialized) struct CrashRecoveryTests {
    @Test func everyAcknowledgedCreateSurvivesSIGKILL() async throws {
        try await withTemporaryDirectory { dir in
            let process = Process()
            process.executableURL = try registrydBinary()
            process.arguments = ["write-load", "--data-dir", dir, "--count", "1000000", "--concurrency", "64"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Bounded: if acknowledgements stop coming, kill the child, which ends the read loop.
            DispatchQueue.global().asyncAfter(deadline: .now() + 120) { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

            // Read acknowledgements until enough have arrived, then kill mid-flight.
            var acknowledged: [String] = []
            var buffer = Data()
            let reader = pipe.fileHandleForReading
            while acknowledged.count < 2_000 {
                let chunk = reader.availableData
                if chunk.isEmpty { break }  // the child died on its own: fail below
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    if line.hasPrefix("created ") { acknowledged.append(String(line.dropFirst(8))) }
                }
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            #expect(acknowledged.count >= 2_000)

            // Reopen for writing (the kernel released the lock) and check every acknowledged id.
            let store = try RegistryStore(configuration: .init(dataDirectory: DataDirectory(path: dir)))
            var missing: [String] = []
            for id in acknowledged where try store.storage.device(id) == nil { missing.append(id) }
            #expect(missing.isEmpty, "lost acknowledged creates: \(missing.prefix(5))")
            let head = try store.storage.head()
            #expect(head.seq >= UInt64(acknowledged.count))
            #expect(try store.storage.statistics().totalDeviceCount == Int(head.seq))
            // The store keeps working after the crash.
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "after-crash")), actor: "t", requestId: "r")
            store.close()

            let report = try verifyReplay(dir)
            #expect(report.outcome == .clean)
            #expect(report.events == head.seq + 1)
        }
    }
}
