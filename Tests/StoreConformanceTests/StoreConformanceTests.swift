import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// What every backend of the store interface must guarantee (DESIGN §3, §10), written against
/// `RegistryBackend` alone and run once per backend in `BackendFixtures.all`. A new backend
/// (PostgreSQL next) passes this suite unchanged before anything else uses it.
@Suite struct StoreConformanceTests {
    static let actor = "conformance"

    static func create(_ id: String) -> Command { .createDevice(DeviceSpec(deviceId: id)) }

    static func execute(_ backend: any RegistryBackend, _ commands: [Command]) async throws -> [Result<CommandOutcome, RegistryError>] {
        try await backend.execute(commands, actor: actor, requestId: UUID().uuidString)
    }

    /// The log read back through the interface: every record, decoded, in order.
    static func log(_ backend: any RegistryReader) async throws -> [EventRecord] {
        try await backend.rawEvents(from: 1, limit: .max).map { try EventRecord.decode($0) }
    }

    /// Sequence numbers 1...n without a gap, each record chained to the one before it, each
    /// hash the hash of its own bytes.
    static func expectLinearChain(_ records: [EventRecord], sourceLocation: SourceLocation = #_sourceLocation) {
        var previous = EventRecord.genesisHash
        for (index, record) in records.enumerated() {
            #expect(record.seq == UInt64(index + 1), "gap before seq \(record.seq)", sourceLocation: sourceLocation)
            #expect(record.prevHash == previous, "seq \(record.seq) does not chain to the one before", sourceLocation: sourceLocation)
            #expect(record.hash == record.computedHash, "seq \(record.seq) hash is not the hash of its record", sourceLocation: sourceLocation)
            previous = record.hash
        }
    }

    /// A bulk-by-query job's change (`Command.change`): applied under the identity's and the
    /// twin's etags as read, refused under either one stale, and a device delete takes its
    /// modules in the same batch, as DELETE does.
    @Test(arguments: BackendFixtures.all)
    func changesApplyUnderTheEtagsTheyReadAndADeleteTakesTheModules(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            _ = try await Self.execute(backend, [Self.create("b"), .createModule(ModuleSpec(deviceId: "b", moduleId: "m"))])
            let read = try #require(try await backend.device("b"))
            let initialTwin = read.twin?.etag ?? TwinState.initialEtag
            func change(_ action: IdentityChange.Action, etag: String, twin: String) -> Command {
                .change(IdentityChange(deviceId: "b", action: action, etag: etag, twinEtag: twin))
            }
            let stale = try await Self.execute(backend, [change(.setStatus(.disabled, reason: "x"), etag: "\"stale\"", twin: initialTwin)])
            #expect(stale[0].failure?.code == .preconditionFailed)
            _ = try await Self.execute(backend, [change(.setStatus(.disabled, reason: "bulk"), etag: read.etag, twin: initialTwin)])
            let disabled = try #require(try await backend.device("b"))
            #expect(disabled.status == .disabled)
            #expect(disabled.statusReason == "bulk")
            #expect(disabled.authentication == read.authentication)
            #expect(try backend.credentials(deviceId: "b", moduleId: nil)?.deviceDisabled == true)
            // A tag change moves the twin's etag, not the identity's.
            _ = try await Self.execute(backend, [change(.mergeTags(["site": .string("a")]), etag: disabled.etag, twin: initialTwin)])
            let tagged = try #require(try await backend.device("b"))
            #expect(tagged.etag == disabled.etag)
            #expect(tagged.twin?.tags == ["site": .string("a")])
            let staleTwin = try await Self.execute(backend, [change(.delete, etag: tagged.etag, twin: initialTwin)])
            #expect(staleTwin[0].failure?.code == .preconditionFailed)
            let results = try await Self.execute(backend, [change(.delete, etag: tagged.etag, twin: try #require(tagged.twin?.etag))])
            #expect(try results[0].get().events.map(\.type) == [.moduleDeleted, .deviceDeleted])
            #expect(try await backend.device("b") == nil)
            #expect(try await backend.module("b", "m") == nil)
            Self.expectLinearChain(try await Self.log(backend))
        }
    }

    /// Undelete (`Command.restore`): the deletion events read back through the interface, keys
    /// opened, re-create the device and its modules with their keys and a new generation; the
    /// restored documents name their deletions; a restore over a live id is refused.
    @Test(arguments: BackendFixtures.all)
    func aRestoreRecreatesDeletedIdentitiesFromTheirDeletionEvents(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            _ = try await Self.execute(backend, [Self.create("r"), .createModule(ModuleSpec(deviceId: "r", moduleId: "m"))])
            let device = try #require(try await backend.device("r"))
            let module = try #require(try await backend.module("r", "m"))
            _ = try await Self.execute(backend, [.deleteDevice(deviceId: "r", ifMatch: .absent)])
            let records = try await Self.log(backend)
            let deletions = records.filter { $0.type.isDelete }
            #expect(deletions.map(\.type) == [.moduleDeleted, .deviceDeleted])
            let opened = try deletions.map { try backend.identity(in: $0) }
            #expect(opened == [.module(module), .device(device)], "the deletion events carry the identities, keys opened")
            let restoration = Restoration(
                deviceId: "r",
                device: .init(identity: opened[1], seq: deletions[1].seq),
                modules: [.init(identity: opened[0], seq: deletions[0].seq)]
            )
            let results = try await Self.execute(backend, [.restore(restoration)])
            #expect(try results[0].get().events.map(\.type) == [.deviceCreated, .moduleCreated])
            let back = try #require(try await backend.device("r"))
            #expect(back.authentication == device.authentication)
            #expect(back.restoredFrom == deletions[1].seq)
            #expect(back.etag != device.etag)
            let backModule = try #require(try await backend.module("r", "m"))
            #expect(backModule.authentication == module.authentication)
            #expect(backModule.restoredFrom == deletions[0].seq)
            #expect(try backend.credentials(deviceId: "r", moduleId: "m") != nil, "device authentication sees it again")
            let again = try await Self.execute(backend, [.restore(restoration)])
            #expect(again[0].failure?.code == .deviceAlreadyExists)
            Self.expectLinearChain(try await Self.log(backend))
        }
    }

    /// Credential lifetimes: windows reach device authentication's credentials, and an expiry
    /// notice marks a window once without changing the etag.
    @Test(arguments: BackendFixtures.all)
    func validityWindowsReachCredentialsAndANoticeIsWrittenOnce(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            let end = Timestamp(iso8601: "2027-01-01T00:00:00Z")!
            let validity = CredentialValidity(secondary: .init(notAfter: end))
            let spec = DeviceSpec(deviceId: "v", authentication: AuthenticationSpec(validity: validity))
            _ = try await Self.execute(backend, [.createDevice(spec)])
            let created = try #require(try await backend.device("v"))
            #expect(created.authentication.validity == validity)
            let credentials = try #require(try backend.credentials(deviceId: "v", moduleId: nil))
            #expect(credentials.keyWindows == [nil, validity.secondary])
            let notice = Command.noticeCredentialExpiry(CredentialExpiryNotice(deviceId: "v", slot: .secondary, notAfter: end))
            let first = try await Self.execute(backend, [notice])
            #expect(try first[0].get().events.map(\.type) == [.deviceCredentialExpiring])
            let second = try await Self.execute(backend, [notice])
            #expect(try second[0].get().events.isEmpty, "noticed once")
            let noticed = try #require(try await backend.device("v"))
            #expect(noticed.etag == created.etag)
            #expect(noticed.authentication.validity.secondary?.expiryNoticed == true)
            Self.expectLinearChain(try await Self.log(backend))
        }
    }

    /// A scoped policy's commands (`Command.scoped`): decided against the identity as it is in
    /// the writer's transaction, refused (401) outside the scope, applied inside it.
    @Test(arguments: BackendFixtures.all)
    func scopedCommandsStayInsideTheirScope(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            let scope = try PolicyScope(deviceIdPrefixes: ["in-"], condition: "tags.site = 'a'")
            _ = try await Self.execute(backend, [Self.create("out-1"), .createDevice(DeviceSpec(deviceId: "in-1", tags: ["site": .string("a")]))])
            let results = try await Self.execute(
                backend,
                [
                    .scoped(.createDevice(DeviceSpec(deviceId: "in-2", tags: ["site": .string("a")])), scope),
                    .scoped(.createDevice(DeviceSpec(deviceId: "in-3")), scope),
                    .scoped(.deleteDevice(deviceId: "out-1", ifMatch: .absent), scope),
                    .scoped(.updateTwin(TwinUpdate(deviceId: "in-1", tags: ["site": .string("b")])), scope),
                ]
            )
            #expect((try? results[0].get()) != nil)
            #expect(results[1].failure?.code == .unauthorized, "untagged: outside after")
            #expect(results[2].failure?.code == .unauthorized, "outside before")
            #expect(results[3].failure?.code == .unauthorized, "would leave the scope")
            #expect(try await backend.device("out-1") != nil)
            #expect(try await backend.device("in-1")?.twin?.tags["site"] == .string("a"))
            #expect(try await backend.device("in-3") == nil)
        }
    }

    /// `replaceJobRecord` writes only over the record it was given, in one step.
    @Test(arguments: BackendFixtures.all)
    func jobRecordsAreReplacedOnlyOverWhatWasRead(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            let (first, second, third) = (Array("{\"n\":1}".utf8), Array("{\"n\":2}".utf8), Array("{\"n\":3}".utf8))
            let created = try await backend.replaceJobRecord("j", expected: nil, with: first)
            #expect(created)
            #expect(try await !backend.replaceJobRecord("j", expected: nil, with: second), "already there")
            #expect(try await backend.replaceJobRecord("j", expected: first, with: second))
            #expect(try await !backend.replaceJobRecord("j", expected: first, with: third), "written since")
            #expect(try await backend.jobRecord("j") == second)
        }
    }

    // MARK: the log

    @Test(arguments: BackendFixtures.all)
    func concurrentBatchesLeaveGaplessSequencesAndALinearChain(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            // 8 callers × 20 batches × 3 creates, all at once: the writer interleaves them.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<8 {
                    group.addTask {
                        for batch in 0..<20 {
                            let ids = (0..<3).map { "c\(caller)-b\(batch)-\($0)" }
                            let results = try await Self.execute(backend, ids.map(Self.create))
                            for result in results { _ = try result.get() }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let records = try await Self.log(backend)
            #expect(records.count == 480)
            Self.expectLinearChain(records)
            #expect(Set(records.map(\.deviceId)).count == 480, "each create is one event")
            let head = try await backend.head()
            #expect(head.seq == 480)
            #expect(head.hash == records.last?.hash)
            #expect(backend.commits.committed == 480)
            #expect(try await backend.verifyLog(progress: nil).outcome == .clean)
            #expect(try await backend.statistics().totalDeviceCount == 480)
        }
    }

    @Test(arguments: BackendFixtures.all)
    func theLogReadsFromAnySequence(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            for i in 0..<20 { _ = try await backend.execute(Self.create("d\(i)"), actor: Self.actor, requestId: "r\(i)") }
            for from in [1, 2, 7, 16, 20] as [UInt64] {
                let page = try await backend.events(from: from, limit: 5)
                #expect(page.map(\.seq) == Array(from..<min(from + 5, 21)), "from \(from)")
                let raw = try await backend.rawEvents(from: from, limit: 5).map { try EventRecord.decode($0) }
                #expect(raw.map(\.seq) == page.map(\.seq))
                #expect(raw.map(\.hash) == page.map(\.hash))
            }
            #expect(try await backend.events(from: 21, limit: 5).isEmpty, "past the head: nothing, no error")
            #expect(try await backend.events(from: 3, limit: 1).first?.deviceId == "d2")
            #expect(try await backend.events(from: 3, limit: 1).first?.requestId == "r2")
        }
    }

    @Test(arguments: BackendFixtures.all)
    func theCommittedSequenceSignalFollowsEveryCommit(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            #expect(backend.commits.committed == 0)
            let updates = backend.commits.updates()
            _ = try await backend.execute(Self.create("a"), actor: Self.actor, requestId: "1")
            // Published by the time the write returned: a waiter after 0 wakes with 1 at once.
            #expect(backend.commits.committed == 1)
            #expect(await backend.commits.wait(after: 0) == 1)
            var iterator = updates.makeAsyncIterator()
            #expect(await iterator.next() == 1)
            // A batch whose every command is refused commits nothing and signals nothing new.
            _ = try await Self.execute(backend, [Self.create("a")])
            #expect(backend.commits.committed == 1)
            _ = try await Self.execute(backend, [Self.create("b"), Self.create("c")])
            #expect(backend.commits.committed == 3)
            #expect(await iterator.next() == 3)
            #expect(try await backend.head().seq == backend.commits.committed)
        }
    }

    // MARK: commands

    @Test(arguments: BackendFixtures.all)
    func aRejectedCommandWritesNothingAndLeavesTheOthersOfItsBatch(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            _ = try await backend.execute(Self.create("x"), actor: Self.actor, requestId: "0")
            let results = try await Self.execute(
                backend,
                [
                    Self.create("y"),
                    Self.create("x"),  // exists
                    .replaceDevice(DeviceSpec(deviceId: "missing"), ifMatch: .absent),  // does not exist
                    .createModule(ModuleSpec(deviceId: "missing", moduleId: "m")),  // no device
                    Self.create("z"),
                ]
            )
            #expect(results.count == 5)
            #expect((try? results[0].get()) != nil)
            #expect(results[1].failure?.code == .deviceAlreadyExists)
            #expect(results[2].failure?.code == .deviceNotFound)
            #expect(results[3].failure?.code == .deviceNotFound)
            #expect((try? results[4].get()) != nil)
            let records = try await Self.log(backend)
            #expect(records.map(\.deviceId) == ["x", "y", "z"])
            Self.expectLinearChain(records)
            #expect(try await backend.device("missing") == nil)
            #expect(try await backend.statistics().totalDeviceCount == 3)
            #expect(try await backend.statistics().totalModuleCount == 0)
        }
    }

    @Test(arguments: BackendFixtures.all)
    func everyReadSeesAWriteOnceItReturned(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            for i in 0..<10 {
                let id = "ryw-\(i)"
                let outcome = try await backend.execute(Self.create(id), actor: Self.actor, requestId: id)
                let etag = try #require(outcome.identity?.etag)
                #expect(try await backend.device(id)?.etag == etag)
                #expect(try await backend.deviceDocument(id)?.etag == etag)
                #expect(try await backend.storedDocument(deviceId: id, moduleId: nil) != nil)
                let credentials = try #require(try backend.credentials(deviceId: id, moduleId: nil))
                #expect(credentials.type == .sas && credentials.keys.count == 2 && !credentials.deviceDisabled)
                #expect(try await backend.devices(after: nil, limit: 100).count == i + 1)
            }
            // The documents the API returns carry the keys opened, as the identity has them.
            let device = try #require(try await backend.device("ryw-3"))
            let document = try #require(try await backend.deviceDocument("ryw-3"))
            let json = try JSONParser.parse(document.json)
            #expect(json["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue == device.authentication.symmetricKey.primaryKey)
            #expect(try await backend.deviceDocuments(limit: 3).count == 3)
        }
    }

    @Test(arguments: BackendFixtures.all)
    func etagsGuardIdentitiesAndTwinsSeparately(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            let created = try #require(try await backend.execute(Self.create("e"), actor: Self.actor, requestId: "1").identity)
            let head = try await backend.head().seq
            // A stale etag is refused and writes nothing.
            let stale = try await Self.execute(backend, [.replaceDevice(DeviceSpec(deviceId: "e", status: .disabled), ifMatch: .exact("\"stale\""))])
            #expect(stale[0].failure?.code == .preconditionFailed)
            #expect(try await backend.head().seq == head)
            #expect(try await backend.device("e")?.status == .enabled)
            // The current etag matches; the change gives a new etag.
            let updated = try #require(
                try await backend.execute(
                    .replaceDevice(DeviceSpec(deviceId: "e", status: .disabled), ifMatch: .exact(created.etag)),
                    actor: Self.actor,
                    requestId: "2"
                ).identity
            )
            #expect(updated.etag != created.etag)
            #expect(try await backend.device("e")?.etag == updated.etag)
            #expect(try backend.credentials(deviceId: "e", moduleId: nil)?.deviceDisabled == true)
            #expect(try await backend.statistics().disabledDeviceCount == 1)
            // The twin has its own etag: a stale twin etag is refused, the current one accepted.
            guard case .device(let device) = updated else { throw StoreError("not a device") }
            let twinETag = device.twin?.etag ?? TwinState.initialEtag  // a device without tags has the initial twin etag
            let staleTwin = try await Self.execute(
                backend,
                [.updateTwin(TwinUpdate(deviceId: "e", tags: ["site": .string("a")], ifMatch: .exact("\"stale\"")))]
            )
            #expect(staleTwin[0].failure?.code == .preconditionFailed)
            let tagged = try #require(
                try await backend.execute(
                    .updateTwin(TwinUpdate(deviceId: "e", tags: ["site": .string("a")], ifMatch: .exact(twinETag))),
                    actor: Self.actor,
                    requestId: "3"
                ).identity
            )
            guard case .device(let retagged) = tagged else { throw StoreError("not a device") }
            #expect(retagged.twin?.etag != twinETag)
            #expect(retagged.twin?.tags["site"] == .string("a"))
            #expect(try await backend.device("e")?.twin?.tags["site"] == .string("a"))
            // A delete under a stale etag is refused; under the current one it goes through.
            let current = try #require(try await backend.device("e")?.etag)
            #expect(
                try await Self.execute(backend, [.deleteDevice(deviceId: "e", ifMatch: .exact("\"stale\""))])[0].failure?.code == .preconditionFailed
            )
            _ = try await backend.execute(.deleteDevice(deviceId: "e", ifMatch: .exact(current)), actor: Self.actor, requestId: "4")
            #expect(try await backend.device("e") == nil)
            #expect(try await backend.statistics().disabledDeviceCount == 0)
        }
    }

    @Test(arguments: BackendFixtures.all)
    func deletingADeviceDeletesItsModules(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            _ = try await Self.execute(
                backend,
                [
                    Self.create("d"), .createModule(ModuleSpec(deviceId: "d", moduleId: "m1")),
                    .createModule(ModuleSpec(deviceId: "d", moduleId: "m2")),
                    Self.create("other"), .createModule(ModuleSpec(deviceId: "other", moduleId: "m1")),
                ]
            )
            #expect(try await backend.modules(of: "d").map(\.moduleId) == ["m1", "m2"])
            #expect(try await backend.statistics().totalModuleCount == 3)
            let before = try await backend.head().seq
            _ = try await backend.execute(.deleteDevice(deviceId: "d", ifMatch: .any), actor: Self.actor, requestId: "del")
            #expect(try await backend.module("d", "m1") == nil)
            #expect(try await backend.modules(of: "d").isEmpty)
            #expect(try await backend.moduleDocuments(of: "d") == nil, "the device is gone, so are its module documents")
            #expect(try backend.credentials(deviceId: "d", moduleId: "m2") == nil)
            #expect(try await backend.module("other", "m1") != nil, "another device's module stays")
            #expect(try await backend.statistics().totalModuleCount == 1)
            // The deletes are in the log, modules first, then the device.
            let deletes = try await backend.events(from: before + 1, limit: 10)
            #expect(deletes.map(\.type) == [.moduleDeleted, .moduleDeleted, .deviceDeleted])
            #expect(try await backend.verifyLog(progress: nil).outcome == .clean)
            // A re-created device starts without modules and with a new generation.
            let again = try #require(try await backend.execute(Self.create("d"), actor: Self.actor, requestId: "again").identity)
            #expect(try await backend.modules(of: "d").isEmpty)
            guard case .device(let device) = again else { throw StoreError("not a device") }
            #expect(device.generationId != "")
        }
    }

    @Test(arguments: BackendFixtures.all)
    func historyAndQueriesReadThroughTheInterface(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            _ = try await Self.execute(backend, [Self.create("h1"), Self.create("h2"), .createModule(ModuleSpec(deviceId: "h1", moduleId: "m"))])
            _ = try await backend.execute(
                .replaceDevice(DeviceSpec(deviceId: "h1", status: .disabled), ifMatch: .any),
                actor: "someone",
                requestId: "dis"
            )
            let history = try await backend.history(deviceId: "h1")
            #expect(history.map(\.type) == [.deviceCreated, .moduleCreated, .deviceUpdated])
            #expect(history.last?.actor == "someone")
            #expect(history.last?.changes.contains { $0.path == "status" } == true)
            let page = try await backend.history(deviceId: "h1", moduleId: nil, after: 0, limit: 2)
            #expect(page.entries.count == 2)
            let rest = try await backend.history(deviceId: "h1", moduleId: nil, after: try #require(page.next), limit: 2)
            #expect(rest.entries.map(\.type) == [.deviceUpdated])
            let disabled = try await backend.runQuery(
                try QueryParser.parse("SELECT * FROM devices WHERE status = 'disabled'"),
                cursor: nil,
                pageSize: 10,
                bounds: QueryBounds()
            )
            #expect(disabled.items.compactMap { $0["deviceId"]?.stringValue } == ["h1"])
        }
    }

    // MARK: typed stores

    @Test(arguments: BackendFixtures.all)
    func cursorsParkedMessagesJobsAndSettingsRoundTrip(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            #expect(try await backend.routeCursor("r") == nil)
            try await backend.saveRouteCursor("r", RouteCursor(seq: 42, dead: false))
            try await backend.saveRouteCursor("r", RouteCursor(seq: 43, dead: true))
            try await backend.saveRouteCursor("r2", RouteCursor(seq: 1, dead: false))
            #expect(try await backend.routeCursor("r") == RouteCursor(seq: 43, dead: true))

            let messages = [9, 3, 300].map { ParkedRecord(seq: UInt64($0), message: Array("{\"seq\":\($0)}".utf8)) }
            try await backend.park(route: "r", messages)
            try await backend.park(route: "r2", [ParkedRecord(seq: 5, message: Array("{}".utf8))])
            // A route name that prefixes another's does not see the other's messages.
            try await backend.park(route: "r-long", [ParkedRecord(seq: 1, message: Array("{}".utf8))])
            #expect(try await backend.parkedMessages(route: "r").map(\.seq) == [3, 9, 300], "in sequence order")
            #expect(try await backend.parkedMessages(route: "r").first?.message == Array("{\"seq\":3}".utf8))
            try await backend.unpark(route: "r", seq: 9)
            #expect(try await backend.parkedMessages(route: "r").map(\.seq) == [3, 300])
            #expect(try await backend.parkedMessages(route: "r2").map(\.seq) == [5])

            #expect(try await backend.jobRecord("j") == nil)
            try await backend.saveJobRecord("j", Array("{\"status\":\"running\"}".utf8))
            try await backend.saveJobRecord("j", Array("{\"status\":\"completed\"}".utf8))
            try await backend.saveJobRecord("k", Array("{}".utf8))
            #expect(try await backend.jobRecord("j") == Array("{\"status\":\"completed\"}".utf8))
            #expect(try await backend.jobRecords().count == 2)

            #expect(try await backend.metaString("setting") == nil)
            try await backend.setMetaString("setting", "value é")
            #expect(try await backend.metaString("setting") == "value é")

            // None of it is an identity event: the log and the signal did not move.
            #expect(try await backend.head().seq == 0)
            #expect(backend.commits.committed == 0)
        }
    }

    @Test(arguments: BackendFixtures.all)
    func policiesRoundTripWithEtagsAndGenerations(_ fixture: any BackendFixture) async throws {
        try await fixture.withBackend { backend in
            let builtIn = try await backend.ensureBuiltInPolicies()
            #expect(Set(builtIn.map(\.name)) == ["iothubowner", "service", "device", "registryRead", "registryReadWrite"])
            #expect(
                try await backend.ensureBuiltInPolicies().map(\.primaryKey).sorted() == builtIn.map(\.primaryKey).sorted(),
                "a second start keeps the keys"
            )
            let added = try await backend.upsertPolicy(name: "ops", rights: [.registryRead])
            #expect(try await backend.policies().contains(added))
            let rotated = try await backend.rotatePolicy(name: "ops", secondary: false)
            #expect(rotated.primaryKey != added.primaryKey && rotated.secondaryKey == added.secondaryKey)
            #expect(rotated.version > added.version, "every change takes a new generation")
            // A change made against an old etag is refused (412), naming the conflict.
            do {
                _ = try await backend.applyPolicyChange(.rotate(secondary: true), to: "ops", ifMatch: .exact(added.etag))
                Issue.record("a stale policy etag was accepted")
            } catch let error as PolicyError {
                #expect(error.preconditionFailed)
            }
            try await backend.removePolicy(name: "ops")
            #expect(try await backend.policies().contains { $0.name == "ops" } == false)
            do {
                try await backend.removePolicy(name: "ops")
                Issue.record("removing a missing policy succeeded")
            } catch let error as PolicyError {
                #expect(error.notFound)
            }
            #expect(try await backend.head().seq == 0, "policies live outside the identity log")
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
