/// What a client asks of the registry. The writer runs `decide` on each against the current state.
public indirect enum Command: Sendable, Hashable {
    /// PUT without If-Match: create; an existing id is a conflict.
    case createDevice(DeviceSpec)
    /// PUT with If-Match: full replace of the writable fields.
    case replaceDevice(DeviceSpec, ifMatch: ETagCondition)
    /// DELETE: removes the device and, first, each of its modules.
    case deleteDevice(deviceId: String, ifMatch: ETagCondition)
    case createModule(ModuleSpec)
    case replaceModule(ModuleSpec, ifMatch: ETagCondition)
    case deleteModule(deviceId: String, moduleId: String, ifMatch: ETagCondition)
    /// Bulk `createOrUpdate` modes: create when missing, otherwise replace under `ifMatch`.
    case createOrReplaceDevice(DeviceSpec, ifMatch: ETagCondition)
    case createOrReplaceModule(ModuleSpec, ifMatch: ETagCondition)
    /// A broker's connect or disconnect report (`POST /registry/connections`).
    case reportConnection(ConnectionReport)
    /// Twin tags: merged (PATCH) or replaced (PUT), under the twin's own etag.
    case updateTwin(TwinUpdate)
    /// A bulk-by-query job's change to one identity it read (under both of its etags).
    case change(IdentityChange)
    /// Undelete: a device (and modules deleted with it) or a module, as its deletion left it.
    case restore(Restoration)
    /// The registry's notice that a credential's window is about to end.
    case noticeCredentialExpiry(CredentialExpiryNotice)
    /// A command of a scoped policy: refused (401) unless the identity it names is in the scope
    /// before and every identity it creates or changes is in it after.
    case scoped(Command, PolicyScope)

    /// The device the command is about.
    public var deviceId: String {
        switch self {
        case .createDevice(let s), .replaceDevice(let s, _), .createOrReplaceDevice(let s, _): s.deviceId
        case .deleteDevice(let id, _): id
        case .createModule(let s), .replaceModule(let s, _), .createOrReplaceModule(let s, _): s.deviceId
        case .deleteModule(let id, _, _): id
        case .reportConnection(let r): r.deviceId
        case .updateTwin(let u): u.deviceId
        case .change(let c): c.deviceId
        case .restore(let r): r.deviceId
        case .noticeCredentialExpiry(let n): n.deviceId
        case .scoped(let inner, _): inner.deviceId
        }
    }

    /// The module the command is about, if any.
    public var moduleId: String? {
        switch self {
        case .createDevice, .replaceDevice, .deleteDevice, .createOrReplaceDevice: nil
        case .createModule(let s), .replaceModule(let s, _), .createOrReplaceModule(let s, _): s.moduleId
        case .deleteModule(_, let m, _): m
        case .reportConnection(let r): r.moduleId
        case .updateTwin(let u): u.moduleId
        case .change(let c): c.moduleId
        case .restore(let r): r.moduleId
        case .noticeCredentialExpiry(let n): n.moduleId
        case .scoped(let inner, _): inner.moduleId
        }
    }

    /// Whether `decide` needs every module of the device (a device delete removes them first).
    public var needsAllModules: Bool {
        switch self {
        case .deleteDevice: true
        case .change(let c): c.moduleId == nil && c.action == .delete
        case .scoped(let inner, _): inner.needsAllModules
        default: false
        }
    }

    /// Whether `decide` needs the device's module count (a new module must fit under the limit).
    public var needsModuleCount: Bool {
        switch self {
        case .createModule, .createOrReplaceModule: true
        case .restore(let r): r.device == nil
        case .scoped(let inner, _): inner.needsModuleCount
        default: false
        }
    }
}

/// A change to a twin's tags.
public struct TwinUpdate: Sendable, Hashable {
    public var deviceId: String
    public var moduleId: String?
    /// The tags to merge (a `null` value removes a key, objects merge recursively) or, with
    /// `replace`, the new tags.
    public var tags: [String: JSONValue]
    public var replace: Bool
    /// Against the twin's etag, not the identity's.
    public var ifMatch: ETagCondition

    public init(deviceId: String, moduleId: String? = nil, tags: [String: JSONValue], replace: Bool = false, ifMatch: ETagCondition = .absent) {
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.tags = tags
        self.replace = replace
        self.ifMatch = ifMatch
    }
}

/// A broker saw a device (or module) connect or disconnect at `time`.
public struct ConnectionReport: Sendable, Hashable {
    public var deviceId: String
    public var moduleId: String?
    public var connected: Bool
    /// When the broker saw it; `nil` means "now" (the writer's clock).
    public var time: Timestamp?

    public init(deviceId: String, moduleId: String? = nil, connected: Bool, time: Timestamp? = nil) {
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.connected = connected
        self.time = time
    }
}

/// The writable fields of a device, as a PUT body carries them.
public struct DeviceSpec: Sendable, Hashable {
    public var deviceId: String
    /// `nil` means "not given": enabled on create (Azure's default).
    public var status: DeviceStatus?
    public var statusReason: String?
    /// `nil` means "not given": SAS with generated keys.
    public var authentication: AuthenticationSpec?
    public var capabilities: DeviceCapabilities
    public var deviceScope: String?
    public var parentScopes: [String]
    /// Twin tags to set with the identity (import and bulk entries); `nil` keeps the twin.
    public var tags: [String: JSONValue]?

    public init(
        deviceId: String,
        status: DeviceStatus? = nil,
        statusReason: String? = nil,
        authentication: AuthenticationSpec? = nil,
        capabilities: DeviceCapabilities = .init(),
        deviceScope: String? = nil,
        parentScopes: [String] = [],
        tags: [String: JSONValue]? = nil
    ) {
        self.tags = tags
        self.deviceId = deviceId
        self.status = status
        self.statusReason = statusReason
        self.authentication = authentication
        self.capabilities = capabilities
        self.deviceScope = deviceScope
        self.parentScopes = parentScopes
    }
}

/// The writable fields of a module. `status` exists only so a body that carries one can be
/// refused: modules cannot be disabled.
public struct ModuleSpec: Sendable, Hashable {
    public var deviceId: String
    public var moduleId: String
    public var managedBy: String?
    public var authentication: AuthenticationSpec?
    public var status: DeviceStatus?
    public var tags: [String: JSONValue]?

    public init(
        deviceId: String,
        moduleId: String,
        managedBy: String? = nil,
        authentication: AuthenticationSpec? = nil,
        status: DeviceStatus? = nil,
        tags: [String: JSONValue]? = nil
    ) {
        self.tags = tags
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.managedBy = managedBy
        self.authentication = authentication
        self.status = status
    }
}

/// Authentication as a client sends it: every part optional, empty strings meaning "not given".
public struct AuthenticationSpec: Sendable, Hashable {
    public var type: AuthenticationType?
    public var primaryKey: String?
    public var secondaryKey: String?
    public var primaryThumbprint: String?
    public var secondaryThumbprint: String?
    /// Ours: the slots' validity windows; `nil` (not given) keeps the windows of slots whose
    /// credential stays the same, an empty value removes them all.
    public var validity: CredentialValidity?

    public init(
        type: AuthenticationType? = nil,
        primaryKey: String? = nil,
        secondaryKey: String? = nil,
        primaryThumbprint: String? = nil,
        secondaryThumbprint: String? = nil,
        validity: CredentialValidity? = nil
    ) {
        self.validity = validity
        self.type = type
        self.primaryKey = primaryKey
        self.secondaryKey = secondaryKey
        self.primaryThumbprint = primaryThumbprint
        self.secondaryThumbprint = secondaryThumbprint
    }
}

/// An `If-Match` precondition (RFC 7232), normalised.
public enum ETagCondition: Sendable, Hashable {
    /// No If-Match header: unconditional.
    case absent
    /// `*` (quoted or not): any existing identity.
    case any
    /// This exact etag.
    case exact(String)

    /// Parses a header value: strips a `W/` prefix and surrounding quotes; `*` is the wildcard.
    public init(header: String?) {
        guard var value = header?.trimmingSpaces, !value.isEmpty else {
            self = .absent
            return
        }
        if value.hasPrefix("W/") || value.hasPrefix("w/") { value.removeFirst(2) }
        if value.count >= 2, value.first == "\"", value.last == "\"" {
            value = String(value.dropFirst().dropLast())
        }
        self = value == "*" ? .any : .exact(value)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
