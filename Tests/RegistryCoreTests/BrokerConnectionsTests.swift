import RegistryCore
import Testing

/// Connection state from a broker's list of open connections: what changes between two lists.
@Suite struct BrokerConnectionsTests {
    typealias B = BrokerConnections

    static func user(_ id: String) -> String { "hub.example.com/\(id)/?api-version=2021-04-12&DeviceClientType=py-azure-iot-device%2F2.14.0" }

    static func list(_ connections: [(String, Int64)]) -> B {
        B(connections.map { B.Connection(username: user($0.0), connectedAt: $0.1) }, now: 1_000)
    }

    @Test func everyOpenConnectionIsReportedFirstThenOnlyChanges() {
        let first = Self.list([("d1", 10), ("d1/m1", 11), ("d2", 12)])
        let initial = first.reports(since: nil, now: 100)
        #expect(initial.map(\.identity.deviceId) == ["d1", "d1", "d2"])
        #expect(initial.map(\.identity.moduleId) == [nil, "m1", nil])
        #expect(initial.allSatisfy { $0.connected })
        #expect(initial.map(\.time) == [10, 11, 12], "each at its connection's own time")
        // d2 went, d3 came; d1 and its module stayed.
        let second = Self.list([("d1", 10), ("d1/m1", 11), ("d3", 50)])
        let changes = second.reports(since: first, now: 200)
        #expect(changes.map { "\($0.identity.deviceId) \($0.connected) \($0.time)" } == ["d2 false 200", "d3 true 50"])
        #expect(second.reports(since: second, now: 300).isEmpty)
    }

    @Test func aReconnectUnderTheSameClientIdIsNeverADisconnect() {
        let before = Self.list([("d1", 10)])
        // The new connection opens before the broker closes the old one: both are listed.
        let both = Self.list([("d1", 10), ("d1", 40)])
        #expect(both.reports(since: before, now: 50).isEmpty)
        // Then only the new one: connected again, at its time.
        let after = Self.list([("d1", 40)])
        let changes = after.reports(since: both, now: 60)
        #expect(changes.count == 1 && changes[0].connected && changes[0].time == 40)
    }

    @Test func usersThatAreNotIdentitiesAreLeftOut() {
        let connections = [
            B.Connection(username: "registryd-observer", connectedAt: 1),
            B.Connection(username: "hub.example.com", connectedAt: 2),
            B.Connection(username: "hub.example.com/d1/m1/extra/?api-version=1", connectedAt: 3),
            B.Connection(username: Self.user("d9"), connectedAt: nil),
        ]
        let snapshot = B(connections, now: 77)
        #expect(snapshot.connected == [B.Identity(deviceId: "d9", moduleId: nil): 77])
    }
}
