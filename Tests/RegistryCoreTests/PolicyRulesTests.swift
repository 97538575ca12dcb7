import RegistryCore
import RegistryTesting
import Testing

/// The storage-independent policy rules every backend runs inside its own transaction.
struct PolicyRulesTests {
    @Test func aStoredRecordRoundTripsWithItsKeysSealed() throws {
        let sealer = try KeySealer(keyBytes: [UInt8](repeating: 5, count: 32))
        var random = SeededRandom(seed: 1)
        let policy = SharedAccessPolicy(name: "reader", rights: .registryRead, primaryKey: "cHJpbWFyeQ==", secondaryKey: "c2Vjb25kYXJ5", version: 3)
        let record = PolicyRules.encode(policy, sealer: sealer, random: &random)
        #expect(!String(decoding: record, as: UTF8.self).contains("cHJpbWFyeQ=="))
        #expect(try PolicyRules.decode(record, sealer: sealer, legacy: false) == policy)
    }

    @Test func aChangeIsDecidedAgainstEveryPolicyAndTheGeneration() throws {
        var random = SeededRandom(seed: 2)
        let policies = SharedAccessPolicy.builtIn(random: &random).map {
            var p = $0
            p.version = 4
            return p
        }
        let added = try PolicyRules.apply(
            .setRights(.registryRead),
            to: "extra",
            ifMatch: .absent,
            policies: policies,
            generation: 7,
            random: &random
        )
        #expect(added.generation == 8 && added.policy?.version == 8 && added.policies.count == policies.count + 1)
        // Refusals: a bad name, an unknown policy, a stale etag, the last owner removed.
        #expect(throws: PolicyError.self) {
            try PolicyRules.apply(.setRights(.registryRead), to: "bad name", ifMatch: .absent, policies: policies, generation: 7, random: &random)
        }
        #expect(throws: PolicyError.self) {
            try PolicyRules.apply(.rotate(secondary: false), to: "missing", ifMatch: .absent, policies: policies, generation: 7, random: &random)
        }
        #expect(throws: PolicyError.self) {
            try PolicyRules.apply(.remove, to: "iothubowner", ifMatch: .exact("3"), policies: policies, generation: 7, random: &random)
        }
        #expect(throws: PolicyError.self) {
            try PolicyRules.apply(.remove, to: "iothubowner", ifMatch: .exact("4"), policies: policies, generation: 7, random: &random)
        }
    }
}
