import Foundation

/// Evaluates query expressions over a twin document. `nil` is "undefined" (a missing property,
/// or an operation on values it does not apply to); a condition selects a document only when
/// it evaluates to `true` exactly.
public enum QueryEvaluator {
    /// The value at `path`, matching names exactly first and then case-insensitively (clients
    /// write `DeviceId` as often as `deviceId`), with the name the document really uses.
    public static func resolve(_ path: [String], in document: JSONValue) -> (name: String, value: JSONValue)? {
        var current = document
        var name = ""
        for segment in path {
            guard case .object(let members) = current else { return nil }
            if let exact = members[segment] {
                current = exact
                name = segment
            } else {
                let lower = segment.lowercased()
                guard let found = members.first(where: { $0.key.lowercased() == lower }) else { return nil }
                current = found.value
                name = found.key
            }
        }
        return (name, current)
    }

    public static func matches(_ condition: QueryExpression?, _ document: JSONValue) -> Bool {
        guard let condition else { return true }
        return value(condition, document) == .bool(true)
    }

    public static func value(_ expression: QueryExpression, _ document: JSONValue) -> JSONValue? {
        switch expression {
        case .literal(let v):
            return v
        case .path(let path):
            return resolve(path, in: document)?.value
        case .not(let inner):
            guard case .bool(let b)? = value(inner, document) else { return nil }
            return .bool(!b)
        case .and(let a, let b):
            let left = value(a, document)
            if left == .bool(false) { return .bool(false) }
            let right = value(b, document)
            if right == .bool(false) { return .bool(false) }
            return left == .bool(true) && right == .bool(true) ? .bool(true) : nil
        case .or(let a, let b):
            let left = value(a, document)
            if left == .bool(true) { return .bool(true) }
            let right = value(b, document)
            if right == .bool(true) { return .bool(true) }
            return left == .bool(false) && right == .bool(false) ? .bool(false) : nil
        case .compare(let op, let a, let b):
            guard let left = value(a, document), let right = value(b, document) else { return nil }
            return compare(op, left, right).map(JSONValue.bool)
        case .arithmetic(let op, let a, let b):
            guard let x = value(a, document)?.doubleValue, let y = value(b, document)?.doubleValue else { return nil }
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
            guard let x = value(inner, document)?.doubleValue else { return nil }
            return number(-x)
        case .member(let needle, let list, let negated):
            guard let item = value(needle, document) else { return nil }
            let found = list.contains { candidate in value(candidate, document).flatMap { compare(.equal, item, $0) } == true }
            return .bool(found != negated)
        case .function(let function, let arguments):
            switch function {
            case .isDefined:
                return .bool(value(arguments[0], document) != nil)
            case .isNull:
                guard let v = value(arguments[0], document) else { return nil }
                return .bool(v == .null)
            case .startsWith, .endsWith, .contains:
                guard case .string(let s)? = value(arguments[0], document), case .string(let t)? = value(arguments[1], document) else { return nil }
                switch function {
                case .startsWith: return .bool(s.hasPrefix(t))
                case .endsWith: return .bool(s.hasSuffix(t))
                default: return .bool(t.isEmpty || s.contains(t))
                }
            }
        }
    }

    package static func number(_ x: Double) -> JSONValue {
        if x.rounded() == x, abs(x) < 9e15 { return .int(Int64(x)) }
        return .number(String(x))
    }

    /// Comparisons between primitives: numbers numerically, strings by their UTF-8 bytes,
    /// booleans and null for (in)equality. Different types are unequal and unordered.
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
            case .equal: return x == y
            case .notEqual: return x != y
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
