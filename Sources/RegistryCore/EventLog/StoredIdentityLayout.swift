#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The one owner of the stored identity document's layout: the members of a stored Device or
/// Module document, their canonical order (the writer takes it from here), and every question
/// the storage, the projections, device authentication and the API ask of stored bytes without
/// building a JSON tree (status, connection state, etag, keys, thumbprints, where the twin is).
///
/// Why a walk and not a substring search: the stored bytes hold text the user chose (tags,
/// `statusReason`, `deviceScope`, `managedBy`), and a search for `"primaryThumbprint":"` or
/// `"status":"disabled"` found such text twice before (a tag read as a thumbprint, a tag read as
/// a sealed key). The walk reads the document as JSON does: member names at their depth, string
/// values skipped up to their closing (unescaped) quote, nested values skipped by depth. A value
/// can therefore only ever be read as the member it is, whatever it contains, and the answers do
/// not depend on member order (canonical order only makes the name lookup take one comparison).
///
/// It reads compact JSON (the stored form is canonical JSON: no whitespace, no duplicate
/// names); anything else is refused (`nil`), never guessed at.
public struct StoredIdentityLayout: Sendable {
    /// A member of a stored identity document, at any depth.
    public enum Field: Int, CaseIterable, Sendable {
        case authentication, capabilities, cloudToDeviceMessageCount, connectionState, connectionStateUpdatedTime, deviceId, deviceScope
        case etag, generationId, lastActivityTime, managedBy, moduleId, parentScopes, restoredFrom, status, statusReason, statusUpdatedTime
        case twin
        /// Inside `authentication` (`validity`: ours, only when a window is set).
        case symmetricKey, authenticationType, validity, x509Thumbprint
        /// Inside `authentication.symmetricKey`.
        case primaryKey, secondaryKey
        /// Inside `authentication.x509Thumbprint`.
        case primaryThumbprint, secondaryThumbprint
        /// Inside `capabilities`.
        case iotEdge
        /// Inside `twin`.
        case twinEtag, tags, twinVersion

        /// The member's name in its object.
        public var name: String { Self.names[rawValue] }

        /// Looked up, not converted on each call: the writer asks for every member it writes.
        static let names: [String] = allCases.map { "\($0.nameText)" }

        /// The name as constant bytes: the walk compares them in place (no array, no
        /// reference counting per member).
        var nameText: StaticString {
            switch self {
            case .authentication: "authentication"
            case .capabilities: "capabilities"
            case .cloudToDeviceMessageCount: "cloudToDeviceMessageCount"
            case .connectionState: "connectionState"
            case .connectionStateUpdatedTime: "connectionStateUpdatedTime"
            case .deviceId: "deviceId"
            case .deviceScope: "deviceScope"
            case .etag, .twinEtag: "etag"
            case .generationId: "generationId"
            case .lastActivityTime: "lastActivityTime"
            case .managedBy: "managedBy"
            case .moduleId: "moduleId"
            case .parentScopes: "parentScopes"
            case .restoredFrom: "restoredFrom"
            case .status: "status"
            case .statusReason: "statusReason"
            case .statusUpdatedTime: "statusUpdatedTime"
            case .twin: "twin"
            case .symmetricKey: "symmetricKey"
            case .authenticationType: "type"
            case .validity: "validity"
            case .x509Thumbprint: "x509Thumbprint"
            case .primaryKey: "primaryKey"
            case .secondaryKey: "secondaryKey"
            case .primaryThumbprint: "primaryThumbprint"
            case .secondaryThumbprint: "secondaryThumbprint"
            case .iotEdge: "iotEdge"
            case .tags: "tags"
            case .twinVersion: "version"
            }
        }

        /// The members of this object member, in canonical order (empty for a leaf or `tags`,
        /// whose members the user chose).
        public var members: [Field] { Self.memberLists[rawValue] }

        static let memberLists: [[Field]] = allCases.map { $0.memberRawValues.map { Field(rawValue: $0)! } }

        /// The same as raw values: each object's members are declared together, in canonical
        /// order, so they are one range (the walk's candidates).
        var memberRawValues: Range<Int> {
            switch self {
            case .authentication: Field.symmetricKey.rawValue..<(Field.x509Thumbprint.rawValue + 1)
            case .symmetricKey: Field.primaryKey.rawValue..<(Field.secondaryKey.rawValue + 1)
            case .x509Thumbprint: Field.primaryThumbprint.rawValue..<(Field.secondaryThumbprint.rawValue + 1)
            case .capabilities: Field.iotEdge.rawValue..<(Field.iotEdge.rawValue + 1)
            case .twin: Field.twinEtag.rawValue..<(Field.twinVersion.rawValue + 1)
            default: 0..<0
            }
        }

        /// Every top-level member of either kind, in canonical order.
        static let topLevelRawValues = Field.authentication.rawValue..<(Field.twin.rawValue + 1)

        /// The object member this one sits in (`nil` at the top level).
        public var parent: Field? {
            switch self {
            case .symmetricKey, .authenticationType, .validity, .x509Thumbprint: .authentication
            case .primaryKey, .secondaryKey: .symmetricKey
            case .primaryThumbprint, .secondaryThumbprint: .x509Thumbprint
            case .iotEdge: .capabilities
            case .twinEtag, .tags, .twinVersion: .twin
            default: nil
            }
        }

        var bit: UInt32 { 1 << UInt32(rawValue) }
    }

    /// A Device document's members in canonical order: sorted by their UTF-8 bytes, as
    /// `CanonicalJSON` sorts every object. `twin` (our tags, not an Azure member) is last.
    public static let deviceMembers: [Field] = [
        .authentication, .capabilities, .cloudToDeviceMessageCount, .connectionState, .connectionStateUpdatedTime, .deviceId, .deviceScope,
        .etag, .generationId, .lastActivityTime, .parentScopes, .restoredFrom, .status, .statusReason, .statusUpdatedTime, .twin,
    ]

    /// A Module document's members in canonical order.
    public static let moduleMembers: [Field] = [
        .authentication, .cloudToDeviceMessageCount, .connectionState, .connectionStateUpdatedTime, .deviceId, .etag, .generationId,
        .lastActivityTime, .managedBy, .moduleId, .restoredFrom, .twin,
    ]

    static let topLevelBits: UInt32 = Field.topLevelRawValues.reduce(0) { $0 | 1 << UInt32($1) }

    /// Which fields a walk must find; it stops once the top-level members holding them are read.
    /// A set holds each of its fields' enclosing members too (the walk enters those).
    public struct Fields: OptionSet, Sendable {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public init(_ fields: Field...) {
            rawValue = 0
            for field in fields {
                var next: Field? = field
                while let member = next {
                    rawValue |= member.bit
                    next = member.parent
                }
            }
        }

        /// What the document readers (GET, export) need: the etag, the keys and the twin.
        public static let document = Fields(.etag, .primaryKey, .secondaryKey, .twin)
        /// What device authentication needs of the identity (the validity windows too).
        public static let credentials = Fields(.authenticationType, .primaryKey, .secondaryKey, .validity, .primaryThumbprint, .secondaryThumbprint)
        /// The two facts the projection's counters keep.
        public static let counters = Fields(.status, .connectionState)
        /// Whether a device is disabled.
        public static let status = Fields(.status)
        /// Device authentication of a device: its credentials and its status, in one walk.
        public static let deviceCredentials = Fields(rawValue: credentials.rawValue | status.rawValue)
        /// Everything (a full walk).
        public static let all = Fields(rawValue: UInt32.max)

        func contains(_ field: Field) -> Bool { rawValue & field.bit != 0 }
    }

    /// Where each member found sits: its value (the JSON token, quotes included).
    private var starts = InlineArray<32, Int32>(repeating: 0)
    private var ends = InlineArray<32, Int32>(repeating: 0)
    private var found: UInt32 = 0
    /// Values that are strings, and string values holding an escape (their bytes are not
    /// their text).
    private var strings: UInt32 = 0
    private var escaped: UInt32 = 0
    /// The `twin` member with one separating comma: what the API's identity JSON leaves out
    /// (`nil` without a twin, or when the walk was not asked to read it).
    public private(set) var twinMember: Range<Int>?

    /// Walks the document at `bytes[range]` (all of `bytes` by default) far enough to answer
    /// questions about `wanted`. `nil` when the bytes are not a compact JSON object.
    public init?(_ bytes: [UInt8], _ range: Range<Int>? = nil, reading wanted: Fields = .all) {
        let range = range ?? 0..<bytes.count
        guard range.lowerBound >= 0, range.upperBound <= bytes.count, range.count >= 2, range.upperBound < Int(Int32.max) else { return nil }
        // The top-level members holding the wanted fields (all of them for `.all`, which no
        // document has: a full walk).
        let stopAfter = wanted.rawValue & Self.topLevelBits
        let complete = bytes.withUnsafeBufferPointer { b -> Bool in
            let walker = Walker(b: b.baseAddress!, end: range.upperBound)
            guard let end = walker.object(at: range.lowerBound, Field.topLevelRawValues, into: &self, stopAfter: stopAfter, wanted: wanted) else {
                return false
            }
            // A complete walk must end exactly at the document's end; one stopped early has
            // read what was asked for.
            return end == range.upperBound || end == Walker.stopped
        }
        guard complete else { return nil }
    }

    /// Whether the member was found (a `null` value counts as found).
    public func has(_ field: Field) -> Bool { found & field.bit != 0 }

    /// The value's JSON token (a string with its quotes), or `nil` when absent.
    public func value(_ field: Field) -> Range<Int>? {
        guard has(field) else { return nil }
        return Int(starts[field.rawValue])..<Int(ends[field.rawValue])
    }

    /// Whether this is a Module document (as the codec decides: its `moduleId` is a string).
    public var isModule: Bool { strings & Field.moduleId.bit != 0 }

    /// Where a string value's text lies when it is a plain string (no escapes: its bytes are
    /// its text); `nil` when absent, `null`, not a string or escaped. Keys, thumbprints and
    /// etags are plain by construction (base64, hex); this is what splicing and unsealing use.
    public func plainString(_ field: Field, in bytes: [UInt8]) -> Range<Int>? {
        guard let token = value(field), strings & field.bit != 0, escaped & field.bit == 0 else { return nil }
        return (token.lowerBound + 1)..<(token.upperBound - 1)
    }

    /// Where a key value's text lies when it is sealed (`KeySealer`'s form); `nil` when absent,
    /// `null` or stored in the clear.
    public func sealedKey(_ field: Field, in bytes: [UInt8]) -> Range<Int>? {
        guard let text = plainString(field, in: bytes), text.count >= Self.sealedPrefix.count else { return nil }
        for (k, byte) in Self.sealedPrefix.enumerated() where bytes[text.lowerBound + k] != byte { return nil }
        return text
    }

    /// A string value's text (escapes decoded), or `nil` when absent, `null` or not a string.
    public func string(_ field: Field, in bytes: [UInt8]) -> String? {
        if let plain = plainString(field, in: bytes) { return String(decoding: bytes[plain], as: UTF8.self) }
        guard let token = value(field), strings & field.bit != 0 else { return nil }
        return (try? JSONParser.parse(Array(bytes[token])))?.stringValue
    }

    /// Whether a string value is exactly `text`.
    public func string(_ field: Field, in bytes: [UInt8], is text: String) -> Bool {
        guard let plain = plainString(field, in: bytes) else { return string(field, in: bytes) == text }
        return bytes[plain].elementsEqual(text.utf8)
    }

    /// The device's status is disabled.
    public func isDisabled(_ bytes: [UInt8]) -> Bool { string(.status, in: bytes, is: DeviceStatus.disabled.rawValue) }

    /// The identity's connection state is Connected.
    public func isConnected(_ bytes: [UInt8]) -> Bool { string(.connectionState, in: bytes, is: ConnectionState.connected.rawValue) }

    /// The document without its `twin` member: Azure's Device or Module JSON.
    public func identityJSON(_ bytes: [UInt8]) -> [UInt8] { Self.identityJSON(bytes, twinMember: twinMember) }

    /// The same, for a document whose twin member was found earlier (and kept, moved by any
    /// splice before it).
    public static func identityJSON(_ bytes: [UInt8], twinMember member: Range<Int>?) -> [UInt8] {
        guard let member else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count - member.count)
        out.append(contentsOf: bytes[..<member.lowerBound])
        out.append(contentsOf: bytes[member.upperBound...])
        return out
    }

    /// The bytes every stored document whose `field` equals `value` contains: the member as
    /// the canonical encoder writes it (the query's prefilter skips documents without them).
    /// `nil` where no such bytes exist (the value's encoding is not one fixed byte string).
    public static func memberBytes(_ field: Field, equalTo value: JSONValue) -> [UInt8]? {
        var out: [UInt8] = [quote]
        out.append(contentsOf: field.name.utf8)
        out.append(contentsOf: [quote, 58])
        switch value {
        case .bool, .null: CanonicalJSON.write(value, into: &out)
        case .string(let text):
            // Strings compare by canonical equivalence (`"\u{212A}" == "K"`, the Kelvin sign
            // against the letter), so a text has one stored form only where no other string
            // equals it: ASCII, without the three letters that have a one-character equivalent.
            guard text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && !Self.hasEquivalent.contains($0) }) else { return nil }
            CanonicalJSON.writeString(text, into: &out)
        default: return nil
        }
        return out
    }

    /// ASCII characters another Unicode character is canonically equivalent to: `K` (U+212A),
    /// `;` (U+037E) and `` ` `` (U+1FEF).
    static let hasEquivalent: Set<UInt8> = [UInt8(ascii: "K"), UInt8(ascii: ";"), UInt8(ascii: "`")]

    static let quote = UInt8(ascii: "\"")
    static let sealedPrefix = Array(KeySealer.prefix.utf8)

    mutating func record(_ field: Field, _ value: Range<Int>, string isString: Bool, escaped isEscaped: Bool) {
        starts[field.rawValue] = Int32(value.lowerBound)
        ends[field.rawValue] = Int32(value.upperBound)
        found |= field.bit
        if isString { strings |= field.bit }
        if isEscaped { escaped |= field.bit }
    }

    mutating func recordTwin(_ member: Range<Int>) { twinMember = member }
}

/// The walk itself, over one buffer. Every index is checked against `end` before it is read,
/// so no input makes it read outside the document. Names are compared with the C library's
/// `memcmp` against constant text, strings skipped eight bytes at a time.
private struct Walker {
    let b: UnsafePointer<UInt8>
    let end: Int
    /// `object` returns this when the walk stopped once it had what was asked for.
    static let stopped = -1

    /// Walks the object at `start` whose known members are the fields `members` (raw values,
    /// in canonical order), recording them. Returns the index after its closing brace,
    /// `stopped`, or `nil` when malformed.
    func object(
        at start: Int,
        _ members: Range<Int>,
        into layout: inout StoredIdentityLayout,
        stopAfter: UInt32,
        wanted: StoredIdentityLayout.Fields
    ) -> Int? {
        guard start + 1 < end, b[start] == 123 else { return nil }
        var i = start + 1
        if b[i] == 125 { return i + 1 }
        var next = members.lowerBound  // the member canonical order expects next
        var seen: UInt32 = 0
        var first = true
        while true {
            let memberStart = i
            // The member canonical order expects next is checked in place; any other name is
            // read as a string and looked up.
            var field = expected(at: i, next, members)
            let valueStart: Int
            if let found = field {
                valueStart = i + found.nameText.utf8CodeUnitCount + 3
                next = found.rawValue + 1
            } else {
                guard i < end, b[i] == 34, let (nameEnd, nameEscaped) = string(at: i) else { return nil }
                guard nameEnd < end, b[nameEnd] == 58 else { return nil }
                valueStart = nameEnd + 1
                field = nameEscaped ? nil : match((i + 1)..<(nameEnd - 1), members, &next)
            }
            guard valueStart < end else { return nil }
            var valueEnd: Int
            var valueEscaped = false
            let valueIsString = b[valueStart] == 34
            if let field, !field.memberRawValues.isEmpty, wanted.contains(field), b[valueStart] == 123 {
                guard let after = object(at: valueStart, field.memberRawValues, into: &layout, stopAfter: UInt32.max, wanted: wanted),
                    after != Self.stopped
                else { return nil }
                valueEnd = after
            } else if valueIsString {
                guard let (after, escaped) = string(at: valueStart) else { return nil }
                (valueEnd, valueEscaped) = (after, escaped)
            } else {
                guard let after = skip(at: valueStart) else { return nil }
                valueEnd = after
            }
            guard valueEnd < end else { return nil }
            let last = b[valueEnd] == 125
            guard last || b[valueEnd] == 44 else { return nil }
            if let field {
                layout.record(field, valueStart..<valueEnd, string: valueIsString, escaped: valueEscaped)
                if field == .twin {
                    // With one separating comma: the one before it, or after it when first.
                    layout.recordTwin(!first ? (memberStart - 1)..<valueEnd : last ? memberStart..<valueEnd : memberStart..<(valueEnd + 1))
                }
                seen |= field.bit
                if seen & stopAfter == stopAfter, !last { return Self.stopped }
            }
            if last { return valueEnd + 1 }
            first = false
            i = valueEnd + 1
        }
    }

    /// The member canonical order expects next when `"name":` is at `i`.
    func expected(at i: Int, _ next: Int, _ members: Range<Int>) -> StoredIdentityLayout.Field? {
        guard next < members.upperBound, let field = StoredIdentityLayout.Field(rawValue: next) else { return nil }
        let text = field.nameText
        let count = text.utf8CodeUnitCount
        guard i + count + 3 <= end, b[i] == 34, b[i + count + 1] == 34, b[i + count + 2] == 58, memcmp(b + i + 1, text.utf8Start, count) == 0 else {
            return nil
        }
        return field
    }

    /// The known member named `b[name]`, looked up among all of the object's.
    func match(_ name: Range<Int>, _ members: Range<Int>, _ next: inout Int) -> StoredIdentityLayout.Field? {
        guard !members.isEmpty else { return nil }
        var raw = next < members.upperBound ? next : members.lowerBound
        for _ in 0..<members.count {
            let field = StoredIdentityLayout.Field(rawValue: raw)!
            let text = field.nameText
            if text.utf8CodeUnitCount == name.count, memcmp(b + name.lowerBound, text.utf8Start, name.count) == 0 {
                next = raw + 1
                return field
            }
            raw = raw + 1 < members.upperBound ? raw + 1 : members.lowerBound
        }
        return nil
    }

    /// The string at `i` (`b[i]` is its opening quote): the index after its closing quote and
    /// whether it holds an escape. Eight bytes at a time (most of a document's bytes are in
    /// strings: keys, times), byte by byte after a backslash.
    func string(at i: Int) -> (Int, Bool)? {
        var j = i + 1
        let raw = UnsafeRawPointer(b)
        while j + 8 <= end {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: j, as: UInt64.self))
            // A high bit per byte equal to `"` or `\` (exact for the lowest one, the one used).
            let quotes = word ^ 0x2222_2222_2222_2222
            let backslashes = word ^ 0x5C5C_5C5C_5C5C_5C5C
            let hits =
                ((quotes &- 0x0101_0101_0101_0101) & ~quotes | (backslashes &- 0x0101_0101_0101_0101) & ~backslashes) & 0x8080_8080_8080_8080
            if hits != 0 {
                j += hits.trailingZeroBitCount >> 3
                break
            }
            j += 8
        }
        var escaped = false
        while j < end {
            let c = b[j]
            if c == 34 { return (j + 1, escaped) }
            if c == 92 {
                escaped = true
                j += 2
            } else {
                j += 1
            }
        }
        return nil
    }

    /// The index after the value at `i` that is not read member by member: an object or array
    /// (by depth, strings skipped whole) or a scalar (up to the next `,`, `}` or `]`).
    func skip(at i: Int) -> Int? {
        var j = i
        var depth = 0
        while j < end {
            switch b[j] {
            case 34:
                guard let (after, _) = string(at: j) else { return nil }
                if depth == 0 { return after }
                j = after
                continue
            case 123, 91:
                depth += 1
            case 125, 93:
                if depth == 0 { return j }
                depth -= 1
                if depth == 0 { return j + 1 }
            case 44:
                if depth == 0 { return j }
            default:
                break
            }
            j += 1
        }
        return nil
    }
}
