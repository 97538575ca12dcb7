import Foundation

/// What every backend does with a stored identity document's bytes, whatever stores them:
/// decoding it, opening its sealed keys (memoized) and reading the credentials a device check
/// needs. Pure over the bytes and the sealer, so backends that store the same documents share it.
public final class StoredDocuments: Sendable {
    /// The data key's sealer; `nil` for read-only tools, which see keys sealed.
    public let sealer: KeySealer?
    /// Opened key texts for identity reads (see `open`).
    let openedKeys = OpenedKeyCache<[UInt8]>()
    /// Opened keys for device authentication (see `credentials`).
    let signingKeys = OpenedKeyCache<SigningKey>()
    /// Parsed validity windows, by their stored bytes (a pure function of them; many devices
    /// share the same windows). Parsing on every check cost a tenth of a device check.
    let windows = OpenedKeyCache<CredentialValidity>(capacity: 10_000)
    static let windowsSlot = IdentityCodec.KeySlot(deviceId: "", moduleId: nil, name: "validity")

    public init(sealer: KeySealer?) { self.sealer = sealer }

    public func decodeIdentity(_ bytes: [UInt8]) throws -> Identity {
        let json = try JSONParser.parse(bytes)
        return try IdentityCodec.decode(json) { sealed, slot in
            guard let sealer else { return sealed }
            return try sealer.open(sealed, for: slot.sealingContext)
        }
    }

    public func decodeDevice(_ bytes: [UInt8]) throws -> Device {
        guard case .device(let d) = try decodeIdentity(bytes) else { throw StoreError("a devices record holds a module") }
        return d
    }

    public func decodeModule(_ bytes: [UInt8]) throws -> Module {
        guard case .module(let m) = try decodeIdentity(bytes) else { throw StoreError("a modules record holds a device") }
        return m
    }

    /// Opens the sealed keys of a stored document: the identity's own keys, as
    /// `StoredIdentityLayout` finds them (never a tag or a string of the same name). The document
    /// is copied once, with the opened texts in place.
    public func open(_ stored: [UInt8], deviceId: String, moduleId: String?) throws -> IdentityDocument {
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

    /// The stored document as an `IdentityDocument`: keys opened when `open` is set (see
    /// `open(_:deviceId:moduleId:)`), else as stored.
    public func document(_ stored: [UInt8], deviceId: String, moduleId: String?, open: Bool) throws -> IdentityDocument {
        if open { return try self.open(stored, deviceId: deviceId, moduleId: moduleId) }
        let layout = try Self.layout(stored)
        return IdentityDocument(json: stored, etag: try Self.etag(stored, layout), twinMember: layout.twinMember)
    }

    /// The credentials of a device or module from its stored documents, read together by the
    /// caller: `device` is the device's document and `identity` the module's for a module, the
    /// device's again for a device. Nothing about the identity is cached, only the (pure)
    /// opening of sealed key values, keyed by the sealed bytes themselves.
    public func credentials(device: [UInt8], identity: [UInt8], deviceId: String, moduleId: String?) throws -> CredentialRecord {
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
        // Validity windows, rare: parsed (a few dozen bytes) only when the member is there.
        var validity = CredentialValidity()
        if let range = layout.value(.validity) {
            if let known = windows.lookup(identity, range, slot: Self.windowsSlot) {
                validity = known
            } else {
                validity = CredentialValidity(stored: try JSONParser.parse(Array(identity[range])))
                windows.insert(identity, range, slot: Self.windowsSlot, validity)
            }
        }
        var keys: [SigningKey] = []
        var keyWindows: [CredentialValidity.Window?] = []
        keys.reserveCapacity(2)
        for (field, slot) in [(StoredIdentityLayout.Field.primaryKey, CredentialValidity.Slot.primary), (.secondaryKey, .secondary)] {
            guard let stored = layout.plainString(field, in: identity) else { continue }
            keys.append(try openedKey(identity, stored, slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: field.name)))
            keyWindows.append(validity[slot])
        }
        var thumbprints: [String] = []
        var thumbprintWindows: [CredentialValidity.Window?] = []
        for (field, slot) in [(StoredIdentityLayout.Field.primaryThumbprint, CredentialValidity.Slot.primary), (.secondaryThumbprint, .secondary)] {
            guard let thumbprint = layout.string(field, in: identity) else { continue }
            thumbprints.append(thumbprint.lowercased())
            thumbprintWindows.append(validity[slot])
        }
        return CredentialRecord(
            deviceDisabled: deviceDisabled,
            type: type,
            keys: keys,
            thumbprints: thumbprints,
            keyWindows: keyWindows,
            thumbprintWindows: thumbprintWindows,
            document: identity
        )
    }

    /// A key ready to verify signatures: unsealed (through the cache) when the data key is at
    /// hand.
    func openedKey(_ document: [UInt8], _ stored: Range<Int>, slot: IdentityCodec.KeySlot) throws -> SigningKey {
        guard let sealer else { return SigningKey(Array(Data(base64Encoded: String(decoding: document[stored], as: UTF8.self)) ?? Data())) }
        if let hit = signingKeys.lookup(document, stored, slot: slot) { return hit }
        let opened = try sealer.open(String(decoding: document[stored], as: UTF8.self), for: slot.sealingContext)
        let key = SigningKey(Array(Data(base64Encoded: opened) ?? Data()))
        signingKeys.insert(document, stored, slot: slot, key)
        return key
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
