/// Recursive-descent parser of the query language's expressions: a registry query's WHERE
/// clause and a route condition (the statement around a WHERE clause is `QueryParser`'s, as an
/// extension of this). Precedence, loosest first: OR, AND, NOT, comparison / IN, + -, * / %,
/// unary minus. Only references depend on the `QueryDialect`.
///
/// Depth is bounded (`QueryParser.maximumDepth`): both how deep the parser recurses
/// (parentheses, NOT, unary minus, function calls) and how deep the tree it builds is (a chain
/// `a AND b AND c` nests one level per operator). The parser, the evaluator and even the tree's
/// deallocation recurse over that depth, so without the bound a condition of a few kilobytes
/// overflows the stack.
struct ExpressionParser {
    let tokens: [QueryToken]
    let dialect: QueryDialect
    var index = 0
    /// How deep the parser has recursed into expressions.
    var nesting = 0
    /// Tree depth of the expression the last expression function returned.
    var lastDepth = 0

    init(tokens: [QueryToken], dialect: QueryDialect) {
        self.tokens = tokens
        self.dialect = dialect
    }

    var current: QueryToken { tokens[index] }

    mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    /// What the text is called in messages.
    var subject: String { dialect == .routing ? "condition" : "query" }

    func fail(_ message: String, at token: QueryToken? = nil) -> QuerySyntaxError {
        let t = token ?? current
        let found: String
        switch t.kind {
        case .end: found = "the end of the \(subject)"
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

    /// A member name after '.': any word, keywords included (`$body.in`).
    mutating func memberName() throws(QuerySyntaxError) -> String {
        switch current.kind {
        case .identifier, .keyword:
            let name = current.spelling
            advance()
            return name
        default:
            throw fail("expected a property name after '.'")
        }
    }

    /// `name(.name)*`
    mutating func path() throws(QuerySyntaxError) -> [String] {
        var parts = [try identifier("a property name")]
        while accept(symbol: ".") { parts.append(try memberName()) }
        return parts
    }

    /// A whole condition: one expression and nothing after it.
    mutating func condition() throws(QuerySyntaxError) -> QueryExpression {
        let expression = try orExpression()
        guard case .end = current.kind else { throw fail("expected the end of the \(subject)") }
        return expression
    }

    var tooDeep: QuerySyntaxError {
        QuerySyntaxError(
            position: current.position,
            message: "the expression nests deeper than \(QueryParser.maximumDepth) levels "
                + "(parentheses, NOT, function calls and chained operators count)"
        )
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
        _ operand: (inout ExpressionParser) throws(QuerySyntaxError) -> QueryExpression,
        while next: (inout ExpressionParser) -> ((QueryExpression, QueryExpression) -> QueryExpression)?
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
        keyword: String,
        _ join: @escaping (QueryExpression, QueryExpression) -> QueryExpression
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
            if case .symbol("(") = tokens[index + 1].kind { return try call(name) }
            return try reference()
        default:
            throw fail("expected a value, a property or '('")
        }
    }

    /// `NAME(argument, ...)`: arguments are whole expressions, each a level deeper.
    mutating func call(_ name: String) throws(QuerySyntaxError) -> QueryExpression {
        let token = current
        guard let function = QueryFunction(rawValue: name.uppercased()) else {
            throw fail("unknown function (known: \(QueryFunction.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        advance()
        advance()
        var arguments: [QueryExpression] = []
        var depth = 0
        if !accept(symbol: ")") {
            repeat {
                arguments.append(try orExpression())
                depth = max(depth, lastDepth)
            } while accept(symbol: ",")
            try expect(symbol: ")")
        }
        lastDepth = try node(depth)
        guard arguments.count == function.arity else {
            throw fail("\(function.rawValue) takes \(function.arity) argument\(function.arity == 1 ? "" : "s")", at: token)
        }
        // Azure documents IS_DEFINED(property): whether a value is there, not what one computes.
        if function == .isDefined, !arguments[0].isReference {
            throw fail("IS_DEFINED takes a property path", at: token)
        }
        return .function(function, arguments)
    }

    /// A name: what it refers to is the one thing the dialects disagree on (`QueryDialect`).
    mutating func reference() throws(QuerySyntaxError) -> QueryExpression {
        let token = current
        switch dialect {
        case .registryQuery:
            return .path(try path())
        case .routing:
            // Application properties are flat strings: a dotted name is one property's name.
            guard case .identifier(let first) = token.kind, first.hasPrefix("$") else { return .path([try path().joined(separator: ".")]) }
            if first.lowercased() == "$body" {
                advance()
                return .body(try bodyPath(at: token))
            }
            guard first.count > 1 else { throw fail("expected a system property name after '$'") }
            // A dotted `$name.x` stays one name, looked up as a system property and then as an
            // application property, as before the languages were shared.
            let name = try path().joined(separator: ".")
            return .systemProperty(String(name.dropFirst()))
        }
    }

    /// `(.name | [n])+` after `$body`.
    mutating func bodyPath(at start: QueryToken) throws(QuerySyntaxError) -> [QueryPathStep] {
        var steps: [QueryPathStep] = []
        while true {
            if accept(symbol: ".") {
                steps.append(.member(try memberName()))
            } else if accept(symbol: "[") {
                guard case .number(let text) = current.kind, let n = Int(text), n >= 0 else { throw fail("expected an array index") }
                advance()
                try expect(symbol: "]")
                steps.append(.index(n))
            } else {
                break
            }
        }
        guard !steps.isEmpty else {
            throw QuerySyntaxError(position: start.position, message: "$body alone cannot be compared; name a path such as $body.deviceId")
        }
        return steps
    }
}
