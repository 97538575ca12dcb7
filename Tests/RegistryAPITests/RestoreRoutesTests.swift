import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Undelete (issue 22, item 4): `POST /registry/devices/{id}[/modules/{mid}]/restore` at router
/// level over a real store, with a clock the tests move between deletion and restore.
@Suite struct RestoreRoutesTests {
    typealias R = RegistryRoutesTests

    static let keyA = Base64.encode((0..<32).map { UInt8($0) })
    static let keyB = Base64.encode((32..<64).map { UInt8($0) })
    static let keyC = Base64.encode((64..<96).map { UInt8($0) })

    static func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, ManualClock) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock()
            let store = try makeStore(dir, clock: clock)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in try await body(client, clock) }
            store.close()
        }
    }

    static func sas(_ primary: String, _ secondary: String) -> String {
        "{\"authentication\": {\"type\": \"sas\", \"symmetricKey\": {\"primaryKey\": \"\(primary)\", \"secondaryKey\": \"\(secondary)\"}}"
    }

    /// The seqs of the history entries of `type` for the device (and its modules).
    static func seqs(_ client: any TestClientProtocol, _ id: String, _ type: String) async throws -> [Int64] {
        let history = try await R.call(client, .get, "/registry/devices/\(id)/history")
        return (history.json?.arrayValue ?? []).filter { $0["type"] == .string(type) }.compactMap { $0["seq"]?.intValue }
    }

    @Test func aDeviceComesBackWithItsKeysStatusTagsAndModulesAndANewGeneration() async throws {
        try await Self.withAPI { client, clock in
            let put = try await R.call(
                client,
                .put,
                "/devices/gone",
                body: Self.sas(Self.keyA, Self.keyB) + ", \"status\": \"disabled\", \"statusReason\": \"stolen\"}"
            )
            #expect(put.status == .ok)
            #expect(try await R.call(client, .patch, "/twins/gone", body: "{\"tags\": {\"site\": \"lyon\"}}").status == .ok)
            #expect(try await R.call(client, .put, "/devices/gone/modules/m1", body: Self.sas(Self.keyC, Self.keyA) + "}").status == .ok)
            #expect(try await R.call(client, .put, "/devices/gone/modules/m2", body: "{\"managedBy\": \"edge\"}").status == .ok)
            let before = try #require(try await R.call(client, .get, "/devices/gone").json)
            let m2Before = try #require(try await R.call(client, .get, "/devices/gone/modules/m2").json)
            clock.advance(seconds: 60)
            #expect(try await R.call(client, .delete, "/devices/gone").status == .noContent)
            let deletion = try #require(try await Self.seqs(client, "gone", "deviceDeleted").last)
            let moduleDeletions = try await Self.seqs(client, "gone", "moduleDeleted")
            #expect(moduleDeletions == [deletion - 2, deletion - 1])
            clock.advance(seconds: 60)

            let restored = try await R.call(client, .post, "/registry/devices/gone/restore?seq=\(deletion)&modules=true")
            #expect(restored.status == .ok, "\(String(describing: restored.json))")
            let device = try #require(restored.json)
            #expect(device["authentication"]?["symmetricKey"] == before["authentication"]?["symmetricKey"])
            #expect(device["authentication"]?["symmetricKey"]?["primaryKey"] == .string(Self.keyA))
            #expect(device["status"] == .string("disabled"))
            #expect(device["statusReason"] == .string("stolen"))
            #expect(device["restoredFrom"] == .int(deletion))
            #expect(device["generationId"] != before["generationId"])
            #expect(device["etag"] != before["etag"])
            #expect(restored.headers[.eTag] == "\"\(device["etag"]?.stringValue ?? "")\"")
            let twin = try await R.call(client, .get, "/twins/gone")
            #expect(twin.json?["tags"] == .object(["site": .string("lyon")]))
            let m1 = try #require(try await R.call(client, .get, "/devices/gone/modules/m1").json)
            #expect(m1["authentication"]?["symmetricKey"]?["primaryKey"] == .string(Self.keyC))
            #expect(m1["restoredFrom"] == .int(moduleDeletions[0]))
            let m2 = try #require(try await R.call(client, .get, "/devices/gone/modules/m2").json)
            #expect(m2["managedBy"] == .string("edge"))
            #expect(m2["authentication"]?["symmetricKey"] == m2Before["authentication"]?["symmetricKey"])
            #expect(m2["generationId"] == device["generationId"])
            // The audit trail: a creation by the caller naming the deletion it undid.
            let history = try #require(try await R.call(client, .get, "/registry/devices/gone/history").json?.arrayValue)
            let creation = try #require(history.first { ($0["seq"]?.intValue ?? 0) > deletion && $0["type"] == .string("deviceCreated") })
            #expect(creation["actor"] == .string("iothubowner"))
            let changes = creation["changes"]?.arrayValue ?? []
            #expect(changes.contains { $0["path"] == .string("restoredFrom") && $0["new"] == .int(deletion) })
            #expect(!"\(history)".contains(Self.keyA), "no key in the history")

            // Registered again: a second restore is refused and changes nothing.
            let again = try await R.call(client, .post, "/registry/devices/gone/restore?seq=\(deletion)")
            R.expectAzureError(again, .conflict, "DeviceAlreadyExists")
            #expect(try await R.call(client, .get, "/devices/gone").json?["etag"] == device["etag"])
        }
    }

    @Test func withoutASeqTheLatestDeletionIsRestoredAndModulesOnlyWhenAsked() async throws {
        try await Self.withAPI { client, clock in
            _ = try await R.call(client, .put, "/devices/twice", body: Self.sas(Self.keyA, Self.keyB) + "}")
            _ = try await R.call(client, .delete, "/devices/twice")
            clock.advance(seconds: 1)
            _ = try await R.call(client, .put, "/devices/twice", body: Self.sas(Self.keyC, Self.keyB) + "}")
            _ = try await R.call(client, .put, "/devices/twice/modules/m", body: "{}")
            _ = try await R.call(client, .delete, "/devices/twice")
            clock.advance(seconds: 1)
            let restored = try await R.call(client, .post, "/registry/devices/twice/restore")
            #expect(restored.status == .ok)
            #expect(restored.json?["authentication"]?["symmetricKey"]?["primaryKey"] == .string(Self.keyC))
            R.expectAzureError(try await R.call(client, .get, "/devices/twice/modules/m"), .notFound, "ModuleNotFound")
            // The module alone, onto the restored device: its latest deletion by default.
            let module = try await R.call(client, .post, "/registry/devices/twice/modules/m/restore")
            #expect(module.status == .ok, "\(String(describing: module.json))")
            #expect(module.json?["moduleId"] == .string("m"))
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/twice/modules/m/restore"), .conflict, "ModuleAlreadyExistsOnDevice")
        }
    }

    @Test func restoresThatCannotBeDoneAreRefusedInAzureShapeAndWriteNothing() async throws {
        try await Self.withAPI { client, _ in
            _ = try await R.call(client, .put, "/devices/d", body: "{}")
            _ = try await R.call(client, .put, "/devices/d/modules/m", body: "{}")
            _ = try await R.call(client, .delete, "/devices/d/modules/m")
            let created = try #require(try await Self.seqs(client, "d", "deviceCreated").first)
            let moduleDeletion = try #require(try await Self.seqs(client, "d", "moduleDeleted").first)
            let head = try await R.call(client, .get, "/registry/log/head").json
            // Live: nothing to restore over.
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/d/restore?seq=\(moduleDeletion)"), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/d/restore?seq=\(created)"), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/d/restore?seq=999999"), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/d/restore?seq=abc"), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/d/restore?seq=0"), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/d/restore?modules=maybe"), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .post, "/registry/devices/never/restore"), .notFound, "DeviceNotFound")
            // A module's deletion restores under its own route only, and only that module.
            R.expectAzureError(
                try await R.call(client, .post, "/registry/devices/d/modules/other/restore?seq=\(moduleDeletion)"),
                .badRequest,
                "ArgumentInvalid"
            )
            // Restoring changes the registry: the registryRead policy cannot.
            let read = try await R.call(client, .post, "/registry/devices/d/modules/m/restore", auth: R.token("registryRead"))
            #expect(read.status == .unauthorized)
            #expect(try await R.call(client, .get, "/registry/log/head").json == head, "no refusal wrote anything")
            // The device gone, its module cannot come back alone.
            _ = try await R.call(client, .delete, "/devices/d")
            R.expectAzureError(
                try await R.call(client, .post, "/registry/devices/d/modules/m/restore?seq=\(moduleDeletion)"),
                .notFound,
                "DeviceNotFound"
            )
        }
    }
}

/// The rules of a restore on their own: a device restore with more modules than the limit now
/// allows is refused as a create would be.
@Test func aRestoreRespectsTheModuleLimitInForceNow() throws {
    let device = Device(deviceId: "d", generationId: "1", etag: "MQ==", authentication: Authentication(type: .sas))
    let modules = (0..<3).map {
        Restoration.Deleted(
            identity: .module(Module(deviceId: "d", moduleId: "m\($0)", generationId: "1", etag: "Mg==", authentication: Authentication(type: .sas))),
            seq: UInt64($0) + 1
        )
    }
    let restoration = Restoration(deviceId: "d", device: .init(identity: .device(device), seq: 4), modules: modules)
    var random = SeededRandom(seed: 1)
    let context = DecisionContext(now: Timestamp(unixSeconds: 1_800_000_000), sequence: 5, limits: RegistryLimits(maxModulesPerDevice: 2))
    #expect(throws: RegistryError.self) { try decide(.restore(restoration), state: CommandState(), context: context, random: &random) }
    let roomy = DecisionContext(now: Timestamp(unixSeconds: 1_800_000_000), sequence: 5, limits: RegistryLimits(maxModulesPerDevice: 3))
    let events = try decide(.restore(restoration), state: CommandState(), context: roomy, random: &random)
    #expect(events.map(\.type) == [.deviceCreated, .moduleCreated, .moduleCreated, .moduleCreated])
}
