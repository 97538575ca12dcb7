import RegistryCore
import Foundation
import LMDB


extension RegistryStorage {
    static let typeMarker = Array("\"type\":\"".utf8)
    static let primaryKeyMarker = Array("\"primaryKey\":\"".utf8)
    static let secondaryKeyMarker = Array("\"secondaryKey\":\"".utf8)
    static let primaryThumbprintMarker = Array("\"primaryThumbprint\":\"".utf8)
    static let secondaryThumbprintMarker = Array("\"secondaryThumbprint\":\"".utf8)
    static let afterAuthenticationMarker = Array(",\"cloudToDeviceMessageCount\":".utf8)

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
        // The markers cannot occur inside string values (their quotes are escaped), and in a
        // Device or Module document `type`, the keys and the thumbprints exist only under
        // `authentication`; an absent key or thumbprint is `null`, which the markers skip.
        // `authentication` is the first member of both documents and `cloudToDeviceMessageCount`
        // comes soon after it (after `capabilities` on a device), so the markers are searched
        // only up to there: a few hundred bytes instead of the document (and never a tag).
        let end = ByteSearch.first(Self.afterAuthenticationMarker, in: identity) ?? Projections.identityEnd(identity)
        guard let typeName = Self.stringMember(Self.typeMarker, in: identity, before: end), let type = AuthenticationType(rawValue: typeName) else {
            throw StoreError("a stored document has no authentication type")
        }
        var keys: [SigningKey] = []
        keys.reserveCapacity(2)
        for (marker, slot) in [(Self.primaryKeyMarker, "primaryKey"), (Self.secondaryKeyMarker, "secondaryKey")] {
            guard let stored = Self.stringRange(marker, in: identity, before: end) else { continue }
            keys.append(try openedKey(identity, stored, slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: slot)))
        }
        let thumbprints = [Self.primaryThumbprintMarker, Self.secondaryThumbprintMarker].compactMap { Self.stringMember($0, in: identity, before: end)?.lowercased() }
        return CredentialRecord(deviceDisabled: Projections.isDisabled(device), type: type, keys: keys, thumbprints: thumbprints)
    }

    /// The string value after `marker`, found before `end` (plain strings only: these values
    /// never hold escapes).
    static func stringMember(_ marker: [UInt8], in bytes: [UInt8], before end: Int) -> String? {
        stringRange(marker, in: bytes, before: end).map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    /// Where the string value after `marker` lies (plain strings only, as above).
    static func stringRange(_ marker: [UInt8], in bytes: [UInt8], before end: Int) -> Range<Int>? {
        guard let at = ByteSearch.first(marker, in: bytes, to: end) else { return nil }
        let start = at + marker.count
        guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return start..<end
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
