import Crypto

/// One stored event: the envelope of DESIGN §4 around an identity snapshot, hash-chained.
///
/// The stored bytes are the canonical JSON of every field including `hash`;
/// `hash = SHA-256(prevHash ‖ canonical JSON of every field except hash)`, and the first
/// event's `prevHash` is 32 zero bytes. Hashes are lowercase hex in the JSON.
public struct EventRecord: Sendable, Hashable {
    /// The envelope schema this binary writes. Every older version stays decodable.
    public static let currentSchema: Int64 = 1
    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    public let seq: UInt64
    public let time: Timestamp
    public let type: EventType
    public let schema: Int64
    public let deviceId: String
    public let moduleId: String?
    /// Who made the change: a policy name, a job id, or `registryd` itself.
    public let actor: String
    public let requestId: String
    /// The identity snapshot in storage form (keys sealed).
    public let payload: JSONValue
    /// `payload` in canonical JSON: exactly what the projection stores.
    public let payloadBytes: [UInt8]
    public let prevHash: [UInt8]
    /// The stored hash (for a record built in memory, the computed one).
    public let hash: [UInt8]
    /// The hash the content deserves (differs from `hash` only for a tampered stored record).
    public let computedHash: [UInt8]
    /// The stored bytes (also what `registryd events` prints).
    public let encoded: [UInt8]

    /// Builds a record and computes its hash.
    public init(
        seq: UInt64,
        time: Timestamp,
        type: EventType,
        deviceId: String,
        moduleId: String?,
        actor: String,
        requestId: String,
        payload: JSONValue,
        prevHash: [UInt8],
        schema: Int64 = EventRecord.currentSchema
    ) {
        self.init(
            seq: seq,
            time: time,
            type: type,
            deviceId: deviceId,
            moduleId: moduleId,
            actor: actor,
            requestId: requestId,
            payload: payload,
            prevHash: prevHash,
            schema: schema,
            storedHash: nil
        )
    }

    private init(
        seq: UInt64,
        time: Timestamp,
        type: EventType,
        deviceId: String,
        moduleId: String?,
        actor: String,
        requestId: String,
        payload: JSONValue,
        prevHash: [UInt8],
        schema: Int64,
        storedHash: [UInt8]?
    ) {
        self.seq = seq
        self.time = time
        self.type = type
        self.schema = schema
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.actor = actor
        self.requestId = requestId
        self.payload = payload
        self.prevHash = prevHash
        // The payload is encoded once; the body (for the hash) and the stored bytes splice it in.
        let payloadBytes = CanonicalJSON.encode(payload)
        self.payloadBytes = payloadBytes
        let parts = Parts(
            seq: seq,
            time: time,
            type: type,
            schema: schema,
            deviceId: deviceId,
            moduleId: moduleId,
            actor: actor,
            requestId: requestId,
            payloadBytes: payloadBytes
        )
        let (computed, encoded) = parts.chained(to: prevHash)
        self.computedHash = computed
        self.hash = storedHash ?? computed
        self.encoded = storedHash.map { parts.bytes(prevHash: prevHash, hash: $0) } ?? encoded
    }

    public static func chainHash(prevHash: [UInt8], body: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: prevHash)
        hasher.update(data: body)
        return Array(hasher.finalize())
    }

    /// The canonical JSON of the envelope, written member by member in sorted key order (the
    /// same bytes `CanonicalJSON.encode(json(includingHash:))` gives, without re-encoding the
    /// payload; a test pins the equality).
    static func canonicalBytes(
        seq: UInt64,
        time: Timestamp,
        type: EventType,
        schema: Int64,
        deviceId: String,
        moduleId: String?,
        actor: String,
        requestId: String,
        payloadBytes: [UInt8],
        prevHash: [UInt8],
        hash: [UInt8]?
    ) -> [UInt8] {
        Parts(
            seq: seq,
            time: time,
            type: type,
            schema: schema,
            deviceId: deviceId,
            moduleId: moduleId,
            actor: actor,
            requestId: requestId,
            payloadBytes: payloadBytes
        )
        .bytes(prevHash: prevHash, hash: hash)
    }

    /// The envelope's canonical JSON with the two chain fields still zero: made on the writer's
    /// helper cores, then chained in order by writing `prevHash` and `hash` into their places
    /// (the writer neither allocates nor copies the record). Canonical member order: actor,
    /// deviceId, [hash], moduleId, payload, [prevHash], requestId, schema, seq, time, type.
    package struct Parts: Sendable {
        /// `{"actor":…,"deviceId":…,"hash":"0…0","moduleId":…,"payload":…,"prevHash":"0…0","requestId":…,…}`
        package private(set) var record: [UInt8] = []
        /// Where `,"hash":"…"` starts and where the member after it starts.
        private var hashMemberAt = 0
        private var afterHashMember = 0
        /// Where the hex digits of `prevHash` start.
        private var prevHexAt = 0

        package init(
            seq: UInt64,
            time: Timestamp,
            type: EventType,
            schema: Int64 = EventRecord.currentSchema,
            deviceId: String,
            moduleId: String?,
            actor: String,
            requestId: String,
            payloadBytes: [UInt8]
        ) {
            record.reserveCapacity(
                payloadBytes.count + 320 + actor.utf8.count + deviceId.utf8.count + (moduleId?.utf8.count ?? 0) + requestId.utf8.count
            )
            record.append(123)
            Self.member("actor", into: &record, first: true)
            CanonicalJSON.writeString(actor, into: &record)
            Self.member("deviceId", into: &record)
            CanonicalJSON.writeString(deviceId, into: &record)
            hashMemberAt = record.count
            Self.appendHexMember("hash", Self.zeroHash, into: &record)
            afterHashMember = record.count
            if let moduleId {
                Self.member("moduleId", into: &record)
                CanonicalJSON.writeString(moduleId, into: &record)
            }
            Self.member("payload", into: &record)
            record.append(contentsOf: payloadBytes)
            Self.appendHexMember("prevHash", Self.zeroHash, into: &record)
            prevHexAt = record.count - 1 - 2 * Self.zeroHash.count
            Self.member("requestId", into: &record)
            CanonicalJSON.writeString(requestId, into: &record)
            Self.member("schema", into: &record)
            record.append(contentsOf: String(schema).utf8)
            Self.member("seq", into: &record)
            record.append(contentsOf: String(seq).utf8)
            Self.member("time", into: &record)
            record.append(34)
            time.appendISO8601(to: &record)
            record.append(34)
            Self.member("type", into: &record)
            CanonicalJSON.writeString(type.rawValue, into: &record)
            record.append(125)
        }

        private static func member(_ name: String, into out: inout [UInt8], first: Bool = false) {
            if !first { out.append(44) }
            out.append(34)
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: [34, 58])
        }

        /// `,"name":"<hex of value>"`, the hex written straight into `out`.
        private static func appendHexMember(_ name: String, _ value: [UInt8], into out: inout [UInt8]) {
            member(name, into: &out)
            out.append(34)
            Hex.append(value, to: &out)
            out.append(34)
        }

        /// The stored bytes (with `hash`) or the hashed body (without it).
        package func bytes(prevHash: [UInt8], hash: [UInt8]?) -> [UInt8] {
            var filled = self
            Hex.write(prevHash, into: &filled.record, at: prevHexAt)
            guard let hash else { return Array(filled.record[..<hashMemberAt] + filled.record[afterHashMember...]) }
            Hex.write(hash, into: &filled.record, at: afterHashMember - 1 - 2 * hash.count)
            return filled.record
        }

        /// The chain hash and the stored bytes.
        package func chained(to prevHash: [UInt8]) -> (hash: [UInt8], encoded: [UInt8]) {
            var copy = self
            let hash = copy.chain(to: prevHash)
            return (hash, copy.record)
        }

        /// Chains the record in place: `prevHash` written into it, the body hashed as two slices
        /// of it (all but the hash member), the hash written into its place. `record` is then the
        /// stored bytes; the hash is returned.
        package mutating func chain(to prevHash: [UInt8]) -> [UInt8] {
            Hex.write(prevHash, into: &record, at: prevHexAt)
            var hasher = SHA256()
            hasher.update(data: prevHash)
            hasher.update(data: record[..<hashMemberAt])
            hasher.update(data: record[afterHashMember...])
            let hash = Array(hasher.finalize())
            Hex.write(hash, into: &record, at: afterHashMember - 1 - 2 * hash.count)
            return hash
        }

        private static let zeroHash = [UInt8](repeating: 0, count: 32)
    }

    /// The record as a JSON value (used by tests to pin `canonicalBytes`).
    public func json(includingHash: Bool) -> JSONValue {
        var members: [String: JSONValue] = [
            "seq": .int(Int64(seq)),
            "time": .string(time.iso8601),
            "type": .string(type.rawValue),
            "schema": .int(schema),
            "deviceId": .string(deviceId),
            "actor": .string(actor),
            "requestId": .string(requestId),
            "payload": payload,
            "prevHash": .string(Hex.encode(prevHash)),
        ]
        if let moduleId { members["moduleId"] = .string(moduleId) }
        if includingHash { members["hash"] = .string(Hex.encode(hash)) }
        return .object(members)
    }

    /// Decodes stored bytes without checking the hash (see `verified`).
    public static func decode(_ bytes: [UInt8]) throws -> EventRecord {
        let json = try JSONParser.parse(bytes)
        func field(_ name: String) throws -> JSONValue {
            guard let v = json[name] else { throw EventDecodingError("event record has no \(name)") }
            return v
        }
        guard let schema = try field("schema").intValue else { throw EventDecodingError("schema is not an integer") }
        guard schema >= 1, schema <= currentSchema else {
            throw EventDecodingError("event schema \(schema) is newer than this binary understands (\(currentSchema))")
        }
        guard let seq = try field("seq").intValue, seq > 0 else { throw EventDecodingError("seq is not a positive integer") }
        guard let timeText = try field("time").stringValue, let time = Timestamp(iso8601: timeText) else {
            throw EventDecodingError("time is not a timestamp")
        }
        guard let typeText = try field("type").stringValue, let type = EventType(rawValue: typeText) else {
            throw EventDecodingError("type is not a known event type")
        }
        guard let deviceId = try field("deviceId").stringValue, let actor = try field("actor").stringValue,
            let requestId = try field("requestId").stringValue
        else { throw EventDecodingError("deviceId, actor or requestId is not a string") }
        guard let prev = try field("prevHash").stringValue.flatMap(Hex.decode), prev.count == 32,
            let hash = try field("hash").stringValue.flatMap(Hex.decode), hash.count == 32
        else { throw EventDecodingError("prevHash or hash is not 64 hex digits") }
        return EventRecord(
            seq: UInt64(seq),
            time: time,
            type: type,
            deviceId: deviceId,
            moduleId: json["moduleId"]?.stringValue,
            actor: actor,
            requestId: requestId,
            payload: try field("payload"),
            prevHash: prev,
            schema: schema,
            storedHash: hash
        )
    }

    /// Checks a stored record: decodable, canonical, in sequence, chained to `prevHash`, and
    /// hashing to its stored hash. Returns the record or the reason it is bad.
    public static func verified(_ bytes: [UInt8], expectedSeq: UInt64, prevHash: [UInt8]) -> Result<EventRecord, EventDecodingError> {
        let record: EventRecord
        do {
            record = try decode(bytes)
        } catch let error as EventDecodingError {
            return .failure(error)
        } catch {
            return .failure(EventDecodingError("undecodable: \(error)"))
        }
        guard record.seq == expectedSeq else {
            return .failure(EventDecodingError("sequence \(record.seq) where \(expectedSeq) was expected"))
        }
        guard record.prevHash == prevHash else { return .failure(EventDecodingError("prevHash does not match the previous event's hash")) }
        guard record.computedHash == record.hash else { return .failure(EventDecodingError("hash does not match the content")) }
        guard record.encoded == bytes else { return .failure(EventDecodingError("stored bytes are not in canonical form")) }
        return .success(record)
    }

    public static func == (a: EventRecord, b: EventRecord) -> Bool { a.encoded == b.encoded }
    public func hash(into hasher: inout Hasher) { hasher.combine(encoded) }
}

/// Why a stored event could not be used.
public struct EventDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    package init(_ description: String) { self.description = description }
}

/// Lowercase hexadecimal.
public enum Hex {
    static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        append(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the hex digits of `bytes` to `out`.
    static func append(_ bytes: [UInt8], to out: inout [UInt8]) {
        out.reserveCapacity(out.count + bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
    }

    /// Overwrites `2 * bytes.count` digits of `out` from `index` with the hex of `bytes`.
    static func write(_ bytes: [UInt8], into out: inout [UInt8], at index: Int) {
        precondition(index >= 0 && index + 2 * bytes.count <= out.count, "hex written inside the buffer")
        var i = index
        for b in bytes {
            out[i] = digits[Int(b >> 4)]
            out[i + 1] = digits[Int(b & 15)]
            i += 2
        }
    }

    public static func decode(_ text: String) -> [UInt8]? { decode(bytes: Array(text.utf8)[...]) }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }

    /// Decodes hex digits straight from stored bytes (no String in between).
    public static func decode(bytes b: ArraySlice<UInt8>) -> [UInt8]? {
        guard b.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(b.count / 2)
        var i = b.startIndex
        while i < b.endIndex {
            guard let hi = nibble(b[i]), let lo = nibble(b[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
