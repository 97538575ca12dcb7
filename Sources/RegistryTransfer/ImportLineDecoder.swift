import RegistryCore

/// Turns the common shape of an import line (a device as `registryd export` and Azure's export
/// jobs write it) into its command straight from the bytes, without the JSON tree.
///
/// Why: on an import the tree (a dictionary per object, a String per member name and value)
/// and the lenient lookups over it were a seventh of all the CPU, and the import is bound by
/// the two cores' CPU. The tree path stays the definition: this decoder takes only lines whose
/// meaning is plain (exact member names, each once; ASCII strings without escapes; the members
/// a device line has) and answers `nil` for anything else, which then goes the tree path
/// (`ImportMode.command(for:)`), errors included. `ImportLineDecoderTests` checks that both
/// give the same command for every line this one takes.
struct ImportLineDecoder {
    private let bytes: [UInt8]
    private var index = 0

    /// The command and operation name, or nil when the line is not in the plain shape.
    static func command(_ line: [UInt8]) -> (Command, String)? {
        var decoder = ImportLineDecoder(bytes: line)
        return decoder.entry()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    // MARK: the entry

    /// Member names the entry may have (exactly so spelled: the raw values), each at most once.
    private enum Member: String, CaseIterable {
        case id, importMode, eTag, twinETag, status, statusReason, authentication, capabilities, deviceScope, parentScopes
        case deviceId, moduleId, tags, properties

        /// In `names`' order, made once (`allCases` builds its array at each use).
        static let ordered = allCases
        static let names: [[UInt8]] = ordered.map { Array($0.rawValue.utf8) }
    }

    private mutating func entry() -> (Command, String)? {
        var id: String?
        var modeText: String?
        var etag: String?
        var spec = DeviceSpec(deviceId: "")
        var seen = 0
        let parsed: Bool = object(Member.names) { decoder, member in
            guard seen & (1 << member) == 0 else { return false }
            seen |= 1 << member
            switch Member.ordered[member] {
            case .id: return decoder.string(&id) && id != nil
            case .importMode: return decoder.string(&modeText)
            case .eTag: return decoder.string(&etag)
            case .twinETag, .deviceId:
                // Read only by the twin modes (not taken here) and ignored on device entries.
                var ignored: String?
                return decoder.string(&ignored)
            case .status: return decoder.enumValue(&spec.status)
            case .statusReason: return decoder.string(&spec.statusReason)
            case .authentication: return decoder.authentication(&spec.authentication)
            case .capabilities: return decoder.capabilities(&spec.capabilities)
            case .deviceScope: return decoder.string(&spec.deviceScope)
            case .parentScopes: return decoder.scopes(&spec.parentScopes)
            case .moduleId, .tags, .properties:
                // Modules, tags and the refusal of properties: the tree path's (only null here).
                return decoder.null()
            }
        }
        guard parsed, let id else { return nil }
        skipWhitespace()
        guard index == bytes.count else { return nil }
        guard let mode = ImportMode(wire: modeText ?? "createOrUpdate") else { return nil }
        spec.deviceId = id
        let exact = etag.map { ETagCondition(header: $0) } ?? .exact("")
        guard let command = ImportMode.deviceCommand(mode, spec, ifMatch: exact) else { return nil }
        return (command, mode.rawValue)
    }

    private static let authenticationNames: [[UInt8]] = ["type", "symmetricKey", "x509Thumbprint"].map { Array($0.utf8) }
    private static let keyNames: [[UInt8]] = ["primaryKey", "secondaryKey"].map { Array($0.utf8) }
    private static let thumbprintNames: [[UInt8]] = ["primaryThumbprint", "secondaryThumbprint"].map { Array($0.utf8) }
    private static let capabilityNames: [[UInt8]] = [Array("iotEdge".utf8)]

    /// `authentication`: null (absent) or an object of `type`, `symmetricKey` and `x509Thumbprint`.
    private mutating func authentication(_ out: inout AuthenticationSpec?) -> Bool {
        if null() { return true }
        var spec = AuthenticationSpec()
        var seen = 0
        let parsed = object(Self.authenticationNames) { decoder, member in
            guard seen & (1 << member) == 0 else { return false }
            seen |= 1 << member
            switch member {
            case 0: return decoder.enumValue(&spec.type)
            case 1: return decoder.pair(Self.keyNames, &spec.primaryKey, &spec.secondaryKey)
            default: return decoder.pair(Self.thumbprintNames, &spec.primaryThumbprint, &spec.secondaryThumbprint)
            }
        }
        guard parsed else { return false }
        out = spec
        return true
    }

    /// An object of two string members (keys, thumbprints), or null: nothing set.
    private mutating func pair(_ names: [[UInt8]], _ first: inout String?, _ second: inout String?) -> Bool {
        if null() { return true }
        var seen = 0
        return object(names) { decoder, member in
            guard seen & (1 << member) == 0 else { return false }
            seen |= 1 << member
            return member == 0 ? decoder.string(&first) : decoder.string(&second)
        }
    }

    /// `capabilities`: null, or an object whose `iotEdge` is a boolean or null (false).
    private mutating func capabilities(_ out: inout DeviceCapabilities) -> Bool {
        if null() { return true }
        var seen = false
        return object(Self.capabilityNames) { decoder, _ in
            guard !seen else { return false }
            seen = true
            if decoder.null() { return true }
            guard let value = decoder.bool() else { return false }
            out.iotEdge = value
            return true
        }
    }

    /// `parentScopes`: null, or an array of strings and nulls (the nulls dropped).
    private mutating func scopes(_ out: inout [String]) -> Bool {
        if null() { return true }
        guard take(91) else { return false }
        var scopes: [String] = []
        skipWhitespace()
        if take(93) {
            out = scopes
            return true
        }
        while true {
            skipWhitespace()
            var scope: String?
            guard string(&scope) else { return false }
            if let scope { scopes.append(scope) }
            skipWhitespace()
            if take(44) { continue }
            guard take(93) else { return false }
            out = scopes
            return true
        }
    }

    // MARK: tokens

    /// An object whose member names are all in `names` (their index goes to `member`, which
    /// reads the value); false for any other name or malformed input.
    private mutating func object(_ names: [[UInt8]], member: (inout ImportLineDecoder, Int) -> Bool) -> Bool {
        skipWhitespace()
        guard take(123) else { return false }
        skipWhitespace()
        if take(125) { return true }
        while true {
            skipWhitespace()
            guard let name = plainString(), let known = names.firstIndex(where: { $0.elementsEqual(bytes[name]) }) else { return false }
            skipWhitespace()
            guard take(58) else { return false }
            skipWhitespace()
            guard member(&self, known) else { return false }
            skipWhitespace()
            if take(44) { continue }
            return take(125)
        }
    }

    /// A string or null (`out` unchanged for null, as the tree path reads null as absent).
    private mutating func string(_ out: inout String?) -> Bool {
        if null() { return true }
        guard let range = plainString() else { return false }
        out = String(decoding: bytes[range], as: UTF8.self)
        return true
    }

    /// An enum value (ASCII case ignored, as the tree path does) or null; false for any other.
    private mutating func enumValue<E: RawRepresentable & CaseIterable>(_ out: inout E?) -> Bool where E.RawValue == String {
        if null() { return true }
        guard let range = plainString(), let value = E.allCases.first(where: { ASCIICase.equal($0.rawValue.utf8, bytes[range]) }) else {
            return false
        }
        out = value
        return true
    }

    /// The bytes between the quotes of a string of printable ASCII without escapes; nil (and
    /// the tree path) for anything else.
    private mutating func plainString() -> Range<Int>? {
        guard take(34) else { return nil }
        let start = index
        while index < bytes.count {
            let b = bytes[index]
            if b == 34 {
                index += 1
                return start..<(index - 1)
            }
            guard b >= 32, b < 127, b != 92 else { return nil }
            index += 1
        }
        return nil
    }

    private mutating func bool() -> Bool? {
        if word(Self.trueWord) { return true }
        if word(Self.falseWord) { return false }
        return nil
    }

    private static let nullWord = Array("null".utf8)
    private static let trueWord = Array("true".utf8)
    private static let falseWord = Array("false".utf8)

    private mutating func null() -> Bool { word(Self.nullWord) }

    private mutating func word(_ expected: [UInt8]) -> Bool {
        guard index + expected.count <= bytes.count, bytes[index..<(index + expected.count)].elementsEqual(expected) else { return false }
        index += expected.count
        return true
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, bytes[index] == 32 || bytes[index] == 10 || bytes[index] == 13 || bytes[index] == 9 {
            index += 1
        }
    }
}
