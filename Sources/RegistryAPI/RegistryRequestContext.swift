import Hummingbird
import NIOCore
import RegistryCore

/// Per-request state: who is calling (set by the SAS middleware) and the request id.
public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The policy whose token authenticated the request (`nil` on unauthenticated probes).
    public var policy: SharedAccessPolicy?
    /// The client's request id (`x-ms-client-request-id` or `Request-Id`) or a generated one.
    public var requestId: String = ""

    /// The connection the request came on (long-lived responses close it when the client stalls).
    public let channel: any Channel

    public init(source: Source) {
        coreContext = .init(source: source)
        channel = source.channel
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

    /// The caller's scope (`nil`: unscoped, every identity).
    var scope: PolicyScope? { policy?.scope }

    /// `command` as the caller may run it: inside its scope (see `Command.scoped`).
    func scoped(_ command: Command) -> Command { scope.map { .scoped(command, $0) } ?? command }

    /// 401 for a scoped caller: `what` reaches every identity (or the registry itself), which no
    /// scope can bound.
    func requireUnscoped(_ what: String) throws {
        guard let policy, policy.scope != nil else { return }
        throw APIError.unauthorized("The policy '\(policy.name)' is scoped to some identities; \(what) reaches all of them.")
    }

    /// Whether the caller's scope holds the identity stored as `document` (canonical stored or
    /// opened JSON); always for an unscoped caller.
    func sees(_ document: [UInt8]) -> Bool {
        guard let scope else { return true }
        return (try? scope.admits(stored: document)) ?? false
    }
}
