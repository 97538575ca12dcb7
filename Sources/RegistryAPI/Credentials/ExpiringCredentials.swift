import RegistryCore
import Synchronization

/// One credential whose validity window ends within a period (`GET
/// /registry/credentials/expiring`, and what `CredentialExpiryNotices` announces).
public struct ExpiringCredential: Sendable, Hashable {
    public var deviceId: String
    public var moduleId: String?
    public var slot: CredentialValidity.Slot
    public var authenticationType: AuthenticationType
    public var window: CredentialValidity.Window
    /// Set: `window.notAfter` is always present for an expiring credential.
    public var notAfter: Timestamp

    public func json(now: Timestamp) -> JSONValue {
        var o: [String: JSONValue] = [
            "deviceId": .string(deviceId), "credential": .string(slot.rawValue),
            "authenticationType": .string(authenticationType.rawValue), "notAfter": .string(notAfter.iso8601),
            "expired": .bool(notAfter <= now), "expiryNoticed": .bool(window.expiryNoticed),
        ]
        if let moduleId { o["moduleId"] = .string(moduleId) }
        if let notBefore = window.notBefore { o["notBefore"] = .string(notBefore.iso8601) }
        return .object(o)
    }
}

public enum ExpiringCredentials {
    /// What the scan reads of each stored document.
    static let fields = StoredIdentityLayout.Fields(.authenticationType, .validity, .deviceId, .moduleId)

    /// Every credential whose window ends before `until` (ended ones included), soonest first,
    /// then by identity. One pass over the identities; a document without a `validity` member
    /// is passed over on its bytes, without a parse.
    public static func scan(_ store: any RegistryReader, until: Timestamp) async throws -> [ExpiringCredential] {
        let found = Mutex<[ExpiringCredential]>([])
        try await store.forEachIdentity(openKeys: false) { document, isModule in
            let bytes = document.json
            guard let layout = StoredIdentityLayout(bytes, reading: Self.fields), let range = layout.value(.validity) else { return }
            // Only the windows are parsed; the ids and the type are read from the bytes.
            let validity = CredentialValidity(stored: try JSONParser.parse(Array(bytes[range])))
            guard let deviceId = layout.string(.deviceId, in: bytes),
                let type = layout.string(.authenticationType, in: bytes).flatMap(AuthenticationType.init(rawValue:))
            else { return }
            let moduleId = isModule ? layout.string(.moduleId, in: bytes) : nil
            for slot in CredentialValidity.Slot.allCases {
                guard let window = validity[slot], let notAfter = window.notAfter, notAfter < until else { continue }
                let credential = ExpiringCredential(
                    deviceId: deviceId,
                    moduleId: moduleId,
                    slot: slot,
                    authenticationType: type,
                    window: window,
                    notAfter: notAfter
                )
                found.withLock { $0.append(credential) }
            }
        }
        return found.withLock { $0 }.sorted { a, b in
            if a.notAfter != b.notAfter { return a.notAfter < b.notAfter }
            let (ka, kb) = ([a.deviceId, a.moduleId ?? "", a.slot.rawValue], [b.deviceId, b.moduleId ?? "", b.slot.rawValue])
            return ka.lexicographicallyPrecedes(kb) { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }
    }
}
