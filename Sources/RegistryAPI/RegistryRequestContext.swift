import Hummingbird
import RegistryCore

/// Per-request state: who is calling (set by the SAS middleware) and the request id.
public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The policy whose token authenticated the request (`nil` on unauthenticated probes).
    public var policy: SharedAccessPolicy?
    /// The client's request id (`x-ms-client-request-id` or `Request-Id`) or a generated one.
    public var requestId: String = ""

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// Fails unless the caller's policy grants `rights`.
    func require(_ rights: AccessRights) throws {
        guard let policy, policy.rights.allow(rights) else { throw APIError.unauthorized }
    }

    /// Throws 401 unless the caller's policy allows at least one of `alternatives` (a route that
    /// a narrow right opens, and a broader one too).
    func requireAny(of alternatives: [AccessRights]) throws {
        guard let policy, alternatives.contains(where: { policy.rights.allow($0) }) else { throw APIError.unauthorized }
    }

    /// The actor recorded in events: the policy name.
    var actor: String { policy?.name ?? "anonymous" }
}
