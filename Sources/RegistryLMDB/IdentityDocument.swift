import LMDB
import RegistryCore

extension RegistryStorage {
    public func deviceDocument(_ deviceId: String) throws -> IdentityDocument? {
        guard (try? Validation.checkId(deviceId, kind: "device")) != nil else { return nil }
        return try read { txn, db in try txn.get(db.devices, StorageKey.device(deviceId)) }.map {
            try openDocument($0, deviceId: deviceId, moduleId: nil)
        }
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

    /// Opens the sealed keys of a stored document: the identity's own keys, as
    /// `StoredIdentityLayout` finds them (never a tag or a string of the same name). The document
    /// is copied once, with the opened texts in place.
    func openDocument(_ stored: [UInt8], deviceId: String, moduleId: String?) throws -> IdentityDocument {
        let layout = try Self.layout(stored)
        let etag = try Self.etag(stored, layout)
        guard let sealer else { return IdentityDocument(json: stored, etag: etag, twinMember: layout.twinMember) }
        var sealedValues: [(range: Range<Int>, name: String)] = []
        for field in [StoredIdentityLayout.Field.primaryKey, .secondaryKey] {
            guard let value = layout.sealedKey(field, in: stored) else { continue }
            sealedValues.append((value, field.name))
        }
        guard !sealedValues.isEmpty else { return IdentityDocument(json: stored, etag: etag, twinMember: layout.twinMember) }
        sealedValues.sort { $0.range.lowerBound < $1.range.lowerBound }
        var out: [UInt8] = []
        out.reserveCapacity(stored.count)
        var copied = 0
        // The twin member moves by what the openings before it add.
        var shift = 0
        for (range, name) in sealedValues {
            out.append(contentsOf: stored[copied..<range.lowerBound])
            let opened = try openedKeyText(
                stored,
                range,
                slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: name),
                sealer: sealer
            )
            out.append(contentsOf: opened)
            if let twin = layout.twinMember, range.upperBound <= twin.lowerBound { shift += opened.count - range.count }
            copied = range.upperBound
        }
        out.append(contentsOf: stored[copied...])
        return IdentityDocument(json: out, etag: etag, twinMember: layout.twinMember.map { ($0.lowerBound + shift)..<($0.upperBound + shift) })
    }

    /// A sealed key's plaintext (base64 text bytes), memoized like `openedKey` (AES-GCM opening
    /// was the largest cost of a GET after the parse was gone).
    func openedKeyText(_ document: [UInt8], _ sealed: Range<Int>, slot: IdentityCodec.KeySlot, sealer: KeySealer) throws -> [UInt8] {
        if let hit = openedKeys.lookup(document, sealed, slot: slot) { return hit }
        let text = Array(try sealer.open(String(decoding: document[sealed], as: UTF8.self), for: slot.sealingContext).utf8)
        openedKeys.insert(document, sealed, slot: slot, text)
        return text
    }

    /// The layout of a stored document, read as far as the document readers need.
    static func layout(_ stored: [UInt8]) throws -> StoredIdentityLayout {
        guard let layout = StoredIdentityLayout(stored, reading: .document) else { throw StoreError("a stored document is malformed") }
        return layout
    }

    /// The top-level etag of a stored document.
    static func etag(_ stored: [UInt8], _ layout: StoredIdentityLayout) throws -> String {
        guard let etag = layout.string(.etag, in: stored) else { throw StoreError("a stored document has no etag") }
        return etag
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
        let layout = try Self.layout(stored)
        return IdentityDocument(json: stored, etag: try Self.etag(stored, layout), twinMember: layout.twinMember)
    }
}
