import RegistryCore

/// Azure's import modes (case-insensitive on the wire) and what each asks of the registry: the
/// one mapping from an ExportImportDevice entry to a command, for bulk calls, import jobs and
/// `registryd import`.
public enum ImportMode: String, CaseIterable, Sendable {
    case create, update, updateIfMatchETag, createOrUpdate, createOrUpdateIfMatchETag, delete, deleteIfMatchETag, updateTwin, updateTwinIfMatchETag

    public init?(wire: String) {
        guard let mode = Self.allCases.first(where: { ASCIICase.equal($0.rawValue, wire) }) else { return nil }
        self = mode
    }

    /// The device command of a (non-twin) import mode; `ifMatch` is the entry's `eTag` for the
    /// `*IfMatchETag` modes. Nil for the twin-only modes, which are not device commands.
    public static func deviceCommand(_ mode: ImportMode, _ spec: DeviceSpec, ifMatch exact: ETagCondition) -> Command? {
        switch mode {
        case .create: .createDevice(spec)
        case .update: .replaceDevice(spec, ifMatch: .absent)
        case .updateIfMatchETag: .replaceDevice(spec, ifMatch: exact)
        case .createOrUpdate: .createOrReplaceDevice(spec, ifMatch: .absent)
        case .createOrUpdateIfMatchETag: .createOrReplaceDevice(spec, ifMatch: exact)
        case .delete: .deleteDevice(deviceId: spec.deviceId, ifMatch: .absent)
        case .deleteIfMatchETag: .deleteDevice(deviceId: spec.deviceId, ifMatch: exact)
        case .updateTwin, .updateTwinIfMatchETag: nil
        }
    }

    /// Turns one ExportImportDevice into a command, or a per-entry error.
    public static func command(for entry: JSONValue) throws(ImportEntryError) -> (Command, String) {
        let rawId = (try? IdentityRequestDecoder.string(entry, "id")) ?? nil
        let moduleId = (try? IdentityRequestDecoder.string(entry, "moduleId")) ?? nil
        func fail(_ code: String, _ message: String, _ operation: String) -> ImportEntryError {
            ImportEntryError(deviceId: rawId ?? "", moduleId: moduleId, code: code, message: message, operation: operation)
        }
        let modeText = ((try? IdentityRequestDecoder.string(entry, "importMode")) ?? nil) ?? "createOrUpdate"
        guard let mode = ImportMode(wire: modeText) else {
            throw fail("ArgumentInvalid", "importMode must be one of \(Self.allCases.map(\.rawValue).joined(separator: ", ")).", modeText)
        }
        let operation = mode.rawValue
        guard case .object = entry else { throw fail("ArgumentInvalid", "Each entry must be a JSON object.", operation) }
        guard let id = rawId else { throw fail("ArgumentNull", "The entry has no id.", operation) }
        if let properties = IdentityRequestDecoder.member(entry, "properties"), properties != .null, properties != .object([:]) {
            throw fail("ArgumentInvalid", "Desired and reported properties are not supported by this registry; only twin tags are.", operation)
        }
        let tags: [String: JSONValue]?
        switch IdentityRequestDecoder.member(entry, "tags") {
        case nil, .null?: tags = nil
        case .object(let members)?: tags = members
        default: throw fail("ArgumentInvalid", "tags must be a JSON object.", operation)
        }
        let etagText = ((try? IdentityRequestDecoder.string(entry, "eTag")) ?? nil).map { ETagCondition(header: $0) }
        let exact = etagText ?? .exact("")  // an *IfMatchETag mode without an etag cannot match
        if mode == .updateTwin || mode == .updateTwinIfMatchETag {
            // Twin-only modes: the tags replace the twin's, under the twin's etag (`twinETag`).
            guard let tags else { throw fail("ArgumentNull", "The \(operation) mode needs tags.", operation) }
            let twinTag = ((try? IdentityRequestDecoder.string(entry, "twinETag")) ?? nil).map { ETagCondition(header: $0) } ?? .exact("")
            let update = TwinUpdate(deviceId: id, moduleId: moduleId, tags: tags, replace: true, ifMatch: mode == .updateTwin ? .absent : twinTag)
            return (.updateTwin(update), operation)
        }
        do {
            if let moduleId {
                // The entry carries module fields under the same names as a Module body.
                var body = entry
                if case .object(var members) = body {
                    members["deviceId"] = .string(id)
                    members.removeValue(forKey: "id")
                    members.removeValue(forKey: "status")  // ExportImportDevice always has one; modules have none
                    members.removeValue(forKey: "statusReason")
                    body = .object(members)
                }
                var spec = try IdentityRequestDecoder.module(json: body, deviceId: id, moduleId: moduleId)
                spec.tags = tags
                switch mode {
                case .create: return (.createModule(spec), operation)
                case .update: return (.replaceModule(spec, ifMatch: .absent), operation)
                case .updateIfMatchETag: return (.replaceModule(spec, ifMatch: exact), operation)
                case .createOrUpdate: return (.createOrReplaceModule(spec, ifMatch: .absent), operation)
                case .createOrUpdateIfMatchETag: return (.createOrReplaceModule(spec, ifMatch: exact), operation)
                case .delete: return (.deleteModule(deviceId: id, moduleId: moduleId, ifMatch: .absent), operation)
                case .deleteIfMatchETag: return (.deleteModule(deviceId: id, moduleId: moduleId, ifMatch: exact), operation)
                case .updateTwin, .updateTwinIfMatchETag: throw fail("ArgumentInvalid", "unreachable", operation)
                }
            }
            // The entry's `id` names the device; a `deviceId` member, if any, is ignored (read
            // without copying the entry to rewrite it, which was a third of this function).
            var spec = try IdentityRequestDecoder.device(json: entry, pathId: id, bodyIdChecked: false)
            spec.tags = tags
            guard let command = deviceCommand(mode, spec, ifMatch: exact) else { throw fail("ArgumentInvalid", "unreachable", operation) }
            return (command, operation)
        } catch let error as WireFormatError {
            throw fail(error.code, error.message, operation)
        } catch let error as ImportEntryError {
            throw error
        } catch {
            throw fail("ArgumentInvalid", "\(error)", operation)
        }
    }
}

/// One entry of a bulk call or import file that was not applied: Azure's `DeviceRegistryOperationError`
/// fields (the one error type of bulk calls, import jobs and `registryd import`).
public struct ImportEntryError: Error, Sendable, Hashable {
    public var deviceId: String
    public var moduleId: String?
    public var code: String
    public var message: String
    public var operation: String

    public init(deviceId: String, moduleId: String?, code: String, message: String, operation: String) {
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.code = code
        self.message = message
        self.operation = operation
    }
}
