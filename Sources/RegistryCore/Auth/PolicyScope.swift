/// What a scoped shared access policy may reach (issue 22, item 3): identities whose device id
/// starts with one of `deviceIdPrefixes` (when any are given) and whose twin satisfies
/// `condition` (when given; the query language's WHERE syntax, e.g. `tags.site = 'lyon'`). Each
/// identity is judged on its own twin: a module by its device id and its own tags. Every right
/// the policy grants applies only inside: reads and queries see only identities in scope, a
/// write must find its identity in scope before and leave it in scope after.
public struct PolicyScope: Sendable, Hashable {
    public let deviceIdPrefixes: [String]
    public let condition: String?
    /// The condition, parsed once.
    let parsedCondition: QueryExpression?

    public static let maximumPrefixes = 100

    public init(deviceIdPrefixes: [String], condition: String?) throws(PolicyError) {
        guard !deviceIdPrefixes.isEmpty || condition != nil else {
            throw PolicyError("a scope needs deviceIdPrefixes, a condition, or both (leave scope out for an unscoped policy)")
        }
        guard deviceIdPrefixes.count <= Self.maximumPrefixes else {
            throw PolicyError("a scope has at most \(Self.maximumPrefixes) deviceIdPrefixes")
        }
        for prefix in deviceIdPrefixes where prefix.isEmpty || prefix.utf8.count > 128 {
            throw PolicyError("a scope's deviceIdPrefixes are 1 to 128 bytes each")
        }
        self.deviceIdPrefixes = deviceIdPrefixes
        self.condition = condition
        if let condition {
            do {
                parsedCondition = try QueryParser.parseCondition(condition, dialect: .registryQuery)
            } catch {
                throw PolicyError("the scope's condition is not a query condition: \(error.description)")
            }
        } else {
            parsedCondition = nil
        }
    }

    /// Whether the device id alone keeps an identity out (true: out of scope whatever its twin).
    public func excludes(deviceId: String) -> Bool {
        !deviceIdPrefixes.isEmpty && !deviceIdPrefixes.contains { deviceId.utf8.starts(with: $0.utf8) }
    }

    /// Whether the scope holds the identity whose twin (the query shape, tags included) this is.
    public func admits(twin: JSONValue) -> Bool {
        guard let deviceId = twin["deviceId"]?.stringValue, !excludes(deviceId: deviceId) else { return false }
        return parsedCondition.map { QueryEvaluator.matches($0, twin) } ?? true
    }

    /// Whether the scope holds `identity` (its twin built as queries see it).
    public func admits(_ identity: Identity) -> Bool {
        if excludes(deviceId: identity.deviceId) { return false }
        guard parsedCondition != nil else { return true }
        return admits(twin: Self.twin(identity))
    }

    /// Whether the scope holds the identity stored as `document` (canonical stored JSON).
    public func admits(stored document: [UInt8]) throws -> Bool {
        // Prefixes only: the device id read from the bytes (the walk stops there), no parse.
        if parsedCondition == nil, let layout = StoredIdentityLayout(document, reading: Self.deviceIdOnly),
            let id = layout.string(.deviceId, in: document)
        {
            return !excludes(deviceId: id)
        }
        return admits(twin: try QueryMatcher.twin(document))
    }

    /// A scoped policy's write that would reach outside its scope: 401, naming the identity
    /// (never what the scope holds).
    static func refusal(_ command: Command) -> RegistryError {
        let what = command.moduleId.map { "module '\($0)' of device '\(command.deviceId)'" } ?? "device '\(command.deviceId)'"
        return RegistryError(.unauthorized, "The policy's scope does not cover \(what) (before or after this change).")
    }

    static let deviceIdOnly = StoredIdentityLayout.Fields(.deviceId)

    static func twin(_ identity: Identity) -> JSONValue {
        TwinDocument.make(IdentityCodec.encode(identity, key: { key, _ in key }), lastUpdated: Timestamp.unset.iso8601, includeTags: true)
    }

    /// The scope as a query condition, ANDed into a scoped caller's queries and bulk-by-query
    /// jobs: `(STARTS_WITH(deviceId, p1) OR …) AND (condition)`.
    public var queryCondition: QueryExpression {
        let prefixes = deviceIdPrefixes.map { QueryExpression.function(.startsWith, [.path(["deviceId"]), .literal(.string($0))]) }
        let byPrefix = prefixes.dropFirst().reduce(prefixes.first) { partial, next in partial.map { .or($0, next) } }
        switch (byPrefix, parsedCondition) {
        case (let a?, let b?): return .and(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil): return .literal(.bool(true))
        }
    }

    /// `{"deviceIdPrefixes": [...], "condition": "..."}` (stored and answered).
    public var json: JSONValue {
        var o: [String: JSONValue] = ["deviceIdPrefixes": .array(deviceIdPrefixes.map(JSONValue.string))]
        if let condition { o["condition"] = .string(condition) }
        return .object(o)
    }

    /// Reads a scope object (a request's or a stored record's).
    public init(json: JSONValue) throws(PolicyError) {
        guard case .object(let members) = json else { throw PolicyError("scope must be an object with deviceIdPrefixes and/or condition") }
        for key in members.keys where key != "deviceIdPrefixes" && key != "condition" {
            throw PolicyError("scope.\(key) is not deviceIdPrefixes or condition")
        }
        var prefixes: [String] = []
        if let given = members["deviceIdPrefixes"], given != .null {
            guard let items = given.arrayValue, items.allSatisfy({ $0.stringValue != nil }) else {
                throw PolicyError("scope.deviceIdPrefixes must be an array of strings")
            }
            prefixes = items.compactMap(\.stringValue)
        }
        var condition: String?
        if let given = members["condition"], given != .null {
            guard let text = given.stringValue, !text.isEmpty else { throw PolicyError("scope.condition must be a non-empty string") }
            condition = text
        }
        try self.init(deviceIdPrefixes: prefixes, condition: condition)
    }

    public static func == (a: PolicyScope, b: PolicyScope) -> Bool { a.deviceIdPrefixes == b.deviceIdPrefixes && a.condition == b.condition }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(deviceIdPrefixes)
        hasher.combine(condition)
    }
}
