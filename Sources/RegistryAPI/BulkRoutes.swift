import HTTPTypes
import Hummingbird
import RegistryCore
import RegistryTransfer

/// `POST /devices`: bulk registry operations on 1 to 100 `ExportImportDevice` entries, applied
/// in one transaction through the writer with one result per entry (every identity changed is
/// its own event, so routes see bulk creates and deletes).
public struct BulkRoutes: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes
    static let maximumEntries = 100

    func register(on router: Router<RegistryRequestContext>) {
        router.post("devices") { request, context in try await bulk(request, context) }
    }

    func bulk(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryWrite)
        let json = try IdentityRequestDecoder.parseAny(try await routes.body(request))
        guard case .array(let entries) = json else { throw APIError.format("The request body must be a JSON array of ExportImportDevice.") }
        guard !entries.isEmpty else { throw APIError(status: .badRequest, code: "ArgumentNull", message: "The list of devices is empty.") }
        guard entries.count <= Self.maximumEntries else {
            throw APIError(
                status: .contentTooLarge,
                code: "TooManyDevices",
                message: "A bulk call takes at most \(Self.maximumEntries) entries; got \(entries.count)."
            )
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
        var errors: [ImportEntryError] = []
        var commands: [(Int, Command, String, String, String?)] = []  // index, command, operation, deviceId, moduleId
        for (index, entry) in entries.enumerated() {
            do {
                let (command, operation) = try ImportMode.command(for: entry)
                commands.append((index, command, operation, command.deviceId, command.moduleId))
            } catch {
                errors.append(error)
            }
        }
        if !commands.isEmpty {
            // A scoped caller's entries outside its scope fail one by one (401 each).
            let results = try await store.execute(commands.map { context.scoped($0.1) }, actor: context.actor, requestId: context.requestId)
            for (result, (_, _, operation, deviceId, moduleId)) in zip(results, commands) {
                if case .failure(let error) = result {
                    errors.append(
                        ImportEntryError(deviceId: deviceId, moduleId: moduleId, code: error.code.name, message: error.message, operation: operation)
                    )
                }
            }
        }
        let result = JSONValue.object([
            "isSuccessful": .bool(errors.isEmpty),
            "errors": .array(
                errors.map { e in
                    .object([
                        "deviceId": .string(e.deviceId), "moduleId": JSONValue(e.moduleId), "errorCode": .string(e.code),
                        "errorStatus": .string(e.message), "operation": .string(e.operation),
                    ])
                }
            ),
            "warnings": .array([]),
        ])
        return RegistryRoutes.json(result, status: errors.isEmpty ? .ok : .badRequest)
    }
}
