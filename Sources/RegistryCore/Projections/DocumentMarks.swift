/// The byte-level facts the projections and readers take from stored (canonical) documents
/// without parsing them. The backends' `Projections.apply` (the persistent form of `evolve`)
/// extends this namespace.
public enum Projections {
    public static func isDisabled(_ payload: JSONValue) -> Bool { payload["status"]?.stringValue == DeviceStatus.disabled.rawValue }

    /// A stored device document is canonical: a top-level `"status":"disabled"` is the only way
    /// those bytes can occur (string values escape their quotes), so no parse is needed.
    public static func isDisabled(_ bytes: [UInt8]) -> Bool { isDisabled(bytes, 0..<bytes.count) }

    /// The same for a document at `bytes[range]` (a scan batch).
    public static func isDisabled(_ bytes: [UInt8], _ range: Range<Int>) -> Bool {
        ByteSearch.first(EventRecord.disabledMarker, in: bytes, from: range.lowerBound, to: identityEnd(bytes, range)) != nil
    }

    /// Both markers of the document at `bytes[range]`, its identity part found once.
    public static func marks(_ bytes: [UInt8], _ range: Range<Int>) -> (disabled: Bool, connected: Bool) {
        let end = identityEnd(bytes, range)
        return (
            ByteSearch.first(EventRecord.disabledMarker, in: bytes, from: range.lowerBound, to: end) != nil,
            ByteSearch.first(connectedMarker, in: bytes, from: range.lowerBound, to: end) != nil
        )
    }

    public static let twinMember = Array(",\"twin\":{".utf8)

    /// Where a stored document's own members end: the `twin` member (tags the user chose) is
    /// always last in canonical order, and a tag such as `"status":"disabled"` must never read as
    /// the identity's status, so the markers are searched only before it.
    public static func identityEnd(_ bytes: [UInt8]) -> Int { identityEnd(bytes, 0..<bytes.count) }

    public static func identityEnd(_ bytes: [UInt8], _ range: Range<Int>) -> Int {
        ByteSearch.first(twinMember, in: bytes, from: range.lowerBound, to: range.upperBound) ?? range.upperBound
    }

    public static let connectedMarker = Array("\"connectionState\":\"Connected\"".utf8)

    /// As for `disabled`: only a connected identity's canonical document holds these bytes.
    public static func isConnected(_ bytes: [UInt8]) -> Bool { isConnected(bytes, 0..<bytes.count) }

    public static func isConnected(_ bytes: [UInt8], _ range: Range<Int>) -> Bool {
        ByteSearch.first(connectedMarker, in: bytes, from: range.lowerBound, to: identityEnd(bytes, range)) != nil
    }
}
