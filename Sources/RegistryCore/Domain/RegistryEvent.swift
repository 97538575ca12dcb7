/// The kinds of identity events in the log. New kinds may be added; none is ever renamed.
public enum EventType: String, Sendable, Hashable, CaseIterable {
    case deviceCreated
    case deviceUpdated
    case deviceDeleted
    case moduleCreated
    case moduleUpdated
    case moduleDeleted

    public var isDelete: Bool { self == .deviceDeleted || self == .moduleDeleted }
}

/// One change to one identity: what `decide` emits and `evolve` folds.
///
/// The payload is the full identity snapshot after the change (for a delete, the last snapshot),
/// so a projection is a plain fold and replay needs no history.
public struct RegistryEvent: Sendable, Hashable {
    /// Gapless from 1 across the whole log.
    public var seq: UInt64
    public var time: Timestamp
    public var type: EventType
    public var identity: Identity

    public init(seq: UInt64, time: Timestamp, type: EventType, identity: Identity) {
        self.seq = seq
        self.time = time
        self.type = type
        self.identity = identity
    }

    public var deviceId: String { identity.deviceId }
    public var moduleId: String? { identity.moduleId }
}
