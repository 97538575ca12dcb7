import LMDB
import RegistryCore

/// Shared access policies in the `policies` database: `name → {"name","rights","primaryKey",
/// "secondaryKey","version"}` with both keys sealed under the data key (the database file is
/// owner-only too).
///
/// Every change goes through `apply`, which reads the record and writes the change in one
/// transaction on the store's single writer: two changes of the same policy are applied one after
/// the other, each to the record the one before it left. Reading outside the writer and writing
/// the whole record back (as changes once did) let a rights update that read before a rotation
/// write the old key back after it.
public enum PolicyStore {
    /// Loads every policy, keys opened.
    public static func load(_ storage: RegistryStorage) throws -> [SharedAccessPolicy] {
        guard let sealer = storage.sealer else { throw StoreError("the data key is needed to read policies") }
        return try storage.read { txn, db in try decodeAll(txn, db, sealer) }
    }

    /// Applies `change` to the policy `name` inside one writer transaction, against the record as
    /// it is then. With `ifMatch` `.exact(etag)` the change is refused (`preconditionFailed`)
    /// unless the policy's etag is still that one: a caller that decided from an earlier read
    /// learns that the policy moved on instead of overwriting it.
    /// - Returns: the policy as stored (`nil` after a removal) and every policy as of that
    ///   transaction, with its generation.
    public static func apply(
        _ change: PolicyChange,
        to name: String,
        ifMatch: ETagCondition = .absent,
        store: RegistryStore
    ) async throws(PolicyError) -> PolicySnapshot {
        // Refused before anything is read (and before the data key is asked for).
        try PolicyRules.validate(change, name: name)
        guard let sealer = store.storage.sealer else { throw PolicyError("the data key is needed to write policies") }
        do {
            // The closure may run again (map resize): it reads everything it decides from `txn`.
            return try await store.perform { txn, db in
                var random = BufferedSystemRandom()
                try resealLegacy(txn, db, sealer, random: &random)
                let policies = try decodeAll(txn, db, sealer)
                let generation = try currentGeneration(txn, db, policies)
                let snapshot = try PolicyRules.apply(
                    change,
                    to: name,
                    ifMatch: ifMatch,
                    policies: policies,
                    generation: generation,
                    random: &random
                )
                if let changed = snapshot.policy {
                    try write(changed, txn, db, sealer, random: &random)
                } else {
                    _ = try txn.delete(db.policies, Array(name.utf8))
                }
                try txn.put(db.meta, Array(MetaKey.policyGeneration.utf8), Array(String(snapshot.generation).utf8))
                return snapshot
            }
        } catch let error as PolicyError {
            throw error
        } catch {
            throw PolicyError("\(error)")
        }
    }

    /// The last generation given out: the stored counter, or (for policies written before it
    /// existed) the highest version among the records.
    static func currentGeneration<T: ReadableTransaction & ~Copyable>(
        _ txn: borrowing T,
        _ db: RegistryDatabases,
        _ policies: [SharedAccessPolicy]
    ) throws -> Int64 {
        let stored = try txn.get(db.meta, Array(MetaKey.policyGeneration.utf8)).flatMap { Int64(String(decoding: $0, as: UTF8.self)) } ?? 0
        return max(stored, policies.map(\.version).max() ?? 0)
    }

    static func decodeAll<T: ReadableTransaction & ~Copyable>(
        _ txn: borrowing T,
        _ db: RegistryDatabases,
        _ sealer: KeySealer
    ) throws -> [SharedAccessPolicy] {
        var policies: [SharedAccessPolicy] = []
        // Version 1 sealing contexts only until `resealLegacy` moved every policy off them: a
        // version 1 policy context is also the one of a module of a device named `policy`.
        let legacy = try !isResealed(txn, db)
        try txn.scan(db.policies) { _, value in
            policies.append(try PolicyRules.decode(value, sealer: sealer, legacy: legacy))
            return true
        }
        return policies
    }

    static func write(
        _ policy: SharedAccessPolicy,
        _ txn: borrowing WriteTransaction,
        _ db: RegistryDatabases,
        _ sealer: KeySealer,
        random: inout some RandomNumberGenerator
    ) throws {
        try txn.put(db.policies, Array(policy.name.utf8), PolicyRules.encode(policy, sealer: sealer, random: &random))
    }

    /// Whether every stored policy's keys are sealed under version 2 contexts (see `resealLegacy`).
    static func isResealed<T: ReadableTransaction & ~Copyable>(_ txn: borrowing T, _ db: RegistryDatabases) throws -> Bool {
        try txn.get(db.meta, Array(MetaKey.policySealing.utf8)).map { String(decoding: $0, as: UTF8.self) } == "2"
    }

    /// Re-seals every policy's keys under version 2 contexts (keys, rights and versions, so
    /// etags, unchanged) and records it; from then on a policy value sealed under version 1 no
    /// longer opens, so a module key of a device named `policy` sealed before version 2 cannot
    /// pass for a policy key. Runs at every start (`ensureBuiltIn`) and before every change.
    static func resealLegacy(
        _ txn: borrowing WriteTransaction,
        _ db: RegistryDatabases,
        _ sealer: KeySealer,
        random: inout some RandomNumberGenerator
    ) throws {
        guard try !isResealed(txn, db) else { return }
        for policy in try decodeAll(txn, db, sealer) { try write(policy, txn, db, sealer, random: &random) }
        try txn.put(db.meta, Array(MetaKey.policySealing.utf8), Array("2".utf8))
    }

    /// Replaces every stored policy with `policies` as given (keys, rights, versions) and sets
    /// the generation: a registry moved from another backend keeps its connection strings.
    public static func install(_ policies: [SharedAccessPolicy], generation: Int64, store: RegistryStore) async throws {
        guard let sealer = store.storage.sealer else { throw StoreError("the data key is needed to write policies") }
        try await store.perform { txn, db in
            var random = BufferedSystemRandom()
            var stale: [[UInt8]] = []
            try txn.scan(db.policies) { key, _ in
                stale.append(key)
                return true
            }
            for key in stale { _ = try txn.delete(db.policies, key) }
            for policy in policies { try write(policy, txn, db, sealer, random: &random) }
            try txn.put(db.meta, Array(MetaKey.policySealing.utf8), Array("2".utf8))
            try txn.put(db.meta, Array(MetaKey.policyGeneration.utf8), Array(String(generation).utf8))
        }
    }

    /// Creates Azure's five built-in policies with random keys if the registry has no policy yet
    /// (first start), in one writer transaction that checks for policies itself. Returns the
    /// policies now stored.
    public static func ensureBuiltIn(_ store: RegistryStore) async throws -> [SharedAccessPolicy] {
        guard let sealer = store.storage.sealer else { throw StoreError("the data key is needed to write policies") }
        try await store.perform { txn, db in
            var random = BufferedSystemRandom()
            try resealLegacy(txn, db, sealer, random: &random)
            guard try decodeAll(txn, db, sealer).isEmpty else { return }
            let generation = try currentGeneration(txn, db, []) + 1
            for var policy in SharedAccessPolicy.builtIn(random: &random) {
                policy.version = generation
                try write(policy, txn, db, sealer, random: &random)
            }
            try txn.put(db.meta, Array(MetaKey.policyGeneration.utf8), Array(String(generation).utf8))
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
