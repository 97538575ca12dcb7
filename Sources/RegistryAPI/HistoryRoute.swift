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

/// `GET /registry/devices/{id}/history[?moduleId=…][&after=SEQ][&limit=N]`: every change to
/// the identity, oldest first, in pages of at most `maximumPage` entries (default and cap). A
/// page that is not the last carries `x-ms-continuation: SEQ`: pass it as `after` (or send it
/// back in the header) for the next.
struct HistoryRoute: Sendable {
    let store: any RegistryBackend

    static let maximumPage = 1000

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/devices/:deviceId/history") { request, context in
            try context.require(.registryRead)
            let id = try RegistryRoutes.pathId(context, "deviceId")
            let query = request.uri.queryParameters
            var after: UInt64 = 0
            if let text = query.get("after") ?? request.headers[.continuation] {
                guard let value = UInt64(text) else { throw APIError.invalid("after must be a sequence number.") }
                after = value
            }
            var limit = Self.maximumPage
            if let text = query.get("limit") {
                guard let value = Int(text), value > 0 else {
                    throw APIError.invalid("limit must be a positive whole number (at most \(Self.maximumPage)).")
                }
                limit = min(value, Self.maximumPage)
            }
            // A scoped caller reads the history of an identity in its scope now (a deleted one is
            // not in any scope; `restore` names its seq from the response of the delete's caller).
            if context.scope != nil {
                let current = try await store.storedDocument(deviceId: id, moduleId: query.get("moduleId"))
                guard let current, context.sees(current) else { throw RegistryError(.deviceNotFound, "Device \(id) has no history") }
            }
            var page = try await store.history(deviceId: id, moduleId: query.get("moduleId"), after: after, limit: limit)
            guard !page.entries.isEmpty || after > 0 else { throw RegistryError(.deviceNotFound, "Device \(id) has no history") }
            if context.scope != nil, query.get("moduleId") == nil {
                // A device's history holds its modules' entries too: only those of modules in
                // the scope now (the page may come out shorter; the continuation is unchanged).
                let visible = Set(
                    (try await store.moduleDocuments(of: id) ?? []).filter { context.sees($0.json) }
                        .compactMap { StoredIdentityLayout($0.json, reading: .all)?.string(.moduleId, in: $0.json) }
                )
                page.entries.removeAll { entry in entry.moduleId.map { !visible.contains($0) } ?? false }
            }
            var response = RegistryRoutes.json(.array(page.entries.map(HistoryJSON.encode)))
            if let next = page.next { response.headers[.continuation] = String(next) }
            return response
        }
    }
}
