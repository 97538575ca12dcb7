import Crypto

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
}

extension EventRecord {
    /// Verifies a stored record without building a JSON tree: locates the envelope members in
    /// the canonical bytes, checks sequence, `prevHash` and the SHA-256 over the bytes without
    /// the `hash` member, and slices out the payload.
    ///
    /// Why the byte search is sound: the stored bytes are canonical JSON with sorted keys, so the
    /// top-level members come in a fixed order (actor, deviceId, hash, moduleId, payload,
    /// prevHash, requestId, schema, seq, time, type), and inside any string a quote is always
    /// escaped, so `,"name":` with an unescaped quote only occurs as a member name. `hash` is the
    /// first member after two strings; `prevHash` the last one after the payload. A record the
    /// fast path cannot read (escapes in ids, an unknown layout) falls back to the full decode.
    public static func fastVerified(_ bytes: [UInt8], expectedSeq: UInt64, prevHash: [UInt8]) -> Result<VerifiedEvent, EventDecodingError> {
        guard let fast = fastParse(bytes) else {
            return verified(bytes, expectedSeq: expectedSeq, prevHash: prevHash).map { record in
                VerifiedEvent(
                    seq: record.seq, type: record.type, deviceId: record.deviceId, moduleId: record.moduleId,
                    payloadBytes: record.payloadBytes, hash: record.hash, disabled: Projections.isDisabled(record.payload)
                )
            }
        }
        guard fast.seq == expectedSeq else { return .failure(EventDecodingError("sequence \(fast.seq) where \(expectedSeq) was expected")) }
        guard fast.prevHash == prevHash else { return .failure(EventDecodingError("prevHash does not match the previous event's hash")) }
        var hasher = SHA256()
        hasher.update(data: prevHash)
        hasher.update(data: bytes[..<fast.hashMemberStart])
        hasher.update(data: bytes[fast.hashMemberEnd...])
        guard Array(hasher.finalize()) == fast.hash else { return .failure(EventDecodingError("hash does not match the content")) }
        return .success(fast.event)
    }

    /// A record checked on its own: its envelope read from the bytes and whether its hash
    /// matches its content under its stored prevHash (`nil` when the fast path cannot read it).
    static func selfCheck(_ bytes: [UInt8]) -> (FastParse, Bool)? {
        guard let fast = fastParse(bytes) else { return nil }
        var hasher = SHA256()
        hasher.update(data: fast.prevHash)
        hasher.update(data: bytes[..<fast.hashMemberStart])
        hasher.update(data: bytes[fast.hashMemberEnd...])
        return (fast, Array(hasher.finalize()) == fast.hash)
    }

    struct FastParse: Sendable {
        var event: VerifiedEvent
        var seq: UInt64
        var prevHash: [UInt8]
        var hash: [UInt8]
        var hashMemberStart: Int
        var hashMemberEnd: Int
    }

    static let hashMember = Array(",\"hash\":\"".utf8)
    static let deviceIdMember = Array("{\"actor\":\"".utf8)
    static let deviceIdName = Array(",\"deviceId\":\"".utf8)
    static let moduleIdMember = Array(",\"moduleId\":\"".utf8)
    static let payloadMember = Array(",\"payload\":".utf8)
    static let prevHashMember = Array(",\"prevHash\":\"".utf8)
    static let schemaMember = Array(",\"schema\":".utf8)
    static let seqMember = Array(",\"seq\":".utf8)
    static let typeMember = Array(",\"type\":\"".utf8)
    static let disabledMarker = Array("\"status\":\"disabled\"".utf8)

    static func fastParse(_ b: [UInt8]) -> FastParse? {
        guard b.starts(with: deviceIdMember),
            let deviceAt = ByteSearch.first(deviceIdName, in: b, from: 0),
            let hashAt = ByteSearch.first(hashMember, in: b, from: deviceAt),
            let payloadAt = ByteSearch.first(payloadMember, in: b, from: hashAt),
            let prevAt = ByteSearch.last(prevHashMember, in: b),
            prevAt > payloadAt,
            let schemaAt = ByteSearch.last(schemaMember, in: b), let seqAt = ByteSearch.last(seqMember, in: b), let typeAt = ByteSearch.last(typeMember, in: b),
            schemaAt > prevAt, seqAt > schemaAt, typeAt > seqAt
        else { return nil }
        let hashStart = hashAt + hashMember.count
        guard hashStart + 65 <= b.count, b[hashStart + 64] == UInt8(ascii: "\""),
            let hash = Hex.decode(bytes: b[hashStart..<(hashStart + 64)]), hash.count == 32
        else { return nil }
        let prevStart = prevAt + prevHashMember.count
        guard prevStart + 65 <= b.count, b[prevStart + 64] == UInt8(ascii: "\""),
            let prev = Hex.decode(bytes: b[prevStart..<(prevStart + 64)])
        else { return nil }
        // Plain strings only (no escapes): anything else takes the full decode.
        func plainString(at start: Int) -> String? {
            guard let end = b[start...].firstIndex(of: UInt8(ascii: "\"")), !b[start..<end].contains(UInt8(ascii: "\\")) else { return nil }
            return String(decoding: b[start..<end], as: UTF8.self)
        }
        func integer(at start: Int) -> Int64? {
            var i = start
            var v: Int64 = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                v = v &* 10 &+ Int64(b[i] - 48)
                i += 1
            }
            return i > start && i < b.count && (b[i] == UInt8(ascii: ",") || b[i] == UInt8(ascii: "}")) ? v : nil
        }
        guard let deviceId = plainString(at: deviceAt + deviceIdName.count),
            let typeName = plainString(at: typeAt + typeMember.count), let type = EventType(rawValue: typeName),
            let seq = integer(at: seqAt + seqMember.count), seq > 0,
            let schema = integer(at: schemaAt + schemaMember.count), schema >= 1, schema <= currentSchema
        else { return nil }
        var moduleId: String?
        // `moduleId` sits between the hash and the payload: search only there.
        if let moduleAt = ByteSearch.first(moduleIdMember, in: b, from: hashStart + 64, to: payloadAt) {
            guard let id = plainString(at: moduleAt + moduleIdMember.count) else { return nil }
            moduleId = id
        }
        let payload = Array(b[(payloadAt + payloadMember.count)..<prevAt])
        let disabled = type.isDevice && Projections.isDisabled(payload)
        return FastParse(
            event: VerifiedEvent(seq: UInt64(seq), type: type, deviceId: deviceId, moduleId: moduleId, payloadBytes: payload, hash: hash, disabled: disabled),
            seq: UInt64(seq),
            prevHash: prev,
            hash: hash,
            hashMemberStart: hashAt,
            hashMemberEnd: hashStart + 65
        )
    }
}
