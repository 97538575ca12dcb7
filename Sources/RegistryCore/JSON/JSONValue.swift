/// A JSON document as a value: what the event log stores and hashes.
///
/// Integers only (no floating point), so that every value has exactly one canonical spelling.
public indirect enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    /// A number with a fraction or exponent, kept as its source text (never produced by the log).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// Member lookup ignoring case, as Azure's clients need (Newtonsoft-style leniency).
    public func member(caseInsensitive key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        // Identity objects have a handful of members, and most lookups are of absent optional
        // fields: one pass comparing lengths first beats hashing the key and then scanning
        // anyway (hashing was half of turning an import line into a command).
        guard members.count <= 16 else {
            if let exact = members[key] { return exact }
            return members.first { ASCIICase.equal($0.key, key) }?.value
        }
        var folded: JSONValue?
        let length = key.utf8.count
        for (name, value) in members where name.utf8.count == length {
            if name == key { return value }
            if folded == nil, ASCIICase.equal(name, key) { folded = value }
        }
        return folded
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var intValue: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }

    /// Any JSON number as a Double (integers and decimals alike).
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .number(let text): Double(text)
        default: nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }
}

extension JSONValue {
    /// `.string(s)` or `.null` for `nil`.
    public init(_ string: String?) {
        self = string.map(JSONValue.string) ?? .null
    }
}
