/// The whole registry as plain values: what folding the log with `evolve` produces.
///
/// The LMDB projections are the persistent form of the same fold; tests compare the two.
public struct RegistrySnapshot: Sendable, Hashable {
    public var devices: [String: Device]
    public var modules: [ModuleKey: Module]

    public init(devices: [String: Device] = [:], modules: [ModuleKey: Module] = [:]) {
        self.devices = devices
        self.modules = modules
    }

    /// The state slice `decide` needs for `command`.
    public func commandState(for command: Command) -> CommandState {
        let deviceId = command.deviceId
        let modules = self.modules.values.filter { $0.deviceId == deviceId }.sorted {
            ModuleKey($0.deviceId, $0.moduleId) < ModuleKey($1.deviceId, $1.moduleId)
        }
        return CommandState(
            device: devices[deviceId],
            module: command.moduleId.flatMap { self.modules[ModuleKey(deviceId, $0)] },
            modules: modules,
            moduleCount: modules.count,
            identityCount: devices.count + self.modules.count
        )
    }
}

/// Folds one event into the state: creates and updates store the snapshot, deletes remove it.
public func evolve(_ state: RegistrySnapshot, _ event: RegistryEvent) -> RegistrySnapshot {
    var next = state
    switch event.identity {
    case .device(let device):
        next.devices[device.deviceId] = event.type.isDelete ? nil : device
    case .module(let module):
        next.modules[ModuleKey(module.deviceId, module.moduleId)] = event.type.isDelete ? nil : module
    }
    return next
}
