import Foundation
import HTTPTypes
import Hummingbird
import RegistryCore
import RegistryTransfer

/// `/twins/{id}[/modules/{mid}]`: the twin of a device or module with its tags (RegistryRead);
/// `PATCH` merges tags and `PUT` replaces them (RegistryWrite), with `If-Match` against the
/// twin's etag, which is not the identity's. Desired and reported properties are out of scope:
/// a request that sets them gets 400.
struct TwinRoutes: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes

    func register(on router: Router<RegistryRequestContext>) {
        router.get("twins/:deviceId") { _, context in try await get(context, module: false) }
        router.get("twins/:deviceId/modules/:moduleId") { _, context in try await get(context, module: true) }
        for (path, module) in [("twins/:deviceId", false), ("twins/:deviceId/modules/:moduleId", true)] {
            router.patch(RouterPath(path)) { request, context in try await update(request, context, module: module, replace: false) }
            router.put(RouterPath(path)) { request, context in try await update(request, context, module: module, replace: true) }
        }
    }

    func get(_ context: RegistryRequestContext, module: Bool) async throws -> Response {
        try context.require(.registryRead)
        let deviceId = try RegistryRoutes.pathId(context, "deviceId")
        let moduleId = module ? try RegistryRoutes.pathId(context, "moduleId") : nil
        let stored = try await store.storedDocument(deviceId: deviceId, moduleId: moduleId)
        guard let stored, context.sees(stored) else {
            if let moduleId { throw try await routes.missingModule(deviceId, moduleId, context) }
            throw RegistryError(.deviceNotFound, "Device \(deviceId) not registered")
        }
        return Self.twin(try JSONParser.parse(stored))
    }

    func update(_ request: Request, _ context: RegistryRequestContext, module: Bool, replace: Bool) async throws -> Response {
        try context.require(.registryWrite)
        let deviceId = try RegistryRoutes.pathId(context, "deviceId")
        let moduleId = module ? try RegistryRoutes.pathId(context, "moduleId") : nil
        let body = try IdentityRequestDecoder.parse(try await routes.body(request))
        if let properties = IdentityRequestDecoder.member(body, "properties"), properties != .null {
            for part in ["desired", "reported"] {
                if let value = IdentityRequestDecoder.member(properties, part), value != .null, Self.hasContent(value) {
                    throw APIError.invalid("Twin \(part) properties are not supported by this registry; only tags can be written.")
                }
            }
        }
        let tags: [String: JSONValue]
        switch IdentityRequestDecoder.member(body, "tags") {
        case .object(let members)?: tags = members
        case nil, .null?:
            guard replace else { throw APIError(status: .badRequest, code: "ArgumentNull", message: "A twin PATCH needs tags.") }
            tags = [:]
        default: throw APIError.invalid("tags must be a JSON object.")
        }
        let update = TwinUpdate(
            deviceId: deviceId,
            moduleId: moduleId,
            tags: tags,
            replace: replace,
            ifMatch: ETagCondition(header: request.headers[.ifMatch])
        )
        let outcome = try await store.execute(context.scoped(.updateTwin(update)), actor: context.actor, requestId: context.requestId)
        guard let identity = outcome.identity else {
            throw APIError(status: .internalServerError, code: "ServerError", message: "The twin update produced no identity.")
        }
        return Self.twin(IdentityCodec.encode(identity) { _, _ in "" })
    }

    /// Metadata-only property objects (`$metadata`, `$version`), as clients echo them, are not content.
    static func hasContent(_ value: JSONValue) -> Bool {
        guard case .object(let members) = value else { return true }
        return members.keys.contains { !$0.hasPrefix("$") }
    }

    static func twin(_ payload: JSONValue) -> Response {
        let document = TwinDocument.make(payload, lastUpdated: Timestamp.unset.iso8601, includeTags: true)
        var response = RegistryRoutes.json(document)
        if let etag = document["etag"]?.stringValue { response.headers[.eTag] = "\"\(etag)\"" }
        return response
    }
}
