import RegistryCore
import Testing

@testable import RegistryDelivery

/// Issue 18 item 6: registry queries and route conditions are one language. The same text gives
/// the same result through both fronts wherever the dialects agree; each real difference is the
/// `QueryDialect` switch; each place where the two implementations used to disagree is pinned.
struct ExpressionLanguageTests {
    /// The same facts as a twin (query front) and as a message (route front).
    static let twin: JSONValue = .object(["deviceId": .string("sensor-42"), "opType": .string("createDeviceIdentity")])
    static let message = FakeMessage(application: ["deviceId": "sensor-42", "opType": "createDeviceIdentity"], system: [:], body: .object([:]))

    /// The result through the query front: `true`, `false` or `nil` (undefined).
    static func query(_ condition: String) throws -> Bool? {
        let filter = try QueryParser.parse("SELECT * FROM devices WHERE \(condition)").filter!
        guard case .bool(let b)? = QueryEvaluator.value(filter, twin) else { return nil }
        return b
    }

    static func route(_ condition: String, _ message: FakeMessage = message) throws -> Bool? {
        try RouteCondition(condition).evaluate(message)
    }

    static let agreed: [(String, Bool?)] = [
        // string ordering: ordinal, by Unicode scalars, no normalisation
        ("'b' > 'a'", true), ("'B' < 'a'", true), ("'a' < 'ab'", true), ("'é' > 'z'", true),
        ("'e\u{301}' = 'é'", false), ("'e\u{301}' < 'é'", true), ("'abc' >= 'abc' AND 'abc' <= 'abc'", true),
        // quotes and escapes
        ("'it''s' = \"it's\"", true), ("'it\\'s' = \"it's\"", true), ("\"say \"\"hi\"\"\" = 'say \"hi\"'", true),
        ("'a\\\\b' = \"a\\\\b\"", true), ("'\\u0041' = 'A'", true), ("'\\uD83D\\uDCA9' = '\u{1F4A9}'", true), ("'' = \"\"", true),
        // keywords in any case
        ("true AND True AND tRuE", true), ("NOT false", true), ("not FALSE and TRUE", true), ("null = NULL", true), ("false Or TRUE", true),
        // numbers and arithmetic
        ("1 = 1.0", true), ("2.5e1 = 25", true), ("1e-1 < 1", true), ("-3 < -2", true), ("10 / 4 = 2.5", true), ("7 % 4 = 3", true),
        ("1 + 2 * 3 = 7", true), ("(1 + 2) * 3 = 9", true), ("1 / 0 = 1", nil),
        // types: no conversion, booleans and null only (in)equal
        ("1 = '1'", false), ("1 != '1'", true), ("true = 'true'", false), ("null = 0", false), ("null < 1", nil), ("true < false", nil),
        // IN / NIN / NOT IN
        ("2 IN [1, 2]", true), ("'x' NIN ['a']", true), ("3 NOT IN (1, 2)", true), ("2 in [1]", false), ("moduleId IN [1]", nil),
        // the function library, names in any case
        ("STARTS_WITH(deviceId, 'sensor')", true), ("starts_with(deviceId, 'x')", false), ("ends_with('ab', 'b')", true),
        ("CONTAINS('abc', '')", true), ("contains(opType, 'Device')", true), ("lower('AbC') = 'abc'", true), ("UPPER(deviceId) = 'SENSOR-42'", true),
        ("IS_NULL(null)", true), ("is_null(deviceId)", false), ("is_defined(deviceId)", true), ("IS_DEFINED(moduleId)", false),
        ("STARTS_WITH('e\u{301}', 'e')", true), ("ENDS_WITH(1, '1')", nil),
        // references: exact names, then ignoring case; undefined is three-valued
        ("deviceId = 'sensor-42'", true), ("DEVICEID = 'sensor-42'", true), ("opType <> 'deleteDeviceIdentity'", true),
        ("moduleId = 'm'", nil), ("NOT (moduleId = 'm')", nil), ("moduleId = 'm' OR true", true), ("moduleId = 'm' AND false", false),
    ]

    @Test(arguments: agreed)
    func theSameTextGivesTheSameResultInBothFronts(_ condition: String, _ expected: Bool?) throws {
        #expect(try Self.query(condition) == expected, "query: \(condition)")
        #expect(try Self.route(condition) == expected, "route: \(condition)")
    }

    @Test(arguments: [
        "a == b", "'open", "(true", "true)", "nosuchfn(1)", "starts_with(deviceId)", "is_defined('x')", "is_defined(lower(deviceId))",
        "#", "1e", "'\\u12'", "'\\uD83D'", "deviceId =", "x IN 1", String(repeating: "NOT ", count: QueryParser.maximumDepth + 1) + "true",
    ])
    func theSameTextIsRefusedByBothFronts(_ condition: String) {
        #expect(throws: QuerySyntaxError.self, "query: \(condition)") { try QueryParser.parse("SELECT * FROM devices WHERE \(condition)") }
        #expect(throws: ConditionError.self, "route: \(condition)") { try RouteCondition(condition) }
    }

    // MARK: the dialect switch: what a name refers to

    @Test func aDottedNameIsATwinPathInAQueryAndOneApplicationPropertyInARoute() throws {
        let text = "site.region = 'eu'"
        let value = ComparisonOperator.equal
        #expect(try QueryParser.parseCondition(text, dialect: .registryQuery) == .compare(value, .path(["site", "region"]), .literal(.string("eu"))))
        #expect(try QueryParser.parseCondition(text, dialect: .routing) == .compare(value, .path(["site.region"]), .literal(.string("eu"))))
        let filter = try QueryParser.parse("SELECT * FROM devices WHERE \(text)").filter
        #expect(QueryEvaluator.matches(filter, .object(["site": .object(["region": .string("eu")])])))
        #expect(try Self.route(text, FakeMessage(application: ["site.region": "eu"], system: [:], body: .object([:]))) == true)
        #expect(try Self.route(text, FakeMessage(application: [:], system: [:], body: .object(["site": .object(["region": .string("eu")])]))) == nil)
    }

    @Test func aDollarNameIsATwinMemberInAQueryAndASystemPropertyInARoute() throws {
        #expect(try QueryParser.parseCondition("$connectionDeviceId", dialect: .registryQuery) == .path(["$connectionDeviceId"]))
        #expect(try QueryParser.parseCondition("$connectionDeviceId", dialect: .routing) == .systemProperty("connectionDeviceId"))
        let filter = try QueryParser.parse("SELECT * FROM devices WHERE $version = 3").filter
        #expect(QueryEvaluator.matches(filter, .object(["$version": .int(3)])))
        let message = FakeMessage(application: ["$custom": "c"], system: ["connectiondeviceid": "d"], body: .object([:]))
        #expect(try Self.route("$connectionDeviceId = 'd'", message) == true)
        #expect(try Self.route("$custom = 'c'", message) == true, "not a system property: the application property of that name")
    }

    @Test func bodyPathsWithIndexesAreRoutingOnly() throws {
        let body: JSONValue = .object(["tags": .array([.object(["x": .int(7)])])])
        #expect(try Self.route("$body.tags[0].x = 7", FakeMessage(body: body)) == true)
        #expect(try QueryParser.parseCondition("$body.tags[0].x", dialect: .routing) == .body([.member("tags"), .index(0), .member("x")]))
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse("SELECT * FROM devices WHERE $body.tags[0].x = 7") }
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse("SELECT * FROM devices WHERE tags[0] = 7") }
        // In a query `$body` is only a (missing) twin member.
        #expect(try QueryParser.parseCondition("$body.tags", dialect: .registryQuery) == .path(["$body", "tags"]))
    }

    // MARK: not the dialect: what a whole query adds around its WHERE clause

    @Test func aWholeQueryReservesItsStatementWordsAndBoundsItsLength() throws {
        #expect(try Self.route("from = 'x'", FakeMessage(application: ["from": "x"], system: [:], body: .object([:]))) == true)
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse("SELECT * FROM devices WHERE from = 'x'") }
        let long = "deviceId = '" + String(repeating: "x", count: QueryParser.maximumLength) + "'"
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse("SELECT * FROM devices WHERE \(long)") }
        #expect(try Self.route(long) == false)
    }

    // MARK: where the two implementations used to disagree, the Azure-correct choice

    @Test func objectsAndArraysDoNotCompareInARouteEither() throws {
        // Routes used to answer `=` false and `!=` true; Azure compares primitives only.
        let body: JSONValue = .object(["tags": .object(["a": .int(1)]), "list": .array([.int(1)])])
        #expect(try Self.route("$body.tags != 1", FakeMessage(body: body)) == nil)
        #expect(try Self.route("$body.list = $body.list", FakeMessage(body: body)) == nil)
        #expect(try Self.route("NOT ($body.tags = 'x')", FakeMessage(body: body)) == nil)
    }

    @Test func routeStringsTakeAzuresBackslashEscapes() throws {
        // Routes used to keep a backslash as itself; Azure's escapes are \' \" \\ \uXXXX.
        #expect(try Self.route(#"'a\'b' = "a'b""#) == true)
        #expect(try Self.route(#"'C:\\dir' != 'C:\\\\dir'"#) == true)
        #expect(try Self.route(#"starts_with('C:\\dir', 'C:\\')"#) == true)
        #expect(throws: ConditionError.self) { try RouteCondition(#"deviceId = 'C:\'"#) }
    }

    @Test func queriesTakeDoubledQuotesAndTheWholeFunctionLibrary() throws {
        let doc: JSONValue = .object(["name": .string("it's"), "deviceId": .string("Sensor")])
        func holds(_ condition: String) throws -> Bool {
            QueryEvaluator.matches(try QueryParser.parse("SELECT * FROM devices WHERE \(condition)").filter, doc)
        }
        #expect(try holds("name = 'it''s'"))
        #expect(try holds("LOWER(deviceId) = 'sensor' AND upper(deviceId) = 'SENSOR'"))
        #expect(try holds("IS_NULL(statusReason) = false") == false, "undefined, not false")
        #expect(try Self.route("is_null($body.missing)") == nil)
        #expect(try Self.route("is_null($body.n)", FakeMessage(body: .object(["n": .null]))) == true)
    }

    @Test func equalityIsOrdinalLikeOrderingInBothFronts() throws {
        // Swift's String == and < say "é" (U+00E9) equals "e" + U+0301; the query front's order
        // was already by bytes, so equality and order disagreed there, and the byte pre-filter
        // of the query executor (which matches stored bytes) disagreed with equality.
        let doc: JSONValue = .object(["name": .string("caf\u{E9}")])
        let filter = try QueryParser.parse("SELECT * FROM devices WHERE name = 'cafe\u{301}'").filter
        #expect(!QueryEvaluator.matches(filter, doc))
        #expect(try Self.route("$body.name = 'cafe\u{301}'", FakeMessage(body: doc)) == false)
        #expect(try Self.route("$body.name > 'cafe\u{301}'", FakeMessage(body: doc)) == true)
    }

    @Test func keywordsNameMembersAfterADotInBothFronts() throws {
        // Routes lexed `$body.in` as one word; queries refused `tags.in`. Both accept either now.
        let body: JSONValue = .object(["in": .int(1), "null": .object(["not": .bool(true)])])
        #expect(try Self.route("$body.in = 1 AND $body.null.not = true", FakeMessage(body: body)) == true)
        let filter = try QueryParser.parse("SELECT * FROM devices WHERE tags.in = 1").filter
        #expect(QueryEvaluator.matches(filter, .object(["tags": .object(["in": .int(1)])])))
    }

    @Test func bodyMembersFallBackToTheirNameIgnoringCaseBeyondASCII() throws {
        // Routes folded only ASCII letters in body paths; queries and now both use full case folding.
        #expect(try Self.route("$body.ÉTAT = 1", FakeMessage(body: .object(["état": .int(1)]))) == true)
        #expect(QueryEvaluator.matches(try QueryParser.parse("SELECT * FROM devices WHERE ÉTAT = 1").filter, .object(["état": .int(1)])))
    }
}
