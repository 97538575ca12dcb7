/// Connection state from a broker's list of its open connections (RabbitMQ's management API,
/// `registryd rabbitmq-bridge`): which identities have at least one connection, and the reports
/// that move the registry from one list to the next.
///
/// Built from the state, not from connect and disconnect events, so nothing is lost with a
/// missed event or a restart of the bridge, and a device that reconnects with the same client
/// id (its new connection opens before the old one closes) never reads as disconnected.
public struct BrokerConnections: Sendable, Hashable {
    public struct Identity: Sendable, Hashable, Comparable {
        public var deviceId: String
        public var moduleId: String?

        public init(deviceId: String, moduleId: String?) {
            self.deviceId = deviceId
            self.moduleId = moduleId
        }

        public static func < (a: Identity, b: Identity) -> Bool {
            (a.deviceId, a.moduleId ?? "") < (b.deviceId, b.moduleId ?? "")
        }
    }

    /// One open connection as the broker lists it: its user name (Azure's MQTT convention,
    /// `{host}/{deviceId}[/{moduleId}]/?api-version=…`) and when it opened (Unix milliseconds).
    public struct Connection: Sendable, Hashable {
        public var username: String
        public var connectedAt: Int64?

        public init(username: String, connectedAt: Int64?) {
            self.username = username
            self.connectedAt = connectedAt
        }
    }

    /// Identities with an open connection → when the earliest of them opened.
    public private(set) var connected: [Identity: Int64]

    /// A list of connections; those whose user name is not an identity by Azure's convention
    /// (the broker's own users, a mistyped client) are left out.
    public init(_ connections: [Connection], now: Int64) {
        var connected: [Identity: Int64] = [:]
        for connection in connections {
            guard let identity = Self.identity(username: connection.username) else { continue }
            let time = connection.connectedAt ?? now
            connected[identity] = min(connected[identity] ?? time, time)
        }
        self.connected = connected
    }

    /// The identity a user name names (the client id the convention implies is taken as given:
    /// the broker asked registryd at CONNECT, which checked it).
    static func identity(username: String) -> Identity? {
        let path = username.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count >= 2 else { return nil }
        let module = segments.count >= 3 && !segments[2].isEmpty ? "/\(segments[2])" : ""
        guard let parsed = MQTTConnectIdentity(username: username, clientId: "\(segments[1])\(module)") else { return nil }
        return Identity(deviceId: parsed.deviceId, moduleId: parsed.moduleId)
    }

    /// The reports that take the registry from `previous` (nil: nothing known, so every open
    /// connection is reported) to this list, in identity order: connected with the connection's
    /// time, disconnected at `now`.
    public func reports(since previous: BrokerConnections?, now: Int64) -> [(identity: Identity, connected: Bool, time: Int64)] {
        let before = previous?.connected ?? [:]
        var reports: [(identity: Identity, connected: Bool, time: Int64)] = []
        // New, or connected again since (its earliest open connection is a later one).
        for (identity, time) in connected where before[identity].map({ $0 < time }) ?? true {
            reports.append((identity, true, time))
        }
        for identity in before.keys where connected[identity] == nil {
            reports.append((identity, false, now))
        }
        return reports.sorted { ($0.identity, $0.connected ? 1 : 0) < ($1.identity, $1.connected ? 1 : 0) }
    }
}
