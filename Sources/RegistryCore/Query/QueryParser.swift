/// Parses the query language: a whole registry query (`parse`), or a condition on its own in
/// either dialect (`parseCondition`, what route conditions use). The expression grammar is
/// `ExpressionParser`'s; this adds the SELECT statement around a WHERE clause.
///
/// Depth is bounded (`maximumDepth`) for both, see `ExpressionParser`.
public enum QueryParser {
    /// Deepest expression accepted; deeper answers a syntax error naming this limit.
    public static let maximumDepth = 128

    /// Azure's documented bound on a query's text.
    public static let maximumLength = 8192

    static let queryKeywords = QueryLexer.expressionKeywords.union(QueryLexer.statementKeywords)

    public static func parse(_ text: String) throws(QuerySyntaxError) -> DeviceQuery {
        let tokens = try QueryLexer.tokens(text, keywords: queryKeywords, maximumLength: maximumLength)
        var parser = ExpressionParser(tokens: tokens, dialect: .registryQuery)
        return try parser.query()
    }

    /// A condition alone (no SELECT around it), as `dialect` reads names. Only the expression
    /// grammar's words are reserved, and there is no length bound beyond the depth limit.
    public static func parseCondition(_ text: String, dialect: QueryDialect) throws(QuerySyntaxError) -> QueryExpression {
        var parser = ExpressionParser(tokens: try QueryLexer.tokens(text, keywords: QueryLexer.expressionKeywords), dialect: dialect)
        return try parser.condition()
    }
}

/// The SELECT statement around a WHERE clause.
extension ExpressionParser {
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
}
