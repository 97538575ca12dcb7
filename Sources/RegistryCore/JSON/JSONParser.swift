/// A strict RFC 8259 parser into `JSONValue` (duplicate keys: the last wins).
public struct JSONParser {
    public struct Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0
    /// Members of the objects being parsed, innermost last: each object's dictionary is made
    /// once at its end with room for exactly its members (growing it member by member, with a
    /// rehash at each doubling, was a third of parsing an import line).
    private var pending: [(String, JSONValue)] = []
    /// Nesting bound, so hostile input cannot exhaust the stack.
    static let maximumDepth = 64

    public static func parse(_ bytes: [UInt8]) throws(Error) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected data after the document") }
        return value
    }

    public static func parse(_ text: String) throws(Error) -> JSONValue { try parse(Array(text.utf8)) }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ reason: String) -> Error { Error(offset: index, reason: reason) }

    private mutating func skipWhitespace() {
        while index < bytes.count, bytes[index] == 32 || bytes[index] == 10 || bytes[index] == 13 || bytes[index] == 9 {
            index += 1
        }
    }

    private mutating func parseValue() throws(Error) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case 123: return try parseObject()
        case 91: return try parseArray()
        case 34: return .string(try parseString())
        case 116: try literal("true"); return .bool(true)
        case 102: try literal("false"); return .bool(false)
        case 110: try literal("null"); return .null
        case 45, 48...57: return try parseNumber()
        default: throw error("unexpected character")
        }
    }

    private static let trueBytes = Array("true".utf8)
    private static let falseBytes = Array("false".utf8)
    private static let nullBytes = Array("null".utf8)

    private mutating func literal(_ word: String) throws(Error) {
        let expected = word == "true" ? Self.trueBytes : word == "false" ? Self.falseBytes : Self.nullBytes
        guard index + expected.count <= bytes.count else { throw error("invalid literal") }
        for (offset, byte) in expected.enumerated() where bytes[index + offset] != byte { throw error("invalid literal") }
        index += expected.count
    }

    private mutating func nest() throws(Error) {
        depth += 1
        if depth > Self.maximumDepth { throw error("nesting deeper than \(Self.maximumDepth)") }
    }

    private mutating func parseObject() throws(Error) -> JSONValue {
        try nest()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == 125 {
            index += 1
            return .object([:])
        }
        let first = pending.count
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == 34 else { throw error("expected a member name") }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == 58 else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            pending.append((key, try parseValue()))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == 44 {
                index += 1
                continue
            }
            guard bytes[index] == 125 else { throw error("expected ',' or '}'") }
            index += 1
            var members = [String: JSONValue](minimumCapacity: pending.count - first)
            for i in first..<pending.count { members[pending[i].0] = pending[i].1 }  // the last duplicate wins
            pending.removeSubrange(first...)
            return .object(members)
        }
    }

    private mutating func parseArray() throws(Error) -> JSONValue {
        try nest()
        defer { depth -= 1 }
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == 93 {
            index += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == 44 {
                index += 1
                continue
            }
            guard bytes[index] == 93 else { throw error("expected ',' or ']'") }
            index += 1
            return .array(items)
        }
    }

    private mutating func parseNumber() throws(Error) -> JSONValue {
        let start = index
        if bytes[index] == 45 { index += 1 }
        guard index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 else { throw error("invalid number") }
        if bytes[index] == 48 {
            index += 1
        } else {
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 { index += 1 }
        }
        var integral = true
        if index < bytes.count, bytes[index] == 46 {
            integral = false
            index += 1
            let digits = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 { index += 1 }
            guard index > digits else { throw error("invalid fraction") }
        }
        if index < bytes.count, bytes[index] == 101 || bytes[index] == 69 {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == 43 || bytes[index] == 45 { index += 1 }
            let digits = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 { index += 1 }
            guard index > digits else { throw error("invalid exponent") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if integral, let value = Int64(text) { return .int(value) }
        return .number(text)
    }

    private mutating func parseString() throws(Error) -> String {
        index += 1
        // Fast path (stored documents, ids, most input): no escape before the closing quote,
        // so the string is a slice of the input, validated once.
        let start = index
        var scan = index
        var ascii = true
        while scan < bytes.count {
            let b = bytes[scan]
            if b == 34 {
                // ASCII is valid UTF-8 as it stands: `String(decoding:)` takes the contiguous
                // bytes directly, where `String(validating:)` on a slice runs the standard
                // library's unspecialised generic validation (2.6% of an import, most of it
                // looking up generic metadata).
                if ascii {
                    index = scan + 1
                    return String(decoding: bytes[start..<scan], as: UTF8.self)
                }
                guard let s = String(validating: bytes[start..<scan], as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                index = scan + 1
                return s
            }
            if b == 92 || b < 32 { break }
            if b >= 0x80 { ascii = false }
            scan += 1
        }
        var out: [UInt8] = Array(bytes[start..<scan])
        index = scan
        while true {
            guard index < bytes.count else { throw error("unterminated string") }
            let b = bytes[index]
            switch b {
            case 34:
                index += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                return s
            case 92:
                index += 1
                guard index < bytes.count else { throw error("unterminated escape") }
                let e = bytes[index]
                index += 1
                switch e {
                case 34: out.append(34)
                case 92: out.append(92)
                case 47: out.append(47)
                case 98: out.append(8)
                case 102: out.append(12)
                case 110: out.append(10)
                case 114: out.append(13)
                case 116: out.append(9)
                case 117:
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard index + 1 < bytes.count, bytes[index] == 92, bytes[index + 1] == 117 else {
                            throw error("unpaired surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("unpaired surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw error("invalid escape")
                }
            case 0..<32:
                throw error("control character in string")
            default:
                out.append(b)
                index += 1
            }
        }
    }

    private mutating func hex4() throws(Error) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            index += 1
        }
        return v
    }
}
