import RegistryCore

/// Azure's `ExportImportDevice`: the line format of export and import files and the entry of
/// bulk calls.
public enum ExportImportDevice {
    /// The export line for a stored identity document (Azure's Device or Module JSON): `id`
    /// instead of `deviceId`, `eTag` instead of `etag`, no read-only runtime fields; keys
    /// replaced by null when excluded (an import then generates new ones).
    public static func line(from document: JSONValue, excludeKeys: Bool) -> JSONValue {
        guard case .object(var members) = document else { return document }
        var out: [String: JSONValue] = [:]
        out["id"] = members.removeValue(forKey: "deviceId")
        out["eTag"] = members.removeValue(forKey: "etag")
        for name in ["moduleId", "managedBy", "status", "statusReason", "capabilities", "deviceScope", "parentScopes"] {
            if let value = members[name] { out[name] = value }
        }
        if var auth = members["authentication"] {
            if excludeKeys, case .object(var a) = auth {
                a["symmetricKey"] = .object(["primaryKey": .null, "secondaryKey": .null])
                auth = .object(a)
            }
            out["authentication"] = auth
        }
        // The twin: its tags when it has any, and its etag (for updateTwinIfMatchETag imports).
        let twin = members["twin"]
        if case .object(let tags)? = twin?["tags"], !tags.isEmpty { out["tags"] = .object(tags) }
        if out["moduleId"] == nil || twin != nil {
            out["twinETag"] = twin?["etag"] ?? .string(TwinState.initialEtag)
        }
        return .object(out)
    }
}
