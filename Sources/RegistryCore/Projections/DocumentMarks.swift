/// The counter facts the projections take from stored (canonical) documents without parsing
/// them, as `StoredIdentityLayout` reads them. The backends' `Projections.apply` (the persistent
/// form of `evolve`) extends this namespace.
public enum Projections {
    public static func isDisabled(_ payload: JSONValue) -> Bool { payload["status"]?.stringValue == DeviceStatus.disabled.rawValue }

    /// Whether a stored device document is disabled (`StoredIdentityLayout` reads its status).
    public static func isDisabled(_ bytes: [UInt8]) -> Bool { marks(bytes, 0..<bytes.count).disabled }

    /// Whether a stored document is connected.
    public static func isConnected(_ bytes: [UInt8]) -> Bool { marks(bytes, 0..<bytes.count).connected }

    /// Both counter facts of the document at `bytes[range]` (a scan batch), in one walk.
    public static func marks(_ bytes: [UInt8], _ range: Range<Int>) -> (disabled: Bool, connected: Bool) {
        guard let layout = StoredIdentityLayout(bytes, range, reading: .counters) else { return (false, false) }
        return (layout.isDisabled(bytes), layout.isConnected(bytes))
    }
}
