import Foundation
import LMDB
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

struct StoreTests {
    @Test func thousandConcurrentCreatesGiveGaplessEventsAndAVerifiedReplay() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let outcomes = try await withThrowingTaskGroup(of: CommandOutcome.self) { group in
                for i in 0..<1_000 {
                    group.addTask {
                        try await store.execute(.createDevice(DeviceSpec(deviceId: "dev-\(i)")), actor: "test", requestId: "r\(i)")
                    }
                }
                var all: [CommandOutcome] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            #expect(Set(outcomes.flatMap { $0.events.map(\.seq) }) == Set(1...1_000))
            // Fewer commits than creates: group commit shared the flushes.
            for i in 0..<1_000 { #expect(try store.storage.device("dev-\(i)") != nil) }
            let events = try store.storage.events(from: 1, limit: 2_000)
            #expect(events.map(\.seq) == Array(1...1_000))
            #expect(try store.storage.head().seq == 1_000)
            #expect(store.commits.committed == 1_000)
            #expect(try store.storage.statistics().totalDeviceCount == 1_000)
            store.close()
            let report = try verifyReplay(dir)
            #expect(report.outcome == .clean)
            #expect(report.events == 1_000)
            #expect(report.devices == 1_000)
        }
    }

    @Test func aRejectedCommandDoesNotAffectItsBatchNeighbours() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let results = try await store.execute(
                [
                    .createDevice(DeviceSpec(deviceId: "a")),
                    .createDevice(DeviceSpec(deviceId: "a")),  // conflict with the one before it, same transaction
                    .createDevice(DeviceSpec(deviceId: "bad id")),
                    .createModule(ModuleSpec(deviceId: "a", moduleId: "m")),
                    .replaceDevice(DeviceSpec(deviceId: "a", status: .disabled), ifMatch: .exact("stale")),
                    .createDevice(DeviceSpec(deviceId: "b")),
                ],
                actor: "test",
                requestId: "batch"
            )
            #expect(results.count == 6)
            #expect((try? results[0].get()) != nil)
            #expect(results[1].failure?.code == .deviceAlreadyExists)
            #expect(results[2].failure?.code == .argumentInvalid)
            #expect((try? results[3].get()) != nil)
            #expect(results[4].failure?.code == .preconditionFailed)
            #expect(try results[5].get().events[0].seq == 3)  // rejected commands consumed no sequence numbers
            #expect(try store.storage.head().seq == 3)
            #expect(try store.storage.device("a")?.status == .enabled)
            #expect(try store.storage.modules(of: "a").map(\.moduleId) == ["m"])
            store.close()
            #expect(try verifyReplay(dir).outcome == .clean)
        }
    }

    @Test func readYourWritesAndPlaintextKeysOnlyOutsideTheLog() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let created = try await store.execute(.createDevice(DeviceSpec(deviceId: "d")), actor: "iothubowner", requestId: "req-1")
            guard case .device(let device)? = created.identity else {
                Issue.record("no device")
                return
            }
            let read = try #require(try store.storage.device("d"))
            #expect(read == device)
            let key = try #require(device.authentication.symmetricKey.primaryKey)
            // The key is sealed in both the log and the projection.
            let raw = try store.storage.read { txn, db in
                (try txn.get(db.events, StorageKey.sequence(1)) ?? []) + (try txn.get(db.devices, StorageKey.device("d")) ?? [])
            }
            #expect(!String(decoding: raw, as: UTF8.self).contains(key))
            #expect(String(decoding: raw, as: UTF8.self).contains(KeySealer.prefix))
            let record = try #require(try store.storage.events(from: 1, limit: 1).first)
            #expect(record.actor == "iothubowner")
            #expect(record.requestId == "req-1")
            #expect(record.schema == EventRecord.currentSchema)
            #expect(record.prevHash == EventRecord.genesisHash)
            // A key file with other permissions than owner-only would leak it.
            let mode = try FileManager.default.attributesOfItem(atPath: dir + "/data.key")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            store.close()
        }
    }

    @Test func documentsAreTheStoredJSONWithKeysOpened() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let device = try await store.execute(
                .createDevice(DeviceSpec(deviceId: "d", statusReason: "quote \" and \\")),
                actor: "t",
                requestId: "1"
            )
            let module = try await store.execute(.createModule(ModuleSpec(deviceId: "d", moduleId: "m")), actor: "t", requestId: "2")
            _ = try await store.execute(
                .createDevice(DeviceSpec(deviceId: "x509", authentication: AuthenticationSpec(primaryThumbprint: String(repeating: "a", count: 40)))),
                actor: "t",
                requestId: "3"
            )
            let plain = { (identity: Identity) in CanonicalJSON.encode(IdentityCodec.encode(identity) { key, _ in key }) }
            let doc = try #require(try store.storage.deviceDocument("d"))
            #expect(doc.json == plain(device.identity!))
            #expect(doc.etag == device.identity!.etag)
            #expect(try store.storage.moduleDocument("d", "m")?.json == plain(module.identity!))
            #expect(try store.storage.moduleDocuments(of: "d")?.map(\.json) == [plain(module.identity!)])
            #expect(try store.storage.moduleDocuments(of: "nobody") == nil)
            #expect(try store.storage.deviceDocuments(limit: 10).map(\.etag) == ["MQ==", "Mw=="])
            #expect(try store.storage.deviceDocument("x509")?.json == plain(.device(try #require(try store.storage.device("x509")))))
            #expect(try store.storage.deviceDocument("bad id") == nil)
            store.close()
        }
    }

    @Test func deletingADeviceDeletesItsModulesInOneTransaction() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d")), actor: "t", requestId: "1")
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d0")), actor: "t", requestId: "1")
            for m in ["m1", "m2", "m3"] {
                _ = try await store.execute(.createModule(ModuleSpec(deviceId: "d", moduleId: m)), actor: "t", requestId: m)
            }
            let txnBefore = store.storage.environment.lastTransactionID
            let outcome = try await store.execute(.deleteDevice(deviceId: "d", ifMatch: .any), actor: "t", requestId: "del")
            #expect(store.storage.environment.lastTransactionID == txnBefore + 1)
            #expect(outcome.events.map(\.type) == [.moduleDeleted, .moduleDeleted, .moduleDeleted, .deviceDeleted])
            #expect(outcome.identity == nil)
            #expect(try store.storage.device("d") == nil)
            #expect(try store.storage.modules(of: "d").isEmpty)
            #expect(try store.storage.device("d0") != nil)
            // The history index holds every event of the device and its modules.
            let history = try store.storage.read { txn, db in
                var seqs: [UInt64] = []
                try txn.scan(db.history, from: StorageKey.modulePrefix("d")) { key, _ in
                    guard StorageKey.hasPrefix(key, StorageKey.modulePrefix("d")) else { return false }
                    seqs.append(StorageKey.sequence(from: Array(key.suffix(8)))!)
                    return true
                }
                return seqs
            }
            #expect(history == [1, 3, 4, 5, 6, 7, 8, 9])
            store.close()
            #expect(try verifyReplay(dir).outcome == .clean)
        }
    }

    @Test func statisticsFollowStatusChanges() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            for id in ["a", "b", "c"] { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: id)), actor: "t", requestId: id) }
            _ = try await store.execute(.replaceDevice(DeviceSpec(deviceId: "a", status: .disabled), ifMatch: .any), actor: "t", requestId: "x")
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d", status: .disabled)), actor: "t", requestId: "x")
            var stats = try store.storage.statistics()
            #expect((stats.totalDeviceCount, stats.enabledDeviceCount, stats.disabledDeviceCount) == (4, 2, 2))
            _ = try await store.execute(.deleteDevice(deviceId: "d", ifMatch: .any), actor: "t", requestId: "x")
            _ = try await store.execute(.replaceDevice(DeviceSpec(deviceId: "a", status: .enabled), ifMatch: .any), actor: "t", requestId: "x")
            stats = try store.storage.statistics()
            #expect((stats.totalDeviceCount, stats.enabledDeviceCount, stats.disabledDeviceCount) == (3, 3, 0))
            #expect(try store.storage.devices(limit: 2).map(\.deviceId) == ["a", "b"])
            #expect(try store.storage.devices(after: "b", limit: 10).map(\.deviceId) == ["c"])
            // A device created again after its delete (a create reads no previous document).
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d", status: .disabled)), actor: "t", requestId: "x")
            stats = try store.storage.statistics()
            #expect((stats.totalDeviceCount, stats.enabledDeviceCount, stats.disabledDeviceCount) == (4, 3, 1))
            store.close()
            #expect(try verifyReplay(dir).outcome == .clean)
        }
    }

    @Test func limitsApplyThroughTheWriter() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir, limits: RegistryLimits(maxModulesPerDevice: 2, maxIdentities: 4))
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d")), actor: "t", requestId: "1")
            let results = try await store.execute(
                (1...3).map { .createModule(ModuleSpec(deviceId: "d", moduleId: "m\($0)")) } + [
                    .createDevice(DeviceSpec(deviceId: "e")), .createDevice(DeviceSpec(deviceId: "f")),
                ],
                actor: "t",
                requestId: "2"
            )
            #expect(results.map { $0.failure?.code } == [nil, nil, .tooManyModulesOnDevice, nil, .quotaExceeded])
            store.close()
        }
    }

    @Test func aSecondWriterIsRefused() throws {
        try withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            #expect {
                _ = try makeStore(dir)
            } throws: { error in
                "\(error)".contains("in use by another registryd process")
            }
            store.close()
        }
    }

    @Test func aNewerDataFormatIsRefused() throws {
        try withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            try store.storage.environment.write { txn in try txn.put(store.storage.databases.meta, MetaKey.format, Array("99".utf8)) }
            store.close()
            #expect {
                _ = try RegistryStorage(directory: DataDirectory(path: dir), create: false)
            } throws: { error in
                "\(error)".contains("data format 99, newer than this registryd supports")
            }
        }
    }

    @Test func mapGrowthIsInvisibleToCallers() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir, mapSize: 64 << 10)
            let initial = store.storage.environment.mapSize
            for chunk in 0..<10 {
                let results = try await store.execute(
                    (0..<200).map { .createDevice(DeviceSpec(deviceId: "d\(chunk)-\($0)")) },
                    actor: "t",
                    requestId: "c"
                )
                #expect(results.allSatisfy { (try? $0.get()) != nil })
            }
            #expect(store.storage.environment.mapSize > initial)
            #expect(try store.storage.statistics().totalDeviceCount == 2_000)
            store.close()
            #expect(try verifyReplay(dir).outcome == .clean)
        }
    }

    @Test func nonIdentityWritesRunOnTheWriterOutsideTheChain() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d")), actor: "t", requestId: "1")
            let stored = try await store.perform { txn, db in
                try txn.put(db.cursors, Array("route-a".utf8), StorageKey.sequence(1))
                return "ok"
            }
            #expect(stored == "ok")
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await store.perform { txn, db -> Int in
                    try txn.put(db.cursors, Array("route-b".utf8), StorageKey.sequence(9))
                    throw Refused()
                }
            }
            let cursors = try store.storage.read { txn, db in
                (try txn.get(db.cursors, Array("route-a".utf8)), try txn.get(db.cursors, Array("route-b".utf8)))
            }
            #expect(cursors.0 == StorageKey.sequence(1))
            #expect(cursors.1 == nil)  // the failed custom write was rolled back
            #expect(try store.storage.head().seq == 1)
            store.close()
            #expect(try verifyReplay(dir).outcome == .clean)
        }
    }

    @Test func commitSignalWakesWaiters() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            async let woken = store.commits.wait(after: 1)
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "a")), actor: "t", requestId: "1")
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "b")), actor: "t", requestId: "2")
            #expect(await woken >= 2)
            var updates = store.commits.updates().makeAsyncIterator()
            #expect(await updates.next() == 2)
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "c")), actor: "t", requestId: "3")
            #expect(await updates.next() == 3)
            store.close()
        }
    }

    @Test func eventTimesStrictlyIncreaseEvenWhenTheClockStands() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock()
            let store = try makeStore(dir, clock: clock)
            _ = try await store.execute((0..<5).map { .createDevice(DeviceSpec(deviceId: "d\($0)")) }, actor: "t", requestId: "1")
            let times = try store.storage.events(from: 1, limit: 10).map(\.time)
            #expect(times == times.sorted() && Set(times).count == 5)
            #expect(times[0] == clock.now())
            let generations = try store.storage.devices(limit: 10).map(\.generationId)
            #expect(Set(generations).count == 5)
            store.close()
        }
    }

    @Test func closedStoreRefusesWork() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            store.close()
            await #expect(throws: StoreError.self) {
                _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "a")), actor: "t", requestId: "1")
            }
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
