/// The function library of the query language, one for registry queries and route conditions.
///
/// Azure documents only IS_DEFINED for twin queries and a larger library for routes; registryd
/// offers these to both. Names are case-insensitive. A function applied to a value of the
/// wrong type (or to an undefined one) is undefined, except IS_DEFINED. String functions are
/// ordinal, like comparisons: they look at Unicode scalars, with no normalisation, so
/// `STARTS_WITH('e\u0301', 'e')` is true.
public enum QueryFunction: String, Sendable, Hashable, CaseIterable {
    case isDefined = "IS_DEFINED"
    case isNull = "IS_NULL"
    case startsWith = "STARTS_WITH"
    case endsWith = "ENDS_WITH"
    case contains = "CONTAINS"
    case lower = "LOWER"
    case upper = "UPPER"

    var arity: Int {
        switch self {
        case .isDefined, .isNull, .lower, .upper: 1
        case .startsWith, .endsWith, .contains: 2
        }
    }

    /// The result over the arguments' values (`nil` is undefined).
    func apply(_ arguments: [JSONValue?]) -> JSONValue? {
        switch self {
        case .isDefined:
            return .bool(arguments[0] != nil)
        case .isNull:
            guard let v = arguments[0] else { return nil }
            return .bool(v == .null)
        case .lower, .upper:
            guard case .string(let s)? = arguments[0] else { return nil }
            return .string(self == .lower ? s.lowercased() : s.uppercased())
        case .startsWith, .endsWith, .contains:
            guard case .string(let s)? = arguments[0], case .string(let t)? = arguments[1] else { return nil }
            // UTF-8 is self-synchronising: a match of one valid string's bytes inside another's
            // starts and ends on character boundaries, so byte matching is scalar matching.
            switch self {
            case .startsWith: return .bool(s.utf8.starts(with: t.utf8))
            case .endsWith: return .bool(s.utf8.reversed().starts(with: t.utf8.reversed()))
            default: return .bool(Self.occurs(Array(t.utf8), in: Array(s.utf8)))
            }
        }
    }

    static func occurs(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }
}
