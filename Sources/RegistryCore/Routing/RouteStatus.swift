/// The lifecycle router as operators see it (shared by delivery and the API that shows it).

/// Endpoint health, as Azure reports it.
public enum EndpointHealth: String, Sendable, Hashable {
    case healthy, unhealthy, dead
}

/// What `GET /registry/routes` shows of one route.
public struct RouteStatus: Sendable, Hashable {
    public var name: String
    public var source: String
    public var condition: String
    public var endpoint: String
    public var endpointType: String
    public var isEnabled: Bool
    public var health: EndpointHealth
    /// The last sequence number the route has finished with (delivered, filtered out or parked).
    public var cursor: UInt64
    /// Committed events the route has not finished with yet.
    public var lag: UInt64
    public var delivered: UInt64
    /// Failed delivery attempts (each retried).
    public var failedAttempts: UInt64
    public var parked: Int
    /// Messages whose condition evaluated to undefined (counted as false).
    public var undefinedConditions: UInt64
    public var lastError: String?

    public init(
        name: String,
        source: String,
        condition: String,
        endpoint: String,
        endpointType: String,
        isEnabled: Bool,
        health: EndpointHealth,
        cursor: UInt64,
        lag: UInt64,
        delivered: UInt64,
        failedAttempts: UInt64,
        parked: Int,
        undefinedConditions: UInt64,
        lastError: String?
    ) {
        self.name = name
        self.source = source
        self.condition = condition
        self.endpoint = endpoint
        self.endpointType = endpointType
        self.isEnabled = isEnabled
        self.health = health
        self.cursor = cursor
        self.lag = lag
        self.delivered = delivered
        self.failedAttempts = failedAttempts
        self.parked = parked
        self.undefinedConditions = undefinedConditions
        self.lastError = lastError
    }
}

/// A message kept after its retry window ran out.
public struct ParkedMessage: Sendable, Hashable {
    public var seq: UInt64
    public var message: JSONValue

    public init(seq: UInt64, message: JSONValue) {
        self.seq = seq
        self.message = message
    }
}
