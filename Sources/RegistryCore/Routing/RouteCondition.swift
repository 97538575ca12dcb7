
/// A route condition: the subset of IoT Hub's routing query language that lifecycle messages
/// need (shared/spec/azure-registry-contract.md §11.3).
///
/// Comparisons (`=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`), `AND`, `OR`, `NOT`, parentheses;
/// string (single or double quoted), number, boolean and `null` literals; application
/// properties by bare name, system properties with `$` (`$connectionDeviceId`, …), the body
/// with `$body.path[0].x`; functions `is_defined`, `starts_with`, `ends_with`, `contains`,
/// `lower`, `upper`. Keywords and property names are case-insensitive. Evaluation is
/// three-valued: a comparison with an undefined side is undefined, and an undefined result
/// counts as false (the caller counts it).
///
/// Depth is bounded (`maximumDepth`, counting parentheses, NOT, call arguments and chained
/// AND/OR): the parser, the evaluator and the tree's deallocation all recurse over it, and a
/// condition arrives in a query parameter of the event stream from any ServiceConnect caller.
public struct RouteCondition: Sendable, Hashable, CustomStringConvertible {
    /// Deepest condition accepted; deeper is a `ConditionError` naming this limit.
    public static let maximumDepth = 128

    public let description: String
    let root: Expression

    public static let alwaysTrue = try! RouteCondition("true")

    public init(_ text: String) throws(ConditionError) {
        description = text
        var parser = ConditionParser(tokens: try ConditionLexer.tokens(text))
        root = try parser.parseExpression()
        guard parser.atEnd else { throw ConditionError("unexpected '\(parser.peekText)' in condition") }
    }

    /// The result for `message`: `true`, `false`, or `nil` when undefined.
    public func evaluate(_ message: some RouteMessageProperties) -> Bool? {
        switch root.evaluate(message) {
        case .bool(let b): b
        default: nil
        }
    }
}

/// What a condition can see of a message.
public protocol RouteMessageProperties {
    /// An application property, matched case-insensitively.
    func applicationProperty(_ name: String) -> String?
    /// A system property by its query name without `$` (`connectionDeviceId`), case-insensitively.
    func systemProperty(_ name: String) -> String?
    /// The JSON body.
    var body: JSONValue { get }
}

public struct ConditionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A value during evaluation.
enum ConditionValue: Hashable, Sendable {
    case undefined
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case json(JSONValue)

    init(_ json: JSONValue?) {
        switch json {
        case nil: self = .undefined
        case .null?: self = .null
        case .bool(let b)?: self = .bool(b)
        case .int(let i)?: self = .number(Double(i))
        case .number(let text)?: self = Double(text).map(ConditionValue.number) ?? .undefined
        case .string(let s)?: self = .string(s)
        case let other?: self = .json(other)
        }
    }
}

indirect enum Expression: Hashable, Sendable {
    case literal(ConditionValue)
    case applicationProperty(String)
    case systemProperty(String)
    case body([PathStep])
    case not(Expression)
    case and(Expression, Expression)
    case or(Expression, Expression)
    case compare(Expression, Comparison, Expression)
    case call(Function, [Expression])

    enum PathStep: Hashable, Sendable {
        case member(String)
        case index(Int)
    }

    enum Comparison: String, Hashable, Sendable {
        case equal = "=", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    }

    enum Function: String, Hashable, CaseIterable, Sendable {
        case isDefined = "is_defined", startsWith = "starts_with", endsWith = "ends_with", contains, lower, upper

        var arity: Int {
            switch self {
            case .isDefined, .lower, .upper: 1
            case .startsWith, .endsWith, .contains: 2
            }
        }
    }

    func evaluate(_ m: some RouteMessageProperties) -> ConditionValue {
        switch self {
        case .literal(let v): return v
        case .applicationProperty(let name): return m.applicationProperty(name).map(ConditionValue.string) ?? .undefined
        case .systemProperty(let name):
            // A `$name` that is not a system property falls back to the application properties.
            if let v = m.systemProperty(name) { return .string(v) }
            return m.applicationProperty("$" + name).map(ConditionValue.string) ?? .undefined
        case .body(let path):
            var node: JSONValue? = m.body
            for step in path {
                switch step {
                case .member(let name): node = node?.member(caseInsensitive: name)
                case .index(let i): node = node?.arrayValue.flatMap { i < $0.count ? $0[i] : nil }
                }
            }
            return ConditionValue(node)
        case .not(let e):
            if case .bool(let b) = e.evaluate(m) { return .bool(!b) }
            return .undefined
        case .and(let a, let b):
            let x = a.evaluate(m)
            if case .bool(false) = x { return .bool(false) }
            let y = b.evaluate(m)
            if case .bool(false) = y { return .bool(false) }
            if case .bool(true) = x, case .bool(true) = y { return .bool(true) }
            return .undefined
        case .or(let a, let b):
            let x = a.evaluate(m)
            if case .bool(true) = x { return .bool(true) }
            let y = b.evaluate(m)
            if case .bool(true) = y { return .bool(true) }
            if case .bool(false) = x, case .bool(false) = y { return .bool(false) }
            return .undefined
        case .compare(let a, let op, let b):
            return Self.compare(a.evaluate(m), op, b.evaluate(m))
        case .call(let function, let args):
            let values = args.map { $0.evaluate(m) }
            switch function {
            case .isDefined:
                if case .undefined = values[0] { return .bool(false) }
                return .bool(true)
            case .lower, .upper:
                guard case .string(let s) = values[0] else { return .undefined }
                return .string(function == .lower ? s.lowercased() : s.uppercased())
            case .startsWith, .endsWith, .contains:
                guard case .string(let s) = values[0], case .string(let t) = values[1] else { return .undefined }
                switch function {
                case .startsWith: return .bool(s.hasPrefix(t))
                case .endsWith: return .bool(s.hasSuffix(t))
                default: return .bool(t.isEmpty || s.contains(t))
                }
            }
        }
    }

    static func compare(_ x: ConditionValue, _ op: Comparison, _ y: ConditionValue) -> ConditionValue {
        switch (x, y) {
        case (.undefined, _), (_, .undefined): return .undefined
        case (.number(let a), .number(let b)): return .bool(order(a, b, op))
        case (.string(let a), .string(let b)): return .bool(order(a, b, op))
        case (.bool(let a), .bool(let b)):
            switch op {
            case .equal: return .bool(a == b)
            case .notEqual: return .bool(a != b)
            default: return .undefined
            }
        case (.null, .null):
            return op == .equal ? .bool(true) : op == .notEqual ? .bool(false) : .undefined
        default:
            // Different types are never equal; ordering them is undefined.
            switch op {
            case .equal: return .bool(false)
            case .notEqual: return .bool(true)
            default: return .undefined
            }
        }
    }

    static func order<T: Comparable>(_ a: T, _ b: T, _ op: Comparison) -> Bool {
        switch op {
        case .equal: a == b
        case .notEqual: a != b
        case .less: a < b
        case .lessOrEqual: a <= b
        case .greater: a > b
        case .greaterOrEqual: a >= b
        }
    }
}

enum Token: Hashable {
    case identifier(String)  // bare or $-prefixed, with dots and [n] for $body paths
    case string(String)
    case number(Double)
    case symbol(String)  // ( ) , and comparison operators
}

enum ConditionLexer {
    static func tokens(_ text: String) throws(ConditionError) -> [Token] {
        let chars = Array(text.unicodeScalars)
        var i = 0
        var out: [Token] = []
        func isNameChar(_ c: Unicode.Scalar) -> Bool {
            c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-" || c == "$" || c == "." || c == "[" || c == "]"
        }
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" || c == "\n" || c == "\r" {
                i += 1
            } else if c == "'" || c == "\"" {
                var s = ""
                i += 1
                while true {
                    guard i < chars.count else { throw ConditionError("unterminated string literal") }
                    if chars[i] == c {
                        // A doubled quote inside a string stands for one quote.
                        if i + 1 < chars.count, chars[i + 1] == c {
                            s.unicodeScalars.append(c)
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    s.unicodeScalars.append(chars[i])
                    i += 1
                }
                out.append(.string(s))
            } else if ("0"..."9").contains(c) || (c == "-" && i + 1 < chars.count && ("0"..."9").contains(chars[i + 1])) {
                var s = String(c)
                i += 1
                while i < chars.count, ("0"..."9").contains(chars[i]) || chars[i] == "." || chars[i] == "e" || chars[i] == "E" {
                    s.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard let n = Double(s) else { throw ConditionError("invalid number '\(s)'") }
                out.append(.number(n))
            } else if "(),".unicodeScalars.contains(c) {
                out.append(.symbol(String(c)))
                i += 1
            } else if "=!<>".unicodeScalars.contains(c) {
                var op = String(c)
                if i + 1 < chars.count, "=>".unicodeScalars.contains(chars[i + 1]) {
                    op.unicodeScalars.append(chars[i + 1])
                }
                guard ["=", "!=", "<>", "<", "<=", ">", ">="].contains(op) else { throw ConditionError("unknown operator '\(op)'") }
                i += op.unicodeScalars.count
                out.append(.symbol(op == "<>" ? "!=" : op))
            } else if isNameChar(c) {
                var s = ""
                while i < chars.count, isNameChar(chars[i]) {
                    s.unicodeScalars.append(chars[i])
                    i += 1
                }
                out.append(.identifier(s))
            } else {
                throw ConditionError("unexpected character '\(c)' in condition")
            }
        }
        return out
    }
}

struct ConditionParser {
    let tokens: [Token]
    var index = 0

    var atEnd: Bool { index >= tokens.count }

    var peekText: String {
        guard index < tokens.count else { return "end" }
        switch tokens[index] {
        case .identifier(let s), .symbol(let s): return s
        case .string(let s): return "'\(s)'"
        case .number(let n): return "\(n)"
        }
    }

    mutating func keyword(_ word: String) -> Bool {
        if index < tokens.count, case .identifier(let s) = tokens[index], s.lowercased() == word {
            index += 1
            return true
        }
        return false
    }

    mutating func symbol(_ s: String) -> Bool {
        if index < tokens.count, case .symbol(let t) = tokens[index], t == s {
            index += 1
            return true
        }
        return false
    }

    /// How deep the parser has recursed, and the tree depth of the last expression returned.
    var nesting = 0
    var lastDepth = 0

    static var tooDeep: ConditionError {
        ConditionError("the condition nests deeper than \(RouteCondition.maximumDepth) levels (parentheses, NOT, function calls and chained AND/OR count)")
    }

    mutating func enter() throws(ConditionError) {
        nesting += 1
        if nesting > RouteCondition.maximumDepth { throw Self.tooDeep }
    }

    /// The depth of a node over children of depths `a` and `b`, checked before it is built.
    func node(_ a: Int, _ b: Int = 0) throws(ConditionError) -> Int {
        let depth = max(a, b) + 1
        if depth > RouteCondition.maximumDepth { throw Self.tooDeep }
        return depth
    }

    /// `operand (keyword operand)*`, left-associative, the tree's depth checked as it grows.
    mutating func chain(
        _ keyword: String,
        _ operand: (inout ConditionParser) throws(ConditionError) -> Expression,
        _ join: (Expression, Expression) -> Expression
    ) throws(ConditionError) -> Expression {
        var left = try operand(&self)
        var depth = lastDepth
        while self.keyword(keyword) {
            let right = try operand(&self)
            depth = try node(depth, lastDepth)
            left = join(left, right)
        }
        lastDepth = depth
        return left
    }

    mutating func parseExpression() throws(ConditionError) -> Expression {
        try enter()
        defer { nesting -= 1 }
        return try chain("or", { p throws(ConditionError) in try p.parseAnd() }, Expression.or)
    }

    mutating func parseAnd() throws(ConditionError) -> Expression {
        try chain("and", { p throws(ConditionError) in try p.parseNot() }, Expression.and)
    }

    mutating func parseNot() throws(ConditionError) -> Expression {
        if keyword("not") {
            try enter()
            defer { nesting -= 1 }
            let inner = try parseNot()
            lastDepth = try node(lastDepth)
            return .not(inner)
        }
        return try parseComparison()
    }

    mutating func parseComparison() throws(ConditionError) -> Expression {
        let left = try parsePrimary()
        let leftDepth = lastDepth
        for op in ["=", "!=", "<=", ">=", "<", ">"] where symbol(op) {
            let right = try parsePrimary()
            lastDepth = try node(leftDepth, lastDepth)
            return .compare(left, Expression.Comparison(rawValue: op)!, right)
        }
        return left
    }

    mutating func parsePrimary() throws(ConditionError) -> Expression {
        guard index < tokens.count else { throw ConditionError("the condition ends too early") }
        let token = tokens[index]
        index += 1
        // A leaf; parentheses and calls set their own depth.
        lastDepth = 1
        switch token {
        case .string(let s): return .literal(.string(s))
        case .number(let n): return .literal(.number(n))
        case .symbol("("):
            let inner = try parseExpression()
            guard symbol(")") else { throw ConditionError("missing ')'") }
            return inner
        case .symbol(let s): throw ConditionError("unexpected '\(s)'")
        case .identifier(let name):
            let lower = name.lowercased()
            if lower == "true" { return .literal(.bool(true)) }
            if lower == "false" { return .literal(.bool(false)) }
            if lower == "null" { return .literal(.null) }
            if symbol("(") {
                guard let function = Expression.Function(rawValue: lower) else { throw ConditionError("unknown function '\(name)'") }
                var args: [Expression] = []
                var depth = 0
                if !symbol(")") {
                    repeat {
                        args.append(try parseExpression())
                        depth = max(depth, lastDepth)
                    } while symbol(",")
                    guard symbol(")") else { throw ConditionError("missing ')' after the arguments of \(name)") }
                }
                lastDepth = try node(depth)
                guard args.count == function.arity else {
                    throw ConditionError("\(function.rawValue) takes \(function.arity) argument\(function.arity == 1 ? "" : "s")")
                }
                return .call(function, args)
            }
            if lower.hasPrefix("$body") { return .body(try Self.bodyPath(String(name.dropFirst(5)))) }
            if name.hasPrefix("$") {
                guard name.count > 1, !name.contains("[") else { throw ConditionError("invalid system property '\(name)'") }
                return .systemProperty(String(name.dropFirst()))
            }
            guard !name.contains("["), !name.contains("$") else { throw ConditionError("invalid property name '\(name)'") }
            return .applicationProperty(name)
        }
    }

    /// `.a.b[0].c` after `$body`.
    static func bodyPath(_ rest: String) throws(ConditionError) -> [Expression.PathStep] {
        guard !rest.isEmpty else { throw ConditionError("$body alone cannot be compared; name a path such as $body.deviceId") }
        var steps: [Expression.PathStep] = []
        var s = Substring(rest)
        while !s.isEmpty {
            if s.first == "." {
                s.removeFirst()
                let name = s.prefix { $0 != "." && $0 != "[" }
                guard !name.isEmpty else { throw ConditionError("empty member name in $body path") }
                steps.append(.member(String(name)))
                s.removeFirst(name.count)
            } else if s.first == "[" {
                guard let close = s.firstIndex(of: "]"), let n = Int(s[s.index(after: s.startIndex)..<close]), n >= 0 else {
                    throw ConditionError("invalid index in $body path")
                }
                steps.append(.index(n))
                s = s[s.index(after: close)...]
            } else {
                throw ConditionError("invalid $body path")
            }
        }
        return steps
    }
}
