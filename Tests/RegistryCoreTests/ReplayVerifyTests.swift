import Foundation
import LMDB
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

struct ReplayVerifyTests {
    /// A registry with some history, closed.
    func populated(_ dir: String) async throws {
        let store = try makeStore(dir)
        for i in 0..<20 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d\(i)")), actor: "t", requestId: "\(i)") }
        _ = try await store.execute(.createModule(ModuleSpec(deviceId: "d1", moduleId: "m")), actor: "t", requestId: "m")
        _ = try await store.execute(.replaceDevice(DeviceSpec(deviceId: "d2", status: .disabled), ifMatch: .any), actor: "t", requestId: "x")
        _ = try await store.execute(.deleteDevice(deviceId: "d3", ifMatch: .any), actor: "t", requestId: "y")
        store.close()
    }

    /// Changes the raw stored bytes of one database entry, as an attacker or a bit flip would.
    func tamper(_ dir: String, _ pick: (RegistryDatabases) -> Database, key: [UInt8], _ change: (inout [UInt8]) -> Void) throws {
        let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
        try storage.environment.write { txn in
            var value = try #require(try txn.get(pick(storage.databases), key))
            change(&value)
            try txn.put(pick(storage.databases), key, value)
        }
    }

    /// Ids that are prefixes of each other, modules under several devices, updates and deletes,
    /// over many scan batches: the verifier's key-order merge must agree with LMDB's order at
    /// every batch boundary, and its parallel shares with the log's sequence.
    func populatedWide(_ dir: String) async throws {
        let store = try makeStore(dir)
        let ids = ["a", "a-", "a0", "ab", "a.b", "b"] + (0..<150).map { "dev\($0)" }
        var commands: [Command] = ids.map { .createDevice(DeviceSpec(deviceId: $0)) }
        for device in ["a", "a0", "dev1", "dev10"] {
            for module in ["m", "m1", "M", "m-"] { commands.append(.createModule(ModuleSpec(deviceId: device, moduleId: module))) }
        }
        _ = try await store.execute(commands, actor: "t", requestId: "bulk")
        _ = try await store.execute(.replaceDevice(DeviceSpec(deviceId: "dev5", status: .disabled), ifMatch: .any), actor: "t", requestId: "u1")
        _ = try await store.execute(.replaceDevice(DeviceSpec(deviceId: "a", status: .disabled), ifMatch: .any), actor: "t", requestId: "u2")
        _ = try await store.execute(.deleteDevice(deviceId: "a-", ifMatch: .any), actor: "t", requestId: "d1")
        _ = try await store.execute(.deleteDevice(deviceId: "dev7", ifMatch: .any), actor: "t", requestId: "d2")
        _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "dev7")), actor: "t", requestId: "c1")
        _ = try await store.execute(.deleteModule(deviceId: "a0", moduleId: "m1", ifMatch: .any), actor: "t", requestId: "d3")
        store.close()
    }

    func verify(_ dir: String, batchSize: Int) throws -> Replayer.Report {
        let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
        return try Replayer.verify(source: storage, batchSize: batchSize)
    }

    @Test func aWideLogVerifiesAtEveryBatchSize() async throws {
        try await withTemporaryDirectory { dir in
            try await populatedWide(dir)
            for size in [1, 3, 64, 100, 10_000] {
                let report = try verify(dir, batchSize: size)
                #expect(report.outcome == .clean, "batch size \(size)")
                // 172 creates, 6 changes; 155 devices (a- gone, dev7 back), 15 modules.
                #expect((report.events, report.devices, report.modules, report.historyEntries) == (178, 155, 15, 178), "batch size \(size)")
            }
        }
    }

    @Test func tamperingIsFoundWhereverTheBatchesSplit() async throws {
        try await withTemporaryDirectory { dir in
            try await populatedWide(dir)
            let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
            func outcomes() throws -> Set<Replayer.Outcome> { Set(try [3, 64, 100, 10_000].map { try verify(dir, batchSize: $0).outcome }) }
            // A document removed, then one that the log never made, then a module's.
            let saved = try #require(try storage.read { txn, db in try txn.get(db.devices, StorageKey.device("dev60")) })
            try storage.environment.write { txn in try txn.delete(storage.databases.devices, StorageKey.device("dev60")) }
            #expect(
                try outcomes() == [
                    .projectionDiffers(database: "devices", key: "dev60", detail: "absent from the live projection, present in the replay")
                ]
            )
            try storage.environment.write { txn in try txn.put(storage.databases.devices, StorageKey.device("dev60"), saved) }
            try storage.environment.write { txn in try txn.put(storage.databases.devices, StorageKey.device("dev60x"), saved) }
            #expect(
                try outcomes() == [
                    .projectionDiffers(database: "devices", key: "dev60x", detail: "present in the live projection, absent from the replay")
                ]
            )
            try storage.environment.write { txn in try txn.delete(storage.databases.devices, StorageKey.device("dev60x")) }
            try storage.environment.write { txn in try txn.put(storage.databases.modules, StorageKey.module("a0", "m1"), saved) }
            #expect(
                try outcomes() == [
                    .projectionDiffers(database: "modules", key: "a0/m1", detail: "present in the live projection, absent from the replay")
                ]
            )
            try storage.environment.write { txn in try txn.delete(storage.databases.modules, StorageKey.module("a0", "m1")) }
            #expect(try outcomes() == [.clean])
            // One byte of one event in the middle of the log.
            try tamper(dir, \.events, key: StorageKey.sequence(120)) { value in
                let at = value.count / 2
                value[at] = value[at] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            }
            #expect(try outcomes() == [.logCorrupt(seq: 120, reason: "hash does not match the content")])
        }
    }

    @Test func cleanLogVerifies() async throws {
        try await withTemporaryDirectory { dir in
            try await populated(dir)
            let report = try verifyReplay(dir)
            #expect(report.outcome == .clean)
            #expect((report.events, report.devices, report.modules) == (23, 19, 1))
        }
    }

    @Test func oneTamperedByteInAnEventIsReportedWithItsSequence() async throws {
        try await withTemporaryDirectory { dir in
            try await populated(dir)
            try tamper(dir, \.events, key: StorageKey.sequence(7)) { value in
                let i = value.firstIndex(of: UInt8(ascii: "6"))!  // "d6" in the deviceId
                value[i] = UInt8(ascii: "7")
            }
            #expect(try verifyReplay(dir).outcome == .logCorrupt(seq: 7, reason: "hash does not match the content"))
        }
    }

    @Test func aMissingEventIsAGap() async throws {
        try await withTemporaryDirectory { dir in
            try await populated(dir)
            let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
            try storage.environment.write { txn in try txn.delete(storage.databases.events, StorageKey.sequence(5)) }
            guard case .logCorrupt(let seq, let reason) = try verifyReplay(dir).outcome else {
                Issue.record("gap not detected")
                return
            }
            #expect(seq == 6)
            #expect(reason.contains("where 5 was expected"))
        }
    }

    @Test func anEditedProjectionIsReportedWithTheIdentity() async throws {
        try await withTemporaryDirectory { dir in
            try await populated(dir)
            try tamper(dir, \.devices, key: StorageKey.device("d9")) { value in
                value = Array(String(decoding: value, as: UTF8.self).replacingOccurrences(of: "\"enabled\"", with: "\"disabled\"").utf8)
            }
            #expect(
                try verifyReplay(dir).outcome == .projectionDiffers(database: "devices", key: "d9", detail: "value differs from the replayed one")
            )
        }
    }

    @Test func extraAndMissingProjectionEntriesAreReported() async throws {
        try await withTemporaryDirectory { dir in
            try await populated(dir)
            let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
            try storage.environment.write { txn in try txn.put(storage.databases.history, StorageKey.history("zz", 99), []) }
            #expect(
                try verifyReplay(dir).outcome
                    == .projectionDiffers(database: "history", key: "zz@99", detail: "present in the live projection, absent from the replay")
            )
            // The history index is checked before the documents (their expectations come from it).
            try storage.environment.write { txn in try txn.delete(storage.databases.history, StorageKey.history("zz", 99)) }
            #expect(try verifyReplay(dir).outcome == .clean)
            try storage.environment.write { txn in try txn.delete(storage.databases.modules, StorageKey.module("d1", "m")) }
            #expect(
                try verifyReplay(dir).outcome
                    == .projectionDiffers(database: "modules", key: "d1/m", detail: "absent from the live projection, present in the replay")
            )
        }
    }

    @Test func historyAndCounterTamperingIsReported() async throws {
        try await withTemporaryDirectory { dir in
            try await populated(dir)
            let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
            let clean = try verifyReplay(dir)
            #expect(clean.outcome == .clean)
            #expect(clean.historyEntries == Int(clean.events))
            // An entry moved to another device: its seq belongs to d1, not d2.
            let moved = try storage.read { txn, db -> [UInt8]? in
                var found: [UInt8]?
                try txn.scan(db.history, from: StorageKey.modulePrefix("d1")) { key, _ in
                    found = key
                    return false
                }
                return found
            }
            let key = try #require(moved)
            let seq = try #require(StorageKey.sequence(from: Array(key[(key.firstIndex(of: 0)! + 1)...])))
            try storage.environment.write { txn in
                try txn.delete(storage.databases.history, key)
                try txn.put(storage.databases.history, StorageKey.history("d2", seq), [])
            }
            #expect(
                try verifyReplay(dir).outcome
                    == .projectionDiffers(database: "history", key: "d2@\(seq)", detail: "present in the live projection, absent from the replay")
            )
            // Removed outright: the count no longer matches the log.
            try storage.environment.write { txn in try txn.delete(storage.databases.history, StorageKey.history("d2", seq)) }
            #expect(
                try verifyReplay(dir).outcome
                    == .projectionDiffers(database: "history", key: "(1 entries)", detail: "absent from the live projection, present in the replay")
            )
            try storage.environment.write { txn in try txn.put(storage.databases.history, key, []) }
            #expect(try verifyReplay(dir).outcome == .clean)
            // The disabled-devices counter must match the documents.
            try storage.environment.write { txn in try txn.put(storage.databases.meta, MetaKey.disabledDevices, StorageKey.sequence(99)) }
            #expect(
                try verifyReplay(dir).outcome
                    == .projectionDiffers(database: "meta", key: "stats.disabledDevices", detail: "counter differs from the replayed one")
            )
        }
    }

    @Test func verifyRunsBesideALiveWriter() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            for i in 0..<50 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d\(i)")), actor: "t", requestId: "\(i)") }
            // The store stays open (lock held): read-only verification still works on a snapshot.
            async let more: Void = {
                for i in 50..<100 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d\(i)")), actor: "t", requestId: "\(i)") }
            }()
            let report = try Replayer.verify(source: store.storage)
            try await more
            #expect(report.outcome == .clean)
            #expect(report.events >= 50)
            #expect(report.devices == Int(report.events))
            store.close()
        }
    }
}
