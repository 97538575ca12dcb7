import Foundation
import RegistryCore
import RegistryTesting
import Testing

private let now = Timestamp(iso8601: "2026-03-01T12:00:00.1234567Z")!
private let key16 = Data(repeating: 1, count: 16).base64EncodedString()
private let key32 = Data(repeating: 2, count: 32).base64EncodedString()
private let key64 = Data(repeating: 3, count: 64).base64EncodedString()
private let sha1 = String(repeating: "ab", count: 20)
private let sha256 = String(repeating: "CD", count: 32)

/// Runs `decide` on a snapshot with a seeded generator.
private func run(_ command: Command, on snapshot: RegistrySnapshot = .init(), seq: UInt64 = 1, limits: RegistryLimits = .init()) throws(RegistryError)
    -> [RegistryEvent]
{
    var random = SeededRandom(seed: 42)
    return try decide(
        command,
        state: snapshot.commandState(for: command),
        context: DecisionContext(now: now, sequence: seq, limits: limits),
        random: &random
    )
}

private func expectError(
    _ code: RegistryError.Code,
    _ command: Command,
    on snapshot: RegistrySnapshot = .init(),
    limits: RegistryLimits = .init(),
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        _ = try run(command, on: snapshot, limits: limits)
        Issue.record("expected \(code.name), the command was accepted", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
    }
}

/// Applies commands in order, as the writer would.
private func registry(_ commands: [Command]) throws -> RegistrySnapshot {
    var snapshot = RegistrySnapshot()
    var seq: UInt64 = 1
    for command in commands {
        for event in try run(command, on: snapshot, seq: seq) {
            snapshot = evolve(snapshot, event)
            seq += 1
        }
    }
    return snapshot
}

private func device(_ events: [RegistryEvent]) -> Device? {
    if case .device(let d) = events.last?.identity { return d }
    return nil
}

struct DecideTests {
    @Test func createGeneratesKeysAndAzureDefaults() throws {
        let events = try run(.createDevice(DeviceSpec(deviceId: "dev-1")), seq: 7)
        #expect(events.count == 1)
        #expect(events[0].type == .deviceCreated)
        #expect(events[0].seq == 7)
        let d = try #require(device(events))
        #expect(d.status == .enabled)
        #expect(d.statusUpdatedTime == .unset)
        #expect(d.connectionState == .disconnected)
        #expect(d.etag == "Nw==")  // base64("7")
        #expect(d.generationId == String(now.ticks))
        #expect(d.authentication.type == .sas)
        for key in [d.authentication.symmetricKey.primaryKey, d.authentication.symmetricKey.secondaryKey] {
            #expect(Data(base64Encoded: try #require(key))?.count == 32)
        }
        #expect(d.authentication.symmetricKey.primaryKey != d.authentication.symmetricKey.secondaryKey)
    }

    @Test func createKeepsExplicitKeysThumbprintsAndCA() throws {
        let sas = try #require(
            device(
                try run(
                    .createDevice(DeviceSpec(deviceId: "a", authentication: AuthenticationSpec(type: .sas, primaryKey: key16, secondaryKey: key64)))
                )
            )
        )
        #expect(sas.authentication.symmetricKey == SymmetricKey(primaryKey: key16, secondaryKey: key64))
        let x509 = try #require(
            device(
                try run(
                    .createDevice(DeviceSpec(deviceId: "b", authentication: AuthenticationSpec(primaryThumbprint: sha1, secondaryThumbprint: sha1)))
                )
            )
        )
        #expect(x509.authentication.type == .selfSigned)  // inferred from thumbprints
        #expect(x509.authentication.x509Thumbprint.primaryThumbprint == sha1)
        #expect(x509.authentication.symmetricKey.primaryKey == nil)
        let onlySecondary = try #require(
            device(
                try run(.createDevice(DeviceSpec(deviceId: "b2", authentication: AuthenticationSpec(type: .selfSigned, secondaryThumbprint: sha256))))
            )
        )
        #expect(onlySecondary.authentication.x509Thumbprint.secondaryThumbprint == sha256)
        let ca = try #require(
            device(try run(.createDevice(DeviceSpec(deviceId: "c", authentication: AuthenticationSpec(type: .certificateAuthority)))))
        )
        #expect(ca.authentication.type == .certificateAuthority)
        #expect(ca.authentication.symmetricKey.primaryKey == nil)
        let disabled = try #require(device(try run(.createDevice(DeviceSpec(deviceId: "d", status: .disabled, statusReason: "compromised")))))
        #expect(disabled.status == .disabled)
        #expect(disabled.statusUpdatedTime == now)
        #expect(disabled.statusReason == "compromised")
    }

    @Test func edgeDevicesGetAScope() throws {
        let edge = try #require(device(try run(.createDevice(DeviceSpec(deviceId: "edge", capabilities: DeviceCapabilities(iotEdge: true))))))
        #expect(edge.deviceScope == "ms-azure-iot-edge://edge-\(edge.generationId)")
        let leaf = try #require(device(try run(.createDevice(DeviceSpec(deviceId: "leaf", deviceScope: edge.deviceScope)))))
        #expect(leaf.parentScopes == [edge.deviceScope!])
    }

    @Test func invalidIdsAreRefused() {
        for id in [
            "", String(repeating: "a", count: 129), "has space", "plus+", "hash#", "semi;colon", "slash/", "quote\"", "ünicode", "back\\slash",
        ] {
            expectError(.argumentInvalid, .createDevice(DeviceSpec(deviceId: id)))
        }
        expectError(.argumentInvalid, .createModule(ModuleSpec(deviceId: "ok", moduleId: "bad id")))
    }

    @Test func everyAllowedIdCharacterIsAccepted() throws {
        let id = "Az09-.%_*?!(),:=@$'"
        let d = try #require(device(try run(.createDevice(DeviceSpec(deviceId: id)))))
        #expect(d.deviceId == id)
        _ = try run(.createDevice(DeviceSpec(deviceId: String(repeating: "x", count: 128))))
    }

    @Test func keyRules() {
        func create(_ auth: AuthenticationSpec) -> Command { .createDevice(DeviceSpec(deviceId: "d", authentication: auth)) }
        expectError(.argumentInvalid, create(AuthenticationSpec(primaryKey: key32)))  // one key only
        expectError(.argumentInvalid, create(AuthenticationSpec(secondaryKey: key32)))
        expectError(.argumentInvalid, create(AuthenticationSpec(primaryKey: "not base64!", secondaryKey: key32)))
        expectError(
            .argumentInvalid,
            create(AuthenticationSpec(primaryKey: Data(repeating: 1, count: 15).base64EncodedString(), secondaryKey: key32))
        )
        expectError(
            .argumentInvalid,
            create(AuthenticationSpec(primaryKey: key32, secondaryKey: Data(repeating: 1, count: 65).base64EncodedString()))
        )
        expectError(.argumentInvalid, create(AuthenticationSpec(primaryKey: key32, secondaryKey: key32, primaryThumbprint: sha1)))
        expectError(.argumentInvalid, create(AuthenticationSpec(type: .sas, primaryThumbprint: sha1)))
        expectError(.argumentInvalid, create(AuthenticationSpec(type: .selfSigned, primaryKey: key32, secondaryKey: key32)))
        expectError(.argumentInvalid, create(AuthenticationSpec(type: .certificateAuthority, primaryKey: key32, secondaryKey: key32)))
        expectError(.argumentInvalid, create(AuthenticationSpec(type: AuthenticationType.none, primaryThumbprint: sha1)))
    }

    @Test func thumbprintRules() {
        func create(_ p: String?, _ s: String? = nil) -> Command {
            .createDevice(
                DeviceSpec(deviceId: "d", authentication: AuthenticationSpec(type: .selfSigned, primaryThumbprint: p, secondaryThumbprint: s))
            )
        }
        expectError(.argumentInvalid, create(nil))  // selfSigned without any thumbprint
        expectError(.argumentInvalid, create(String(repeating: "a", count: 39)))
        expectError(.argumentInvalid, create(String(repeating: "g", count: 40)))
        expectError(.argumentInvalid, create(String(repeating: "a", count: 50)))
        expectError(.argumentInvalid, create(sha1, sha256))  // lengths differ
    }

    @Test func statusReasonAndScopeLimits() {
        expectError(.argumentInvalid, .createDevice(DeviceSpec(deviceId: "d", statusReason: String(repeating: "r", count: 129))))
        expectError(.argumentInvalid, .createDevice(DeviceSpec(deviceId: "d", parentScopes: ["a", "b"])))
    }

    @Test func createExistingIsAConflict() throws {
        let snapshot = try registry([.createDevice(DeviceSpec(deviceId: "d"))])
        expectError(.deviceAlreadyExists, .createDevice(DeviceSpec(deviceId: "d")), on: snapshot)
        // Ids are case-sensitive.
        _ = try run(.createDevice(DeviceSpec(deviceId: "D")), on: snapshot)
    }

    @Test func replaceFollowsIfMatch() throws {
        let snapshot = try registry([.createDevice(DeviceSpec(deviceId: "d"))])
        let current = try #require(snapshot.devices["d"])
        let disable = DeviceSpec(deviceId: "d", status: .disabled, statusReason: "lost")
        for condition in [ETagCondition.exact(current.etag), .any, .absent] {
            let updated = try #require(device(try run(.replaceDevice(disable, ifMatch: condition), on: snapshot, seq: 2)))
            #expect(updated.status == .disabled)
            #expect(updated.statusUpdatedTime == now)
            #expect(updated.etag == etag(forSequence: 2))
            #expect(updated.generationId == current.generationId)
            // Empty keys on an update keep the existing keys.
            #expect(updated.authentication.symmetricKey == current.authentication.symmetricKey)
        }
        expectError(.preconditionFailed, .replaceDevice(disable, ifMatch: .exact("stale")), on: snapshot)
        expectError(.deviceNotFound, .replaceDevice(DeviceSpec(deviceId: "other"), ifMatch: .any), on: snapshot)
    }

    @Test func replaceRotatesKeysAndSwitchesAuthentication() throws {
        let snapshot = try registry([.createDevice(DeviceSpec(deviceId: "d"))])
        let rotated = try #require(
            device(
                try run(
                    .replaceDevice(
                        DeviceSpec(deviceId: "d", authentication: AuthenticationSpec(primaryKey: key32, secondaryKey: key16)),
                        ifMatch: .any
                    ),
                    on: snapshot
                )
            )
        )
        #expect(rotated.authentication.symmetricKey.primaryKey == key32)
        let x509 = try #require(
            device(
                try run(
                    .replaceDevice(DeviceSpec(deviceId: "d", authentication: AuthenticationSpec(primaryThumbprint: sha256)), ifMatch: .any),
                    on: snapshot
                )
            )
        )
        #expect(x509.authentication.type == .selfSigned)
        #expect(x509.authentication.symmetricKey.primaryKey == nil)
        // Same status: statusUpdatedTime untouched.
        let same = try #require(device(try run(.replaceDevice(DeviceSpec(deviceId: "d", status: .enabled), ifMatch: .any), on: snapshot)))
        #expect(same.statusUpdatedTime == .unset)
    }

    @Test func deleteRemovesModulesFirst() throws {
        let snapshot = try registry([
            .createDevice(DeviceSpec(deviceId: "d")),
            .createModule(ModuleSpec(deviceId: "d", moduleId: "m2")),
            .createModule(ModuleSpec(deviceId: "d", moduleId: "m1")),
            .createDevice(DeviceSpec(deviceId: "other")),
        ])
        let events = try run(.deleteDevice(deviceId: "d", ifMatch: .any), on: snapshot, seq: 10)
        #expect(events.map(\.type) == [.moduleDeleted, .moduleDeleted, .deviceDeleted])
        #expect(events.map(\.moduleId) == ["m1", "m2", nil])
        #expect(events.map(\.seq) == [10, 11, 12])
        let after = events.reduce(snapshot, evolve)
        #expect(after.devices.keys.sorted() == ["other"])
        #expect(after.modules.isEmpty)
        let etag = snapshot.devices["d"]!.etag
        _ = try run(.deleteDevice(deviceId: "d", ifMatch: .exact(etag)), on: snapshot)
        _ = try run(.deleteDevice(deviceId: "d", ifMatch: .absent), on: snapshot)
        expectError(.preconditionFailed, .deleteDevice(deviceId: "d", ifMatch: .exact("MQ==x")), on: snapshot)
        expectError(.deviceNotFound, .deleteDevice(deviceId: "nope", ifMatch: .any), on: snapshot)
    }

    @Test func recreateGivesANewGenerationId() throws {
        var snapshot = try registry([.createDevice(DeviceSpec(deviceId: "d"))])
        let first = snapshot.devices["d"]!.generationId
        snapshot = try run(.deleteDevice(deviceId: "d", ifMatch: .any), on: snapshot).reduce(snapshot, evolve)
        var random = SeededRandom(seed: 1)
        let later = Timestamp(ticks: now.ticks + 1)
        let events = try decide(
            .createDevice(DeviceSpec(deviceId: "d")),
            state: snapshot.commandState(for: .createDevice(DeviceSpec(deviceId: "d"))),
            context: DecisionContext(now: later, sequence: 3),
            random: &random
        )
        #expect(device(events)?.generationId != first)
    }

    @Test func moduleRules() throws {
        let snapshot = try registry([
            .createDevice(DeviceSpec(deviceId: "d")), .createModule(ModuleSpec(deviceId: "d", moduleId: "m", managedBy: "IotEdge")),
        ])
        let module = try #require(snapshot.modules[ModuleKey("d", "m")])
        #expect(module.managedBy == "IotEdge")
        #expect(module.authentication.type == .sas)
        expectError(.moduleAlreadyExists, .createModule(ModuleSpec(deviceId: "d", moduleId: "m")), on: snapshot)
        expectError(.deviceNotFound, .createModule(ModuleSpec(deviceId: "ghost", moduleId: "m")), on: snapshot)
        expectError(.argumentInvalid, .createModule(ModuleSpec(deviceId: "d", moduleId: "n", status: .disabled)), on: snapshot)
        expectError(.moduleNotFound, .replaceModule(ModuleSpec(deviceId: "d", moduleId: "ghost"), ifMatch: .any), on: snapshot)
        expectError(.moduleNotFound, .deleteModule(deviceId: "d", moduleId: "ghost", ifMatch: .any), on: snapshot)
        expectError(.deviceNotFound, .deleteModule(deviceId: "ghost", moduleId: "m", ifMatch: .any), on: snapshot)
        expectError(.preconditionFailed, .replaceModule(ModuleSpec(deviceId: "d", moduleId: "m"), ifMatch: .exact("old")), on: snapshot)
        expectError(.preconditionFailed, .deleteModule(deviceId: "d", moduleId: "m", ifMatch: .exact("old")), on: snapshot)
        let updated = try run(.replaceModule(ModuleSpec(deviceId: "d", moduleId: "m"), ifMatch: .exact(module.etag)), on: snapshot, seq: 5)
        if case .module(let m) = updated[0].identity {
            #expect(m.etag == etag(forSequence: 5))
            #expect(m.managedBy == nil)  // full replace
            #expect(m.authentication.symmetricKey == module.authentication.symmetricKey)
        } else {
            Issue.record("expected a module")
        }
        #expect(try run(.deleteModule(deviceId: "d", moduleId: "m", ifMatch: .any), on: snapshot).map(\.type) == [.moduleDeleted])
    }

    @Test func limits() throws {
        let snapshot = try registry([
            .createDevice(DeviceSpec(deviceId: "d")), .createModule(ModuleSpec(deviceId: "d", moduleId: "m1")),
            .createModule(ModuleSpec(deviceId: "d", moduleId: "m2")),
        ])
        expectError(
            .tooManyModulesOnDevice,
            .createModule(ModuleSpec(deviceId: "d", moduleId: "m3")),
            on: snapshot,
            limits: RegistryLimits(maxModulesPerDevice: 2)
        )
        expectError(.quotaExceeded, .createDevice(DeviceSpec(deviceId: "e")), on: snapshot, limits: RegistryLimits(maxIdentities: 3))
        expectError(.quotaExceeded, .createModule(ModuleSpec(deviceId: "d", moduleId: "m3")), on: snapshot, limits: RegistryLimits(maxIdentities: 3))
        _ = try run(.createDevice(DeviceSpec(deviceId: "e")), on: snapshot, limits: RegistryLimits(maxIdentities: 4))
        #expect(RegistryError.Code.tooManyModulesOnDevice.numericCode == 413_003)
        #expect(RegistryError.Code.preconditionFailed.numericCode == 412_001)
        #expect(RegistryError.Code.deviceNotFound.httpStatus == 404)
    }

    @Test func ifMatchHeaderNormalisation() {
        #expect(ETagCondition(header: nil) == .absent)
        #expect(ETagCondition(header: "") == .absent)
        #expect(ETagCondition(header: "*") == .any)
        #expect(ETagCondition(header: "\"*\"") == .any)
        #expect(ETagCondition(header: "W/\"MQ==\"") == .exact("MQ=="))
        #expect(ETagCondition(header: "\"MQ==\"") == .exact("MQ=="))
        #expect(ETagCondition(header: "MQ==") == .exact("MQ=="))
    }

    @Test func keyGenerationFollowsTheInjectedRandomness() {
        var a = SeededRandom(seed: 9)
        var b = SeededRandom(seed: 9)
        #expect(generateKey(random: &a) == generateKey(random: &b))
    }
}

struct CreateOrReplaceTests {
    @Test func createsWhenMissingAndReplacesUnderTheConditionOtherwise() throws {
        var random = SeededRandom(seed: 3)
        let now = Timestamp(unixSeconds: 1_000)
        let missing = RegistrySnapshot()
        let created = try decide(
            .createOrReplaceDevice(DeviceSpec(deviceId: "d"), ifMatch: .absent),
            state: missing.commandState(for: .createDevice(DeviceSpec(deviceId: "d"))),
            context: DecisionContext(now: now, sequence: 1),
            random: &random
        )
        #expect(created.map(\.type) == [.deviceCreated])
        let existing = created.reduce(missing, evolve)
        let command = Command.createOrReplaceDevice(DeviceSpec(deviceId: "d", status: .disabled), ifMatch: .absent)
        let replaced = try decide(
            command,
            state: existing.commandState(for: command),
            context: DecisionContext(now: now, sequence: 2),
            random: &random
        )
        #expect(replaced.map(\.type) == [.deviceUpdated])
        let stale = Command.createOrReplaceDevice(DeviceSpec(deviceId: "d"), ifMatch: .exact("old"))
        #expect(throws: RegistryError.self) {
            try decide(stale, state: existing.commandState(for: stale), context: DecisionContext(now: now, sequence: 2), random: &random)
        }
    }
}
