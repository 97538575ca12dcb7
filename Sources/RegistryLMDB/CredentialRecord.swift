import Foundation
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
        // The layout walk reads `authentication` (the first member) and, of the device, its
        // status: the walk stops there, never reaching the twin's tags.
        guard let layout = StoredIdentityLayout(identity, reading: moduleId == nil ? .deviceCredentials : .credentials) else {
            throw StoreError("a stored document is malformed")
        }
        let deviceDisabled: Bool
        if moduleId == nil {
            deviceDisabled = layout.isDisabled(identity)
        } else {
            guard let deviceLayout = StoredIdentityLayout(device, reading: .status) else { throw StoreError("a stored document is malformed") }
            deviceDisabled = deviceLayout.isDisabled(device)
        }
        guard let typeName = layout.string(.authenticationType, in: identity), let type = AuthenticationType(rawValue: typeName) else {
            throw StoreError("a stored document has no authentication type")
        }
        var keys: [SigningKey] = []
        keys.reserveCapacity(2)
        for field in [StoredIdentityLayout.Field.primaryKey, .secondaryKey] {
            guard let stored = layout.plainString(field, in: identity) else { continue }
            keys.append(try openedKey(identity, stored, slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: field.name)))
        }
        let thumbprints = [StoredIdentityLayout.Field.primaryThumbprint, .secondaryThumbprint].compactMap {
            layout.string($0, in: identity)?.lowercased()
        }
        return CredentialRecord(deviceDisabled: deviceDisabled, type: type, keys: keys, thumbprints: thumbprints)
    }

    /// A key ready to verify signatures: unsealed (through the cache) when the storage holds
    /// the data key.
    func openedKey(_ document: [UInt8], _ stored: Range<Int>, slot: IdentityCodec.KeySlot) throws -> SigningKey {
        guard let sealer else { return SigningKey(Array(Data(base64Encoded: String(decoding: document[stored], as: UTF8.self)) ?? Data())) }
        if let hit = signingKeys.lookup(document, stored, slot: slot) { return hit }
        let opened = try sealer.open(String(decoding: document[stored], as: UTF8.self), for: slot.sealingContext)
        let key = SigningKey(Array(Data(base64Encoded: opened) ?? Data()))
        signingKeys.insert(document, stored, slot: slot, key)
        return key
    }
}
