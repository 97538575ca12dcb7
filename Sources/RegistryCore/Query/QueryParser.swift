/// Recursive-descent parser for `DeviceQuery`. Precedence, loosest first: OR, AND, NOT,
/// comparison / IN, + -, * / %, unary minus.
///
/// Depth is bounded (`maximumDepth`): both how deep the parser recurses (parentheses, NOT,
/// unary minus) and how deep the tree it builds is (a chain `a AND b AND c` nests one level per
/// operator). The parser, the evaluator and even the tree's deallocation recurse over that
/// depth, so without the bound a query of a few kilobytes overflows the stack.
public enum QueryParser {
    /// Deepest expression accepted; deeper answers a syntax error naming this limit.
    public static let maximumDepth = 128

    public static func parse(_ text: String) throws(QuerySyntaxError) -> DeviceQuery {
        var parser = Parser(tokens: try QueryLexer.tokens(text))
        return try parser.query()
    }
}

private struct Parser {
    let tokens: [QueryToken]
    var index = 0
    /// How deep the parser has recursed into expressions.
    var nesting = 0
    /// Tree depth of the expression the last expression function returned.
    var lastDepth = 0

    init(tokens: [QueryToken]) { self.tokens = tokens }

    var current: QueryToken { tokens[index] }

    mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    func fail(_ message: String, at token: QueryToken? = nil) -> QuerySyntaxError {
        let t = token ?? current
        let found: String
        switch t.kind {
        case .end: found = "the end of the query"
        case .identifier(let s), .keyword(let s), .number(let s), .symbol(let s): found = "'\(s)'"
        case .string(let s): found = "'\(s)'"
        }
        return QuerySyntaxError(position: t.position, message: "\(message), found \(found)")
    }

    mutating func accept(keyword: String) -> Bool {
        if case .keyword(keyword) = current.kind {
            advance()
            return true
        }
        return false
    }

    mutating func expect(keyword: String) throws(QuerySyntaxError) {
        guard accept(keyword: keyword) else { throw fail("expected \(keyword)") }
    }

    mutating func accept(symbol: String) -> Bool {
        if case .symbol(symbol) = current.kind {
            advance()
            return true
        }
        return false
    }

    mutating func expect(symbol: String) throws(QuerySyntaxError) {
        guard accept(symbol: symbol) else { throw fail("expected '\(symbol)'") }
    }

    mutating func identifier(_ what: String) throws(QuerySyntaxError) -> String {
        guard case .identifier(let name) = current.kind else { throw fail("expected \(what)") }
        advance()
        return name
    }

    /// `name(.name)*`
    mutating func path() throws(QuerySyntaxError) -> [String] {
        var parts = [try identifier("a property name")]
        while accept(symbol: ".") { parts.append(try identifier("a property name after '.'")) }
        return parts
    }

    mutating func query() throws(QuerySyntaxError) -> DeviceQuery {
        try expect(keyword: "SELECT")
        var top: Int?
        if accept(keyword: "TOP") {
            guard case .number(let text) = current.kind, let n = Int(text), n > 0 else { throw fail("expected a positive whole number after TOP") }
            top = n
            advance()
        }
        let selection = try selectionList()
        try expect(keyword: "FROM")
        let fromToken = current
        let from = try path()
        let source: DeviceQuery.Source
        switch from.map({ $0.lowercased() }) {
        case ["devices"]: source = .devices
        case ["devices", "modules"]: source = .modules
        default: throw fail("expected devices or devices.modules after FROM", at: fromToken)
        }
        var filter: QueryExpression?
        if accept(keyword: "WHERE") { filter = try orExpression() }
        var groupBy: [[String]] = []
        if accept(keyword: "GROUP") {
            try expect(keyword: "BY")
            repeat { groupBy.append(try path()) } while accept(symbol: ",")
        }
        guard case .end = current.kind else { throw fail("expected the end of the query") }
        let query = DeviceQuery(selection: selection, top: top, source: source, filter: filter, groupBy: groupBy)
        try check(query)
        return query
    }

    /// Aggregates and grouping must agree: a grouped query selects only grouped fields and aggregates.
    func check(_ query: DeviceQuery) throws(QuerySyntaxError) {
        guard !query.groupBy.isEmpty else {
            if case .items(let fields, let aggregates, _) = query.selection, !aggregates.isEmpty, !fields.isEmpty {
                throw QuerySyntaxError(position: 1, message: "fields next to aggregates need GROUP BY those fields")
            }
            return
        }
        guard case .items(let fields, let aggregates, _) = query.selection, !aggregates.isEmpty else {
            throw QuerySyntaxError(position: 1, message: "GROUP BY needs an aggregate such as COUNT() AS n in the SELECT list")
        }
        let grouped = Set(query.groupBy.map { $0.map { $0.lowercased() } })
        for field in fields where !grouped.contains(field.path.map { $0.lowercased() }) {
            throw QuerySyntaxError(position: 1, message: "'\(field.path.joined(separator: "."))' is selected but not in GROUP BY")
        }
    }

    mutating func selectionList() throws(QuerySyntaxError) -> DeviceQuery.Selection {
        if accept(symbol: "*") { return .all }
        var fields: [DeviceQuery.Field] = []
        var aggregates: [DeviceQuery.Aggregate] = []
        var order: [String] = []
        repeat {
            let token = current
            if case .identifier(let name) = token.kind, let function = DeviceQuery.Aggregate.Function(rawValue: name.uppercased()),
                case .symbol("(") = tokens[index + 1].kind
            {
                advance()
                advance()
                var argument: [String]?
                if function != .count || !accept(symbol: ")") {
                    if function == .count, accept(symbol: "*") {
                        argument = nil
                    } else {
                        argument = try path()
                    }
                    try expect(symbol: ")")
                }
                guard accept(keyword: "AS") else { throw fail("an aggregate needs AS name") }
                let alias = try identifier("a name after AS")
                aggregates.append(DeviceQuery.Aggregate(function: function, path: argument, alias: alias))
                order.append(alias)
            } else {
                let path = try path()
                let alias = accept(keyword: "AS") ? try identifier("a name after AS") : path.last!
                fields.append(DeviceQuery.Field(path: path, alias: alias))
                order.append(alias)
            }
        } while accept(symbol: ",")
        return .items(fields: fields, aggregates: aggregates, order: order)
    }

    var tooDeep: QuerySyntaxError {
        QuerySyntaxError(position: current.position, message: "the expression nests deeper than \(QueryParser.maximumDepth) levels (parentheses, NOT, and chained operators count)")
    }

    /// One level of recursion in; the caller leaves with `nesting -= 1`.
    mutating func enter() throws(QuerySyntaxError) {
        nesting += 1
        if nesting > QueryParser.maximumDepth { throw tooDeep }
    }

    /// The depth of a node over children of depths `a` and `b`, checked before the node is built.
    func node(_ a: Int, _ b: Int = 0) throws(QuerySyntaxError) -> Int {
        let depth = max(a, b) + 1
        if depth > QueryParser.maximumDepth { throw tooDeep }
        return depth
    }

    /// `operand (operator operand)*`, left-associative: `next` consumes an operator and says how
    /// to join, or answers nil at the end of the chain. Each link deepens the tree, checked as
    /// it grows.
    mutating func chain(
        _ operand: (inout Parser) throws(QuerySyntaxError) -> QueryExpression,
        while next: (inout Parser) -> ((QueryExpression, QueryExpression) -> QueryExpression)?
    ) throws(QuerySyntaxError) -> QueryExpression {
        var left = try operand(&self)
        var depth = lastDepth
        while let join = next(&self) {
            let right = try operand(&self)
            depth = try node(depth, lastDepth)
            left = join(left, right)
        }
        lastDepth = depth
        return left
    }

    mutating func orExpression() throws(QuerySyntaxError) -> QueryExpression {
        try enter()
        defer { nesting -= 1 }
        return try chain({ p throws(QuerySyntaxError) in try p.andExpression() }, while: { $0.join(keyword: "OR", QueryExpression.or) })
    }

    mutating func andExpression() throws(QuerySyntaxError) -> QueryExpression {
        try chain({ p throws(QuerySyntaxError) in try p.notExpression() }, while: { $0.join(keyword: "AND", QueryExpression.and) })
    }

    mutating func notExpression() throws(QuerySyntaxError) -> QueryExpression {
        if accept(keyword: "NOT") {
            try enter()
            defer { nesting -= 1 }
            let inner = try notExpression()
            lastDepth = try node(lastDepth)
            return .not(inner)
        }
        return try comparison()
    }

    mutating func comparison() throws(QuerySyntaxError) -> QueryExpression {
        let left = try additive()
        let leftDepth = lastDepth
        if case .symbol(let s) = current.kind, let op = ComparisonOperator(rawValue: s) {
            advance()
            let right = try additive()
            lastDepth = try node(leftDepth, lastDepth)
            return .compare(op, left, right)
        }
        var negated: Bool?
        if accept(keyword: "IN") {
            negated = false
        } else if accept(keyword: "NIN") {
            negated = true
        } else if case .keyword("NOT") = current.kind, case .keyword("IN") = tokens[index + 1].kind {
            advance()
            advance()
            negated = true
        }
        guard let negated else { return left }
        let items = try list()
        lastDepth = try node(leftDepth, lastDepth)
        return .member(left, items, negated: negated)
    }

    /// The items of an IN list; `lastDepth` is the deepest item's.
    mutating func list() throws(QuerySyntaxError) -> [QueryExpression] {
        let open = accept(symbol: "[") ? "]" : (accept(symbol: "(") ? ")" : "")
        guard !open.isEmpty else { throw fail("expected '[' after IN") }
        var items: [QueryExpression] = []
        var depth = 0
        if accept(symbol: open) {
            lastDepth = depth
            return items
        }
        repeat {
            items.append(try additive())
            depth = max(depth, lastDepth)
        } while accept(symbol: ",")
        try expect(symbol: open)
        lastDepth = depth
        return items
    }

    mutating func additive() throws(QuerySyntaxError) -> QueryExpression {
        try chain({ p throws(QuerySyntaxError) in try p.multiplicative() }, while: { $0.arithmetic(["+", "-"]) })
    }

    mutating func multiplicative() throws(QuerySyntaxError) -> QueryExpression {
        try chain({ p throws(QuerySyntaxError) in try p.unary() }, while: { $0.arithmetic(["*", "/", "%"]) })
    }

    /// Consumes `keyword` and answers `join`, or nil when the keyword is not next.
    mutating func join(
        keyword: String, _ join: @escaping (QueryExpression, QueryExpression) -> QueryExpression
    ) -> ((QueryExpression, QueryExpression) -> QueryExpression)? {
        accept(keyword: keyword) ? join : nil
    }

    /// Consumes one of `operators` and answers how it joins its operands.
    mutating func arithmetic(_ operators: Set<String>) -> ((QueryExpression, QueryExpression) -> QueryExpression)? {
        guard case .symbol(let s) = current.kind, operators.contains(s), let op = ArithmeticOperator(rawValue: s) else { return nil }
        advance()
        return { .arithmetic(op, $0, $1) }
    }

    mutating func unary() throws(QuerySyntaxError) -> QueryExpression {
        if accept(symbol: "-") {
            try enter()
            defer { nesting -= 1 }
            let inner = try unary()
            lastDepth = try node(lastDepth)
            return .negate(inner)
        }
        return try primary()
    }

    mutating func primary() throws(QuerySyntaxError) -> QueryExpression {
        let token = current
        // A leaf; parentheses and calls below set their own depth.
        lastDepth = 1
        switch token.kind {
        case .string(let s):
            advance()
            return .literal(.string(s))
        case .number(let text):
            advance()
            if let i = Int64(text) { return .literal(.int(i)) }
            return .literal(.number(text))
        case .keyword("TRUE"):
            advance()
            return .literal(.bool(true))
        case .keyword("FALSE"):
            advance()
            return .literal(.bool(false))
        case .keyword("NULL"):
            advance()
            return .literal(.null)
        case .symbol("("):
            advance()
            let inner = try orExpression()
            try expect(symbol: ")")
            return inner
        case .identifier(let name):
            if case .symbol("(") = tokens[index + 1].kind {
                guard let function = QueryFunction(rawValue: name.uppercased()) else {
                    throw fail("unknown function (known: \(QueryFunction.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                advance()
                advance()
                var arguments: [QueryExpression] = []
                var depth = 0
                if !accept(symbol: ")") {
                    repeat {
                        arguments.append(try additive())
                        depth = max(depth, lastDepth)
                    } while accept(symbol: ",")
                    try expect(symbol: ")")
                }
                lastDepth = try node(depth)
                guard arguments.count == function.arity else {
                    throw fail("\(function.rawValue) takes \(function.arity) argument\(function.arity == 1 ? "" : "s")", at: token)
                }
                if function == .isDefined || function == .isNull, case .path = arguments[0] {} else if function == .isDefined {
                    throw fail("IS_DEFINED takes a property path", at: token)
                }
                return .function(function, arguments)
            }
            return .path(try path())
        default:
            throw fail("expected a value, a property or '('")
        }
    }
}
