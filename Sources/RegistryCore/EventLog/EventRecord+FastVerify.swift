import Crypto
import SystemBytes

/// What replay needs of a stored event, read straight from its bytes.
public struct VerifiedEvent: Sendable {
    public var seq: UInt64
    public var type: EventType
    public var deviceId: String
    public var moduleId: String?
    /// The payload's canonical bytes, exactly as the projection stores them.
    public var payloadBytes: [UInt8]
    public var hash: [UInt8]
    /// Whether the payload is a disabled device.
    public var disabled: Bool
    /// Whether the payload is a connected device (known from the identity on the write path,
    /// so the projection does not search the payload for it).
    public var connected: Bool

    package init(
        seq: UInt64,
        type: EventType,
        deviceId: String,
        moduleId: String?,
        payloadBytes: [UInt8],
        hash: [UInt8],
        disabled: Bool,
        connected: Bool
    ) {
        self.seq = seq
        self.type = type
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.payloadBytes = payloadBytes
        self.hash = hash
        self.disabled = disabled
        self.connected = connected
    }
}

/// A SHA-256 value held inline (no allocation): the log verifier reads two per event.
package struct Hash32: Hashable, Sendable {
    package var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0, d: UInt64 = 0

    package init(_ bytes: some Sequence<UInt8>) {
        var i = 0
        for byte in bytes {
            switch i >> 3 {
            case 0: a = a << 8 | UInt64(byte)
            case 1: b = b << 8 | UInt64(byte)
            case 2: c = c << 8 | UInt64(byte)
            default: d = d << 8 | UInt64(byte)
            }
            i += 1
        }
    }

    /// Decodes 64 hex digits at `start` of `text` (either case, as `Hex.decode` accepts).
    package init?(hex text: [UInt8], at start: Int) {
        guard start >= 0, start + 64 <= text.count else { return nil }
        // One table lookup per digit; any non-digit sets a high bit, checked once at the end.
        var bad: UInt8 = 0
        func word(_ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in at..<(at + 16) {
                let n = Hash32.hexValues[Int(text[i])]
                bad |= n
                v = v << 4 | UInt64(n & 15)
            }
            return v
        }
        a = word(start)
        b = word(start + 16)
        c = word(start + 32)
        d = word(start + 48)
        guard bad & 0xF0 == 0 else { return nil }
    }

    private static let hexValues: [UInt8] = (0...255).map { Hex.nibble(UInt8($0)) ?? 0xFF }

    /// The 32 bytes, written over `out` (a caller's reused buffer of 32).
    package func write(into out: inout [UInt8]) {
        for (w, word) in [a, b, c, d].enumerated() {
            for j in 0..<8 { out[8 * w + j] = UInt8(truncatingIfNeeded: word >> UInt64(56 - 8 * j)) }
        }
    }

    package var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        write(into: &out)
        return out
    }
}

/// Where the envelope members of one stored event record sit in a buffer (a scan batch holding
/// many records, or one record), read without building a JSON tree.
package struct RecordLayout: Sendable {
    package var seq: UInt64
    package var type: EventType
    package var device: Range<Int>
    package var module: Range<Int>?
    package var payload: Range<Int>
    package var hash: Hash32
    package var prevHash: Hash32
    /// The `,"hash":"…"` member, which the hash itself does not cover.
    package var hashMember: Range<Int>
}

extension EventRecord {
    package static let hashMember = Array(",\"hash\":\"".utf8)
    package static let deviceIdMember = Array("{\"actor\":\"".utf8)
    package static let deviceIdName = Array(",\"deviceId\":\"".utf8)
    package static let moduleIdMember = Array(",\"moduleId\":\"".utf8)
    package static let payloadMember = Array(",\"payload\":".utf8)
    package static let prevHashMember = Array(",\"prevHash\":\"".utf8)
    package static let schemaMember = Array(",\"schema\":".utf8)
    package static let seqMember = Array(",\"seq\":".utf8)
    package static let typeMember = Array(",\"type\":\"".utf8)

    /// Reads the envelope of the record at `b[r]`; `nil` when the fast path cannot (escapes in
    /// ids, an unknown layout), and the caller falls back to the full decode.
    ///
    /// Why the byte search is sound: the stored bytes are canonical JSON with sorted keys (for
    /// the log walk, `selfCheck` makes sure they are), so the
    /// top-level members come in a fixed order (actor, deviceId, hash, moduleId, payload,
    /// prevHash, requestId, schema, seq, time, type), and inside any string a quote is always
    /// escaped, so `,"name":` with an unescaped quote only occurs as a member name. `hash` is the
    /// first member after two strings; `prevHash` the last one after the payload.
    package static func layout(_ b: [UInt8], _ r: Range<Int>) -> RecordLayout? {
        guard r.count > deviceIdMember.count, ByteScan.equal(b, r.lowerBound..<(r.lowerBound + deviceIdMember.count), deviceIdMember),
            let deviceAt = ByteSearch.first(deviceIdName, in: b, from: r.lowerBound, to: r.upperBound),
            let hashAt = ByteSearch.first(hashMember, in: b, from: deviceAt, to: r.upperBound),
            let payloadAt = ByteSearch.first(payloadMember, in: b, from: hashAt, to: r.upperBound),
            let prevAt = ByteSearch.last(prevHashMember, in: b, from: payloadAt, to: r.upperBound),
            let schemaAt = ByteSearch.last(schemaMember, in: b, from: prevAt, to: r.upperBound),
            let seqAt = ByteSearch.last(seqMember, in: b, from: schemaAt, to: r.upperBound),
            let typeAt = ByteSearch.last(typeMember, in: b, from: seqAt, to: r.upperBound),
            prevAt > payloadAt, schemaAt > prevAt, seqAt > schemaAt, typeAt > seqAt
        else { return nil }
        let hashStart = hashAt + hashMember.count
        guard hashStart + 65 <= r.upperBound, b[hashStart + 64] == UInt8(ascii: "\""), let hash = Hash32(hex: b, at: hashStart) else { return nil }
        let prevStart = prevAt + prevHashMember.count
        guard prevStart + 65 <= r.upperBound, b[prevStart + 64] == UInt8(ascii: "\""), let prev = Hash32(hex: b, at: prevStart) else { return nil }
        // Plain strings only (no escapes): anything else takes the full decode.
        func plainString(at start: Int) -> Range<Int>? {
            guard let end = ByteScan.firstIndex(of: quote, in: b, from: start, to: r.upperBound),
                ByteScan.firstIndex(of: backslash, in: b, from: start, to: end) == nil
            else { return nil }
            return start..<end
        }
        func integer(at start: Int) -> Int64? {
            var i = start
            var v: Int64 = 0
            while i < r.upperBound, b[i] >= 48, b[i] <= 57, i - start < 18 {
                v = v &* 10 &+ Int64(b[i] - 48)
                i += 1
            }
            return i > start && i < r.upperBound && (b[i] == UInt8(ascii: ",") || b[i] == UInt8(ascii: "}")) ? v : nil
        }
        guard let device = plainString(at: deviceAt + deviceIdName.count),
            let typeName = plainString(at: typeAt + typeMember.count), let type = EventType(rawValue: String(decoding: b[typeName], as: UTF8.self)),
            let seq = integer(at: seqAt + seqMember.count), seq > 0,
            let schema = integer(at: schemaAt + schemaMember.count), schema >= 1, schema <= currentSchema
        else { return nil }
        var module: Range<Int>?
        // `moduleId` sits between the hash and the payload: search only there.
        if let moduleAt = ByteSearch.first(moduleIdMember, in: b, from: hashStart + 64, to: payloadAt) {
            guard let id = plainString(at: moduleAt + moduleIdMember.count) else { return nil }
            module = id
        }
        return RecordLayout(
            seq: UInt64(seq),
            type: type,
            device: device,
            module: module,
            payload: (payloadAt + payloadMember.count)..<prevAt,
            hash: hash,
            prevHash: prev,
            hashMember: hashAt..<(hashStart + 65)
        )
    }

    /// One record verified as the log walk verifies it (fast path, or the full decode when the
    /// fast path cannot read it).
    public static func fastVerified(_ bytes: [UInt8], expectedSeq: UInt64, prevHash: [UInt8]) -> Result<VerifiedEvent, EventDecodingError> {
        var scratch = [UInt8](repeating: 0, count: 32)
        let checked = selfCheck(bytes, 0..<bytes.count, scratch: &scratch)
        return WalkedEvent.accept(bytes, record: 0..<bytes.count, checked: checked, expectedSeq: expectedSeq, prevHash: Hash32(prevHash)).map(
            \.verifiedEvent
        )
    }

    private static let quote: [UInt8] = [UInt8(ascii: "\"")]
    private static let backslash: [UInt8] = [UInt8(ascii: "\\")]

    /// A record checked on its own: its layout and whether its hash matches its content under
    /// its stored prevHash (`nil` when the fast path cannot read it). `scratch` is a reused
    /// 32-byte buffer for the prevHash bytes.
    ///
    /// Only a record in canonical form takes the fast path: the layout's byte search is sound
    /// only for those, and the hash covers the stored bytes, so a record re-hashed after a
    /// non-canonical rewrite would pass it. Any other record goes to the full decode, which
    /// refuses it with the same reason as a replay does.
    package static func selfCheck(_ b: [UInt8], _ r: Range<Int>, scratch: inout [UInt8]) -> (RecordLayout, Bool)? {
        guard let layout = layout(b, r), CanonicalForm.isCanonicalRecord(b, r) else { return nil }
        layout.prevHash.write(into: &scratch)
        var hasher = SHA256()
        hasher.update(data: scratch)
        hasher.update(data: b[r.lowerBound..<layout.hashMember.lowerBound])
        hasher.update(data: b[layout.hashMember.upperBound..<r.upperBound])
        return (layout, Hash32(hasher.finalize()) == layout.hash)
    }
}
