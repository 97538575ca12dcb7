/// A condition or value expression of the IoT Hub query language: a registry query's WHERE
/// clause and a route condition alike (Azure: "the route condition uses the same IoT Hub query
/// language as conditions in twin and job queries"). `QueryParser.parseCondition` builds it for
/// either `QueryDialect`; only the reference cases differ between them.
public indirect enum QueryExpression: Sendable, Hashable {
    case literal(JSONValue)
    /// A property: a member path of the twin (registry query), or an application property
    /// (routing, always one segment: a dotted name is one property's name).
    case path([String])
    /// Routing only: a system property by its query name without `$` (`connectionDeviceId`).
    case systemProperty(String)
    /// Routing only: a member of the message's JSON body (`$body.tags[0].x`).
    case body([QueryPathStep])
    case not(QueryExpression)
    case and(QueryExpression, QueryExpression)
    case or(QueryExpression, QueryExpression)
    case compare(ComparisonOperator, QueryExpression, QueryExpression)
    case arithmetic(ArithmeticOperator, QueryExpression, QueryExpression)
    case negate(QueryExpression)
    /// `x IN [..]` (or `NIN` when `negated`).
    case member(QueryExpression, [QueryExpression], negated: Bool)
    case function(QueryFunction, [QueryExpression])

    /// Whether this names a property (what IS_DEFINED takes) rather than computing a value.
    var isReference: Bool {
        switch self {
        case .path, .systemProperty, .body: true
        default: false
        }
    }
}

/// One step of a `$body` path.
public enum QueryPathStep: Sendable, Hashable {
    case member(String)
    case index(Int)
}

public enum ComparisonOperator: String, Sendable, Hashable {
    case equal = "=", notEqual = "!=", less = "<", greater = ">", lessOrEqual = "<=", greaterOrEqual = ">="
}

public enum ArithmeticOperator: String, Sendable, Hashable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", modulo = "%"
}

/// A query or condition that cannot be parsed, with the 1-based character position of the problem.
public struct QuerySyntaxError: Error, Hashable, Sendable, CustomStringConvertible {
    public var position: Int
    public var message: String
    public var description: String { "Syntax error at position \(position): \(message)" }
}
