/// What the API shows and does of the lifecycle router (`/registry/routes…`, `/metrics`, the
/// event stream's hub name). The delivery service conforms; the daemon hands it to the API as
/// this protocol, so the HTTP target does not depend on the delivery target.
public protocol RouteAdministration: Sendable {
    /// The hub name lifecycle messages carry.
    var hubName: String { get }
    /// Every configured route's status, in configuration order.
    func statuses() async -> [RouteStatus]
    func routeExists(_ name: String) -> Bool
    /// A route's parked messages in sequence order.
    func parkedMessages(route: String) async throws -> [ParkedMessage]
    /// Asks the route's worker to deliver its parked messages again.
    func redeliverParked(route: String)
    /// Re-enables a route whose endpoint was declared dead.
    func enable(route: String) async throws
}
