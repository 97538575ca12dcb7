/// The JSON form of identities, in Azure's field names and enum spellings.
///
/// One codec for storage and (later) the API: storage passes a transform that seals or opens
/// symmetric keys, the API one that leaves them as they are.
public enum IdentityCodec {
    /// Which key of which identity a transform is handling (the sealing context).
    public struct KeySlot: Sendable, Hashable {
        public var deviceId: String
        public var moduleId: String?
        public var name: String
        package init(deviceId: String, moduleId: String?, name: String) {
            self.deviceId = deviceId
            self.moduleId = moduleId
            self.name = name
        }
        /// What the key is sealed for: the additional authenticated data of a sealed key.
        public var sealingContext: SealingContext {
            if let moduleId { return .moduleKey(deviceId: deviceId, moduleId: moduleId, slot: name) }
            return .deviceKey(deviceId: deviceId, slot: name)
        }
        /// The context keys are sealed under now (version 2; the writer seals straight into bytes).
        public var contextBytes: [UInt8] { sealingContext.bytes }
    }

    public struct DecodingError: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func encode(_ identity: Identity, key: (String, KeySlot) -> String) -> JSONValue {
        switch identity {
        case .device(let d): encode(d, key: key)
        case .module(let m): encode(m, key: key)
        }
    }

    public static func encode(_ d: Device, key: (String, KeySlot) -> String) -> JSONValue {
        .object(
            [
                "deviceId": .string(d.deviceId),
                "generationId": .string(d.generationId),
                "etag": .string(d.etag),
                "connectionState": .string(d.connectionState.rawValue),
                "status": .string(d.status.rawValue),
                "statusReason": JSONValue(d.statusReason),
                "connectionStateUpdatedTime": .string(d.connectionStateUpdatedTime.iso8601),
                "statusUpdatedTime": .string(d.statusUpdatedTime.iso8601),
                "lastActivityTime": .string(d.lastActivityTime.iso8601),
                "cloudToDeviceMessageCount": .int(d.cloudToDeviceMessageCount),
                "authentication": encode(d.authentication, deviceId: d.deviceId, moduleId: nil, key: key),
                "capabilities": .object(["iotEdge": .bool(d.capabilities.iotEdge)]),
                "deviceScope": JSONValue(d.deviceScope),
                "parentScopes": .array(d.parentScopes.map(JSONValue.string)),
            ].merging(encode(d.twin)) { a, _ in a }.merging(encode(restoredFrom: d.restoredFrom)) { a, _ in a }
        )
    }

    /// `restoredFrom`, only on a restored identity (every other document keeps its exact bytes).
    static func encode(restoredFrom: UInt64?) -> [String: JSONValue] {
        guard let restoredFrom else { return [:] }
        return ["restoredFrom": .int(Int64(truncatingIfNeeded: restoredFrom))]
    }

    static func decodeRestoredFrom(_ json: JSONValue) -> UInt64? {
        json["restoredFrom"]?.intValue.flatMap { UInt64(exactly: $0) }
    }

    /// Twin members, only once a twin has been written (older documents keep their exact bytes).
    /// `"twin"` is not an Azure Device field: the API's Device responses leave it out.
    static func encode(_ twin: TwinState?) -> [String: JSONValue] {
        guard let twin else { return [:] }
        return ["twin": .object(["tags": .object(twin.tags), "version": .int(twin.version), "etag": .string(twin.etag)])]
    }

    static func decodeTwin(_ json: JSONValue) -> TwinState? {
        guard let twin = json["twin"], case .object(let tags)? = twin["tags"], let version = twin["version"]?.intValue,
            let etag = twin["etag"]?.stringValue
        else {
            return nil
        }
        return TwinState(tags: tags, version: version, etag: etag)
    }

    public static func encode(_ m: Module, key: (String, KeySlot) -> String) -> JSONValue {
        .object(
            [
                "deviceId": .string(m.deviceId),
                "moduleId": .string(m.moduleId),
                "managedBy": JSONValue(m.managedBy),
                "generationId": .string(m.generationId),
                "etag": .string(m.etag),
                "connectionState": .string(m.connectionState.rawValue),
                "connectionStateUpdatedTime": .string(m.connectionStateUpdatedTime.iso8601),
                "lastActivityTime": .string(m.lastActivityTime.iso8601),
                "cloudToDeviceMessageCount": .int(m.cloudToDeviceMessageCount),
                "authentication": encode(m.authentication, deviceId: m.deviceId, moduleId: m.moduleId, key: key),
            ].merging(encode(m.twin)) { a, _ in a }.merging(encode(restoredFrom: m.restoredFrom)) { a, _ in a }
        )
    }

    static func encode(_ a: Authentication, deviceId: String, moduleId: String?, key: (String, KeySlot) -> String) -> JSONValue {
        func sealed(_ value: String?, _ name: String) -> JSONValue {
            JSONValue(value.map { key($0, KeySlot(deviceId: deviceId, moduleId: moduleId, name: name)) })
        }
        var members: [String: JSONValue] = [
            "symmetricKey": .object([
                "primaryKey": sealed(a.symmetricKey.primaryKey, "primaryKey"),
                "secondaryKey": sealed(a.symmetricKey.secondaryKey, "secondaryKey"),
            ]),
            "x509Thumbprint": .object([
                "primaryThumbprint": JSONValue(a.x509Thumbprint.primaryThumbprint),
                "secondaryThumbprint": JSONValue(a.x509Thumbprint.secondaryThumbprint),
            ]),
            "type": .string(a.type.rawValue),
        ]
        // Only when a window is set: every other document keeps its exact bytes.
        if !a.validity.isEmpty { members["validity"] = a.validity.json }
        return .object(members)
    }

    /// Decodes the stored form. A member named `moduleId` makes it a module.
    public static func decode(_ json: JSONValue, key: (String, KeySlot) throws -> String) throws -> Identity {
        guard case .object = json else { throw DecodingError(description: "an identity must be a JSON object") }
        let deviceId = try string(json, "deviceId")
        let timestamp = { (name: String) throws -> Timestamp in
            let text = try string(json, name)
            guard let t = Timestamp(iso8601: text) else { throw DecodingError(description: "\(name) is not a timestamp") }
            return t
        }
        let connectionState = try enumValue(json, "connectionState", ConnectionState.self)
        if let moduleId = json["moduleId"]?.stringValue {
            return .module(
                Module(
                    deviceId: deviceId,
                    moduleId: moduleId,
                    managedBy: json["managedBy"]?.stringValue,
                    generationId: try string(json, "generationId"),
                    etag: try string(json, "etag"),
                    connectionState: connectionState,
                    connectionStateUpdatedTime: try timestamp("connectionStateUpdatedTime"),
                    lastActivityTime: try timestamp("lastActivityTime"),
                    cloudToDeviceMessageCount: json["cloudToDeviceMessageCount"]?.intValue ?? 0,
                    authentication: try decodeAuthentication(json["authentication"], deviceId: deviceId, moduleId: moduleId, key: key),
                    twin: decodeTwin(json),
                    restoredFrom: decodeRestoredFrom(json)
                )
            )
        }
        return .device(
            Device(
                deviceId: deviceId,
                generationId: try string(json, "generationId"),
                etag: try string(json, "etag"),
                connectionState: connectionState,
                status: try enumValue(json, "status", DeviceStatus.self),
                statusReason: json["statusReason"]?.stringValue,
                connectionStateUpdatedTime: try timestamp("connectionStateUpdatedTime"),
                statusUpdatedTime: try timestamp("statusUpdatedTime"),
                lastActivityTime: try timestamp("lastActivityTime"),
                cloudToDeviceMessageCount: json["cloudToDeviceMessageCount"]?.intValue ?? 0,
                authentication: try decodeAuthentication(json["authentication"], deviceId: deviceId, moduleId: nil, key: key),
                capabilities: DeviceCapabilities(iotEdge: json["capabilities"]?["iotEdge"]?.boolValue ?? false),
                deviceScope: json["deviceScope"]?.stringValue,
                parentScopes: (json["parentScopes"]?.arrayValue ?? []).compactMap(\.stringValue),
                twin: decodeTwin(json),
                restoredFrom: decodeRestoredFrom(json)
            )
        )
    }

    static func decodeAuthentication(
        _ json: JSONValue?,
        deviceId: String,
        moduleId: String?,
        key: (String, KeySlot) throws -> String
    ) throws -> Authentication {
        guard let json else { throw DecodingError(description: "authentication is missing") }
        let type = try enumValue(json, "type", AuthenticationType.self)
        func opened(_ name: String) throws -> String? {
            try json["symmetricKey"]?[name]?.stringValue.map { try key($0, KeySlot(deviceId: deviceId, moduleId: moduleId, name: name)) }
        }
        return Authentication(
            type: type,
            symmetricKey: SymmetricKey(primaryKey: try opened("primaryKey"), secondaryKey: try opened("secondaryKey")),
            x509Thumbprint: X509Thumbprint(
                primaryThumbprint: json["x509Thumbprint"]?["primaryThumbprint"]?.stringValue,
                secondaryThumbprint: json["x509Thumbprint"]?["secondaryThumbprint"]?.stringValue
            ),
            validity: json["validity"].map(CredentialValidity.init(stored:)) ?? .init()
        )
    }

    static func string(_ json: JSONValue, _ name: String) throws -> String {
        guard let s = json[name]?.stringValue else { throw DecodingError(description: "\(name) is missing or not a string") }
        return s
    }

    static func enumValue<E: RawRepresentable>(_ json: JSONValue, _ name: String, _: E.Type) throws -> E where E.RawValue == String {
        guard let e = E(rawValue: try string(json, name)) else { throw DecodingError(description: "\(name) has an unknown value") }
        return e
    }
}
