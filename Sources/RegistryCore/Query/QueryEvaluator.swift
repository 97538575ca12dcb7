/// Evaluates query-language expressions: a registry query's WHERE clause over a twin document
/// and a route condition over a message, with the same rules. `nil` is "undefined" (a missing
/// property, or an operation on values it does not apply to); a condition holds only when it
/// evaluates to `true` exactly (Azure: null, undefined and any non-boolean count as false).
public enum QueryEvaluator {
    /// The value at `path`, matching names exactly first and then case-insensitively (clients
    /// write `DeviceId` as often as `deviceId`, and Azure's route property names are
    /// case-insensitive), with the name the document really uses.
    public static func resolve(_ path: [String], in document: JSONValue) -> (name: String, value: JSONValue)? {
        var current = document
        var name = ""
        for segment in path {
            guard let (found, value) = member(segment, of: current) else { return nil }
            current = value
            name = found
        }
        return (name, current)
    }

    /// The value at a `$body` path: members as `resolve` matches them, indexes into arrays.
    public static func resolve(_ steps: [QueryPathStep], in document: JSONValue) -> JSONValue? {
        var current = document
        for step in steps {
            switch step {
            case .member(let segment):
                guard let (_, value) = member(segment, of: current) else { return nil }
                current = value
            case .index(let i):
                guard case .array(let items) = current, i < items.count else { return nil }
                current = items[i]
            }
        }
        return current
    }

    static func member(_ segment: String, of value: JSONValue) -> (String, JSONValue)? {
        guard case .object(let members) = value else { return nil }
        if let exact = members[segment] { return (segment, exact) }
        let lower = segment.lowercased()
        guard let found = members.first(where: { $0.key.lowercased() == lower }) else { return nil }
        return (found.key, found.value)
    }

    public static func matches(_ condition: QueryExpression?, _ document: JSONValue) -> Bool {
        guard let condition else { return true }
        return value(condition, in: DocumentScope(document)) == .bool(true)
    }

    public static func value(_ expression: QueryExpression, _ document: JSONValue) -> JSONValue? {
        value(expression, in: DocumentScope(document))
    }

    public static func value(_ expression: QueryExpression, in scope: some QueryScope) -> JSONValue? {
        switch expression {
        case .literal(let v):
            return v
        case .path(let path):
            return scope.property(path)
        case .systemProperty(let name):
            return scope.systemProperty(name)
        case .body(let steps):
            return scope.body(steps)
        case .not(let inner):
            guard case .bool(let b)? = value(inner, in: scope) else { return nil }
            return .bool(!b)
        case .and(let a, let b):
            let left = value(a, in: scope)
            if left == .bool(false) { return .bool(false) }
            let right = value(b, in: scope)
            if right == .bool(false) { return .bool(false) }
            return left == .bool(true) && right == .bool(true) ? .bool(true) : nil
        case .or(let a, let b):
            let left = value(a, in: scope)
            if left == .bool(true) { return .bool(true) }
            let right = value(b, in: scope)
            if right == .bool(true) { return .bool(true) }
            return left == .bool(false) && right == .bool(false) ? .bool(false) : nil
        case .compare(let op, let a, let b):
            guard let left = value(a, in: scope), let right = value(b, in: scope) else { return nil }
            return compare(op, left, right).map(JSONValue.bool)
        case .arithmetic(let op, let a, let b):
            guard let x = value(a, in: scope)?.doubleValue, let y = value(b, in: scope)?.doubleValue else { return nil }
            let result: Double
            switch op {
            case .add: result = x + y
            case .subtract: result = x - y
            case .multiply: result = x * y
            case .divide:
                guard y != 0 else { return nil }
                result = x / y
            case .modulo:
                guard y != 0 else { return nil }
                result = x.truncatingRemainder(dividingBy: y)
            }
            return number(result)
        case .negate(let inner):
            guard let x = value(inner, in: scope)?.doubleValue else { return nil }
            return number(-x)
        case .member(let needle, let list, let negated):
            guard let item = value(needle, in: scope) else { return nil }
            let found = list.contains { candidate in value(candidate, in: scope).flatMap { compare(.equal, item, $0) } == true }
            return .bool(found != negated)
        case .function(let function, let arguments):
            return function.apply(arguments.map { value($0, in: scope) })
        }
    }

    package static func number(_ x: Double) -> JSONValue {
        if x.rounded() == x, abs(x) < 9e15 { return .int(Int64(x)) }
        return .number(String(x))
    }

    /// Comparisons between primitives: numbers numerically; strings ordinally, by Unicode
    /// scalar values (their UTF-8 bytes), with no normalisation, so equality and order agree
    /// and both agree with the stored bytes the query executor pre-filters on (Swift's `==`
    /// and `<` would treat `é` and `e\u0301` as equal); booleans and null for (in)equality.
    /// Different primitive types are unequal and unordered. Objects and arrays do not compare
    /// (Azure: "comparisons are supported only between primitive types"): undefined.
    package static func compare(_ op: ComparisonOperator, _ a: JSONValue, _ b: JSONValue) -> Bool? {
        if let x = a.doubleValue, let y = b.doubleValue {
            switch op {
            case .equal: return x == y
            case .notEqual: return x != y
            case .less: return x < y
            case .greater: return x > y
            case .lessOrEqual: return x <= y
            case .greaterOrEqual: return x >= y
            }
        }
        if case .string(let x) = a, case .string(let y) = b {
            switch op {
            case .equal: return x.utf8.elementsEqual(y.utf8)
            case .notEqual: return !x.utf8.elementsEqual(y.utf8)
            case .less: return x.utf8.lexicographicallyPrecedes(y.utf8)
            case .greater: return y.utf8.lexicographicallyPrecedes(x.utf8)
            case .lessOrEqual: return !y.utf8.lexicographicallyPrecedes(x.utf8)
            case .greaterOrEqual: return !x.utf8.lexicographicallyPrecedes(y.utf8)
            }
        }
        let primitive: (JSONValue) -> Bool = { v in
            switch v {
            case .object, .array: false
            default: true
            }
        }
        guard primitive(a), primitive(b) else { return nil }
        switch op {
        case .equal: return a == b
        case .notEqual: return a != b
        default: return nil
        }
    }
}
