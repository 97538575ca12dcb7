/// One change to one shared access policy, decided by `PolicyStore.apply` inside the writer's
/// transaction from the record as it is then (never from a copy read earlier).
public enum PolicyChange: Sendable, Hashable {
    /// Adds the policy with fresh keys, or changes an existing one's rights (its keys stay).
    case setRights(AccessRights)
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
}
