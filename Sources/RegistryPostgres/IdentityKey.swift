import RegistryCore

/// The identity keys of the stored tables and of the node-local view: the LMDB backend's byte
/// keys (`deviceId`, or `deviceId 0x00 moduleId`), so rows sort as LMDB's do.
enum IdentityKey {
    static func of(deviceId: String, moduleId: String?) -> [UInt8] {
        let device = Array(deviceId.utf8)
        guard let moduleId else { return device }
        return device + [0] + Array(moduleId.utf8)
    }

    /// What an event does to the projections (the LMDB backend's `Projections.apply`): its
    /// payload becomes the document at `key`, or, for a delete, the document at `key` goes.
    static func effect(of type: EventType, deviceId: String, moduleId: String?) -> (key: [UInt8], isModule: Bool, deletes: Bool) {
        let isModule = !type.isDevice
        return (of(deviceId: deviceId, moduleId: isModule ? (moduleId ?? "") : nil), isModule, type.isDelete)
    }
}
