import Foundation
import LMDB
import Synchronization

/// What device authentication needs of one identity, read from the stored canonical documents
/// without parsing them (the device-auth profile showed the parse and the key unsealing as the
/// largest costs of a check).
public struct CredentialRecord: Sendable {
    /// The identity's device is disabled (a module connects through its device).
    public var deviceDisabled: Bool
    public var type: AuthenticationType
    /// The symmetric keys, base64-decoded (what HMAC takes).
    public var keys: [[UInt8]]
    /// The X.509 thumbprints, lower case.
    public var thumbprints: [String]
}

extension RegistryStorage {
    static let typeMarker = Array("\"type\":\"".utf8)
    static let primaryKeyMarker = Array("\"primaryKey\":\"".utf8)
    static let secondaryKeyMarker = Array("\"secondaryKey\":\"".utf8)
    static let primaryThumbprintMarker = Array("\"primaryThumbprint\":\"".utf8)
    static let secondaryThumbprintMarker = Array("\"secondaryThumbprint\":\"".utf8)

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
        guard let typeName = Self.stringMember(Self.typeMarker, in: identity), let type = AuthenticationType(rawValue: typeName) else {
            throw StoreError("a stored document has no authentication type")
        }
        var keys: [[UInt8]] = []
        for (marker, slot) in [(Self.primaryKeyMarker, "primaryKey"), (Self.secondaryKeyMarker, "secondaryKey")] {
            guard let stored = Self.stringMember(marker, in: identity) else { continue }
            let context = IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: slot).context
            keys.append(try openedKey(stored, context: context))
        }
        let thumbprints = [Self.primaryThumbprintMarker, Self.secondaryThumbprintMarker].compactMap { Self.stringMember($0, in: identity)?.lowercased() }
        return CredentialRecord(deviceDisabled: Projections.isDisabled(device), type: type, keys: keys, thumbprints: thumbprints)
    }

    /// The string value after `marker` (plain strings only: these values never hold escapes).
    static func stringMember(_ marker: [UInt8], in bytes: [UInt8]) -> String? {
        // Only the identity's own members: never a tag of the same name in the `twin` member.
        guard let at = ByteSearch.first(marker, in: bytes, to: Projections.identityEnd(bytes)) else { return nil }
        let start = at + marker.count
        guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// A key's HMAC bytes: unsealed (through the cache) when the storage holds the data key.
    func openedKey(_ stored: String, context: String) throws -> [UInt8] {
        guard let sealer else { return Array(Data(base64Encoded: stored) ?? Data()) }
        let cacheKey = context + "\u{0}" + stored
        if let hit = openedKeys.lookup(cacheKey) { return hit }
        let bytes = Array(Data(base64Encoded: try sealer.open(stored, context: context)) ?? Data())
        openedKeys.insert(cacheKey, bytes)
        return bytes
    }
}

/// Memo of opened key values: sealed text (with its identity-and-slot context) to key bytes.
/// A pure function's results, so it can never be stale: a changed key is a different sealed
/// text (fresh nonce). Bounded: cleared when full.
final class OpenedKeyCache: Sendable {
    private let entries = Mutex<[String: [UInt8]]>([:])
    let capacity: Int

    init(capacity: Int = 100_000) { self.capacity = capacity }

    func lookup(_ key: String) -> [UInt8]? { entries.withLock { $0[key] } }

    func insert(_ key: String, _ value: [UInt8]) {
        entries.withLock {
            if $0.count >= capacity { $0.removeAll(keepingCapacity: true) }
            $0[key] = value
        }
    }
}
