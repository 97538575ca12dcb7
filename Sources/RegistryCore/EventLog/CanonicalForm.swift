/// Whether stored bytes are in canonical form, decided in one pass over the bytes without
/// building a JSON tree: the log verifier's fast path asks it of every record, so that it refuses
/// exactly the records the full decode refuses as "not in canonical form" (a record can be valid
/// JSON, hash-chained and still not canonical: reordered members, whitespace, a needless escape).
///
/// The rules are those of `CanonicalJSON.encode(JSONParser.parse(bytes)) == bytes`, read off the
/// two: no whitespace outside strings; object members in strictly increasing order of their
/// decoded names' UTF-8 bytes (a duplicate name would lose a member to the parser); strings in
/// valid UTF-8 with only the escapes the encoder writes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, and `\u00xx` in lowercase for the other control characters); numbers as written except
/// `-0`, the one integer spelling the parser reads as another (`0`); no nesting deeper than the
/// parser takes. A test holds the two to the same answer on generated and mutated input.
enum CanonicalForm {
    /// Whether `bytes` are the canonical JSON of the value they parse to.
    static func isCanonical(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { p in
            var scanner = CanonicalScanner(p, from: 0, to: p.count)
            return scanner.value() && scanner.index == p.count
        }
    }

    /// Whether `b[r]` is a stored event record as `EventRecord` writes it: exactly what
    /// `EventRecord.decode` accepts and re-encodes to the same bytes. That is canonical JSON of
    /// an object with exactly the envelope members (`moduleId` optional), each of the type the
    /// decode requires, the hashes in lowercase hex, and the time as `Timestamp` writes it.
    static func isCanonicalRecord(_ b: [UInt8], _ r: Range<Int>) -> Bool {
        b.withUnsafeBufferPointer { p in
            var scanner = CanonicalScanner(p, from: r.lowerBound, to: r.upperBound)
            return scanner.record()
        }
    }

    /// Whether `p[r]` is a time exactly as `Timestamp.appendISO8601` writes it: the unset time,
    /// or `YYYY-MM-DDTHH:MM:SS.fffffffZ` naming a real instant after it (what
    /// `Timestamp(iso8601:)` reads back to the same text).
    static func isCanonicalTime(_ p: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        let unset = Self.unsetTime
        if r.count == unset.count {
            for (offset, byte) in unset.enumerated() where p[r.lowerBound + offset] != byte { return false }
            return true
        }
        guard r.count == 28 else { return false }
        let t = r.lowerBound
        func number(_ at: Int, _ count: Int) -> Int64? {
            var v: Int64 = 0
            for i in (t + at)..<(t + at + count) {
                guard CanonicalScanner.isDigit(p[i]) else { return nil }
                v = v * 10 + Int64(p[i] - 0x30)
            }
            return v
        }
        guard p[t + 4] == 0x2D, p[t + 7] == 0x2D, p[t + 10] == 0x54, p[t + 13] == 0x3A, p[t + 16] == 0x3A, p[t + 19] == 0x2E, p[t + 27] == 0x5A,
            let y = number(0, 4), let mo = number(5, 2), let d = number(8, 2), let h = number(11, 2), let mi = number(14, 2), let s = number(17, 2),
            let fraction = number(20, 7),
            (1...9999).contains(y), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 60
        else { return false }
        // A day past the month's end (`02-30`) reads as another date; tick 0 is written as the unset time.
        let days = Timestamp.days(year: y, month: mo, day: d)
        guard Timestamp.civil(fromDaysSinceYear1: days) == (y, mo, d) else { return false }
        return days != 0 || h != 0 || mi != 0 || s != 0 || fraction != 0
    }

    static let unsetTime = Array("0001-01-01T00:00:00Z".utf8)
}

/// The scan behind `CanonicalForm`: a cursor over `p[index..<end]`.
private struct CanonicalScanner {
    let p: UnsafeBufferPointer<UInt8>
    var index: Int
    let end: Int
    var depth = 0

    init(_ p: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) {
        self.p = p
        self.index = start
        self.end = end
    }

    // MARK: values

    mutating func value() -> Bool {
        guard index < end else { return false }
        switch p[index] {
        case 0x7B: return object()
        case 0x5B: return array()
        case 0x22: return string() != nil
        case 0x74: return literal(Self.trueBytes)
        case 0x66: return literal(Self.falseBytes)
        case 0x6E: return literal(Self.nullBytes)
        case 0x2D, 0x30...0x39: return number()
        default: return false
        }
    }

    private static let trueBytes = Array("true".utf8)
    private static let falseBytes = Array("false".utf8)
    private static let nullBytes = Array("null".utf8)

    mutating func literal(_ word: [UInt8]) -> Bool {
        guard end - index >= word.count else { return false }
        for (offset, byte) in word.enumerated() where p[index + offset] != byte { return false }
        index += word.count
        return true
    }

    /// The parser's bound on nesting: deeper input is refused by the full decode too.
    mutating func nest() -> Bool {
        depth += 1
        return depth <= JSONParser.maximumDepth
    }

    mutating func object() -> Bool {
        guard nest() else { return false }
        index += 1
        guard index < end else { return false }
        if p[index] == 0x7D {
            index += 1
            depth -= 1
            return true
        }
        var previous: CanonicalString?
        while true {
            guard index < end, p[index] == 0x22, let name = string() else { return false }
            if let previous, !precedes(previous, name) { return false }
            previous = name
            guard index < end, p[index] == 0x3A else { return false }
            index += 1
            guard value(), index < end else { return false }
            if p[index] == 0x2C {
                index += 1
                continue
            }
            guard p[index] == 0x7D else { return false }
            index += 1
            depth -= 1
            return true
        }
    }

    mutating func array() -> Bool {
        guard nest() else { return false }
        index += 1
        guard index < end else { return false }
        if p[index] == 0x5D {
            index += 1
            depth -= 1
            return true
        }
        while true {
            guard value(), index < end else { return false }
            if p[index] == 0x2C {
                index += 1
                continue
            }
            guard p[index] == 0x5D else { return false }
            index += 1
            depth -= 1
            return true
        }
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// RFC 8259's number grammar; any spelling the parser keeps as text is canonical as it
    /// stands, and integers are written back as `String(Int64)` does, which differs from the
    /// input only for `-0`.
    mutating func number() -> Bool {
        let start = index
        if p[index] == 0x2D { index += 1 }
        guard index < end, Self.isDigit(p[index]) else { return false }
        if p[index] == 0x30 {
            index += 1
        } else {
            while index < end, Self.isDigit(p[index]) { index += 1 }
        }
        var integral = true
        if index < end, p[index] == 0x2E {
            integral = false
            index += 1
            let digits = index
            while index < end, Self.isDigit(p[index]) { index += 1 }
            guard index > digits else { return false }
        }
        if index < end, p[index] == 0x65 || p[index] == 0x45 {
            integral = false
            index += 1
            if index < end, p[index] == 0x2B || p[index] == 0x2D { index += 1 }
            let digits = index
            while index < end, Self.isDigit(p[index]) { index += 1 }
            guard index > digits else { return false }
        }
        return !(integral && index - start == 2 && p[start] == 0x2D && p[start + 1] == 0x30)
    }

    // MARK: strings

    /// A string's content (between its quotes), and whether it holds an escape.
    struct CanonicalString {
        var range: Range<Int>
        var escaped: Bool
    }

    /// The string at `index` (its opening quote), if canonical; `index` then follows it.
    mutating func string() -> CanonicalString? {
        index += 1
        let start = index
        var escaped = false
        while index < end {
            // Most bytes are plain ASCII (not a quote, backslash or control): skip them in locals.
            var i = index
            if let base = p.baseAddress {
                while end - i >= 8, !Self.holdsSpecialByte(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) { i += 8 }
            }
            while i < end {
                let c = p[i]
                guard c >= 0x20, c < 0x80, c != 0x22, c != 0x5C else { break }
                i += 1
            }
            index = i
            guard index < end else { return nil }
            let c = p[index]
            if c == 0x22 {
                defer { index += 1 }
                return CanonicalString(range: start..<index, escaped: escaped)
            }
            if c == 0x5C {
                guard escape() else { return nil }
                escaped = true
            } else if c < 0x80 {
                return nil  // a control character
            } else {
                guard scalar() else { return nil }
            }
        }
        return nil
    }

    /// Whether any of the eight bytes of `w` is not plain ASCII (SWAR: a control, a quote, a backslash
    /// or a byte with its high bit set), so a string's plain runs are skipped a word at a time.
    @inline(__always) static func holdsSpecialByte(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func zeroByte(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
        let below20 = (w &- 0x20 &* ones) & ~w & highs
        return (w & highs) | below20 | zeroByte(w ^ (0x22 &* ones)) | zeroByte(w ^ (0x5C &* ones)) != 0
    }

    /// One escape at `index` (its backslash), if it is the one `CanonicalJSON.writeString` writes
    /// for the character it stands for.
    mutating func escape() -> Bool {
        guard end - index >= 2 else { return false }
        switch p[index + 1] {
        case 0x22, 0x5C, 0x62, 0x66, 0x6E, 0x72, 0x74:
            index += 2
            return true
        case 0x75:
            guard end - index >= 6, p[index + 2] == 0x30, p[index + 3] == 0x30, let high = Self.lowerHex(p[index + 4]),
                let low = Self.lowerHex(p[index + 5])
            else { return false }
            let code = high << 4 | low
            // Control characters only, and not those with a short escape.
            guard code < 0x20, code != 8, code != 9, code != 10, code != 12, code != 13 else { return false }
            index += 6
            return true
        default:
            return false
        }
    }

    static func lowerHex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    /// One multi-byte UTF-8 sequence at `index`, if well formed (no overlong form, surrogate or
    /// value past U+10FFFF: what `String(validating:)` refuses).
    mutating func scalar() -> Bool {
        let c = p[index]
        let count: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: count = 2
        case 0xE0:
            count = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: count = 3
        case 0xED:
            count = 3
            high = 0x9F
        case 0xF0:
            count = 4
            low = 0x90
        case 0xF1...0xF3: count = 4
        case 0xF4:
            count = 4
            high = 0x8F
        default: return false
        }
        guard end - index >= count, p[index + 1] >= low, p[index + 1] <= high else { return false }
        for k in 2..<count where p[index + k] & 0xC0 != 0x80 { return false }
        index += count
        return true
    }

    /// Whether member name `a` sorts strictly before `b`, comparing decoded names as the encoder
    /// does (an escape's bytes are not the character's).
    func precedes(_ a: CanonicalString, _ b: CanonicalString) -> Bool {
        guard a.escaped || b.escaped else {
            var i = a.range.lowerBound
            var j = b.range.lowerBound
            while i < a.range.upperBound, j < b.range.upperBound {
                if p[i] != p[j] { return p[i] < p[j] }
                i += 1
                j += 1
            }
            return a.range.count < b.range.count
        }
        return decoded(a).lexicographicallyPrecedes(decoded(b))
    }

    /// The bytes a canonical string stands for (its escapes are known to be canonical).
    func decoded(_ s: CanonicalString) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.range.lowerBound
        while i < s.range.upperBound {
            guard p[i] == 0x5C else {
                out.append(p[i])
                i += 1
                continue
            }
            switch p[i + 1] {
            case 0x62: out.append(8)
            case 0x66: out.append(12)
            case 0x6E: out.append(10)
            case 0x72: out.append(13)
            case 0x74: out.append(9)
            case 0x75:
                out.append((Self.lowerHex(p[i + 4]) ?? 0) << 4 | (Self.lowerHex(p[i + 5]) ?? 0))
                i += 4
            default: out.append(p[i + 1])  // `"` or `\`
            }
            i += 2
        }
        return out
    }

    // MARK: the record envelope

    /// What each envelope member must hold for `EventRecord.decode` to accept it.
    enum Member {
        case string, hash, payload, schema, seq, time, type
    }

    /// The members in canonical (sorted) order; `moduleId` only on module events.
    static let envelope: [(name: [UInt8], kind: Member)] = {
        let members: [(String, Member)] = [
            ("actor", .string), ("deviceId", .string), ("hash", .hash), ("moduleId", .string), ("payload", .payload),
            ("prevHash", .hash), ("requestId", .string), ("schema", .schema), ("seq", .seq), ("time", .time), ("type", .type),
        ]
        return members.map { (Array($0.0.utf8), $0.1) }
    }()
    static let moduleIdAt = 3

    static let typeNames: [[UInt8]] = EventType.allCases.map { Array($0.rawValue.utf8) }

    /// The whole buffer is one canonical envelope (see `CanonicalForm.isCanonicalRecord`).
    mutating func record() -> Bool {
        guard index < end, p[index] == 0x7B, nest() else { return false }
        index += 1
        var next = 0
        while true {
            guard index < end, p[index] == 0x22, let name = string(), !name.escaped else { return false }
            if next == Self.moduleIdAt, !equal(name.range, Self.envelope[next].name) { next += 1 }
            guard next < Self.envelope.count, equal(name.range, Self.envelope[next].name), index < end, p[index] == 0x3A else { return false }
            index += 1
            guard member(Self.envelope[next].kind), index < end else { return false }
            next += 1
            if p[index] == 0x2C, next < Self.envelope.count {
                index += 1
                continue
            }
            guard p[index] == 0x7D, next == Self.envelope.count else { return false }
            index += 1
            return index == end
        }
    }

    func equal(_ range: Range<Int>, _ bytes: [UInt8]) -> Bool {
        guard range.count == bytes.count else { return false }
        for (offset, byte) in bytes.enumerated() where p[range.lowerBound + offset] != byte { return false }
        return true
    }

    mutating func member(_ kind: Member) -> Bool {
        switch kind {
        case .payload:
            return value()
        case .hash:
            // `"` and 64 lowercase hex digits (the decode accepts upper case; the encoder writes lower).
            guard end - index >= 66, p[index] == 0x22, p[index + 65] == 0x22 else { return false }
            for k in 1...64 where Self.lowerHex(p[index + k]) == nil { return false }
            index += 66
            return true
        case .schema:
            guard let schema = positiveInteger() else { return false }
            return schema <= EventRecord.currentSchema
        case .seq:
            return positiveInteger() != nil
        case .string, .time, .type:
            guard index < end, p[index] == 0x22, let s = string() else { return false }
            switch kind {
            case .time: return !s.escaped && CanonicalForm.isCanonicalTime(p, s.range)
            case .type: return !s.escaped && Self.typeNames.contains { equal(s.range, $0) }
            default: return true
            }
        }
    }

    /// An integer from 1 to `Int64.max` in canonical form (what `intValue` of a positive
    /// `.int` reads); any fraction, exponent or sign makes the decode refuse it.
    mutating func positiveInteger() -> Int64? {
        let start = index
        var value: Int64 = 0
        while index < end, Self.isDigit(p[index]) {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(p[index] - 0x30))
            guard !o1, !o2 else { return nil }
            value = sum
            index += 1
        }
        guard index > start, p[start] != 0x30, index < end, p[index] == 0x2C || p[index] == 0x7D else { return nil }
        return value
    }
}
