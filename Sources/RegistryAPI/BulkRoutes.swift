import HTTPTypes
import Hummingbird
import RegistryCore

/// `POST /devices`: bulk registry operations on 1 to 100 `ExportImportDevice` entries, applied
/// in one transaction through the writer with one result per entry (every identity changed is
/// its own event, so routes see bulk creates and deletes).
public struct BulkRoutes: Sendable {
    let store: RegistryStore
    let routes: RegistryRoutes
    static let maximumEntries = 100

    func register(on router: Router<RegistryRequestContext>) {
        router.post("devices") { request, context in try await bulk(request, context) }
    }

    /// The import modes (case-insensitive on the wire).
    enum ImportMode: String, CaseIterable {
        case create, update, updateIfMatchETag, createOrUpdate, createOrUpdateIfMatchETag, delete, deleteIfMatchETag, updateTwin, updateTwinIfMatchETag

        init?(wire: String) {
            guard let mode = Self.allCases.first(where: { ASCIICase.equal($0.rawValue, wire) }) else { return nil }
            self = mode
        }
    }

    struct EntryError {
        var deviceId: String
        var moduleId: String?
        var code: String
        var message: String
        var operation: String
    }

    func bulk(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryWrite)
        let json = try IdentityRequestDecoder.parseAny(try await routes.body(request))
        guard case .array(let entries) = json else { throw APIError.format("The request body must be a JSON array of ExportImportDevice.") }
        guard !entries.isEmpty else { throw APIError(status: .badRequest, code: "ArgumentNull", message: "The list of devices is empty.") }
        guard entries.count <= Self.maximumEntries else {
            throw APIError(status: .contentTooLarge, code: "TooManyDevices", message: "A bulk call takes at most \(Self.maximumEntries) entries; got \(entries.count).")
        }
        // Whole-call checks first: nothing is written if they fail.
        var seen = Set<String>()
        for entry in entries {
            let id = (try? IdentityRequestDecoder.string(entry, "id")) ?? nil
            let module = (try? IdentityRequestDecoder.string(entry, "moduleId")) ?? nil
            guard let id else { continue }
            let key = id + "\u{0}" + (module ?? "")
            guard seen.insert(key).inserted else {
                throw APIError(
                    status: .badRequest,
                    code: "DeviceDefinedMultipleTimes",
                    message: "'\(id)'\(module.map { " module '\($0)'" } ?? "") appears more than once in the list."
                )
            }
        }
        var errors: [EntryError] = []
        var commands: [(Int, Command, String, String, String?)] = []  // index, command, operation, deviceId, moduleId
        for (index, entry) in entries.enumerated() {
            do {
                let (command, operation) = try Self.command(for: entry)
                commands.append((index, command, operation, command.deviceId, command.moduleId))
            } catch let error as EntryFailure {
                errors.append(error.entry)
            } catch {
                errors.append(EntryError(deviceId: "", moduleId: nil, code: "ArgumentInvalid", message: "\(error)", operation: "unknown"))
            }
        }
        if !commands.isEmpty {
            let results = try await store.execute(commands.map(\.1), actor: context.actor, requestId: context.requestId)
            for (result, (_, _, operation, deviceId, moduleId)) in zip(results, commands) {
                if case .failure(let error) = result {
                    errors.append(EntryError(deviceId: deviceId, moduleId: moduleId, code: error.code.name, message: error.message, operation: operation))
                }
            }
        }
        let result = JSONValue.object([
            "isSuccessful": .bool(errors.isEmpty),
            "errors": .array(errors.map { e in
                .object([
                    "deviceId": .string(e.deviceId), "moduleId": JSONValue(e.moduleId), "errorCode": .string(e.code),
                    "errorStatus": .string(e.message), "operation": .string(e.operation),
                ])
            }),
            "warnings": .array([]),
        ])
        return RegistryRoutes.json(result, status: errors.isEmpty ? .ok : .badRequest)
    }

    /// The device command of a (non-twin) import mode; `ifMatch` is the entry's `eTag` for the
    /// `*IfMatchETag` modes. Nil for the twin-only modes, which are not device commands.
    static func deviceCommand(_ mode: ImportMode, _ spec: DeviceSpec, ifMatch exact: ETagCondition) -> Command? {
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

    struct EntryFailure: Error {
        var entry: EntryError
    }

    /// Turns one ExportImportDevice into a command, or a per-entry error.
    static func command(for entry: JSONValue) throws -> (Command, String) {
        let rawId = (try? IdentityRequestDecoder.string(entry, "id")) ?? nil
        let moduleId = (try? IdentityRequestDecoder.string(entry, "moduleId")) ?? nil
        func fail(_ code: String, _ message: String, _ operation: String) -> EntryFailure {
            EntryFailure(entry: EntryError(deviceId: rawId ?? "", moduleId: moduleId, code: code, message: message, operation: operation))
        }
        let modeText = ((try? IdentityRequestDecoder.string(entry, "importMode")) ?? nil) ?? "createOrUpdate"
        guard let mode = ImportMode(wire: modeText) else {
            throw fail("ArgumentInvalid", "importMode must be one of \(ImportMode.allCases.map(\.rawValue).joined(separator: ", ")).", modeText)
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
        } catch let error as APIError {
            throw fail(error.code, error.message, operation)
        } catch let error as EntryFailure {
            throw error
        } catch {
            throw fail("ArgumentInvalid", "\(error)", operation)
        }
    }
}
