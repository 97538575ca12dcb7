import Hummingbird
import RegistryCore

/// The JSON form of a history entry (API and CLI): never any key material.
public enum HistoryJSON {
    public static func encode(_ entry: HistoryEntry) -> JSONValue {
        .object([
            "seq": .int(Int64(entry.seq)),
            "time": .string(entry.time.iso8601),
            "type": .string(entry.type.rawValue),
            "deviceId": .string(entry.deviceId),
            "moduleId": JSONValue(entry.moduleId),
            "actor": .string(entry.actor),
            "requestId": .string(entry.requestId),
            "changes": .array(entry.changes.map { .object(["path": .string($0.path), "old": $0.old ?? .null, "new": $0.new ?? .null]) }),
        ])
    }
}

/// `GET /registry/devices/{id}/history[?moduleId=…]`: every change to the identity, oldest first.
struct HistoryRoute: Sendable {
    let store: RegistryStore

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/devices/:deviceId/history") { request, context in
            try context.require(.registryRead)
            let id = try RegistryRoutes.pathId(context, "deviceId")
            let entries = try store.storage.history(deviceId: id, moduleId: request.uri.queryParameters.get("moduleId"))
            guard !entries.isEmpty else { throw RegistryError(.deviceNotFound, "Device \(id) has no history") }
            return RegistryRoutes.json(.array(entries.map(HistoryJSON.encode)))
        }
    }
}
