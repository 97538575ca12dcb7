import Foundation
import Hummingbird
import RegistryCore

/// `GET /registry/credentials/expiring?within=P30D[&top=N]` (RegistryRead): the keys and
/// thumbprints whose validity window ends within the period (an ISO 8601 duration of weeks,
/// days and time; ended ones included, `expired: true`), soonest first, at most `top` (default
/// 1000, at most 10000).
struct CredentialRoutes: Sendable {
    let store: any RegistryBackend
    let clock: @Sendable () -> Timestamp

    static let defaultTop = 1_000
    static let maximumTop = 10_000

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/credentials/expiring") { request, context in
            try context.require(.registryRead)
            let parameters = request.uri.queryParameters
            let text = parameters.get("within") ?? "P30D"
            guard let within = ISODuration(text) else {
                throw APIError.invalid(
                    "within must be an ISO 8601 duration of weeks, days and time, such as P30D, P2W or PT12H (months and years vary in length)."
                )
            }
            var top = Self.defaultTop
            if let given = parameters.get("top") {
                guard let n = Int(given), n > 0 else { throw APIError.invalid("top must be a positive whole number (at most \(Self.maximumTop)).") }
                top = min(n, Self.maximumTop)
            }
            let now = clock()
            let until = Timestamp(ticks: now.ticks + within.seconds * 10_000_000)
            var expiring = try await ExpiringCredentials.scan(store, until: until)
            if let scope = context.scope {
                var inside: [ExpiringCredential] = []
                for credential in expiring where !scope.excludes(deviceId: credential.deviceId) {
                    let stored = try await store.storedDocument(deviceId: credential.deviceId, moduleId: credential.moduleId)
                    if let stored, context.sees(stored) { inside.append(credential) }
                }
                expiring = inside
            }
            return RegistryRoutes.json(.array(expiring.prefix(top).map { $0.json(now: now) }))
        }
    }
}
