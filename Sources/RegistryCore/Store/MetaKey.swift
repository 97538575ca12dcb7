/// Names of the meta settings every backend keeps (`metaString` / `setMetaString`).
public enum MetaKey {
    /// The hub name, fixed at first start; it appears in lifecycle messages and their ids.
    public static let hubName = "hubName"
    /// The host name `serve` last ran with: what SAS tokens must name.
    public static let hostName = "hostName"
    /// The last policy generation given out (decimal text): every policy change takes the next
    /// one as the changed policy's version, so an etag is never reused, even by a policy
    /// removed and added again.
    public static let policyGeneration = "policies.generation"
    /// "2" once every policy's keys are sealed under version 2 contexts (`SealingContext`).
    public static let policySealing = "policies.sealing"
}
