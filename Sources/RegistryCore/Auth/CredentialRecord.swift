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

    public init(deviceDisabled: Bool, type: AuthenticationType, keys: [SigningKey], thumbprints: [String]) {
        self.deviceDisabled = deviceDisabled
        self.type = type
        self.keys = keys
        self.thumbprints = thumbprints
    }
}
