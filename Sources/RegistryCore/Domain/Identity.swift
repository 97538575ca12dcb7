/// `enabled` or `disabled` (lower case on the wire). Only devices have a status.
public enum DeviceStatus: String, Sendable, Hashable, CaseIterable {
    case enabled
    case disabled
}

/// `Connected` or `Disconnected` (PascalCase on the wire). Runtime state, not written by PUT.
public enum ConnectionState: String, Sendable, Hashable, CaseIterable {
    case disconnected = "Disconnected"
    case connected = "Connected"
}

/// How an identity authenticates (camelCase on the wire).
public enum AuthenticationType: String, Sendable, Hashable, CaseIterable {
    case sas
    case selfSigned
    case certificateAuthority
    case none
}

/// Symmetric keys, base64 text as clients send and receive them (plaintext in the domain; the
/// event log seals them).
public struct SymmetricKey: Sendable, Hashable {
    public var primaryKey: String?
    public var secondaryKey: String?
    public init(primaryKey: String? = nil, secondaryKey: String? = nil) {
        self.primaryKey = primaryKey
        self.secondaryKey = secondaryKey
    }
}

/// X.509 certificate thumbprints: SHA-1 (40 hex) or SHA-256 (64 hex).
public struct X509Thumbprint: Sendable, Hashable {
    public var primaryThumbprint: String?
    public var secondaryThumbprint: String?
    public init(primaryThumbprint: String? = nil, secondaryThumbprint: String? = nil) {
        self.primaryThumbprint = primaryThumbprint
        self.secondaryThumbprint = secondaryThumbprint
    }
}

/// Azure's `authentication` object.
public struct Authentication: Sendable, Hashable {
    public var type: AuthenticationType
    public var symmetricKey: SymmetricKey
    public var x509Thumbprint: X509Thumbprint
    /// Ours: when each slot's key or thumbprint may be used (empty: always).
    public var validity: CredentialValidity

    public init(
        type: AuthenticationType,
        symmetricKey: SymmetricKey = .init(),
        x509Thumbprint: X509Thumbprint = .init(),
        validity: CredentialValidity = .init()
    ) {
        self.type = type
        self.symmetricKey = symmetricKey
        self.x509Thumbprint = x509Thumbprint
        self.validity = validity
    }
}

/// The twin's tags, with their own version and etag (DESIGN §4): a tag change never changes the
/// identity's etag. `nil` on an identity whose twin never changed (empty tags, version 1).
public struct TwinState: Sendable, Hashable {
    /// A JSON object (Azure's limits are checked by `Validation.checkTags`).
    public var tags: [String: JSONValue]
    public var version: Int64
    /// Base64 of the 8-byte big-endian sequence number of the last twin change (Azure's shape).
    public var etag: String

    public init(tags: [String: JSONValue], version: Int64, etag: String) {
        self.tags = tags
        self.version = version
        self.etag = etag
    }

    /// The twin of an identity that never had one written.
    public static let initialEtag = twinEtag(forSequence: 1)
}

/// A device identity with every field of Azure's Device JSON (api-version 2021-04-12).
public struct Device: Sendable, Hashable {
    public var deviceId: String
    /// Unique per incarnation of the id: the creation time in .NET ticks, as Azure's are.
    public var generationId: String
    /// Opaque: base64 of the decimal sequence number of the identity's last change.
    public var etag: String
    public var connectionState: ConnectionState
    public var status: DeviceStatus
    public var statusReason: String?
    public var connectionStateUpdatedTime: Timestamp
    public var statusUpdatedTime: Timestamp
    public var lastActivityTime: Timestamp
    public var cloudToDeviceMessageCount: Int64
    public var authentication: Authentication
    public var capabilities: DeviceCapabilities
    public var deviceScope: String?
    public var parentScopes: [String]
    /// Not part of Azure's Device JSON: served by `/twins` and queries.
    public var twin: TwinState?
    /// Ours: this incarnation was restored from the log, from the deletion event with this seq
    /// (`POST /registry/devices/{id}/restore`). Absent for every identity created otherwise.
    public var restoredFrom: UInt64?

    public init(
        deviceId: String,
        generationId: String,
        etag: String,
        connectionState: ConnectionState = .disconnected,
        status: DeviceStatus = .enabled,
        statusReason: String? = nil,
        connectionStateUpdatedTime: Timestamp = .unset,
        statusUpdatedTime: Timestamp = .unset,
        lastActivityTime: Timestamp = .unset,
        cloudToDeviceMessageCount: Int64 = 0,
        authentication: Authentication,
        capabilities: DeviceCapabilities = .init(),
        deviceScope: String? = nil,
        parentScopes: [String] = [],
        twin: TwinState? = nil,
        restoredFrom: UInt64? = nil
    ) {
        self.restoredFrom = restoredFrom
        self.deviceId = deviceId
        self.generationId = generationId
        self.etag = etag
        self.connectionState = connectionState
        self.status = status
        self.statusReason = statusReason
        self.connectionStateUpdatedTime = connectionStateUpdatedTime
        self.statusUpdatedTime = statusUpdatedTime
        self.lastActivityTime = lastActivityTime
        self.cloudToDeviceMessageCount = cloudToDeviceMessageCount
        self.authentication = authentication
        self.capabilities = capabilities
        self.deviceScope = deviceScope
        self.parentScopes = parentScopes
        self.twin = twin
    }
}

/// `capabilities`: only `iotEdge` today.
public struct DeviceCapabilities: Sendable, Hashable {
    public var iotEdge: Bool
    public init(iotEdge: Bool = false) { self.iotEdge = iotEdge }
}

/// A module identity with every field of Azure's Module JSON. Modules have no status.
public struct Module: Sendable, Hashable {
    public var deviceId: String
    public var moduleId: String
    public var managedBy: String?
    public var generationId: String
    public var etag: String
    public var connectionState: ConnectionState
    public var connectionStateUpdatedTime: Timestamp
    public var lastActivityTime: Timestamp
    public var cloudToDeviceMessageCount: Int64
    public var authentication: Authentication
    public var twin: TwinState?
    /// Ours: restored from the log, from the deletion event with this seq (see `Device`).
    public var restoredFrom: UInt64?

    public init(
        deviceId: String,
        moduleId: String,
        managedBy: String? = nil,
        generationId: String,
        etag: String,
        connectionState: ConnectionState = .disconnected,
        connectionStateUpdatedTime: Timestamp = .unset,
        lastActivityTime: Timestamp = .unset,
        cloudToDeviceMessageCount: Int64 = 0,
        authentication: Authentication,
        twin: TwinState? = nil,
        restoredFrom: UInt64? = nil
    ) {
        self.restoredFrom = restoredFrom
        self.twin = twin
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.managedBy = managedBy
        self.generationId = generationId
        self.etag = etag
        self.connectionState = connectionState
        self.connectionStateUpdatedTime = connectionStateUpdatedTime
        self.lastActivityTime = lastActivityTime
        self.cloudToDeviceMessageCount = cloudToDeviceMessageCount
        self.authentication = authentication
    }
}

/// Either kind of identity: what an event carries as its payload.
public indirect enum Identity: Sendable, Hashable {
    case device(Device)
    case module(Module)

    public var deviceId: String {
        switch self {
        case .device(let d): d.deviceId
        case .module(let m): m.deviceId
        }
    }

    public var moduleId: String? {
        switch self {
        case .device: nil
        case .module(let m): m.moduleId
        }
    }

    public var etag: String {
        switch self {
        case .device(let d): d.etag
        case .module(let m): m.etag
        }
    }
}

/// A module's address: its device and its own id.
public struct ModuleKey: Hashable, Sendable, Comparable {
    public var deviceId: String
    public var moduleId: String
    public init(_ deviceId: String, _ moduleId: String) {
        self.deviceId = deviceId
        self.moduleId = moduleId
    }
    public static func < (a: ModuleKey, b: ModuleKey) -> Bool {
        a.deviceId.utf8.lexicographicallyPrecedes(b.deviceId.utf8)
            || (a.deviceId == b.deviceId && a.moduleId.utf8.lexicographicallyPrecedes(b.moduleId.utf8))
    }
}
