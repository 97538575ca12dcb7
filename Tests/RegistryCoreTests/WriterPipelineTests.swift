import Foundation
import LMDB
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// The writer decides commands in order but prepares (seals, encodes) runs of events on other
/// cores and stores them in order. Whatever the batching, the log must be byte for byte what a
/// one-command-at-a-time writer makes from the same seeded randomness and clock.
struct WriterPipelineTests {
    /// Creates past two full runs of 1,024 events (handed to the other cores while the next is
    /// decided), then modules, updates, deletes and rule failures on devices an unstored event
    /// touches (each forces what is pending to be stored first); devices with and without keys.
    func commands() -> [Command] {
        var commands: [Command] = []
        for i in 0..<2_300 {
            let auth: AuthenticationSpec? =
                i % 7 == 0
                ? AuthenticationSpec(
                    type: .selfSigned,
                    primaryThumbprint: String(repeating: "A", count: 40),
                    secondaryThumbprint: String(repeating: "B", count: 40)
                ) : nil
            commands.append(.createDevice(DeviceSpec(deviceId: "d\(i)", authentication: auth)))
        }
        for i in stride(from: 0, to: 2_300, by: 97) {
            commands.append(.createModule(ModuleSpec(deviceId: "d\(i)", moduleId: "m")))
            commands.append(.createModule(ModuleSpec(deviceId: "d\(i)", moduleId: "m2")))
            if i % 5 == 0 { commands.append(.createDevice(DeviceSpec(deviceId: "d\(i + 1)"))) }  // already exists: fails
            commands.append(.replaceDevice(DeviceSpec(deviceId: "d\(i + 2)", status: .disabled), ifMatch: .any))
            commands.append(.deleteDevice(deviceId: "d\(i + 3)", ifMatch: .any))
            commands.append(.createDevice(DeviceSpec(deviceId: "d\(i + 3)")))
        }
        return commands
    }

    func log(_ dir: String) throws -> [[UInt8]] {
        let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
        return try storage.read { txn, db in
            var values: [[UInt8]] = []
            try txn.scan(db.events) { _, value in
                values.append(value)
                return true
            }
            return values
        }
    }

    /// `commands` one at a time into a new directory `single` under the data key of `reference`
    /// (the same key, so that the same keys and nonces seal to the same bytes).
    func oneAtATime(_ commands: [Command], into single: String, keyOf reference: String) async throws -> [Result<CommandOutcome, RegistryError>] {
        try FileManager.default.createDirectory(atPath: single, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: reference + "/data.key", toPath: single + "/data.key")
        let one = try makeStore(single, maxBatchCommands: 1, mapSize: 256 << 20)
        defer { one.close() }
        var results: [Result<CommandOutcome, RegistryError>] = []
        for command in commands { results += try await one.execute([command], actor: "t", requestId: "r") }
        return results
    }

    @Test func oneBigBatchWritesTheLogOfOneCommandAtATime() async throws {
        try await withTemporaryDirectory { root in
            let batched = root + "/batched", single = root + "/single"
            try FileManager.default.createDirectory(atPath: batched, withIntermediateDirectories: true)
            let commands = commands()

            let store = try makeStore(batched, maxBatchCommands: 10_000, mapSize: 256 << 20)
            let batchedResults = try await store.execute(commands, actor: "t", requestId: "r")
            store.close()
            let singleResults = try await oneAtATime(commands, into: single, keyOf: batched)

            #expect(batchedResults == singleResults)
            let failures = batchedResults.filter { if case .failure = $0 { true } else { false } }.count
            #expect(failures == 5)  // the repeated creates (i = 0, 485, 970, 1455, 1940)
            let (a, b) = (try log(batched), try log(single))
            #expect(a.count > 2 * 1_024)
            let firstDifference = (0..<min(a.count, b.count)).first { a[$0] != b[$0] }
            #expect(
                firstDifference == nil,
                "first differing event: \(firstDifference.map { String(decoding: a[$0], as: UTF8.self) + "\n" + String(decoding: b[$0], as: UTF8.self) } ?? "")"
            )
            #expect(a.count == b.count)
            #expect(try verifyReplay(batched).outcome == .clean)
        }
    }

    /// `submit` hands batches over in the order of the calls, so a bulk load can keep several
    /// queued: many small submissions, awaited in reverse, give the results and the log of one
    /// command at a time (a reordered batch would fail a delete, a re-create or a module).
    @Test func submissionsApplyInTheOrderTheyWereMade() async throws {
        try await withTemporaryDirectory { root in
            let submitted = root + "/submitted", single = root + "/single"
            try FileManager.default.createDirectory(atPath: submitted, withIntermediateDirectories: true)
            let commands = Array(commands().suffix(400))

            let store = try makeStore(submitted, maxBatchCommands: 30, mapSize: 256 << 20)
            let pending = stride(from: 0, to: commands.count, by: 7).map { start in
                store.submit(Array(commands[start..<min(commands.count, start + 7)]), actor: "t", requestId: "r")
            }
            var byBatch: [[Result<CommandOutcome, RegistryError>]] = []
            for submission in pending.reversed() { byBatch.insert(try await submission.value(), at: 0) }
            let empty = try await store.submit([], actor: "t", requestId: "r").value()
            store.close()
            let singleResults = try await oneAtATime(commands, into: single, keyOf: submitted)

            #expect(byBatch.flatMap { $0 } == singleResults)
            #expect(singleResults.contains { if case .failure = $0 { true } else { false } })
            #expect(try log(submitted) == (try log(single)))
            #expect(empty.isEmpty)
        }
    }
}
