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

    /// The individual checks of `/readyz`.
    public func checks(store: any RegistryBackend) async -> [String: Bool] {
        await checks(store: store, stall: store.writerStall)
    }

    /// `writer` is false once closing began or while the writer is stuck (`stall`).
    func checks(store: any RegistryBackend, stall: WriterStall?) async -> [String: Bool] {
        let readable = (try? await store.head()) != nil
        return [
            "storage": readable && !store.health.isFull,
            "writer": store.isAcceptingWrites && stall == nil,
            "listening": isListening,
        ]
    }
}

/// Health probes, unauthenticated and free of secrets: `/healthz` (the process answers) and
/// `/readyz` (storage readable, writer taking work and not stuck, listener up), 200 or 503 with
/// the checks (and `writerStall`, the reason, while the writer is stuck).
struct HealthRoutes: Sendable {
    let store: any RegistryBackend
    let readiness: Readiness

    func register(on router: Router<RegistryRequestContext>) {
        router.get("healthz") { _, _ in RegistryRoutes.json(.object(["status": .string("ok")])) }
        router.get("readyz") { _, _ in
            // Read once, so the check and its reason agree.
            let stall = store.writerStall
            let checks = await readiness.checks(store: store, stall: stall)
            let ready = checks.values.allSatisfy { $0 }
            var body: [String: JSONValue] = ["status": .string(ready ? "ready" : "not ready"), "checks": .object(checks.mapValues(JSONValue.bool))]
            // Only when stuck, so the ready body stays what clients compare (sdk-e2e does).
            if let stall { body["writerStall"] = .string(stall.description) }
            return RegistryRoutes.json(.object(body), status: ready ? .ok : .serviceUnavailable)
        }
    }
}
