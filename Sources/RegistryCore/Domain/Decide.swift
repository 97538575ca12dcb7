import Foundation

/// Limits as Azure has them, configurable per registry.
public struct RegistryLimits: Sendable, Hashable {
    /// Modules per device (Azure: 50 is the commonly cited value). Over it: 413 TooManyModulesOnDevice.
    public var maxModulesPerDevice: Int
    /// Devices plus modules in the whole registry; `nil` means unlimited.
    public var maxIdentities: Int?

    public init(maxModulesPerDevice: Int = 50, maxIdentities: Int? = nil) {
        self.maxModulesPerDevice = maxModulesPerDevice
        self.maxIdentities = maxIdentities
    }
}

/// What `decide` needs to know about the world besides the command: injected, so the domain
/// has no clock and no I/O.
public struct DecisionContext: Sendable {
    /// The time of the change.
    public var now: Timestamp
    /// The sequence number the first emitted event will get; later events get the next ones.
    public var sequence: UInt64
    public var limits: RegistryLimits

    public init(now: Timestamp, sequence: UInt64, limits: RegistryLimits = .init()) {
        self.now = now
        self.sequence = sequence
        self.limits = limits
    }
}

/// The slice of current state a command is decided against (loaded by the writer).
public struct CommandState: Sendable {
    public var device: Device?
    /// The module the command names, if it names one and it exists.
    public var module: Module?
    /// Every module of the device, in id order (loaded for device deletes).
    public var modules: [Module]
    /// How many modules the device has.
    public var moduleCount: Int
    /// Devices plus modules in the registry.
    public var identityCount: Int

    public init(device: Device? = nil, module: Module? = nil, modules: [Module] = [], moduleCount: Int = 0, identityCount: Int = 0) {
        self.device = device
        self.module = module
        self.modules = modules
        self.moduleCount = moduleCount
        self.identityCount = identityCount
    }
}

/// The registry's rules: the events a command produces against the current state, or the
/// reason it is refused. Pure: time and randomness come in as arguments.
public func decide(
    _ command: Command,
    state: CommandState,
    context: DecisionContext,
    random: inout some RandomNumberGenerator
) throws(RegistryError) -> [RegistryEvent] {
    var rules = Rules(state: state, context: context)
    switch command {
    case .createDevice(let spec):
        return [try rules.createDevice(spec, random: &random)]
    case .replaceDevice(let spec, let ifMatch):
        return [try rules.replaceDevice(spec, ifMatch: ifMatch, random: &random)]
    case .deleteDevice(let id, let ifMatch):
        return try rules.deleteDevice(id, ifMatch: ifMatch)
    case .createModule(let spec):
        return [try rules.createModule(spec, random: &random)]
    case .replaceModule(let spec, let ifMatch):
        return [try rules.replaceModule(spec, ifMatch: ifMatch, random: &random)]
    case .deleteModule(let deviceId, let moduleId, let ifMatch):
        return [try rules.deleteModule(deviceId, moduleId, ifMatch: ifMatch)]
    case .createOrReplaceDevice(let spec, let ifMatch):
        return [
            state.device == nil ? try rules.createDevice(spec, random: &random) : try rules.replaceDevice(spec, ifMatch: ifMatch, random: &random)
        ]
    case .createOrReplaceModule(let spec, let ifMatch):
        return [
            state.module == nil ? try rules.createModule(spec, random: &random) : try rules.replaceModule(spec, ifMatch: ifMatch, random: &random)
        ]
    case .reportConnection(let report):
        return try rules.reportConnection(report)
    case .updateTwin(let update):
        return [try rules.updateTwin(update)]
    case .change(let change):
        return try rules.change(change, random: &random)
    case .restore(let restoration):
        return try rules.restore(restoration)
    case .noticeCredentialExpiry(let notice):
        return try rules.noticeCredentialExpiry(notice)
    case .scoped(let inner, let scope):
        // A device id outside the prefixes: refused whether or not it exists (the answer must
        // not tell a scoped caller what is registered outside its scope).
        if scope.excludes(deviceId: inner.deviceId) { throw PolicyScope.refusal(inner) }
        // The identity the command names, as it is now, must be inside the scope, and for a
        // module its device too (no keys for a module on a device outside the scope).
        if let device = state.device, !scope.admits(.device(device)) { throw PolicyScope.refusal(inner) }
        if inner.moduleId != nil, let module = state.module, !scope.admits(.module(module)) { throw PolicyScope.refusal(inner) }
        let events = try decide(inner, state: state, context: context, random: &random)
        // Every identity it creates, changes or deletes (a device's modules go with it) must be
        // inside: each is judged on its own twin.
        for event in events where !scope.admits(event.identity) { throw PolicyScope.refusal(inner) }
        return events
    }
}

/// The etag of an identity whose last change has sequence number `seq`: base64 of the decimal
/// number, the shape Azure's etags are observed to have (`MQ==` for 1).
public func etag(forSequence seq: UInt64) -> String {
    Base64.encode(String(seq).utf8)
}

/// `AAAAAAAAAAE=` for 1: base64 of the number as 8 big-endian bytes, as Azure's twin etags look.
public func twinEtag(forSequence seq: UInt64) -> String {
    Base64.encode((0..<8).map { UInt8(truncatingIfNeeded: seq >> (8 * (7 - UInt64($0)))) })
}

/// A fresh symmetric key: 32 random bytes, base64 (Azure's default length).
public func generateKey(random: inout some RandomNumberGenerator) -> String {
    Base64.encode(randomBytes(32, using: &random))
}

/// `count` random bytes, eight per draw from the generator.
public func randomBytes(_ count: Int, using random: inout some RandomNumberGenerator) -> [UInt8] {
    var bytes: [UInt8] = []
    appendRandomBytes(count, to: &bytes, using: &random)
    return bytes
}

/// Appends `count` random bytes: whole 64-bit draws, little-endian, the last one cut short (so
/// a seeded generator gives the same bytes however they are collected).
public func appendRandomBytes(_ count: Int, to bytes: inout [UInt8], using random: inout some RandomNumberGenerator) {
    let end = bytes.count + count
    bytes.reserveCapacity(end + 7)
    while bytes.count < end {
        let word = random.next()
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
    }
    bytes.removeLast(bytes.count - end)
}

private struct Rules {
    let state: CommandState
    let context: DecisionContext
    var nextSequence: UInt64

    init(state: CommandState, context: DecisionContext) {
        self.state = state
        self.context = context
        self.nextSequence = context.sequence
    }

    mutating func event(_ type: EventType, _ identity: (String) -> Identity) -> RegistryEvent {
        defer { nextSequence += 1 }
        return RegistryEvent(seq: nextSequence, time: context.now, type: type, identity: identity(etag(forSequence: nextSequence)))
    }

    // MARK: devices

    mutating func createDevice(_ spec: DeviceSpec, random: inout some RandomNumberGenerator) throws(RegistryError) -> RegistryEvent {
        try Validation.checkId(spec.deviceId, kind: "device")
        if state.device != nil {
            throw RegistryError(.deviceAlreadyExists, "A device with ID '\(spec.deviceId)' is already registered.")
        }
        try checkIdentityQuota()
        try checkDeviceFields(spec)
        if let tags = spec.tags { try Validation.checkTags(tags) }
        let authentication = try resolveAuthentication(spec.authentication, existing: nil, random: &random)
        let status = spec.status ?? .enabled
        let generationId = String(context.now.ticks)
        // An edge device's scope is the server's unless given (an import restoring an export
        // keeps it, so its leaf devices' parentScopes still point at it).
        let scope =
            spec.capabilities.iotEdge
            ? (spec.deviceScope.nonEmpty ?? "ms-azure-iot-edge://\(spec.deviceId)-\(generationId)") : spec.deviceScope.nonEmpty
        let parents = spec.parentScopes.isEmpty && !spec.capabilities.iotEdge ? scope.map { [$0] } ?? [] : spec.parentScopes
        let now = context.now
        let twin = spec.tags.map { TwinState(tags: $0, version: 2, etag: twinEtag(forSequence: nextSequence)) }
        return event(.deviceCreated) { etag in
            .device(
                Device(
                    deviceId: spec.deviceId,
                    generationId: generationId,
                    etag: etag,
                    status: status,
                    statusReason: spec.statusReason,
                    // Azure leaves statusUpdatedTime unset for a device created enabled.
                    statusUpdatedTime: status == .disabled ? now : .unset,
                    authentication: authentication,
                    capabilities: spec.capabilities,
                    deviceScope: scope,
                    parentScopes: parents,
                    twin: twin
                )
            )
        }
    }

    mutating func replaceDevice(
        _ spec: DeviceSpec,
        ifMatch: ETagCondition,
        random: inout some RandomNumberGenerator
    ) throws(RegistryError) -> RegistryEvent {
        try Validation.checkId(spec.deviceId, kind: "device")
        let existing = try existingDevice(spec.deviceId)
        try checkPrecondition(ifMatch, current: existing.etag, what: "device '\(spec.deviceId)'")
        try checkDeviceFields(spec)
        if let tags = spec.tags { try Validation.checkTags(tags) }
        var device = existing
        // Tags given with an update (import) replace the twin's; otherwise the twin stays.
        if let tags = spec.tags {
            device.twin = TwinState(tags: tags, version: (existing.twin?.version ?? 2) + 1, etag: twinEtag(forSequence: nextSequence))
        }
        device.authentication = try resolveAuthentication(spec.authentication, existing: existing.authentication, random: &random)
        // PUT is a full replace: an omitted status is the default, enabled.
        device.status = spec.status ?? .enabled
        device.statusReason = spec.statusReason
        if device.status != existing.status { device.statusUpdatedTime = context.now }
        device.capabilities = spec.capabilities
        if !existing.capabilities.iotEdge || !spec.capabilities.iotEdge {
            // An edge device's own scope is immutable; a leaf's is writable.
            device.deviceScope =
                spec.capabilities.iotEdge
                ? "ms-azure-iot-edge://\(spec.deviceId)-\(existing.generationId)" : spec.deviceScope.nonEmpty
        }
        device.parentScopes = spec.parentScopes.isEmpty && !spec.capabilities.iotEdge ? device.deviceScope.map { [$0] } ?? [] : spec.parentScopes
        return event(.deviceUpdated) { etag in
            device.etag = etag
            return .device(device)
        }
    }

    mutating func deleteDevice(_ deviceId: String, ifMatch: ETagCondition) throws(RegistryError) -> [RegistryEvent] {
        try Validation.checkId(deviceId, kind: "device")
        let existing = try existingDevice(deviceId)
        try checkPrecondition(ifMatch, current: existing.etag, what: "device '\(deviceId)'")
        // Modules cannot outlive their device: one moduleDeleted each, then the deviceDeleted.
        var events = state.modules.map { module in event(.moduleDeleted) { _ in .module(module) } }
        events.append(event(.deviceDeleted) { _ in .device(existing) })
        return events
    }

    // MARK: modules

    mutating func createModule(_ spec: ModuleSpec, random: inout some RandomNumberGenerator) throws(RegistryError) -> RegistryEvent {
        try checkModuleSpec(spec)
        _ = try existingDevice(spec.deviceId)
        if state.module != nil {
            throw RegistryError(
                .moduleAlreadyExists,
                "A module with ID '\(spec.moduleId)' is already registered on device '\(spec.deviceId)'."
            )
        }
        guard state.moduleCount < context.limits.maxModulesPerDevice else {
            throw RegistryError(
                .tooManyModulesOnDevice,
                "Device '\(spec.deviceId)' already has \(state.moduleCount) modules, the maximum allowed."
            )
        }
        try checkIdentityQuota()
        if let tags = spec.tags { try Validation.checkTags(tags) }
        let authentication = try resolveAuthentication(spec.authentication, existing: nil, random: &random)
        let generationId = String(context.now.ticks)
        let twin = spec.tags.map { TwinState(tags: $0, version: 2, etag: twinEtag(forSequence: nextSequence)) }
        return event(.moduleCreated) { etag in
            .module(
                Module(
                    deviceId: spec.deviceId,
                    moduleId: spec.moduleId,
                    managedBy: spec.managedBy.nonEmpty,
                    generationId: generationId,
                    etag: etag,
                    authentication: authentication,
                    twin: twin
                )
            )
        }
    }

    mutating func replaceModule(
        _ spec: ModuleSpec,
        ifMatch: ETagCondition,
        random: inout some RandomNumberGenerator
    ) throws(RegistryError) -> RegistryEvent {
        try checkModuleSpec(spec)
        _ = try existingDevice(spec.deviceId)
        var module = try existingModule(spec.deviceId, spec.moduleId)
        try checkPrecondition(ifMatch, current: module.etag, what: "module '\(spec.moduleId)'")
        module.authentication = try resolveAuthentication(spec.authentication, existing: module.authentication, random: &random)
        module.managedBy = spec.managedBy.nonEmpty
        if let tags = spec.tags {
            try Validation.checkTags(tags)
            module.twin = TwinState(tags: tags, version: (module.twin?.version ?? 2) + 1, etag: twinEtag(forSequence: nextSequence))
        }
        return event(.moduleUpdated) { etag in
            module.etag = etag
            return .module(module)
        }
    }

    mutating func deleteModule(_ deviceId: String, _ moduleId: String, ifMatch: ETagCondition) throws(RegistryError) -> RegistryEvent {
        try Validation.checkId(deviceId, kind: "device")
        try Validation.checkId(moduleId, kind: "module")
        _ = try existingDevice(deviceId)
        let module = try existingModule(deviceId, moduleId)
        try checkPrecondition(ifMatch, current: module.etag, what: "module '\(moduleId)'")
        return event(.moduleDeleted) { _ in .module(module) }
    }

    // MARK: twin tags

    /// Merges (or replaces) the twin's tags under the twin's etag; the identity etag stays.
    mutating func updateTwin(_ update: TwinUpdate) throws(RegistryError) -> RegistryEvent {
        try Validation.checkId(update.deviceId, kind: "device")
        if let moduleId = update.moduleId { try Validation.checkId(moduleId, kind: "module") }
        var device = try existingDevice(update.deviceId)
        func next(_ current: TwinState?, what: String) throws(RegistryError) -> TwinState {
            try checkPrecondition(update.ifMatch, current: current?.etag ?? TwinState.initialEtag, what: "the twin of \(what)")
            let tags = update.replace ? update.tags : Validation.mergedTags(current?.tags ?? [:], update.tags)
            try Validation.checkTags(tags)
            return TwinState(tags: tags, version: (current?.version ?? 2) + 1, etag: twinEtag(forSequence: nextSequence))
        }
        if let moduleId = update.moduleId {
            var module = try existingModule(update.deviceId, moduleId)
            module.twin = try next(module.twin, what: "module '\(moduleId)'")
            return event(.moduleTwinUpdated) { _ in .module(module) }
        }
        device.twin = try next(device.twin, what: "device '\(update.deviceId)'")
        return event(.deviceTwinUpdated) { _ in .device(device) }
    }

    // MARK: bulk-by-query changes

    /// One identity's change from a bulk-by-query job, refused if the identity or its twin
    /// changed since the job read them.
    mutating func change(_ change: IdentityChange, random: inout some RandomNumberGenerator) throws(RegistryError) -> [RegistryEvent] {
        try Validation.checkId(change.deviceId, kind: "device")
        var device = try existingDevice(change.deviceId)
        if let moduleId = change.moduleId {
            try Validation.checkId(moduleId, kind: "module")
            var module = try existingModule(change.deviceId, moduleId)
            let what = "module '\(moduleId)' of device '\(change.deviceId)'"
            try checkPrecondition(.exact(change.etag), current: module.etag, what: what)
            try checkPrecondition(.exact(change.twinEtag), current: module.twin?.etag ?? TwinState.initialEtag, what: "the twin of \(what)")
            switch change.action {
            case .setStatus:
                throw .invalid("Modules cannot be disabled or enabled; only devices have a status.")
            case .regenerateKeys(let slots):
                module.authentication = try regenerated(module.authentication, slots, what: what, random: &random)
                return [
                    event(.moduleUpdated) { etag in
                        module.etag = etag
                        return .module(module)
                    }
                ]
            case .mergeTags(let tags):
                module.twin = try mergedTwin(module.twin, tags)
                return [event(.moduleTwinUpdated) { _ in .module(module) }]
            case .delete:
                return [event(.moduleDeleted) { _ in .module(module) }]
            }
        }
        let what = "device '\(change.deviceId)'"
        try checkPrecondition(.exact(change.etag), current: device.etag, what: what)
        try checkPrecondition(.exact(change.twinEtag), current: device.twin?.etag ?? TwinState.initialEtag, what: "the twin of \(what)")
        switch change.action {
        case .setStatus(let status, let reason):
            try Validation.checkStatusReason(reason)
            if status != device.status { device.statusUpdatedTime = context.now }
            device.status = status
            device.statusReason = reason
        case .regenerateKeys(let slots):
            device.authentication = try regenerated(device.authentication, slots, what: what, random: &random)
        case .mergeTags(let tags):
            device.twin = try mergedTwin(device.twin, tags)
            return [event(.deviceTwinUpdated) { _ in .device(device) }]
        case .delete:
            return try deleteDevice(change.deviceId, ifMatch: .exact(change.etag))
        }
        return [
            event(.deviceUpdated) { etag in
                device.etag = etag
                return .device(device)
            }
        ]
    }

    func regenerated(
        _ authentication: Authentication,
        _ slots: IdentityChange.KeySlots,
        what: String,
        random: inout some RandomNumberGenerator
    ) throws(RegistryError) -> Authentication {
        guard authentication.type == .sas else {
            throw .invalid("The keys of \(what) cannot be regenerated: it authenticates with \(authentication.type.rawValue), not sas.")
        }
        var next = authentication
        // A new key starts without a window (the old one bounded the old key).
        if slots != .secondary {
            next.symmetricKey.primaryKey = generateKey(random: &random)
            next.validity.primary = nil
        }
        if slots != .primary {
            next.symmetricKey.secondaryKey = generateKey(random: &random)
            next.validity.secondary = nil
        }
        return next
    }

    func mergedTwin(_ current: TwinState?, _ tags: [String: JSONValue]) throws(RegistryError) -> TwinState {
        let merged = Validation.mergedTags(current?.tags ?? [:], tags)
        try Validation.checkTags(merged)
        return TwinState(tags: merged, version: (current?.version ?? 2) + 1, etag: twinEtag(forSequence: nextSequence))
    }

    // MARK: credential expiry notices

    /// Marks the window noticed, once: nothing when the identity is gone or the window changed
    /// or was noticed since the scan (the scan runs again; two nodes scanning write one notice).
    mutating func noticeCredentialExpiry(_ notice: CredentialExpiryNotice) throws(RegistryError) -> [RegistryEvent] {
        guard var device = state.device else { return [] }
        func marked(_ authentication: inout Authentication) -> Bool {
            guard var window = authentication.validity[notice.slot], window.notAfter == notice.notAfter, !window.expiryNoticed else { return false }
            window.expiryNoticed = true
            authentication.validity[notice.slot] = window
            return true
        }
        if notice.moduleId != nil {
            guard var module = state.module, marked(&module.authentication) else { return [] }
            return [event(.moduleCredentialExpiring) { _ in .module(module) }]
        }
        guard marked(&device.authentication) else { return [] }
        return [event(.deviceCredentialExpiring) { _ in .device(device) }]
    }

    // MARK: undelete

    /// Re-creates identities as their deletion events carried them: same keys, status, tags,
    /// scopes and managedBy; a new generationId, etag and twin etag; connection facts reset;
    /// `restoredFrom` the deletion's seq. Refused if the id exists again.
    mutating func restore(_ restoration: Restoration) throws(RegistryError) -> [RegistryEvent] {
        try Validation.checkId(restoration.deviceId, kind: "device")
        let generationId = String(context.now.ticks)
        var events: [RegistryEvent] = []
        if let deleted = restoration.device {
            guard case .device(var device) = deleted.identity, device.deviceId == restoration.deviceId else {
                throw .invalid("A device restore needs the device's own deletion.")
            }
            if state.device != nil {
                throw RegistryError(
                    .deviceAlreadyExists,
                    "A device with ID '\(device.deviceId)' is registered again; a restore only re-creates a deleted identity."
                )
            }
            guard restoration.modules.count <= context.limits.maxModulesPerDevice else {
                throw RegistryError(
                    .tooManyModulesOnDevice,
                    "Device '\(device.deviceId)' had \(restoration.modules.count) modules; the maximum allowed is now \(context.limits.maxModulesPerDevice)."
                )
            }
            if let maximum = context.limits.maxIdentities, state.identityCount + 1 + restoration.modules.count > maximum {
                throw RegistryError(
                    .quotaExceeded,
                    "The registry holds \(state.identityCount) identities; the restore would pass the configured maximum."
                )
            }
            device.generationId = generationId
            device.connectionState = .disconnected
            device.connectionStateUpdatedTime = .unset
            device.lastActivityTime = .unset
            device.cloudToDeviceMessageCount = 0
            device.twin = device.twin.map { TwinState(tags: $0.tags, version: 2, etag: twinEtag(forSequence: nextSequence)) }
            device.restoredFrom = deleted.seq
            events.append(
                event(.deviceCreated) { etag in
                    device.etag = etag
                    return .device(device)
                }
            )
        } else {
            _ = try existingDevice(restoration.deviceId)
            if let moduleId = restoration.moduleId, state.module != nil {
                throw RegistryError(
                    .moduleAlreadyExists,
                    "A module with ID '\(moduleId)' is registered again on device '\(restoration.deviceId)'; a restore only re-creates a deleted identity."
                )
            }
            guard state.moduleCount + restoration.modules.count <= context.limits.maxModulesPerDevice else {
                throw RegistryError(
                    .tooManyModulesOnDevice,
                    "Device '\(restoration.deviceId)' already has \(state.moduleCount) modules, the maximum allowed."
                )
            }
            try checkIdentityQuota()
        }
        for deleted in restoration.modules {
            guard case .module(var module) = deleted.identity, module.deviceId == restoration.deviceId else {
                throw .invalid("A module restore needs the module's own deletion.")
            }
            module.generationId = generationId
            module.connectionState = .disconnected
            module.connectionStateUpdatedTime = .unset
            module.lastActivityTime = .unset
            module.cloudToDeviceMessageCount = 0
            module.twin = module.twin.map { TwinState(tags: $0.tags, version: 2, etag: twinEtag(forSequence: nextSequence)) }
            module.restoredFrom = deleted.seq
            events.append(
                event(.moduleCreated) { etag in
                    module.etag = etag
                    return .module(module)
                }
            )
        }
        return events
    }

    // MARK: connection state

    /// Sets connectionState, connectionStateUpdatedTime and lastActivityTime; the etag stays
    /// (a reconnect must not make a pending conditional update fail with 412). A report older
    /// than the state already recorded (brokers may deliver out of order) changes nothing.
    mutating func reportConnection(_ report: ConnectionReport) throws(RegistryError) -> [RegistryEvent] {
        try Validation.checkId(report.deviceId, kind: "device")
        if let moduleId = report.moduleId { try Validation.checkId(moduleId, kind: "module") }
        var device = try existingDevice(report.deviceId)
        let time = report.time.map { min($0, context.now) } ?? context.now
        let state: ConnectionState = report.connected ? .connected : .disconnected
        if let moduleId = report.moduleId {
            var module = try existingModule(report.deviceId, moduleId)
            guard time >= module.connectionStateUpdatedTime else { return [] }
            module.connectionState = state
            module.connectionStateUpdatedTime = time
            module.lastActivityTime = max(module.lastActivityTime, time)
            return [event(report.connected ? .moduleConnected : .moduleDisconnected) { _ in .module(module) }]
        }
        guard time >= device.connectionStateUpdatedTime else { return [] }
        device.connectionState = state
        device.connectionStateUpdatedTime = time
        device.lastActivityTime = max(device.lastActivityTime, time)
        return [event(report.connected ? .deviceConnected : .deviceDisconnected) { _ in .device(device) }]
    }

    // MARK: rules shared by several commands

    func existingDevice(_ id: String) throws(RegistryError) -> Device {
        guard let device = state.device else { throw RegistryError(.deviceNotFound, "Device \(id) not registered") }
        return device
    }

    func existingModule(_ deviceId: String, _ moduleId: String) throws(RegistryError) -> Module {
        guard let module = state.module else {
            throw RegistryError(.moduleNotFound, "Module \(moduleId) on device \(deviceId) not registered")
        }
        return module
    }

    func checkPrecondition(_ condition: ETagCondition, current: String, what: String) throws(RegistryError) {
        if case .exact(let tag) = condition, tag != current {
            throw RegistryError(.preconditionFailed, "Precondition failed: the etag of \(what) has changed.")
        }
    }

    func checkIdentityQuota() throws(RegistryError) {
        if let maximum = context.limits.maxIdentities, state.identityCount >= maximum {
            throw RegistryError(.quotaExceeded, "The registry holds \(state.identityCount) identities, the configured maximum.")
        }
    }

    func checkDeviceFields(_ spec: DeviceSpec) throws(RegistryError) {
        try Validation.checkStatusReason(spec.statusReason)
        guard spec.parentScopes.count <= 1 else { throw .invalid("parentScopes may hold at most one scope.") }
    }

    func checkModuleSpec(_ spec: ModuleSpec) throws(RegistryError) {
        try Validation.checkId(spec.deviceId, kind: "device")
        try Validation.checkId(spec.moduleId, kind: "module")
        if spec.status != nil {
            throw .invalid("Modules have no status: disabling is available for devices only.")
        }
    }

    /// Turns what the client sent into the stored authentication. Keys and thumbprints never
    /// mix; SAS keys come in pairs or not at all (then existing SAS keys are kept, or new ones
    /// generated); thumbprints are SHA-1 or SHA-256 hex.
    /// The credentials a write asks for (`resolveCredentials`), with their validity windows:
    /// those given, else the existing windows of the slots whose credential stays the same (a
    /// new key or thumbprint starts without one).
    func resolveAuthentication(
        _ spec: AuthenticationSpec?,
        existing: Authentication?,
        random: inout some RandomNumberGenerator
    ) throws(RegistryError) -> Authentication {
        var resolved = try resolveCredentials(spec, existing: existing, random: &random)
        if let given = spec?.validity {
            guard given.isEmpty || resolved.type == .sas || resolved.type == .selfSigned else {
                throw .invalid("Validity windows bound keys and thumbprints; authentication type \(resolved.type.rawValue) has neither.")
            }
            for slot in CredentialValidity.Slot.allCases where given[slot] != nil && resolved.credential(slot) == nil {
                throw .invalid("authentication.validity.\(slot.rawValue) bounds a \(slot.rawValue) credential the identity does not have.")
            }
            resolved.validity = given
            // The same window given back (a GET sent back, an export imported) keeps its notice
            // mark: the registry announced its end once already.
            if let existing {
                for slot in CredentialValidity.Slot.allCases
                where existing.type == resolved.type && resolved.credential(slot) != nil && existing.credential(slot) == resolved.credential(slot)
                    && given[slot]?.notAfter != nil && given[slot]?.notAfter == existing.validity[slot]?.notAfter
                {
                    resolved.validity[slot]?.expiryNoticed = existing.validity[slot]?.expiryNoticed ?? false
                }
            }
        } else if let existing {
            for slot in CredentialValidity.Slot.allCases
            where existing.type == resolved.type && resolved.credential(slot) != nil && existing.credential(slot) == resolved.credential(slot) {
                resolved.validity[slot] = existing.validity[slot]
            }
        }
        return resolved
    }

    func resolveCredentials(
        _ spec: AuthenticationSpec?,
        existing: Authentication?,
        random: inout some RandomNumberGenerator
    ) throws(RegistryError) -> Authentication {
        let spec = spec ?? AuthenticationSpec()
        let primaryKey = spec.primaryKey.nonEmpty
        let secondaryKey = spec.secondaryKey.nonEmpty
        let primaryThumbprint = spec.primaryThumbprint.nonEmpty
        let secondaryThumbprint = spec.secondaryThumbprint.nonEmpty
        let hasKeys = primaryKey != nil || secondaryKey != nil
        let hasThumbprints = primaryThumbprint != nil || secondaryThumbprint != nil
        if hasKeys && hasThumbprints {
            throw .invalid("Symmetric keys and X.509 thumbprints cannot be set together.")
        }
        let type = spec.type ?? (hasThumbprints ? .selfSigned : .sas)
        switch type {
        case .sas:
            if hasThumbprints { throw .invalid("Authentication type sas does not take X.509 thumbprints.") }
            if let primaryKey, let secondaryKey {
                try Validation.checkKey(primaryKey, name: "primaryKey")
                try Validation.checkKey(secondaryKey, name: "secondaryKey")
                return Authentication(type: .sas, symmetricKey: SymmetricKey(primaryKey: primaryKey, secondaryKey: secondaryKey))
            }
            if hasKeys { throw .invalid("Give both the primary and the secondary key, or neither.") }
            if let existing, existing.type == .sas, existing.symmetricKey.primaryKey != nil {
                return Authentication(type: .sas, symmetricKey: existing.symmetricKey)
            }
            let primary = generateKey(random: &random)
            let secondary = generateKey(random: &random)
            return Authentication(type: .sas, symmetricKey: SymmetricKey(primaryKey: primary, secondaryKey: secondary))
        case .selfSigned:
            if hasKeys { throw .invalid("Authentication type selfSigned does not take symmetric keys.") }
            guard hasThumbprints else {
                throw .invalid("Authentication type selfSigned needs a primary or secondary thumbprint.")
            }
            if let primaryThumbprint { try Validation.checkThumbprint(primaryThumbprint, name: "primaryThumbprint") }
            if let secondaryThumbprint { try Validation.checkThumbprint(secondaryThumbprint, name: "secondaryThumbprint") }
            if let primaryThumbprint, let secondaryThumbprint, primaryThumbprint.utf8.count != secondaryThumbprint.utf8.count {
                throw .invalid("The primary and secondary thumbprints must have the same length.")
            }
            return Authentication(
                type: .selfSigned,
                x509Thumbprint: X509Thumbprint(primaryThumbprint: primaryThumbprint, secondaryThumbprint: secondaryThumbprint)
            )
        case .certificateAuthority, .none:
            if hasKeys || hasThumbprints {
                throw .invalid("Authentication type \(type.rawValue) takes neither symmetric keys nor thumbprints.")
            }
            return Authentication(type: type)
        }
    }
}
