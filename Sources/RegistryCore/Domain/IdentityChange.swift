/// One change a bulk-by-query job applies to an identity its query selected (`Command.change`).
///
/// It carries the identity's etag and its twin's etag as the job read them: an identity or twin
/// written since is refused with `PreconditionFailed` (the job reports it; it never overwrites a
/// change it did not see).
public struct IdentityChange: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// Devices only (modules cannot be disabled).
        case setStatus(DeviceStatus, reason: String?)
        /// New random keys in the given slots; SAS identities only.
        case regenerateKeys(KeySlots)
        /// Merged into the twin's tags as a PATCH merges them: a `null` value removes a key.
        case mergeTags([String: JSONValue])
        /// A device goes with its modules, as DELETE does.
        case delete
    }

    public enum KeySlots: String, Sendable, Hashable, CaseIterable {
        case primary, secondary, both
    }

    public var deviceId: String
    public var moduleId: String?
    public var action: Action
    /// The identity's etag when the job read it.
    public var etag: String
    /// The twin's etag when the job read it.
    public var twinEtag: String

    public init(deviceId: String, moduleId: String? = nil, action: Action, etag: String, twinEtag: String) {
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.action = action
        self.etag = etag
        self.twinEtag = twinEtag
    }
}
