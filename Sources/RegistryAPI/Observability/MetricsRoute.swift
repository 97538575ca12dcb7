import HTTPTypes
import Hummingbird
import NIOCore
import RegistryCore

/// `GET /metrics`: Prometheus text format. Needs the `Metrics` right (a policy that can read
/// nothing else, for Prometheus) or RegistryRead (what it needed before `Metrics` existed, kept so
/// existing scrape configurations keep working), unless the operator opened it (`metrics.open` in
/// the configuration file, for a local Prometheus without tokens).
struct MetricsRoute: Sendable {
    let store: any RegistryBackend
    let delivery: (any RouteAdministration)?
    let metrics: RegistryMetrics
    let open: Bool

    func register(on router: Router<RegistryRequestContext>) {
        router.get("metrics") { _, context in
            if !open {
                try context.requireAny(of: [.metrics, .registryRead])
                // Registry-wide counts and route state: not for a scoped policy.
                try context.requireUnscoped("the metrics")
            }
            let text = await metrics.scrape(store: store, delivery: delivery)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text))
            )
        }
    }
}
