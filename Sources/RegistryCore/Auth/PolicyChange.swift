/// One change to one shared access policy, decided by `PolicyStore.apply` inside the writer's
/// transaction from the record as it is then (never from a copy read earlier).
public enum PolicyChange: Sendable, Hashable {
    /// Adds the policy with fresh keys, or changes an existing one's rights and scope (its keys
    /// stay). `scope` nil: unscoped.
    case setRights(AccessRights, scope: PolicyScope? = nil)
    /// A new primary or secondary key (the other one keeps working).
    case rotate(secondary: Bool)
    /// Removes the policy (the last one with all four rights cannot go).
    case remove
}

/// The outcome of a policy change: the changed policy and every policy as of its transaction.
public struct PolicySnapshot: Sendable, Hashable {
    /// The policy as stored; `nil` after a removal.
    public var policy: SharedAccessPolicy?
    /// Every stored policy right after the change.
    public var policies: [SharedAccessPolicy]
    /// The change's generation: higher for every later change, so whoever installs snapshots
    /// (the running daemon's authenticator) can keep the newest when two arrive out of order.
    public var generation: Int64

    package init(policy: SharedAccessPolicy?, policies: [SharedAccessPolicy], generation: Int64) {
        self.policy = policy
        self.policies = policies
        self.generation = generation
    }
}

/// A policy change that is refused, with an operator-facing reason (never a key).
public struct PolicyError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var notFound: Bool
    /// The policy's etag is no longer the one the change was made against (HTTP 412).
    public var preconditionFailed: Bool
    public init(_ description: String, notFound: Bool = false, preconditionFailed: Bool = false) {
        self.description = description
        self.notFound = notFound
        self.preconditionFailed = preconditionFailed
    }

    public static func notFound(_ name: String) -> PolicyError { PolicyError("no policy named '\(name)'", notFound: true) }
}
