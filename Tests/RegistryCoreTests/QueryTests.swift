import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// The query language: parsing (with error positions), evaluation semantics, and paged
/// execution over a real store.
struct QueryTests {
    func twin(_ json: String) throws -> JSONValue { try JSONParser.parse(Array(json.utf8)) }

    @Test func parsesTheSupportedForms() throws {
        let all = try QueryParser.parse("select * from devices where status = 'disabled' and capabilities.iotEdge = true")
        #expect(all.selection == .all)
        #expect(all.source == .devices)
        #expect(
            all.filter
                == .and(
                    .compare(.equal, .path(["status"]), .literal(.string("disabled"))),
                    .compare(.equal, .path(["capabilities", "iotEdge"]), .literal(.bool(true)))
                )
        )
        let top = try QueryParser.parse("SELECT TOP 5 deviceId, status AS s FROM devices.modules")
        #expect(top.top == 5)
        #expect(top.source == .modules)
        #expect(
            top.selection
                == .items(
                    fields: [.init(path: ["deviceId"], alias: "deviceId"), .init(path: ["status"], alias: "s")],
                    aggregates: [],
                    order: ["deviceId", "s"]
                )
        )
        let grouped = try QueryParser.parse("SELECT status, COUNT() AS n FROM devices GROUP BY status")
        #expect(grouped.isAggregate && grouped.groupBy == [["status"]])
        let precedence = try QueryParser.parse("SELECT * FROM devices WHERE NOT a = 1 OR b IN ['x', \"y\"] AND c NIN [1, 2]")
        #expect(
            precedence.filter
                == .or(
                    .not(.compare(.equal, .path(["a"]), .literal(.int(1)))),
                    .and(
                        .member(.path(["b"]), [.literal(.string("x")), .literal(.string("y"))], negated: false),
                        .member(.path(["c"]), [.literal(.int(1)), .literal(.int(2))], negated: true)
                    )
                )
        )
    }

    @Test func syntaxErrorsCarryTheirPosition() {
        let cases: [(String, Int)] = [
            ("SELECT * FROM devices WHERE", 28),
            ("SELECT * FROM things", 15),
            ("SELECT * FROM devices WHERE status = 'open", 38),
            ("SELECT * FROM devices WHERE status == 'x'", 37),
            ("SELECT COUNT() FROM devices", 16),
            ("SELECT * FROM devices WHERE FOO(status)", 29),
            ("SELECT * FROM devices WHERE status ~ 'x'", 36),
            ("SELEC * FROM devices", 1),
            ("SELECT * FROM devices extra", 23),
        ]
        for (text, position) in cases {
            do {
                _ = try QueryParser.parse(text)
                Issue.record("\(text) parsed")
            } catch {
                #expect(error.position == position, "\(text): \(error)")
            }
        }
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse("SELECT status, COUNT() AS n FROM devices GROUP BY deviceId") }
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse("SELECT status FROM devices GROUP BY status") }
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse(String(repeating: " ", count: 8193)) }
    }

    @Test func evaluationFollowsTheLanguage() throws {
        let doc = try twin(
            #"{"deviceId":"Sensor-1","status":"enabled","statusReason":null,"n":4,"capabilities":{"iotEdge":false},"tags":{"site":{"region":"eu"}}}"#
        )
        func holds(_ condition: String) throws -> Bool {
            QueryEvaluator.matches(try QueryParser.parse("SELECT * FROM devices WHERE \(condition)").filter, doc)
        }
        #expect(try holds("status = 'enabled'"))
        #expect(try holds("Status = 'enabled'"), "names fall back to case-insensitive")
        #expect(try !holds("status = 'ENABLED'"), "values are case-sensitive")
        #expect(try holds("tags.site.region = 'eu'"))
        #expect(try !holds("tags.site.city = 'x'"))
        #expect(try !holds("NOT tags.site.city = 'x'"), "undefined stays undefined under NOT")
        #expect(try holds("NOT IS_DEFINED(tags.site.city)"))
        #expect(try holds("IS_DEFINED(statusReason) AND IS_NULL(statusReason)"))
        #expect(try holds("statusReason = null"))
        #expect(try holds("n > 3 AND n <= 4 AND n * 2 = 8 AND n % 3 = 1 AND -n < 0"))
        #expect(try holds("n IN [1, 4]") && holds("n NIN [1, 2]") && holds("n NOT IN [5]"))
        #expect(try holds("STARTS_WITH(deviceId, 'Sensor') AND ENDS_WITH(deviceId, '-1') AND CONTAINS(deviceId, 'sor')"))
        #expect(try !holds("STARTS_WITH(n, '4')"))
        #expect(try !holds("n = '4'"), "no conversion between types")
        #expect(try holds("n != '4'"))
        #expect(try holds("capabilities.iotEdge = false OR missing = 1"))
        #expect(try !holds("capabilities = capabilities"), "objects do not compare")
    }

    @Test func pagesTopCountsAndGroupsOverAStore() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            for i in 0..<7 {
                _ = try await store.execute(
                    .createDevice(DeviceSpec(deviceId: "d\(i)", status: i % 3 == 0 ? .disabled : .enabled)),
                    actor: "t",
                    requestId: "\(i)"
                )
            }
            _ = try await store.execute(.createModule(ModuleSpec(deviceId: "d1", moduleId: "m")), actor: "t", requestId: "m")
            let storage = store.storage

            // Paging: 3 disabled devices (d0, d3, d6), two per page.
            let disabled = try QueryParser.parse("SELECT * FROM devices WHERE status = 'disabled'")
            let first = try storage.queryPage(disabled, cursor: nil, pageSize: 2)
            #expect(first.items.compactMap { $0["deviceId"]?.stringValue } == ["d0", "d3"])
            #expect(first.items.first?["authenticationType"] == .string("sas"))
            #expect(first.items.first?["tags"] == .object([:]))
            #expect(first.items.first?["properties"]?["desired"]?["$version"] == .int(1))
            let next = try #require(first.next)
            let second = try storage.queryPage(disabled, cursor: next, pageSize: 2)
            #expect(second.items.compactMap { $0["deviceId"]?.stringValue } == ["d6"])
            #expect(second.next == nil)

            // TOP limits across pages.
            let top = try QueryParser.parse("SELECT TOP 3 deviceId FROM devices")
            let topFirst = try storage.queryPage(top, cursor: nil, pageSize: 2)
            #expect(topFirst.items == [.object(["deviceId": .string("d0")]), .object(["deviceId": .string("d1")])])
            let topNext = try #require(topFirst.next)
            let topSecond = try storage.queryPage(top, cursor: topNext, pageSize: 2)
            #expect(topSecond.items == [.object(["deviceId": .string("d2")])])
            #expect(topSecond.next == nil)

            // Aggregates answer one page.
            let count = try storage.queryPage(try QueryParser.parse("SELECT COUNT() AS total FROM devices"), cursor: nil, pageSize: 1)
            #expect(count.items == [.object(["total": .int(7)])])
            let none = try storage.queryPage(
                try QueryParser.parse("SELECT COUNT() AS n FROM devices WHERE deviceId = 'x'"),
                cursor: nil,
                pageSize: 10
            )
            #expect(none.items == [.object(["n": .int(0)])])
            let grouped = try storage.queryPage(
                try QueryParser.parse("SELECT status, COUNT() AS n FROM devices GROUP BY status"),
                cursor: nil,
                pageSize: 10
            )
            #expect(
                Set(grouped.items) == [
                    .object(["status": .string("disabled"), "n": .int(3)]), .object(["status": .string("enabled"), "n": .int(4)]),
                ]
            )
            let modules = try storage.queryPage(try QueryParser.parse("SELECT deviceId, moduleId FROM devices.modules"), cursor: nil, pageSize: 10)
            #expect(modules.items == [.object(["deviceId": .string("d1"), "moduleId": .string("m")])])
            store.close()
        }
    }
}

extension QueryTests {
    /// The byte prefilter never changes results: chunked scans with skipped documents give the
    /// same answers as evaluating every document.
    @Test func prefilteredScansAcrossChunksMatchFullEvaluation() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            var commands: [Command] = []
            for i in 0..<400 {
                let auth = i % 7 == 0 ? AuthenticationSpec(type: .certificateAuthority) : nil
                commands.append(
                    .createDevice(
                        DeviceSpec(
                            deviceId: String(format: "p%04d", i),
                            status: i % 5 == 0 ? .disabled : .enabled,
                            statusReason: i % 5 == 1 ? "x\",\"status\":\"disabled" : nil,
                            authentication: auth
                        )
                    )
                )
            }
            _ = try await store.execute(commands, actor: "t", requestId: "seed")
            for text in [
                "SELECT * FROM devices WHERE status = 'disabled'",
                "SELECT deviceId FROM devices WHERE Status = 'enabled' AND authenticationType = 'certificateAuthority'",
                "SELECT * FROM devices WHERE capabilities.iotEdge = false AND status = 'disabled' AND deviceId = 'p0100'",
                "SELECT * FROM devices WHERE statusReason = 'x\",\"status\":\"disabled'",
            ] {
                let query = try QueryParser.parse(text)
                var paged: [JSONValue] = []
                var cursor: QueryCursor?
                repeat {
                    let page = try store.storage.queryPage(query, cursor: cursor, pageSize: 7, chunkWork: 25)
                    paged += page.items
                    cursor = page.next
                } while cursor != nil
                // Reference: every device evaluated without the prefilter.
                let everything = try store.storage.queryPage(try QueryParser.parse("SELECT * FROM devices"), cursor: nil, pageSize: 1000).items
                let expected = everything.filter { QueryEvaluator.matches(query.filter, $0) }.map { RegistryStorage.projectForTests(query, $0) }
                #expect(paged == expected, "\(text)")
                #expect(!expected.isEmpty, "\(text)")
                let counted = try store.storage.queryPage(
                    try QueryParser.parse(
                        text.replacingOccurrences(of: "SELECT deviceId", with: "SELECT COUNT() AS n").replacingOccurrences(
                            of: "SELECT *",
                            with: "SELECT COUNT() AS n"
                        )
                    ),
                    cursor: nil,
                    pageSize: 1,
                    chunkWork: 25
                )
                #expect(counted.items == [.object(["n": .int(Int64(expected.count))])], "\(text)")
            }
            store.close()
        }
    }
}

extension QueryTests {
    /// Issue 17 item 6: one request's query work is bounded. A page stops at its byte or time
    /// bound with a continuation that loses nothing; an aggregate over its group or time bound
    /// fails instead of growing without end.
    @Test func pagesStopAtTheirBoundsAndStillVisitEverything() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let commands = (0..<700).map { Command.createDevice(DeviceSpec(deviceId: String(format: "b%04d", $0))) }
            _ = try await store.execute(commands, actor: "t", requestId: "seed")
            let all = try QueryParser.parse("SELECT deviceId FROM devices")
            let ids = (0..<700).map { String(format: "b%04d", $0) }
            for bounds in [QueryBounds(pageBytes: 2000), QueryBounds(pageTime: .zero)] {
                var seen: [String] = []
                var cursor: QueryCursor?
                var pages = 0
                repeat {
                    let page = try store.storage.queryPage(all, cursor: cursor, pageSize: 1000, bounds: bounds)
                    seen += page.items.compactMap { $0["deviceId"]?.stringValue }
                    cursor = page.next
                    pages += 1
                } while cursor != nil && pages < 10_000
                #expect(seen == ids, "\(bounds)")
                #expect(pages > 1, "the bound cut the 1000-item page short: \(bounds)")
            }
            // Aggregates: more groups than allowed, or longer than allowed, fail.
            let grouped = try QueryParser.parse("SELECT deviceId, COUNT() AS n FROM devices GROUP BY deviceId")
            #expect(throws: QueryLimitError.self) {
                try store.storage.queryPage(grouped, cursor: nil, pageSize: 10, bounds: QueryBounds(groups: 100))
            }
            #expect(try store.storage.queryPage(grouped, cursor: nil, pageSize: 10, bounds: QueryBounds(groups: 700)).items.count == 700)
            let count = try QueryParser.parse("SELECT COUNT() AS n FROM devices")
            #expect(throws: QueryLimitError.self) {
                try store.storage.queryPage(count, cursor: nil, pageSize: 1, bounds: QueryBounds(aggregateTime: .zero))
            }
            #expect(try store.storage.queryPage(count, cursor: nil, pageSize: 1).items == [.object(["n": .int(700)])])
            store.close()
        }
    }
}
