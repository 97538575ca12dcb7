/// The kinds of identity events in the log. New kinds may be added; none is ever renamed.
public enum EventType: String, Sendable, Hashable, CaseIterable {
    case deviceCreated
    case deviceUpdated
    case deviceDeleted
    case moduleCreated
    case moduleUpdated
    case moduleDeleted
    /// A broker reported the identity connected or disconnected (`POST /registry/connections`):
    /// runtime state, so the identity's etag does not change.
    case deviceConnected
    case deviceDisconnected
    case moduleConnected
    case moduleDisconnected
    /// The twin's tags changed (`PATCH`/`PUT /twins`, import twin modes): the identity etag stays.
    case deviceTwinUpdated
    case moduleTwinUpdated
    /// A credential entered the last days of its validity window (the registry's own notice,
    /// actor `registryd`): the window is marked noticed; the identity's etag stays.
    case deviceCredentialExpiring
    case moduleCredentialExpiring

    public var isDelete: Bool { self == .deviceDeleted || self == .moduleDeleted }

    /// A connection-state report rather than a change to the identity's definition.
    public var isConnectionState: Bool {
        switch self {
        case .deviceConnected, .deviceDisconnected, .moduleConnected, .moduleDisconnected: true
        default: false
        }
    }

    /// An event whose payload is a device (not a module).
    public var isDevice: Bool {
        switch self {
        case .deviceCreated, .deviceUpdated, .deviceDeleted, .deviceConnected, .deviceDisconnected, .deviceTwinUpdated, .deviceCredentialExpiring:
            true
        default: false
        }
    }
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
