import Hummingbird
import RegistryCore

/// `/registry/policies`: shared access policy management on a running daemon, for callers with
/// all four rights (`iothubowner`). Changes go through the writer and take effect on the next
/// request (the authenticator forgets every verified token).
///
/// - `GET /registry/policies`: `[{"name","rights"}]` (no keys)
/// - `GET /registry/policies/{name}`: the policy with its keys
/// - `PUT /registry/policies/{name}` `{"rights":"RegistryRead, ServiceConnect"}`: add (fresh keys) or change rights
/// - `POST /registry/policies/{name}/rotate` `{"key":"primary"|"secondary"}`: a new key, the other keeps working
/// - `DELETE /registry/policies/{name}`: remove (the last all-rights policy cannot go)
struct PolicyRoutes: Sendable {
    let store: RegistryStore
    let routes: RegistryRoutes
    let authenticator: ServiceAuthenticator

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/policies") { _, context in
            try context.require(.all)
            let policies = authenticator.policyList.sorted { $0.name < $1.name }
            return RegistryRoutes.json(.array(policies.map { .object(["name": .string($0.name), "rights": .string($0.rights.description)]) }))
        }
        router.get("registry/policies/:name") { _, context in
            try context.require(.all)
            let name = try RegistryRoutes.pathId(context, "name")
            guard let policy = authenticator.policyList.first(where: { $0.name == name }) else { throw Self.notFound(name) }
            return RegistryRoutes.json(Self.encode(policy))
        }
        router.put("registry/policies/:name") { request, context in
            try context.require(.all)
            let name = try RegistryRoutes.pathId(context, "name")
            let body = try IdentityRequestDecoder.parse(try await routes.body(request))
            guard let text = try IdentityRequestDecoder.string(body, "rights"), let rights = AccessRights(description: text) else {
                throw APIError.invalid("rights must list RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect and/or Metrics, comma-separated.")
            }
            let policy = try await run { () async throws(PolicyError) in try await PolicyStore.upsert(name: name, rights: rights, store: store) }
            return RegistryRoutes.json(Self.encode(policy))
        }
        router.post("registry/policies/:name/rotate") { request, context in
            try context.require(.all)
            let name = try RegistryRoutes.pathId(context, "name")
            let body = try IdentityRequestDecoder.parse(try await routes.body(request))
            let which = try IdentityRequestDecoder.string(body, "key")?.lowercased() ?? "primary"
            guard which == "primary" || which == "secondary" else { throw APIError.invalid("key must be primary or secondary.") }
            let policy = try await run { () async throws(PolicyError) in try await PolicyStore.rotate(name: name, secondary: which == "secondary", store: store) }
            return RegistryRoutes.json(Self.encode(policy))
        }
        router.delete("registry/policies/:name") { _, context in
            try context.require(.all)
            let name = try RegistryRoutes.pathId(context, "name")
            _ = try await run { () async throws(PolicyError) in try await PolicyStore.remove(name: name, store: store) }
            return Response(status: .noContent)
        }
    }

    /// Applies a change, then hands the stored policies to the authenticator.
    func run<T>(_ change: () async throws(PolicyError) -> T) async throws -> T {
        let result: T
        do {
            result = try await change()
        } catch {
            if error.notFound { throw APIError(status: .notFound, code: "PolicyNotFound", message: error.description) }
            throw APIError.invalid(error.description)
        }
        authenticator.setPolicies(try PolicyStore.load(store.storage))
        return result
    }

    static func notFound(_ name: String) -> APIError {
        APIError(status: .notFound, code: "PolicyNotFound", message: "No policy named '\(name)'.")
    }

    static func encode(_ policy: SharedAccessPolicy) -> JSONValue {
        .object([
            "name": .string(policy.name), "rights": .string(policy.rights.description),
            "primaryKey": .string(policy.primaryKey), "secondaryKey": .string(policy.secondaryKey),
        ])
    }
}
