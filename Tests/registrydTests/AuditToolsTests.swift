import Foundation
import LMDB
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import RegistryTransfer
import Testing

/// The registry's identities as export lines (the format `replay --until` writes).
private func exportLines(_ storage: RegistryStorage) throws -> [String] {
    var lines: [String] = []
    try storage.scanIdentities(openKeys: true) { document, _ in
        lines.append(
            String(
                decoding: CanonicalJSON.encode(ExportImportDevice.line(from: try JSONParser.parse(document.json), excludeKeys: false)),
                as: UTF8.self
            )
        )
    }
    return lines
}

@Suite(.serialized) struct AuditToolsTests {
    /// A scripted history: creates, updates, disables, key rotations and deletes.
    static func script() -> [[Command]] {
        let key = { (b: UInt8) in Data(repeating: b, count: 32).base64EncodedString() }
        return [
            [
                .createDevice(DeviceSpec(deviceId: "a")),
                .createDevice(DeviceSpec(deviceId: "b", authentication: AuthenticationSpec(primaryKey: key(1), secondaryKey: key(2)))),
            ],
            [.createModule(ModuleSpec(deviceId: "a", moduleId: "m"))],
            [.replaceDevice(DeviceSpec(deviceId: "a", status: .disabled, statusReason: "stolen"), ifMatch: .any)],
            [.replaceDevice(DeviceSpec(deviceId: "b", authentication: AuthenticationSpec(primaryKey: key(3), secondaryKey: key(2))), ifMatch: .any)],
            [.replaceModule(ModuleSpec(deviceId: "a", moduleId: "m", managedBy: "ops"), ifMatch: .any)],
            [.deleteDevice(deviceId: "a", ifMatch: .any)],
            [.createDevice(DeviceSpec(deviceId: "a", authentication: AuthenticationSpec(type: .certificateAuthority)))],
        ]
    }

    @Test func replayUntilEachStepReproducesTheStateOfThatStep() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir + "/data")
            var states: [(seq: UInt64, lines: [String])] = []
            for step in Self.script() {
                let results = try await store.execute(step, actor: "auditor-test", requestId: "step")
                for r in results { _ = try r.get() }
                states.append((try store.storage.head().seq, try exportLines(store.storage)))
            }
            let times = try store.storage.events(from: 1, limit: 100).map(\.time)
            store.close()
            for (seq, expected) in states {
                let out = dir + "/at-\(seq).jsonl"
                let result = try runRegistryd(["replay", "--data-dir", dir + "/data", "--until", "\(seq)", "--out", out])
                #expect(result.status == 0, "\(result.output)")
                let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init)
                #expect(lines == expected, "state after seq \(seq)")
            }
            // By time: the moment of event 3 gives the state after event 3.
            let byTime = try runRegistryd(["replay", "--data-dir", dir + "/data", "--until", times[2].iso8601, "--out", dir + "/t.jsonl"])
            #expect(byTime.status == 0)
            #expect(try String(contentsOfFile: dir + "/t.jsonl", encoding: .utf8).split(separator: "\n").map(String.init) == states[1].lines)
            // As a fresh data directory that itself verifies.
            #expect(try runRegistryd(["replay", "--data-dir", dir + "/data", "--until", "4", "--out", dir + "/at4", "--format", "dir"]).status == 0)
            #expect(try runRegistryd(["audit", "verify", "--data-dir", dir + "/at4"]).status == 0)
            #expect(try exportLines(RegistryStorage(directory: DataDirectory(path: dir + "/at4"), create: false)) == states[2].lines)
        }
    }

    /// Item 8 of the hardening issue: the replayed lines carry every device's keys, so the file
    /// is owner-only from its first byte under the most permissive umask (which the command
    /// inherits), and an existing file is refused rather than written into.
    #if os(Linux)
        @Test func replayOutputIsOwnerOnlyFromItsFirstByte() async throws {
            try await withTemporaryDirectory { dir in
                let store = try makeStore(dir + "/data")
                _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d")), actor: "t", requestId: "1")
                store.close()
                try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
                let watch = try DirectoryWatch(dir + "/out")
                let out = dir + "/out/keys.jsonl"
                let result = try withUmask(0) { try runRegistryd(["replay", "--data-dir", dir + "/data", "--until", "1", "--out", out]) }
                #expect(result.status == 0, "\(result.output)")
                let own = watch.events().filter { $0.name == "keys.jsonl" }
                #expect(!own.isEmpty)
                #expect(own.filter(\.isAttributeChange).isEmpty, "keys.jsonl was chmod'ed after it appeared: \(own)")
                #expect(try FileManager.default.attributesOfItem(atPath: out)[.posixPermissions] as? Int == 0o600)
                #expect(try String(contentsOfFile: out, encoding: .utf8).contains("primaryKey"))
                let again = try runRegistryd(["replay", "--data-dir", dir + "/data", "--until", "1", "--out", out])
                #expect(again.status != 0)
                #expect(again.output.contains("File exists"), "\(again.output)")
            }
        }
    #endif

    @Test func auditVerifyNamesTheBadSequenceOrTheIdentity() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            for step in Self.script() { _ = try await store.execute(step, actor: "t", requestId: "s") }
            store.close()
            var result = try runRegistryd(["audit", "verify", "--data-dir", dir])
            #expect(result.status == 0)
            #expect(result.output.contains("hash chain verified"))

            let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
            try storage.environment.write { txn in
                var value = try txn.get(storage.databases.devices, StorageKey.device("b"))!
                value[value.firstIndex(of: UInt8(ascii: "{"))! + 3] ^= 0x20
                try txn.put(storage.databases.devices, StorageKey.device("b"), value)
            }
            result = try runRegistryd(["audit", "verify", "--data-dir", dir])
            #expect(result.status == 3)
            #expect(result.output.contains("PROJECTION DIFFERS in devices at b"))

            try storage.environment.write { txn in
                var value = try txn.get(storage.databases.events, StorageKey.sequence(4))!
                value[value.count / 2] ^= 0x01  // one byte of one stored event
                try txn.put(storage.databases.events, StorageKey.sequence(4), value)
            }
            result = try runRegistryd(["audit", "verify", "--data-dir", dir])
            #expect(result.status == 2)
            #expect(result.output.contains("LOG CORRUPT at seq 4"))
        }
    }

    @Test func historyListsEveryChangeWithoutKeys() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            for (i, step) in Self.script().enumerated() { _ = try await store.execute(step, actor: "policy-\(i)", requestId: "req-\(i)") }
            let secret = try #require(try store.storage.device("b")?.authentication.symmetricKey.primaryKey)
            store.close()

            let result = try runRegistryd(["history", "--data-dir", dir, "b"])
            #expect(result.status == 0)
            let entries = result.output.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
            #expect(entries.map { $0["type"]?.stringValue } == ["deviceCreated", "deviceUpdated"])
            #expect(entries.map { $0["actor"]?.stringValue } == ["policy-0", "policy-3"])
            #expect(entries.map { $0["requestId"]?.stringValue } == ["req-0", "req-3"])
            let rotation = entries[1]["changes"]?.arrayValue ?? []
            #expect(rotation.contains { $0["path"] == .string("authentication.symmetricKey.primaryKey") && $0["new"] == .string("(rotated)") })
            #expect(!rotation.contains { $0["path"] == .string("authentication.symmetricKey.secondaryKey") })  // unchanged
            #expect(!result.output.contains(secret) && !result.output.contains("aes256gcm"))

            let a = try runRegistryd(["history", "--data-dir", dir, "a"]).output.split(separator: "\n").compactMap {
                try? JSONParser.parse(String($0))
            }
            #expect(
                a.map { $0["type"]?.stringValue } == [
                    "deviceCreated", "moduleCreated", "deviceUpdated", "moduleUpdated", "moduleDeleted", "deviceDeleted", "deviceCreated",
                ]
            )
            let disable = a[2]["changes"]?.arrayValue ?? []
            #expect(disable.contains { $0["path"] == .string("status") && $0["old"] == .string("enabled") && $0["new"] == .string("disabled") })
            let moduleOnly = try runRegistryd(["history", "--data-dir", dir, "a", "--module", "m"]).output.split(separator: "\n")
            #expect(moduleOnly.count == 3)
        }
    }

    @Test func eventsExportReVerifiesWithTheStandaloneScript() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir + "/data")
            for step in Self.script() { _ = try await store.execute(step, actor: "t", requestId: "s") }
            store.close()
            let events = try runRegistryd(["events", "--data-dir", dir + "/data"])
            #expect(events.status == 0)
            let lines = events.output.split(separator: "\n").filter { $0.hasPrefix("{") }
            #expect(lines.count == 9)
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/events.jsonl", atomically: true, encoding: .utf8)
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("tools/verify-chain.py").path
            func python(_ file: String) throws -> (Int32, String) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["python3", script, file]
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return (process.terminationStatus, output)
            }
            #expect(try python(dir + "/events.jsonl") == (0, "chain verified: 9 events\n"))
            var tampered = lines.map(String.init)
            tampered[5] = tampered[5].replacingOccurrences(of: "\"actor\":\"t\"", with: "\"actor\":\"x\"")
            try (tampered.joined(separator: "\n") + "\n").write(toFile: dir + "/tampered.jsonl", atomically: true, encoding: .utf8)
            let (status, output) = try python(dir + "/tampered.jsonl")
            #expect(status == 1)
            #expect(output.contains("seq 6: hash does not match"))
            let slice = try runRegistryd(["events", "--data-dir", dir + "/data", "--from", "3", "--to", "4"])
            #expect(
                slice.output.split(separator: "\n").filter { $0.hasPrefix("{") }.map { $0.contains("\"seq\":3,") || $0.contains("\"seq\":4,") } == [
                    true, true,
                ]
            )
            let head = try runRegistryd(["events", "--data-dir", dir + "/data", "--from", "0", "--to", "2"])
            #expect(head.output.split(separator: "\n").filter { $0.hasPrefix("{") }.count == 2, "--from 0 starts at seq 1")
        }
    }
}
