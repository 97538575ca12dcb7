/// The storage-independent rules of shared access policies: a stored record's format
/// (`{"name","rights","primaryKey","secondaryKey","version"}`, canonical JSON, both keys sealed
/// under the data key) and how one change is decided against every current policy. A backend
/// keeps only its transaction: it reads the policies and the generation, calls `apply` and writes
/// what it returns, all in one transaction, so two changes never decide from the same record.
public enum PolicyRules {
    static func context(_ name: String, _ slot: String) -> SealingContext { .policyKey(name: name, slot: slot) }

    /// A stored policy record, keys opened. `legacy` accepts version 1 sealing contexts (only
    /// until every policy was re-sealed under version 2: a version 1 policy context is also the
    /// one of a module of a device named `policy`).
    public static func decode(_ record: [UInt8], sealer: KeySealer, legacy: Bool) throws -> SharedAccessPolicy {
        let json = try JSONParser.parse(record)
        guard let name = json["name"]?.stringValue, let rights = json["rights"]?.stringValue.flatMap(AccessRights.init(description:)),
            let primary = json["primaryKey"]?.stringValue, let secondary = json["secondaryKey"]?.stringValue
        else { throw StoreError("a stored policy is malformed") }
        return SharedAccessPolicy(
            name: name,
            rights: rights,
            primaryKey: try sealer.open(primary, for: context(name, "primaryKey"), legacy: legacy),
            secondaryKey: try sealer.open(secondary, for: context(name, "secondaryKey"), legacy: legacy),
            // Records from before versions: 0 until their first change.
            version: json["version"]?.intValue ?? 0,
            scope: try json["scope"].map { value throws(PolicyError) in try PolicyScope(json: value) }
        )
    }

    /// The record to store for `policy`, keys sealed under version 2 contexts.
    public static func encode(_ policy: SharedAccessPolicy, sealer: KeySealer, random: inout some RandomNumberGenerator) -> [UInt8] {
        var members: [String: JSONValue] = [
            "name": .string(policy.name),
            "rights": .string(policy.rights.description),
            "primaryKey": .string(sealer.seal(policy.primaryKey, for: context(policy.name, "primaryKey"), random: &random)),
            "secondaryKey": .string(sealer.seal(policy.secondaryKey, for: context(policy.name, "secondaryKey"), random: &random)),
            "version": .int(policy.version),
        ]
        // Only on a scoped policy: other records keep their bytes.
        if let scope = policy.scope { members["scope"] = scope.json }
        return CanonicalJSON.encode(.object(members))
    }

    /// Decides one change against all current policies and the current generation; validates
    /// name/rights, ifMatch, notFound, owner remains; returns the snapshot (generation =
    /// current+1) — the caller writes snapshot.policy (or deletes `name` when nil) and the new
    /// generation. With `ifMatch` `.exact(etag)` the change is refused (`preconditionFailed`)
    /// unless the policy's etag is still that one.
    public static func apply(
        _ change: PolicyChange,
        to name: String,
        ifMatch: ETagCondition,
        policies: [SharedAccessPolicy],
        generation: Int64,
        random: inout some RandomNumberGenerator
    ) throws(PolicyError) -> PolicySnapshot {
        try validate(change, name: name)
        var policies = policies
        let index = policies.firstIndex { $0.name == name }
        switch ifMatch {
        case .absent: break
        case .any:
            guard index != nil else { throw PolicyError.notFound(name) }
        case .exact(let tag):
            guard let index else { throw PolicyError.notFound(name) }
            guard policies[index].etag == tag else {
                throw PolicyError("the policy '\(name)' changed since its etag was read", preconditionFailed: true)
            }
        }
        let generation = generation + 1
        var changed: SharedAccessPolicy?
        switch change {
        case .setRights(let rights, let scope):
            var policy =
                index.map { policies[$0] }
                ?? SharedAccessPolicy(
                    name: name,
                    rights: rights,
                    primaryKey: generateKey(random: &random),
                    secondaryKey: generateKey(random: &random)
                )
            policy.rights = rights
            policy.scope = scope
            changed = policy
        case .rotate(let secondary):
            guard let index else { throw PolicyError.notFound(name) }
            var policy = policies[index]
            if secondary { policy.secondaryKey = generateKey(random: &random) } else { policy.primaryKey = generateKey(random: &random) }
            changed = policy
        case .remove:
            guard index != nil else { throw PolicyError.notFound(name) }
        }
        changed?.version = generation
        policies.removeAll { $0.name == name }
        if let changed { policies.append(changed) }
        try checkOwnerRemains(policies)
        return PolicySnapshot(policy: changed, policies: policies, generation: generation)
    }

    /// What can be refused without reading any policy: a bad name or an empty set of rights.
    public static func validate(_ change: PolicyChange, name: String) throws(PolicyError) {
        if case .setRights(let rights, let scope) = change {
            try checkName(name)
            guard !rights.isEmpty else { throw PolicyError("a policy needs at least one right") }
            if scope != nil && SharedAccessPolicy.builtInNames.contains(name) {
                throw PolicyError("the built-in policy '\(name)' stays unscoped; add a policy of your own with the scope")
            }
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
        guard policies.contains(where: { $0.rights.isSuperset(of: .all) && $0.scope == nil }) else {
            throw PolicyError("at least one unscoped policy must keep all four rights (like iothubowner)")
        }
    }
}
