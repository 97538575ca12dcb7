import LMDB

/// Shared access policies in the `policies` database: `name → {"name","rights","primaryKey","secondaryKey"}`
/// with both keys sealed under the data key (the database file is owner-only too).
public enum PolicyStore {
    static func context(_ name: String, _ slot: String) -> String { "policy/\(name)/\(slot)" }

    /// Loads every policy, keys opened.
    public static func load(_ storage: RegistryStorage) throws -> [SharedAccessPolicy] {
        guard let sealer = storage.sealer else { throw StoreError("the data key is needed to read policies") }
        return try storage.read { txn, db in
            var policies: [SharedAccessPolicy] = []
            try txn.scan(db.policies) { _, value in
                let json = try JSONParser.parse(value)
                guard let name = json["name"]?.stringValue, let rights = json["rights"]?.stringValue.flatMap(AccessRights.init(description:)),
                    let primary = json["primaryKey"]?.stringValue, let secondary = json["secondaryKey"]?.stringValue
                else { throw StoreError("a stored policy is malformed") }
                policies.append(
                    SharedAccessPolicy(
                        name: name,
                        rights: rights,
                        primaryKey: try sealer.open(primary, context: context(name, "primaryKey")),
                        secondaryKey: try sealer.open(secondary, context: context(name, "secondaryKey"))
                    )
                )
                return true
            }
            return policies
        }
    }

    /// Creates Azure's five built-in policies with random keys if the registry has no policy yet
    /// (first start). Returns the policies now stored.
    public static func ensureBuiltIn(_ store: RegistryStore) async throws -> [SharedAccessPolicy] {
        let existing = try load(store.storage)
        if !existing.isEmpty { return existing }
        var random = BufferedSystemRandom()
        let policies = SharedAccessPolicy.builtIn(random: &random)
        let sealer = store.storage.sealer!
        let records: [([UInt8], [UInt8])] = policies.map { policy in
            let json = JSONValue.object([
                "name": .string(policy.name),
                "rights": .string(policy.rights.description),
                "primaryKey": .string(sealer.seal(policy.primaryKey, context: context(policy.name, "primaryKey"), random: &random)),
                "secondaryKey": .string(sealer.seal(policy.secondaryKey, context: context(policy.name, "secondaryKey"), random: &random)),
            ])
            return (Array(policy.name.utf8), CanonicalJSON.encode(json))
        }
        try await store.perform { txn, db in
            for (key, value) in records { try txn.put(db.policies, key, value) }
        }
        return try load(store.storage)
    }
}

extension RegistryStorage {
    /// A text setting in `meta` (hub name, host name).
    public func metaString(_ key: String) throws -> String? {
        try read { txn, db in try txn.get(db.meta, Array(key.utf8)).map { String(decoding: $0, as: UTF8.self) } }
    }
}

extension RegistryStore {
    /// Stores a text setting in `meta`.
    public func setMetaString(_ key: String, _ value: String) async throws {
        try await perform { txn, db in try txn.put(db.meta, Array(key.utf8), Array(value.utf8)) }
    }
}

extension MetaKey {
    /// The hub name, fixed at first start; it appears in lifecycle messages and their ids.
    public static let hubName = "hubName"
    /// The host name `serve` last ran with: what SAS tokens must name.
    public static let hostName = "hostName"
}
