import RegistryCore

/// What an endpoint made of a delivery attempt.
public enum DeliveryOutcome: Sendable, Hashable {
    case delivered
    /// HTTP 410: the receiver is gone for good; the route stops until re-enabled.
    case gone(String)
    /// Anything else (a non-2xx status, a timeout, a refused connection): retried.
    case failed(String)
}

/// An endpoint. `deliver` returns only once the messages are durable at the endpoint (fsync'd,
/// or acknowledged with a 2xx): only then may the route's cursor move.
public protocol Sink: Sendable {
    /// Messages per attempt (a file takes many per fsync; a webhook one per request).
    var maxBatch: Int { get }
    func deliver(_ messages: [RouteMessage]) async -> DeliveryOutcome
    func shutdown() async
}
