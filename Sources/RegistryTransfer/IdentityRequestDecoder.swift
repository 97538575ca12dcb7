import RegistryCore

/// Reads Device and Module bodies the way Azure's clients need: property names and enum values
/// case-insensitive; read-only, unknown and null fields ignored; wrong types refused (`WireFormatError`, which the API answers 400).
public enum IdentityRequestDecoder {
    public static func parse(_ body: [UInt8]) throws -> JSONValue {
        let json = try parseAny(body)
        guard case .object = json else { throw WireFormatError.format("The request body must be a JSON object.") }
        return json
    }

    /// Any JSON value (bulk and report routes take arrays too).
    public static func parseAny(_ body: [UInt8]) throws -> JSONValue {
        guard !body.isEmpty else { throw WireFormatError(code: "ArgumentNull", message: "The request body is empty.") }
        let json: JSONValue
        do {
            json = try JSONParser.parse(body)
        } catch {
            throw WireFormatError.format("The request body is not valid JSON: \(error)")
        }
        return json
    }

    public static func device(_ body: [UInt8], pathId: String) throws -> DeviceSpec { try device(json: try parse(body), pathId: pathId) }

    /// A Device body already parsed (bulk entries and import lines: no re-encoding).
    /// - Parameter bodyIdChecked: whether a `deviceId` in the body must match `pathId` (bulk
    ///   entries and import lines name the device by `id` and ignore it).
    public static func device(json: JSONValue, pathId: String, bodyIdChecked: Bool = true) throws -> DeviceSpec {
        guard case .object = json else { throw WireFormatError.format("The request body must be a JSON object.") }
        if bodyIdChecked, let id = try string(json, "deviceId"), id != pathId {
            throw WireFormatError.invalid("The deviceId in the body ('\(id)') does not match the one in the path ('\(pathId)').")
        }
        var spec = DeviceSpec(deviceId: pathId)
        spec.status = try enumValue(json, "status", DeviceStatus.self)
        spec.statusReason = try string(json, "statusReason")
        spec.authentication = try authentication(json)
        if let capabilities = try object(json, "capabilities") {
            spec.capabilities.iotEdge = try bool(capabilities, "iotEdge") ?? false
        }
        spec.deviceScope = try string(json, "deviceScope")
        if let scopes = member(json, "parentScopes") {
            guard case .array(let items) = scopes else { throw WireFormatError.invalid("parentScopes must be an array of strings.") }
            spec.parentScopes = try items.filter { !$0.isNull }.map { item in
                guard case .string(let s) = item else { throw WireFormatError.invalid("parentScopes must be an array of strings.") }
                return s
            }
        }
        return spec
    }

    public static func module(_ body: [UInt8], deviceId: String, moduleId: String) throws -> ModuleSpec {
        try module(json: try parse(body), deviceId: deviceId, moduleId: moduleId)
    }

    public static func module(json: JSONValue, deviceId: String, moduleId: String) throws -> ModuleSpec {
        guard case .object = json else { throw WireFormatError.format("The request body must be a JSON object.") }
        if let id = try string(json, "deviceId"), id != deviceId {
            throw WireFormatError.invalid("The deviceId in the body ('\(id)') does not match the one in the path ('\(deviceId)').")
        }
        if let id = try string(json, "moduleId"), id != moduleId {
            throw WireFormatError.invalid("The moduleId in the body ('\(id)') does not match the one in the path ('\(moduleId)').")
        }
        var spec = ModuleSpec(deviceId: deviceId, moduleId: moduleId)
        spec.managedBy = try string(json, "managedBy")
        spec.authentication = try authentication(json)
        spec.status = try enumValue(json, "status", DeviceStatus.self)
        return spec
    }

    public static func authentication(_ json: JSONValue) throws -> AuthenticationSpec? {
        guard let auth = try object(json, "authentication") else { return nil }
        var spec = AuthenticationSpec()
        spec.type = try enumValue(auth, "type", AuthenticationType.self)
        if let keys = try object(auth, "symmetricKey") {
            spec.primaryKey = try string(keys, "primaryKey")
            spec.secondaryKey = try string(keys, "secondaryKey")
        }
        if let thumbprints = try object(auth, "x509Thumbprint") {
            spec.primaryThumbprint = try string(thumbprints, "primaryThumbprint")
            spec.secondaryThumbprint = try string(thumbprints, "secondaryThumbprint")
        }
        if let validity = member(auth, "validity") {
            do {
                spec.validity = try CredentialValidity(request: validity)
            } catch {
                throw WireFormatError.invalid(error.message)
            }
        }
        return spec
    }

    // MARK: lenient member access

    public static func member(_ json: JSONValue, _ name: String) -> JSONValue? {
        let value = json.member(caseInsensitive: name)
        return value == .null ? nil : value
    }

    public static func string(_ json: JSONValue, _ name: String) throws -> String? {
        guard let value = member(json, name) else { return nil }
        guard case .string(let s) = value else { throw WireFormatError.invalid("\(name) must be a string.") }
        return s
    }

    public static func bool(_ json: JSONValue, _ name: String) throws -> Bool? {
        guard let value = member(json, name) else { return nil }
        guard case .bool(let b) = value else { throw WireFormatError.invalid("\(name) must be true or false.") }
        return b
    }

    public static func object(_ json: JSONValue, _ name: String) throws -> JSONValue? {
        guard let value = member(json, name) else { return nil }
        guard case .object = value else { throw WireFormatError.invalid("\(name) must be an object.") }
        return value
    }

    public static func enumValue<E: RawRepresentable & CaseIterable>(_ json: JSONValue, _ name: String, _: E.Type) throws -> E?
    where E.RawValue == String {
        guard let text = try string(json, name) else { return nil }
        guard let value = E.allCases.first(where: { ASCIICase.equal($0.rawValue, text) }) else {
            throw WireFormatError.invalid("\(name) must be one of \(E.allCases.map(\.rawValue).joined(separator: ", ")); got '\(text)'.")
        }
        return value
    }
}
