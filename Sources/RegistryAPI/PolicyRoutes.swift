import HTTPTypes
import Hummingbird
import RegistryCore
import RegistryTransfer

/// `/registry/policies`: shared access policy management on a running daemon, for callers with
/// all four rights (`iothubowner`). Changes go through the writer and take effect on the next
/// request (the authenticator forgets every verified token).
///
/// - `GET /registry/policies`: `[{"name","rights"}]` (no keys)
/// - `GET /registry/policies/{name}`: the policy with its keys and `etag` (also the `ETag` header)
/// - `PUT /registry/policies/{name}` `{"rights":"RegistryRead, ServiceConnect", "scope"?: {"deviceIdPrefixes": [...],
///   "condition": "tags.site = 'lyon'"}}`: add (fresh keys) or change rights and scope (absent: unscoped)
/// - `POST /registry/policies/{name}/rotate` `{"key":"primary"|"secondary"}`: a new key, the other keeps working
/// - `DELETE /registry/policies/{name}`: remove (the last all-rights policy cannot go)
///
/// Each change is computed in the writer's transaction from the policy as it is then, so a rights
/// change never writes back a key that a rotation replaced. `If-Match` (an etag from a GET or an
/// earlier change) makes a change conditional: 412 `PreconditionFailed` if the policy changed
/// since, 404 if it does not exist.
struct PolicyRoutes: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes
    let authenticator: ServiceAuthenticator

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/policies") { _, context in
            try context.require(.all)
            try context.requireUnscoped("policy administration")
            let policies = authenticator.policyList.sorted { $0.name < $1.name }
            return RegistryRoutes.json(.array(policies.map(Self.summary)))
        }
        router.get("registry/policies/:name") { _, context in
            try context.require(.all)
            try context.requireUnscoped("policy administration")
            let name = try RegistryRoutes.pathId(context, "name")
            guard let policy = authenticator.policyList.first(where: { $0.name == name }) else { throw Self.notFound(name) }
            return Self.answer(policy)
        }
        router.put("registry/policies/:name") { request, context in
            try context.require(.all)
            try context.requireUnscoped("policy administration")
            let name = try RegistryRoutes.pathId(context, "name")
            let body = try IdentityRequestDecoder.parse(try await routes.body(request))
            guard let text = try IdentityRequestDecoder.string(body, "rights"), let rights = AccessRights(description: text) else {
                throw APIError.invalid("rights must list RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect and/or Metrics, comma-separated.")
            }
            var scope: PolicyScope?
            if let given = IdentityRequestDecoder.member(body, "scope") {
                do {
                    scope = try PolicyScope(json: given)
                } catch {
                    throw APIError.invalid("\(error)")
                }
            }
            return try await run(.setRights(rights, scope: scope), name, request)
        }
        router.post("registry/policies/:name/rotate") { request, context in
            try context.require(.all)
            try context.requireUnscoped("policy administration")
            let name = try RegistryRoutes.pathId(context, "name")
            let body = try IdentityRequestDecoder.parse(try await routes.body(request))
            let which = try IdentityRequestDecoder.string(body, "key")?.lowercased() ?? "primary"
            guard which == "primary" || which == "secondary" else { throw APIError.invalid("key must be primary or secondary.") }
            return try await run(.rotate(secondary: which == "secondary"), name, request)
        }
        router.delete("registry/policies/:name") { request, context in
            try context.require(.all)
            try context.requireUnscoped("policy administration")
            let name = try RegistryRoutes.pathId(context, "name")
            return try await run(.remove, name, request)
        }
    }

    /// Applies a change through the store's one serialised path (conditional on `If-Match`),
    /// then hands the policies as of that change to the authenticator (which keeps the newest
    /// set when changes finish out of order).
    func run(_ change: PolicyChange, _ name: String, _ request: Request) async throws -> Response {
        let snapshot: PolicySnapshot
        do {
            snapshot = try await store.applyPolicyChange(change, to: name, ifMatch: ETagCondition(header: request.headers[.ifMatch]))
        } catch {
            if error.notFound { throw APIError(status: .notFound, code: "PolicyNotFound", message: error.description) }
            if error.preconditionFailed { throw APIError(status: .preconditionFailed, code: "PreconditionFailed", message: error.description) }
            throw APIError.invalid(error.description)
        }
        authenticator.setPolicies(snapshot)
        guard let policy = snapshot.policy else { return Response(status: .noContent) }
        return Self.answer(policy)
    }

    /// The policy with its keys and etag (body and `ETag` header, quoted as HTTP has it).
    static func answer(_ policy: SharedAccessPolicy) -> Response {
        var response = RegistryRoutes.json(encode(policy))
        response.headers[.eTag] = "\"\(policy.etag)\""
        return response
    }

    static func notFound(_ name: String) -> APIError {
        APIError(status: .notFound, code: "PolicyNotFound", message: "No policy named '\(name)'.")
    }

    static func encode(_ policy: SharedAccessPolicy) -> JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(policy.name), "rights": .string(policy.rights.description),
            "primaryKey": .string(policy.primaryKey), "secondaryKey": .string(policy.secondaryKey), "etag": .string(policy.etag),
        ]
        if let scope = policy.scope { o["scope"] = scope.json }
        return .object(o)
    }

    /// A listing entry: name, rights and scope, no keys.
    static func summary(_ policy: SharedAccessPolicy) -> JSONValue {
        var o: [String: JSONValue] = ["name": .string(policy.name), "rights": .string(policy.rights.description)]
        if let scope = policy.scope { o["scope"] = scope.json }
        return .object(o)
    }
}
