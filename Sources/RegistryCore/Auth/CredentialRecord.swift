/// What device authentication needs of one identity, read from the stored canonical documents
/// without parsing them (the device-auth profile showed the parse and the key unsealing as the
/// largest costs of a check).
public struct CredentialRecord: Sendable {
    /// The identity's device is disabled (a module connects through its device).
    public var deviceDisabled: Bool
    public var type: AuthenticationType
    /// The symmetric keys, ready to verify signatures.
    public var keys: [SigningKey]
    /// The X.509 thumbprints, lower case.
    public var thumbprints: [String]
    /// The validity window of each entry of `keys` (same order; nil: no window).
    public var keyWindows: [CredentialValidity.Window?]
    /// The validity window of each entry of `thumbprints`.
    public var thumbprintWindows: [CredentialValidity.Window?]
    /// The identity's stored document (already read for the rest; a reference, not a copy):
    /// what a scoped policy's condition is evaluated on.
    public var document: [UInt8]

    public init(
        deviceDisabled: Bool,
        type: AuthenticationType,
        keys: [SigningKey],
        thumbprints: [String],
        keyWindows: [CredentialValidity.Window?] = [],
        thumbprintWindows: [CredentialValidity.Window?] = [],
        document: [UInt8] = []
    ) {
        self.document = document
        self.deviceDisabled = deviceDisabled
        self.type = type
        self.keys = keys
        self.thumbprints = thumbprints
        self.keyWindows = keyWindows
        self.thumbprintWindows = thumbprintWindows
    }

    /// Whether `scope` holds this identity (judged on its stored document).
    public func isInside(_ scope: PolicyScope, deviceId: String) -> Bool {
        if scope.excludes(deviceId: deviceId) { return false }
        guard scope.condition != nil else { return true }
        return (try? scope.admits(stored: document)) ?? false
    }

    /// Why the credential at `index` of `keys` (or `thumbprints`) may not be used at `now`.
    func windowDenial(_ windows: [CredentialValidity.Window?], _ index: Int, now: Timestamp) -> DeviceAuthDenial? {
        guard index < windows.count, let window = windows[index] else { return nil }
        return window.admits(at: now)
    }
}
