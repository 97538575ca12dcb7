/// Undelete (`Command.restore`): identities re-created as their deletion events carried them,
/// each with a new generationId and etag, its keys, status, tags and scopes as they were, and
/// `restoredFrom` naming the seq of the deletion it came back from.
public struct Restoration: Sendable, Hashable {
    /// A deleted identity and the seq of its deletion event.
    public struct Deleted: Sendable, Hashable {
        public var identity: Identity
        public var seq: UInt64
        public init(identity: Identity, seq: UInt64) {
            self.identity = identity
            self.seq = seq
        }
    }

    public var deviceId: String
    /// The device, when it is restored too; `nil` restores modules onto the existing device.
    public var device: Deleted?
    /// Modules, in the order they are re-created.
    public var modules: [Deleted]

    public init(deviceId: String, device: Deleted?, modules: [Deleted]) {
        self.deviceId = deviceId
        self.device = device
        self.modules = modules
    }

    /// The one module a module restore names (nil for a device restore).
    public var moduleId: String? { device == nil && modules.count == 1 ? modules[0].identity.moduleId : nil }
}
