import RegistryCore
import LMDB


extension RegistryStorage {
    public func deviceDocument(_ deviceId: String) throws -> IdentityDocument? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        return try read { txn, db in try txn.get(db.devices, StorageKey.device(deviceId)) }.map { try openDocument($0, deviceId: deviceId, moduleId: nil) }
    }

    public func moduleDocument(_ deviceId: String, _ moduleId: String) throws -> IdentityDocument? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil, (try? Validation.checkId(moduleId, kind: "module")) != nil
        else { return nil }
        return try read { txn, db in try txn.get(db.modules, StorageKey.module(deviceId, moduleId)) }
            .map { try openDocument($0, deviceId: deviceId, moduleId: moduleId) }
    }

    /// Up to `limit` device documents in id order.
    public func deviceDocuments(limit: Int) throws -> [IdentityDocument] {
        let raw = try read { txn, db in
            var entries: [([UInt8], [UInt8])] = []
            try txn.scan(db.devices) { key, value in
                entries.append((key, value))
                return entries.count < limit
            }
            return entries
        }
        return try raw.map { key, value in try openDocument(value, deviceId: String(decoding: key, as: UTF8.self), moduleId: nil) }
    }

    /// The device's module documents in id order, or `nil` when the device does not exist.
    public func moduleDocuments(of deviceId: String) throws -> [IdentityDocument]? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        let prefix = StorageKey.modulePrefix(deviceId)
        let raw = try read { txn, db -> [([UInt8], [UInt8])]? in
            guard try txn.contains(db.devices, StorageKey.device(deviceId)) else { return nil }
            var entries: [([UInt8], [UInt8])] = []
            try txn.scan(db.modules, from: prefix) { key, value in
                guard StorageKey.hasPrefix(key, prefix) else { return false }
                entries.append((key, value))
                return true
            }
            return entries
        }
        return try raw?.map { key, value in
            try openDocument(value, deviceId: deviceId, moduleId: String(decoding: key[prefix.count...], as: UTF8.self))
        }
    }

    static let primaryMarker = Array("\"primaryKey\":\"\(KeySealer.prefix)".utf8)
    static let secondaryMarker = Array("\"secondaryKey\":\"\(KeySealer.prefix)".utf8)
    static let etagMarker = Array("\"etag\":\"".utf8)

    /// Opens the sealed keys of a stored document. The markers cannot occur inside a string
    /// value (quotes there are escaped), so each match is the member itself; only the identity's
    /// own keys are looked for, in its first member (see `credentials`), never a tag of the same
    /// name in the `twin` member. The document is copied once, with the opened texts in place.
    func openDocument(_ stored: [UInt8], deviceId: String, moduleId: String?) throws -> IdentityDocument {
        guard let sealer else { return IdentityDocument(json: stored, etag: try Self.etag(in: stored)) }
        let end = ByteSearch.first(Self.afterAuthenticationMarker, in: stored) ?? Projections.identityEnd(stored)
        var sealedValues: [(range: Range<Int>, name: String)] = []
        for (marker, name) in [(Self.primaryMarker, "primaryKey"), (Self.secondaryMarker, "secondaryKey")] {
            guard let start = ByteSearch.first(marker, in: stored, to: end) else { continue }
            let valueStart = start + marker.count - KeySealer.prefix.utf8.count
            guard let valueEnd = stored[valueStart...].firstIndex(of: UInt8(ascii: "\"")) else { throw StoreError("a stored document is truncated") }
            sealedValues.append((valueStart..<valueEnd, name))
        }
        guard !sealedValues.isEmpty else { return IdentityDocument(json: stored, etag: try Self.etag(in: stored)) }
        sealedValues.sort { $0.range.lowerBound < $1.range.lowerBound }
        var out: [UInt8] = []
        out.reserveCapacity(stored.count)
        var copied = 0
        for (range, name) in sealedValues {
            out.append(contentsOf: stored[copied..<range.lowerBound])
            out.append(contentsOf: try openedKeyText(stored, range, slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: name), sealer: sealer))
            copied = range.upperBound
        }
        out.append(contentsOf: stored[copied...])
        return IdentityDocument(json: out, etag: try Self.etag(in: out))
    }

    /// A sealed key's plaintext (base64 text bytes), memoized like `openedKey` (AES-GCM opening
    /// was the largest cost of a GET after the parse was gone).
    func openedKeyText(_ document: [UInt8], _ sealed: Range<Int>, slot: IdentityCodec.KeySlot, sealer: KeySealer) throws -> [UInt8] {
        if let hit = openedKeys.lookup(document, sealed, slot: slot) { return hit }
        let text = Array(try sealer.open(String(decoding: document[sealed], as: UTF8.self), for: slot.sealingContext).utf8)
        openedKeys.insert(document, sealed, slot: slot, text)
        return text
    }

    /// The top-level etag of a stored (canonical) document.
    static func etag(in bytes: [UInt8]) throws -> String {
        guard let tag = ByteSearch.first(etagMarker, in: bytes), let end = bytes[(tag + etagMarker.count)...].firstIndex(of: UInt8(ascii: "\""))
        else { throw StoreError("a stored document has no etag") }
        return String(decoding: bytes[(tag + etagMarker.count)..<end], as: UTF8.self)
    }
}

extension RegistryStorage {
    /// Visits every device, each followed by its modules, in key order, from one consistent
    /// snapshot (one read transaction: safe while a daemon writes). Keys are opened when the
    /// storage has the data key and `openKeys` is set.
    public func scanIdentities(openKeys: Bool, _ visit: (IdentityDocument, _ isModule: Bool) throws -> Void) throws {
        try read { txn, db in
            try txn.withCursor(db.modules) { modules in
                var module = try modules.first()
                try txn.scan(db.devices) { key, value in
                    let deviceId = String(decoding: key, as: UTF8.self)
                    try visit(try document(value, deviceId: deviceId, moduleId: nil, open: openKeys), false)
                    let prefix = key + [0]
                    // Modules whose device sorts before this one cannot exist; skip defensively.
                    while let (mkey, _) = module, !StorageKey.hasPrefix(mkey, prefix), mkey.lexicographicallyPrecedes(prefix) {
                        module = try modules.next()
                    }
                    while let (mkey, mvalue) = module, StorageKey.hasPrefix(mkey, prefix) {
                        let moduleId = String(decoding: mkey[prefix.count...], as: UTF8.self)
                        try visit(try document(mvalue, deviceId: deviceId, moduleId: moduleId, open: openKeys), true)
                        module = try modules.next()
                    }
                    return true
                }
            }
        }
    }

    func document(_ stored: [UInt8], deviceId: String, moduleId: String?, open: Bool) throws -> IdentityDocument {
        if open { return try openDocument(stored, deviceId: deviceId, moduleId: moduleId) }
        return IdentityDocument(json: stored, etag: try Self.etag(in: stored))
    }
}
