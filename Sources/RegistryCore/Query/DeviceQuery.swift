/// A parsed registry query: IoT Hub's SQL-like language over device and module twins (spec §8.3).
///
/// `SELECT [TOP n] (* | field [AS alias], ... | aggregate AS alias, ...) FROM devices[.modules]
/// [WHERE condition] [GROUP BY field, ...]`
public struct DeviceQuery: Sendable, Hashable {
    public enum Source: Sendable, Hashable {
        case devices
        case modules
    }

    public struct Field: Sendable, Hashable {
        public var path: [String]
        public var alias: String
        public init(path: [String], alias: String) {
            self.path = path
            self.alias = alias
        }
    }

    public struct Aggregate: Sendable, Hashable {
        public enum Function: String, Sendable, Hashable {
            case count = "COUNT", sum = "SUM", avg = "AVG", min = "MIN", max = "MAX"
        }
        public var function: Function
        /// The argument path (`nil` for `COUNT()`).
        public var path: [String]?
        public var alias: String
    }

    public enum Selection: Sendable, Hashable {
        case all
        /// Fields and aggregates, in the order written (aggregates make it an aggregate query).
        case items(fields: [Field], aggregates: [Aggregate], order: [String])
    }

    public var selection: Selection
    public var top: Int?
    public var source: Source
    public var filter: QueryExpression?
    public var groupBy: [[String]]

    /// Whether results are whole twins (`x-ms-item-type: Twin`) rather than projections (`Raw`).
    public var returnsTwins: Bool { selection == .all }

    public var isAggregate: Bool {
        if case .items(_, let aggregates, _) = selection { return !aggregates.isEmpty }
        return false
    }
}

/// A condition or value expression.
public indirect enum QueryExpression: Sendable, Hashable {
    case literal(JSONValue)
    case path([String])
    case not(QueryExpression)
    case and(QueryExpression, QueryExpression)
    case or(QueryExpression, QueryExpression)
    case compare(ComparisonOperator, QueryExpression, QueryExpression)
    case arithmetic(ArithmeticOperator, QueryExpression, QueryExpression)
    case negate(QueryExpression)
    /// `x IN [..]` (or `NIN` when `negated`).
    case member(QueryExpression, [QueryExpression], negated: Bool)
    case function(QueryFunction, [QueryExpression])
}

public enum ComparisonOperator: String, Sendable, Hashable {
    case equal = "=", notEqual = "!=", less = "<", greater = ">", lessOrEqual = "<=", greaterOrEqual = ">="
}

public enum ArithmeticOperator: String, Sendable, Hashable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", modulo = "%"
}

public enum QueryFunction: String, Sendable, Hashable, CaseIterable {
    case isDefined = "IS_DEFINED"
    case isNull = "IS_NULL"
    case startsWith = "STARTS_WITH"
    case endsWith = "ENDS_WITH"
    case contains = "CONTAINS"

    var arity: Int { self == .isDefined || self == .isNull ? 1 : 2 }
}

/// A query that cannot be parsed, with the 1-based character position of the problem.
public struct QuerySyntaxError: Error, Hashable, Sendable, CustomStringConvertible {
    public var position: Int
    public var message: String
    public var description: String { "Syntax error at position \(position): \(message)" }
}
