import Hummingbird
import RegistryCore
import Synchronization

/// What `/readyz` reports besides the store: set by `serve` once the listener accepts
/// connections, cleared when shutdown begins.
public final class Readiness: Sendable {
    private let listening = Atomic<Bool>(false)

    public init(listening: Bool = false) { self.listening.store(listening, ordering: .relaxed) }

    public var isListening: Bool { listening.load(ordering: .relaxed) }
    public func setListening(_ value: Bool) { listening.store(value, ordering: .relaxed) }

    /// The individual checks of `/readyz` (also what the systemd watchdog requires).
    public func checks(store: RegistryStore) -> [String: Bool] {
        [
            "storage": (try? store.storage.head()) != nil && !store.health.isFull,
            "writer": store.isAcceptingWrites,
            "listening": isListening,
        ]
    }
}

/// Health probes, unauthenticated and free of secrets: `/healthz` (the process answers) and
/// `/readyz` (storage readable, writer taking work, listener up), 200 or 503 with the checks.
struct HealthRoutes: Sendable {
    let store: RegistryStore
    let readiness: Readiness

    func register(on router: Router<RegistryRequestContext>) {
        router.get("healthz") { _, _ in RegistryRoutes.json(.object(["status": .string("ok")])) }
        router.get("readyz") { _, _ in
            let checks = readiness.checks(store: store)
            let ready = checks.values.allSatisfy { $0 }
            return RegistryRoutes.json(
                .object(["status": .string(ready ? "ready" : "not ready"), "checks": .object(checks.mapValues(JSONValue.bool))]),
                status: ready ? .ok : .serviceUnavailable
            )
        }
    }
}
