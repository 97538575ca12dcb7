import Foundation
import LMDB
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Hardening item 9: a module named `iothubowner` of a device named `policy` once shared the
/// sealing context of the owner policy's keys, so a sealed value copied between the policies
/// database and that module's document opened in its new place. These tests copy the stored
/// bytes for real (as someone who can write the database files, but has no data key, could).
struct SealingContextTests {
    static let moduleKey = Data(repeating: 0x42, count: 32).base64EncodedString()

    /// A store with the built-in policies and the device `policy` with the module `iothubowner`
    /// whose keys its creator chose.
    static func withLookalikes(_ body: (RegistryStore) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            _ = try await PolicyStore.ensureBuiltIn(store)
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "policy")), actor: "test", requestId: "1")
            let auth = AuthenticationSpec(type: .sas, primaryKey: moduleKey, secondaryKey: moduleKey)
            let module = ModuleSpec(deviceId: "policy", moduleId: "iothubowner", authentication: auth)
            _ = try await store.execute(.createModule(module), actor: "test", requestId: "2")
            try await body(store)
            store.close()
        }
    }

    static let policyKey = Array("iothubowner".utf8)
    static let moduleRecordKey = StorageKey.module("policy", "iothubowner")

    /// The sealed `primaryKey` of the owner policy's record and of the module's document.
    static func sealedValues(_ store: RegistryStore) throws -> (policy: String, module: String) {
        try store.storage.read { txn, db in
            let policy = try JSONParser.parse(try #require(try txn.get(db.policies, policyKey)))
            let module = try JSONParser.parse(try #require(try txn.get(db.modules, moduleRecordKey)))
            return (
                try #require(policy["primaryKey"]?.stringValue),
                try #require(module["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            )
        }
    }

    /// The owner policy's record, or the module's document.
    enum Record: Sendable { case ownerPolicy, module }

    /// Replaces `old` by `new` in the stored bytes of one record.
    static func plant(_ store: RegistryStore, in record: Record, replacing old: String, with new: String) async throws {
        try await store.perform { txn, db in
            let (database, key) = record == .ownerPolicy ? (db.policies, policyKey) : (db.modules, moduleRecordKey)
            guard let bytes = try txn.get(database, key) else { throw StoreError("no record to plant into") }
            let text = String(decoding: bytes, as: UTF8.self)
            precondition(text.contains(old), "the sealed value to replace is in the record")
            try txn.put(database, key, Array(text.replacingOccurrences(of: old, with: new).utf8))
        }
    }

    @Test func aModulesSealedKeyDoesNotOpenAsTheOwnerPolicysKey() async throws {
        try await Self.withLookalikes { store in
            let sealed = try Self.sealedValues(store)
            try await Self.plant(store, in: .ownerPolicy, replacing: sealed.policy, with: sealed.module)
            // Had it opened, the module's creator would know the owner policy's key. (Booleans
            // first: a failed expectation would otherwise print keys.)
            let policies = try? PolicyStore.load(store.storage)
            let ownerKeyIsTheModules = policies?.first { $0.name == "iothubowner" }?.primaryKey == Self.moduleKey
            #expect(!ownerKeyIsTheModules)
            #expect(policies == nil, "the planted value must not open")
        }
    }

    @Test func thePolicysSealedKeyDoesNotOpenAsTheModulesKey() async throws {
        try await Self.withLookalikes { store in
            let ownerKey = try #require(try PolicyStore.load(store.storage).first { $0.name == "iothubowner" }?.primaryKey)
            let sealed = try Self.sealedValues(store)
            try await Self.plant(store, in: .module, replacing: sealed.module, with: sealed.policy)
            // Had it opened, any RegistryRead token would read the owner policy's key off the module.
            let module = try? store.storage.module("policy", "iothubowner")
            let moduleKeyIsTheOwners = module?.authentication.symmetricKey.primaryKey == ownerKey
            #expect(!moduleKeyIsTheOwners)
            #expect(module == nil, "the planted value must not open")
            let documentOpens = (try? store.storage.moduleDocument("policy", "iothubowner")) != nil
            #expect(!documentOpens)
            let credentialsOpen = (try? store.storage.credentials(deviceId: "policy", moduleId: "iothubowner")) != nil
            #expect(!credentialsOpen)
        }
    }

    @Test func lookalikeIdentitiesAndPoliciesRoundTripTheirOwnKeys() async throws {
        try await Self.withLookalikes { store in
            let module = try #require(try store.storage.module("policy", "iothubowner"))
            #expect(module.authentication.symmetricKey.primaryKey == Self.moduleKey)
            let device = try #require(try store.storage.device("policy"))
            #expect(device.authentication.symmetricKey.primaryKey != nil)
            let document = try #require(try store.storage.moduleDocument("policy", "iothubowner"))
            #expect(String(decoding: document.json, as: UTF8.self).contains(Self.moduleKey))
            #expect(try store.storage.credentials(deviceId: "policy", moduleId: "iothubowner") != nil)
            let rotated = try await store.rotatePolicy(name: "iothubowner", secondary: false)
            #expect(try PolicyStore.load(store.storage).first { $0.name == "iothubowner" } == rotated)
        }
    }
}
