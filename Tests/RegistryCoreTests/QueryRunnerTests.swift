import RegistryCore
import Testing

/// Paging and aggregates over any backend's scan (here an array of twins in key order).
struct QueryRunnerTests {
    let twins: [(key: [UInt8], twin: JSONValue)] = (1...5).map { i in
        (Array("d\(i)".utf8), .object(["deviceId": .string("d\(i)"), "status": .string(i % 2 == 0 ? "disabled" : "enabled")]))
    }

    /// A scan that visits the matching twins after `after`, as a backend's would.
    func scan(_ query: DeviceQuery) -> QueryScan {
        { after, _, visit in
            for (key, twin) in twins where after.map({ $0.lexicographicallyPrecedes(key) }) ?? true {
                guard QueryEvaluator.matches(query.filter, twin) else { continue }
                if try !visit(key, twin, 10) { return .stoppedByVisitor }
            }
            return .reachedEnd
        }
    }

    @Test func pagesResumeAfterTheLastReturnedKey() throws {
        let query = try QueryParser.parse("SELECT deviceId FROM devices WHERE status = 'enabled'")
        let first = try QueryRunner.page(query, cursor: nil, pageSize: 2, bounds: .init(), scan: scan(query))
        #expect(first.items == [.object(["deviceId": .string("d1")]), .object(["deviceId": .string("d3")])])
        let cursor = try #require(first.next)
        let second = try QueryRunner.page(query, cursor: cursor, pageSize: 2, bounds: .init(), scan: scan(query))
        #expect(second.items == [.object(["deviceId": .string("d5")])] && second.next == nil)
    }

    @Test func aggregatesAnswerInOnePage() throws {
        let query = try QueryParser.parse("SELECT status, COUNT() AS n FROM devices GROUP BY status")
        let page = try QueryRunner.page(query, cursor: nil, pageSize: 1, bounds: .init(), scan: scan(query))
        #expect(page.next == nil)
        #expect(
            Set(page.items) == [.object(["status": .string("enabled"), "n": .int(3)]), .object(["status": .string("disabled"), "n": .int(2)])]
        )
    }
}
