/// Decides whether one stored identity document matches a query's WHERE, as cheaply as the
/// bytes allow: a document lacking a byte pattern every match must hold is skipped unparsed
/// (parsing dominates a scan); any other is parsed, made a twin and evaluated. Pure over the
/// stored bytes, so every backend's scan shares it.
public struct QueryMatcher: Sendable {
    let query: DeviceQuery
    let patterns: [[UInt8]]

    public init(_ query: DeviceQuery) {
        self.query = query
        patterns = Self.requiredPatterns(query.filter)
    }

    /// The document's twin when it matches (`nil` when not), and the work it took: 1 when the
    /// byte prefilter skipped it, 10 when it was parsed.
    public func match(_ stored: [UInt8]) throws -> (twin: JSONValue?, work: Int) {
        guard Self.mayMatch(stored, patterns) else { return (nil, 1) }
        let twin = try Self.twin(stored)
        return (QueryEvaluator.matches(query.filter, twin) ? twin : nil, 10)
    }

    /// Byte patterns every matching stored document must contain, from the equality tests on
    /// plain identity fields in the WHERE clause's top-level AND chain. A document without one
    /// of them cannot match, so it is skipped without being parsed; a document with all of them
    /// is still parsed and evaluated, so the filter only saves work.
    /// The patterns are the members as stored (`StoredIdentityLayout.memberBytes`).
    static func requiredPatterns(_ filter: QueryExpression?) -> [[UInt8]] {
        guard let filter else { return [] }
        switch filter {
        case .and(let a, let b):
            return requiredPatterns(a) + requiredPatterns(b)
        case .compare(.equal, .path(let path), .literal(let value)), .compare(.equal, .literal(let value), .path(let path)):
            guard let field = storedMember[path.map { $0.lowercased() }.joined(separator: ".")] else { return [] }
            switch value {
            case .string, .bool: return StoredIdentityLayout.memberBytes(field, equalTo: value).map { [$0] } ?? []
            default: return []
            }
        default:
            return []
        }
    }

    /// Twin fields (lower case) that `TwinDocument` copies unchanged from a stored member: a
    /// document whose twin has `field = value` holds that member's stored bytes.
    static let storedMember: [String: StoredIdentityLayout.Field] = [
        "deviceid": .deviceId, "moduleid": .moduleId, "status": .status, "statusreason": .statusReason,
        "connectionstate": .connectionState, "devicescope": .deviceScope, "generationid": .generationId,
        "managedby": .managedBy, "authenticationtype": .authenticationType, "capabilities.iotedge": .iotEdge,
    ]

    static func mayMatch(_ stored: [UInt8], _ patterns: [[UInt8]]) -> Bool {
        patterns.allSatisfy { ByteSearch.first($0, in: stored) != nil }
    }

    static func twin(_ stored: [UInt8]) throws -> JSONValue {
        TwinDocument.make(try JSONParser.parse(stored), lastUpdated: Timestamp.unset.iso8601, includeTags: true)
    }
}
