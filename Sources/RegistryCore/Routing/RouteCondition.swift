/// A route condition: IoT Hub's query language read in its routing dialect
/// (shared/spec/azure-registry-contract.md §11.3). The lexer, grammar, literal and operator
/// rules, evaluation and function library are the registry query's (`QueryParser`,
/// `QueryEvaluator`, `QueryFunction`); `QueryDialect.routing` decides only what names mean:
/// application properties by bare name, system properties with `$` (`$connectionDeviceId`, …),
/// the body with `$body.path[0].x`. Evaluation is three-valued: an undefined result counts as
/// false (the caller counts it).
///
/// Depth is bounded (`maximumDepth`, the query language's): a condition arrives in a query
/// parameter of the event stream from any ServiceConnect caller.
public struct RouteCondition: Sendable, Hashable, CustomStringConvertible {
    /// Deepest condition accepted; deeper is a `ConditionError` naming this limit.
    public static let maximumDepth = QueryParser.maximumDepth

    public let description: String
    let root: QueryExpression

    public static let alwaysTrue = try! RouteCondition("true")

    public init(_ text: String) throws(ConditionError) {
        description = text
        do {
            root = try QueryParser.parseCondition(text, dialect: .routing)
        } catch {
            throw ConditionError("\(error.message) (at character \(error.position))")
        }
    }

    /// The result for `message`: `true`, `false`, or `nil` when undefined.
    public func evaluate(_ message: some RouteMessageProperties) -> Bool? {
        guard case .bool(let b)? = QueryEvaluator.value(root, in: MessageScope(message: message)) else { return nil }
        return b
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

/// A message as the evaluator's scope. Message properties are strings.
struct MessageScope<Message: RouteMessageProperties>: QueryScope {
    let message: Message

    /// An application property (the routing dialect gives its whole name as one segment).
    func property(_ path: [String]) -> JSONValue? {
        message.applicationProperty(path.joined(separator: ".")).map(JSONValue.string)
    }

    /// A `$name` that is not a system property falls back to the application properties (§11.3).
    func systemProperty(_ name: String) -> JSONValue? {
        if let v = message.systemProperty(name) { return .string(v) }
        return message.applicationProperty("$" + name).map(JSONValue.string)
    }

    func body(_ path: [QueryPathStep]) -> JSONValue? { QueryEvaluator.resolve(path, in: message.body) }
}
