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

    /// Adds a policy or changes an existing one's rights (its keys stay; a new one gets fresh keys).
    /// Returns the policy as stored.
    public static func upsert(name: String, rights: AccessRights, store: RegistryStore) async throws(PolicyError) -> SharedAccessPolicy {
        try checkName(name)
        guard !rights.isEmpty else { throw PolicyError("a policy needs at least one right") }
        let existing = try current(store)
        var random = BufferedSystemRandom()
        var policy = existing.first { $0.name == name }
            ?? SharedAccessPolicy(name: name, rights: rights, primaryKey: generateKey(random: &random), secondaryKey: generateKey(random: &random))
        policy.rights = rights
        try checkOwnerRemains(existing.filter { $0.name != name } + [policy])
        try await save([policy], store: store)
        return policy
    }

    /// Gives a policy a new primary or secondary key (the other one keeps working, so clients
    /// can move over without a gap).
    public static func rotate(name: String, secondary: Bool, store: RegistryStore) async throws(PolicyError) -> SharedAccessPolicy {
        guard var policy = try current(store).first(where: { $0.name == name }) else { throw PolicyError("no policy named '\(name)'", notFound: true) }
        var random = BufferedSystemRandom()
        if secondary { policy.secondaryKey = generateKey(random: &random) } else { policy.primaryKey = generateKey(random: &random) }
        try await save([policy], store: store)
        return policy
    }

    public static func remove(name: String, store: RegistryStore) async throws(PolicyError) {
        let existing = try current(store)
        guard existing.contains(where: { $0.name == name }) else { throw PolicyError("no policy named '\(name)'", notFound: true) }
        try checkOwnerRemains(existing.filter { $0.name != name })
        do {
            _ = try await store.perform { txn, db in try txn.delete(db.policies, Array(name.utf8)) }
        } catch {
            throw PolicyError("\(error)")
        }
    }

    static func current(_ store: RegistryStore) throws(PolicyError) -> [SharedAccessPolicy] {
        do {
            return try load(store.storage)
        } catch {
            throw PolicyError("\(error)")
        }
    }

    /// 1 to 64 characters: letters, digits, `.`, `_`, `-` (it appears in `skn`).
    static func checkName(_ name: String) throws(PolicyError) {
        guard (1...64).contains(name.utf8.count),
            name.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 46 || $0 == 95 || $0 == 45 })
        else { throw PolicyError("a policy name has 1 to 64 letters, digits, '.', '_' or '-'") }
    }

    /// Nobody may lock themselves out: some policy must keep Azure's four rights (an owner that
    /// also has `Metrics` still counts).
    static func checkOwnerRemains(_ policies: [SharedAccessPolicy]) throws(PolicyError) {
        guard policies.contains(where: { $0.rights.isSuperset(of: .all) }) else {
            throw PolicyError("at least one policy must keep all four rights (like iothubowner)")
        }
    }

    static func save(_ policies: [SharedAccessPolicy], store: RegistryStore) async throws(PolicyError) {
        guard let sealer = store.storage.sealer else { throw PolicyError("the data key is needed to write policies") }
        var random = BufferedSystemRandom()
        let records: [([UInt8], [UInt8])] = policies.map { policy in
            let json = JSONValue.object([
                "name": .string(policy.name),
                "rights": .string(policy.rights.description),
                "primaryKey": .string(sealer.seal(policy.primaryKey, context: context(policy.name, "primaryKey"), random: &random)),
                "secondaryKey": .string(sealer.seal(policy.secondaryKey, context: context(policy.name, "secondaryKey"), random: &random)),
            ])
            return (Array(policy.name.utf8), CanonicalJSON.encode(json))
        }
        do {
            try await store.perform { txn, db in
                for (key, value) in records { try txn.put(db.policies, key, value) }
            }
        } catch {
            throw PolicyError("\(error)")
        }
    }

    /// Creates Azure's five built-in policies with random keys if the registry has no policy yet
    /// (first start). Returns the policies now stored.
    public static func ensureBuiltIn(_ store: RegistryStore) async throws -> [SharedAccessPolicy] {
        let existing = try load(store.storage)
        if !existing.isEmpty { return existing }
        var random = BufferedSystemRandom()
        try await save(SharedAccessPolicy.builtIn(random: &random), store: store)
        return try load(store.storage)
    }
}

/// A policy change that is refused, with an operator-facing reason (never a key).
public struct PolicyError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var notFound: Bool
    public init(_ description: String, notFound: Bool = false) {
        self.description = description
        self.notFound = notFound
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
