import Foundation

/// Rights a shared access policy grants (Azure's `AccessRights`; RegistryWrite implies RegistryRead),
/// plus one of ours: `Metrics`.
public struct AccessRights: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let registryRead = AccessRights(rawValue: 1)
    public static let registryWrite = AccessRights(rawValue: 2)
    public static let serviceConnect = AccessRights(rawValue: 4)
    public static let deviceConnect = AccessRights(rawValue: 8)
    /// Ours, not Azure's: reading `/metrics` and nothing else. RegistryRead also reads every
    /// device key, so a scraper that held it would be a key reader; this right lets Prometheus
    /// hold a token that can read only counters.
    public static let metrics = AccessRights(rawValue: 16)
    /// Azure's four rights (`iothubowner`). `metrics` is not among them: it is implied by
    /// nothing and adds nothing to an owner, and existing owner policies stay "all rights".
    public static let all: AccessRights = [.registryRead, .registryWrite, .serviceConnect, .deviceConnect]

    /// Whether these rights allow an operation needing `needed` (write implies read).
    public func allow(_ needed: AccessRights) -> Bool {
        var effective = self
        if contains(.registryWrite) { effective.insert(.registryRead) }
        return effective.isSuperset(of: needed)
    }

    static let names: [(AccessRights, String)] = [
        (.registryRead, "RegistryRead"), (.registryWrite, "RegistryWrite"), (.serviceConnect, "ServiceConnect"), (.deviceConnect, "DeviceConnect"),
        (.metrics, "Metrics"),
    ]

    /// ARM's spelling: `"RegistryRead, RegistryWrite"`.
    public var description: String { Self.names.filter { contains($0.0) }.map(\.1).joined(separator: ", ") }

    public init?(description: String) {
        var rights: AccessRights = []
        for part in description.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let right = Self.names.first(where: { $0.1.lowercased() == part.lowercased() })?.0 else { return nil }
            rights.insert(right)
        }
        self = rights
    }
}

/// A shared access policy: a name, its rights and two keys (base64 of 32 random bytes).
public struct SharedAccessPolicy: Sendable, Hashable {
    public var name: String
    public var rights: AccessRights
    public var primaryKey: String
    public var secondaryKey: String
    /// The policy generation of its last change (`PolicyStore.apply`); 0 for a policy stored
    /// before versions existed, or never stored.
    public var version: Int64
    /// Ours: the identities its rights reach (`nil`: all of them). Built-in policies stay unscoped.
    public var scope: PolicyScope?

    public init(name: String, rights: AccessRights, primaryKey: String, secondaryKey: String, version: Int64 = 0, scope: PolicyScope? = nil) {
        self.scope = scope
        self.name = name
        self.rights = rights
        self.primaryKey = primaryKey
        self.secondaryKey = secondaryKey
        self.version = version
    }

    /// What `If-Match` names to change exactly this state of the policy: its version, which
    /// every change replaces with a higher one (never a key or anything derived from one).
    public var etag: String { String(version) }

    /// The names of Azure's built-in policies (never scoped).
    public static let builtInNames: Set<String> = ["iothubowner", "service", "device", "registryRead", "registryReadWrite"]

    /// Azure's five built-in policies with fresh random keys.
    public static func builtIn(random: inout some RandomNumberGenerator) -> [SharedAccessPolicy] {
        let table: [(String, AccessRights)] = [
            ("iothubowner", .all),
            ("service", .serviceConnect),
            ("device", .deviceConnect),
            ("registryRead", .registryRead),
            ("registryReadWrite", [.registryRead, .registryWrite]),
        ]
        return table.map { name, rights in
            SharedAccessPolicy(name: name, rights: rights, primaryKey: generateKey(random: &random), secondaryKey: generateKey(random: &random))
        }
    }
}
