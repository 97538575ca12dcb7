/// What an expression's references resolve against: a twin document for a registry query, a
/// message for a route condition. `nil` is undefined (no such property).
public protocol QueryScope {
    /// A `.path` reference (see `QueryExpression.path` for what it names in each dialect).
    func property(_ path: [String]) -> JSONValue?
    /// A `$name` system property (routing).
    func systemProperty(_ name: String) -> JSONValue?
    /// A `$body` path (routing).
    func body(_ path: [QueryPathStep]) -> JSONValue?
}

/// A registry query's scope: the twin document. It has no system properties and no body.
public struct DocumentScope: QueryScope {
    public var document: JSONValue

    public init(_ document: JSONValue) { self.document = document }

    public func property(_ path: [String]) -> JSONValue? { QueryEvaluator.resolve(path, in: document)?.value }
    public func systemProperty(_ name: String) -> JSONValue? { nil }
    public func body(_ path: [QueryPathStep]) -> JSONValue? { nil }
}
