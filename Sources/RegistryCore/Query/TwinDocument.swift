/// The twin shape of an identity (spec §8.2): what queries return for `SELECT *` and what
/// lifecycle messages carry as their body. Identity facts only, never key material.
public enum TwinDocument {
    static let copied = [
        "deviceId", "moduleId", "generationId", "status", "statusReason", "statusUpdatedTime", "connectionState", "lastActivityTime",
        "cloudToDeviceMessageCount", "capabilities", "deviceScope", "parentScopes", "managedBy",
    ]

    /// - Parameters:
    ///   - payload: a stored Device or Module document (keys sealed or not: they are not copied).
    ///   - lastUpdated: the `$metadata.$lastUpdated` of the (empty) desired and reported properties.
    ///   - includeTags: whether the shape carries the twin's tags (queries and /twins do; lifecycle
    ///     messages do not).
    public static func make(_ payload: JSONValue, lastUpdated: String, includeTags: Bool = false) -> JSONValue {
        let metadata: JSONValue = .object(["$metadata": .object(["$lastUpdated": .string(lastUpdated)]), "$version": .int(1)])
        // The twin's own etag and version once its tags were written; before, those of a new twin.
        let twin = payload["twin"]
        var body: [String: JSONValue] = [
            "etag": twin?["etag"] ?? .string(TwinState.initialEtag),
            "version": twin?["version"] ?? .int(2),
            "properties": .object(["desired": metadata, "reported": metadata]),
        ]
        for name in copied {
            if let value = payload[name], value != .null { body[name == "statusUpdatedTime" ? "statusUpdateTime" : name] = value }
        }
        if let etag = payload["etag"] { body["deviceEtag"] = etag }
        if let auth = payload["authentication"] {
            body["authenticationType"] = auth["type"] ?? .null
            // Thumbprints are public (they identify a certificate); keys never leave the registry.
            if let thumbprints = auth["x509Thumbprint"] { body["x509Thumbprint"] = thumbprints }
        }
        if includeTags { body["tags"] = twin?["tags"] ?? .object([:]) }
        return .object(body)
    }
}
