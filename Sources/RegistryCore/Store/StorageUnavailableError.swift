/// The storage could not be reached (a networked backend's database is down, failing over or
/// unreachable): nothing was written by the request that got it, and retrying later is safe.
/// The API answers 503 `ServiceUnavailable` with `Retry-After`.
public struct StorageUnavailableError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    /// When a retry may succeed (a failover usually completes within seconds).
    public var retryAfter: Duration

    public init(_ description: String, retryAfter: Duration = .seconds(2)) {
        self.description = description
        self.retryAfter = retryAfter
    }
}
