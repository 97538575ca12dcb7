import LMDB
import RegistryCore

extension RegistryStorage {
    /// The current credentials of a device or module, or `nil` when it does not exist. Read in
    /// one short transaction on every call: nothing about the identity is cached, only the
    /// (pure) opening of sealed key values, keyed by the sealed bytes themselves.
    public func credentials(deviceId: String, moduleId: String?) throws -> CredentialRecord? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        if let moduleId, (try? Validation.checkId(moduleId, kind: "module")) == nil { return nil }
        let found = try read { txn, db -> (device: [UInt8], identity: [UInt8])? in
            guard let device = try txn.get(db.devices, StorageKey.device(deviceId)) else { return nil }
            guard let moduleId else { return (device, device) }
            guard let module = try txn.get(db.modules, StorageKey.module(deviceId, moduleId)) else { return nil }
            return (device, module)
        }
        guard let (device, identity) = found else { return nil }
        return try documents.credentials(device: device, identity: identity, deviceId: deviceId, moduleId: moduleId)
    }
}
