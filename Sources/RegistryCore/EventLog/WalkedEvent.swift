/// One good event of a log walk: its facts and where its parts sit in `bytes`, which is the
/// scan batch it came in (no copy per event) or, for a record only the full decode could read,
/// a buffer of its own.
package struct WalkedEvent {
    package var seq: UInt64
    package var type: EventType
    package var hash: Hash32
    package var bytes: [UInt8]
    /// The stored record.
    package var record: Range<Int>
    package var device: Range<Int>
    package var module: Range<Int>?
    /// The payload's canonical bytes.
    package var payload: Range<Int>
    /// Where the payload sits inside the stored record (offsets from its first byte).
    package var payloadInRecord: Range<Int>

    package init(_ bytes: [UInt8], record: Range<Int>, _ layout: RecordLayout) {
        self.seq = layout.seq
        self.type = layout.type
        self.hash = layout.hash
        self.bytes = bytes
        self.record = record
        self.device = layout.device
        self.module = layout.module
        self.payload = layout.payload
        self.payloadInRecord = (layout.payload.lowerBound - record.lowerBound)..<(layout.payload.upperBound - record.lowerBound)
    }

    /// A fully decoded (and verified, so canonical) record: the stored bytes, then its ids and
    /// payload, in one buffer.
    package init(decoded: EventRecord, stored: [UInt8]) {
        seq = decoded.seq
        type = decoded.type
        hash = Hash32(decoded.hash)
        var buffer = stored
        record = 0..<stored.count
        func append(_ part: [UInt8]) -> Range<Int> {
            buffer.append(contentsOf: part)
            return (buffer.count - part.count)..<buffer.count
        }
        device = append(Array(decoded.deviceId.utf8))
        module = decoded.moduleId.map { append(Array($0.utf8)) }
        payload = append(decoded.payloadBytes)
        bytes = buffer
        // Canonical, so the payload is what lies between its member name and `prevHash`.
        let from = (ByteSearch.first(EventRecord.payloadMember, in: stored) ?? 0) + EventRecord.payloadMember.count
        let to = ByteSearch.last(EventRecord.prevHashMember, in: stored) ?? stored.count
        payloadInRecord = from..<max(from, to)
    }

    /// The walk's decision on the record at `bytes[record]`, given its self check (`nil` when
    /// the fast path could not read it: the full decode decides then).
    package static func accept(
        _ bytes: [UInt8],
        record: Range<Int>,
        checked: (RecordLayout, Bool)?,
        expectedSeq: UInt64,
        prevHash: Hash32
    ) -> Result<WalkedEvent, EventDecodingError> {
        guard let (layout, hashMatches) = checked else {
            let stored = Array(bytes[record])
            return EventRecord.verified(stored, expectedSeq: expectedSeq, prevHash: prevHash.bytes).map { WalkedEvent(decoded: $0, stored: stored) }
        }
        guard layout.seq == expectedSeq else { return .failure(EventDecodingError("sequence \(layout.seq) where \(expectedSeq) was expected")) }
        guard layout.prevHash == prevHash else { return .failure(EventDecodingError("prevHash does not match the previous event's hash")) }
        guard hashMatches else { return .failure(EventDecodingError("hash does not match the content")) }
        return .success(WalkedEvent(bytes, record: record, layout))
    }

    package var recordBytes: [UInt8] { Array(bytes[record]) }

    /// The facts `Projections.apply` folds.
    package var verifiedEvent: VerifiedEvent {
        let payloadBytes = Array(bytes[payload])
        let marks = type.isDevice ? Projections.marks(payloadBytes, 0..<payloadBytes.count) : (disabled: false, connected: false)
        return VerifiedEvent(
            seq: seq,
            type: type,
            deviceId: String(decoding: bytes[device], as: UTF8.self),
            moduleId: module.map { String(decoding: bytes[$0], as: UTF8.self) },
            payloadBytes: payloadBytes,
            hash: hash.bytes,
            disabled: marks.disabled,
            connected: marks.connected
        )
    }
}
