import Logging
import PostgresNIO
import RegistryCore

/// The identities one batch transaction decides against: every device its commands name and all
/// their modules, read once under the head lock, then evolved in memory as the batch's own
/// events are decided (so a later command of the batch sees an earlier one's change, as it
/// would one commit later).
struct BatchState {
    /// Loaded or decided devices; `nil` value: it does not exist (now).
    private var devices: [String: Device?] = [:]
    private var modules: [String: [String: Module]] = [:]
    private var identityCount = 0

    /// `knownAbsent`: devices known not to exist (so neither do their modules), which are not
    /// read.
    static func load(
        deviceIds: Set<String>,
        knownAbsent: Set<String> = [],
        countIdentities: Bool,
        hub: String,
        documents: StoredDocuments,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> BatchState {
        var state = BatchState()
        for id in deviceIds {
            state.devices[id] = .some(nil)
            state.modules[id] = [:]
        }
        let ids = Array(deviceIds.subtracting(knownAbsent))
        if !ids.isEmpty { try await state.read(ids, hub: hub, documents: documents, on: connection, logger: logger) }
        if countIdentities {
            let rows = try await connection.query(
                "SELECT (SELECT count(*) FROM devices WHERE hub = \(hub)) + (SELECT count(*) FROM modules WHERE hub = \(hub))",
                logger: logger
            )
            for try await count in rows.decode(Int64.self) { state.identityCount = Int(count) }
        }
        return state
    }

    /// Reads the stored devices of `ids` and all their modules.
    private mutating func read(_ ids: [String], hub: String, documents: StoredDocuments, on connection: PostgresConnection, logger: Logger)
        async throws
    {
        let keys = ids.map { ByteBuffer(bytes: Array($0.utf8)) }
        let deviceRows = try await connection.query("SELECT doc FROM devices WHERE hub = \(hub) AND key = ANY(\(keys)::bytea[])", logger: logger)
        for try await doc in deviceRows.decode(ByteBuffer.self) {
            let device = try documents.decodeDevice(Array(doc.readableBytesView))
            devices[device.deviceId] = device
        }
        let moduleRows = try await connection.query(
            "SELECT device_id, doc FROM modules WHERE hub = \(hub) AND device_id = ANY(\(ids)::text[])",
            logger: logger
        )
        for try await (deviceId, doc) in moduleRows.decode((String, ByteBuffer).self) {
            let module = try documents.decodeModule(Array(doc.readableBytesView))
            modules[deviceId, default: [:]][module.moduleId] = module
        }
    }

    /// What the domain's `decide` needs of the state for `command` (as the LMDB writer loads it).
    func commandState(for command: Command, limits: RegistryLimits) -> CommandState {
        var state = CommandState()
        let deviceId = command.deviceId
        state.device = devices[deviceId] ?? nil
        let deviceModules = modules[deviceId] ?? [:]
        if let moduleId = command.moduleId { state.module = deviceModules[moduleId] }
        switch command {
        case _ where command.needsAllModules:
            // In key order, as the LMDB backend reads them (bytewise).
            state.modules = deviceModules.values.sorted { Array($0.moduleId.utf8).lexicographicallyPrecedes(Array($1.moduleId.utf8)) }
            state.moduleCount = state.modules.count
        case _ where command.needsModuleCount:
            state.moduleCount = deviceModules.count
        default:
            break
        }
        if limits.maxIdentities != nil { state.identityCount = identityCount }
        return state
    }

    /// The domain's `evolve`, on this batch's view.
    mutating func apply(_ event: RegistryEvent) {
        switch (event.type, event.identity) {
        case (.deviceCreated, .device(let device)):
            devices[device.deviceId] = device
            modules[device.deviceId] = [:]
            identityCount += 1
        case (.deviceDeleted, _):
            devices[event.deviceId] = .some(nil)
            modules[event.deviceId] = [:]
            identityCount -= 1
        case (.moduleCreated, .module(let module)):
            modules[module.deviceId, default: [:]][module.moduleId] = module
            identityCount += 1
        case (.moduleDeleted, _):
            if let moduleId = event.moduleId { modules[event.deviceId]?[moduleId] = nil }
            identityCount -= 1
        case (_, .device(let device)):
            devices[device.deviceId] = device
        case (_, .module(let module)):
            modules[module.deviceId, default: [:]][module.moduleId] = module
        }
    }
}

/// The projections' end state after a batch: the last document of each identity key it
/// touched (or its deletion), so each key is written once however often the batch changed it.
struct ProjectionChanges {
    struct DeviceRow {
        var key: [UInt8]
        var doc: [UInt8]
        var disabled: Bool
        var connected: Bool
    }

    struct ModuleRow {
        var key: [UInt8]
        var deviceId: String
        var doc: [UInt8]
    }

    private(set) var deviceUpserts: [DeviceRow] = []
    private(set) var deviceDeletes: [[UInt8]] = []
    private(set) var moduleUpserts: [ModuleRow] = []
    private(set) var moduleDeletes: [[UInt8]] = []

    /// From a batch's decided events and their prepared payloads.
    init(_ events: [DecidedEvent], _ prepared: [DecidedEvent.Prepared]) {
        self.init(
            zip(events, prepared).map { decided, prepared in
                VerifiedEvent(
                    seq: decided.event.seq,
                    type: decided.event.type,
                    deviceId: decided.event.deviceId,
                    moduleId: decided.event.moduleId,
                    payloadBytes: prepared.payloadBytes,
                    hash: [],
                    disabled: prepared.disabled,
                    connected: prepared.connected
                )
            }
        )
    }

    /// The fold of `Projections` (the LMDB backend's `apply`): an event's payload is its
    /// identity's new document.
    init(_ events: [VerifiedEvent]) {
        var devices: [[UInt8]: DeviceRow?] = [:]
        var modules: [[UInt8]: ModuleRow?] = [:]
        for event in events {
            let (key, isModule, deletes) = IdentityKey.effect(of: event.type, deviceId: event.deviceId, moduleId: event.moduleId)
            switch (isModule, deletes) {
            case (false, true): devices[key] = .some(nil)
            case (true, true): modules[key] = .some(nil)
            case (false, false):
                devices[key] = DeviceRow(key: key, doc: event.payloadBytes, disabled: event.disabled, connected: event.connected)
            case (true, false): modules[key] = ModuleRow(key: key, deviceId: event.deviceId, doc: event.payloadBytes)
            }
        }
        for (key, row) in devices {
            if let row { deviceUpserts.append(row) } else { deviceDeletes.append(key) }
        }
        for (key, row) in modules {
            if let row { moduleUpserts.append(row) } else { moduleDeletes.append(key) }
        }
    }
}
