import HTTPTypes
import Hummingbird
import RegistryCore

/// Our extension routes for the lifecycle router: status, parked messages, re-delivery, and
/// re-enabling a dead endpoint.
struct RouteAdminRoutes: Sendable {
    let delivery: any RouteAdministration

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/routes") { _, context in
            try context.require(.registryRead)
            try context.requireUnscoped("route administration")
            return RegistryRoutes.json(.array(await delivery.statuses().map(Self.encode)))
        }
        router.get("registry/routes/:route/parked") { _, context in
            try context.require(.registryRead)
            try context.requireUnscoped("route administration")
            let route = try routeName(context)
            let parked = try await delivery.parkedMessages(route: route)
            return RegistryRoutes.json(.array(parked.map { .object(["seq": .int(Int64($0.seq)), "message": $0.message]) }))
        }
        router.post("registry/routes/:route/parked/redeliver") { _, context in
            try context.require(.registryWrite)
            try context.requireUnscoped("route administration")
            let route = try routeName(context)
            let count = try await delivery.parkedMessages(route: route).count
            delivery.redeliverParked(route: route)
            return RegistryRoutes.json(.object(["route": .string(route), "redelivering": .int(Int64(count))]), status: .accepted)
        }
        router.post("registry/routes/:route/enable") { _, context in
            try context.require(.registryWrite)
            try context.requireUnscoped("route administration")
            let route = try routeName(context)
            try await delivery.enable(route: route)
            guard let status = await delivery.statuses().first(where: { $0.name == route }) else {
                throw APIError(status: .notFound, code: "RouteNotFound", message: "No route named '\(route)'.")
            }
            return RegistryRoutes.json(Self.encode(status))
        }
    }

    func routeName(_ context: RegistryRequestContext) throws -> String {
        let name = try RegistryRoutes.pathId(context, "route")
        guard delivery.routeExists(name) else { throw APIError(status: .notFound, code: "RouteNotFound", message: "No route named '\(name)'.") }
        return name
    }

    static func encode(_ s: RouteStatus) -> JSONValue {
        .object([
            "name": .string(s.name),
            "source": .string(s.source),
            "condition": .string(s.condition),
            "endpointName": .string(s.endpoint),
            "endpointType": .string(s.endpointType),
            "isEnabled": .bool(s.isEnabled),
            "health": .string(s.health.rawValue),
            "cursor": .int(Int64(s.cursor)),
            "lag": .int(Int64(s.lag)),
            "delivered": .int(Int64(s.delivered)),
            "failedAttempts": .int(Int64(s.failedAttempts)),
            "parked": .int(Int64(s.parked)),
            "undefinedConditions": .int(Int64(s.undefinedConditions)),
            "lastError": JSONValue(s.lastError),
        ])
    }
}
