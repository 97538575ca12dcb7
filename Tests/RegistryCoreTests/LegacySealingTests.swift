import Foundation
import LMDB
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Values sealed under version 1 contexts (before hardening item 9) keep opening; what is
/// written from now on is sealed under version 2; policies move to version 2 at start, after
/// which a version 1 value no longer passes for a policy key.
struct LegacySealingTests {
    static let key16 = Data(repeating: 0x11, count: 16).base64EncodedString()
    static let key32 = Data(repeating: 0x22, count: 32).base64EncodedString()

    static func fixtureSealer() throws -> KeySealer {
        let text = try String(contentsOfFile: fixturesDirectory() + "/events/data.key", encoding: .utf8)
        return try KeySealer(keyBytes: Array(try #require(Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)))))
    }

    /// Every sealed key of every event, with what it is the key of.
    static func sealedKeys(_ stream: String) throws -> [(slot: IdentityCodec.KeySlot, sealed: String)] {
        let text = try String(contentsOfFile: fixturesDirectory() + "/events/\(stream).jsonl", encoding: .utf8)
        var keys: [(IdentityCodec.KeySlot, String)] = []
        for line in text.split(separator: "\n") {
            let record = try EventRecord.decode(Array(line.utf8))
            _ = try IdentityCodec.decode(record.payload) { sealed, slot in
                keys.append((slot, sealed))
                return sealed
            }
        }
        return keys
    }

    @Test(arguments: FixtureScript.streams) func everySealedKeyOfARecordedStreamOpens(stream: String) throws {
        let sealer = try Self.fixtureSealer()
        let keys = try Self.sealedKeys(stream)
        #expect(keys.contains { $0.slot.moduleId != nil }, "module keys are covered")
        let legacy = FixtureScript.legacySealedStreams.contains(stream)
        var primaryKeys: Set<String> = []
        for (slot, sealed) in keys {
            let plain = try sealer.open(sealed, for: slot.sealingContext)
            #expect(sealer.isSealedWithCurrentContext(sealed, for: slot.sealingContext) == !legacy, "\(stream): \(slot)")
            // A version 2 value does not open under its version 1 context: the versions do not mix.
            if !legacy {
                let legacyContext = String(decoding: slot.sealingContext.legacyBytes, as: UTF8.self)
                #expect(throws: SealError.self) { try sealer.open(sealed, context: legacyContext) }
            }
            if slot.deviceId == "sensor-02", slot.name == "primaryKey" { primaryKeys.insert(plain) }
        }
        // The script's chosen keys: as created, and after they were swapped.
        #expect(primaryKeys == [Self.key16, Self.key32])
    }

    @Test func aLegacyDataDirectoryReadsAndIsResealedOnTheNextWrite() async throws {
        try await withTemporaryDirectory { dir in
            let stream = try String(contentsOfFile: fixturesDirectory() + "/events/lifecycle.jsonl", encoding: .utf8)
            let lines = stream.split(separator: "\n").map { Array($0.utf8) }
            try FixtureScript.dataDirectory(of: lines, at: dir + "/data", scratch: dir + "/scratch")
            do {
                let storage = try RegistryStorage(directory: DataDirectory(path: dir + "/data"), create: false)
                let device = try #require(try storage.device("sensor-02"))
                #expect(device.authentication.symmetricKey.primaryKey == Self.key32)
                #expect(device.authentication.symmetricKey.secondaryKey == Self.key16)
                let document = try #require(try storage.deviceDocument("sensor-02"))
                #expect(String(decoding: document.json, as: UTF8.self).contains(Self.key32))
                #expect(try storage.credentials(deviceId: "sensor-02", moduleId: nil) != nil)
            }

            let store = try makeStore(dir + "/data")
            let sealer = try Self.fixtureSealer()
            let context = SealingContext.deviceKey(deviceId: "sensor-02", slot: "primaryKey")
            func storedPrimaryKey() throws -> String {
                try store.storage.read { txn, db in
                    let json = try JSONParser.parse(try #require(try txn.get(db.devices, StorageKey.device("sensor-02"))))
                    return try #require(json["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
                }
            }
            #expect(!sealer.isSealedWithCurrentContext(try storedPrimaryKey(), for: context))
            let tags = TwinUpdate(deviceId: "sensor-02", tags: ["resealed": .bool(true)])
            _ = try await store.execute(.updateTwin(tags), actor: "test", requestId: "reseal")
            #expect(sealer.isSealedWithCurrentContext(try storedPrimaryKey(), for: context))
            #expect(try store.storage.device("sensor-02")?.authentication.symmetricKey.primaryKey == Self.key32)
            store.close()
        }
    }

    @Test func legacyPoliciesOpenAreResealedAtStartAndThenRefuseLegacyValues() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let sealer = try KeySealer(keyBytes: DataDirectory(path: dir).loadDataKey(create: false))
            var random = SeededRandom(seed: 9)
            // A policy as registryd wrote it before version 2.
            let legacy = JSONValue.object([
                "name": .string("ops"), "rights": .string("RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect"),
                "primaryKey": .string(sealer.seal(Self.key32, context: "policy/ops/primaryKey", random: &random)),
                "secondaryKey": .string(sealer.seal(Self.key16, context: "policy/ops/secondaryKey", random: &random)),
                "version": .int(1),
            ])
            try await store.perform { txn, db in try txn.put(db.policies, Array("ops".utf8), CanonicalJSON.encode(legacy)) }
            let before = try #require(try PolicyStore.load(store.storage).first { $0.name == "ops" })
            #expect(before.primaryKey == Self.key32 && before.secondaryKey == Self.key16)

            // Start: resealed under version 2, same keys and version (so the same etag).
            let policies = try await PolicyStore.ensureBuiltIn(store)
            #expect(policies == [before])
            let stored = try store.storage.read { txn, db in try JSONParser.parse(try #require(try txn.get(db.policies, Array("ops".utf8)))) }
            let sealedPrimary = try #require(stored["primaryKey"]?.stringValue)
            #expect(sealer.isSealedWithCurrentContext(sealedPrimary, for: .policyKey(name: "ops", slot: "primaryKey")))
            #expect(try store.storage.metaString(MetaKey.policySealing) == "2")

            // From now on a version 1 value (what a module `ops` of a device `policy` sealed
            // before version 2 looks like, in the log forever) does not pass for the policy's key.
            let lookalike = sealer.seal(Self.key16, context: "policy/ops/primaryKey", random: &random)
            try await store.perform { txn, db in
                let text = String(decoding: CanonicalJSON.encode(stored), as: UTF8.self).replacingOccurrences(of: sealedPrimary, with: lookalike)
                try txn.put(db.policies, Array("ops".utf8), Array(text.utf8))
            }
            #expect(throws: (any Error).self) { try PolicyStore.load(store.storage) }
            store.close()
        }
    }
}
