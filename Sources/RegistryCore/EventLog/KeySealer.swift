import Crypto
import Foundation

/// Seals device and module keys with AES-256-GCM under the registry's data key, so that the
/// log, the projections and their backups can be handed to an auditor without the keys.
///
/// Each sealed value is bound to what it is the key of (`SealingContext`, the additional
/// authenticated data), so ciphertext copied from one device, module or policy to another does
/// not open.
public struct KeySealer: Sendable {
    /// Prefix of a sealed value: names the scheme so a future one can coexist.
    public static let prefix = "aes256gcm:"

    private let box: KeyBox
    private var key: Crypto.SymmetricKey { box.key }

    /// - Parameter keyBytes: 32 bytes of key material.
    public init(keyBytes: [UInt8]) throws(SealError) {
        guard keyBytes.count == 32 else { throw SealError("the data key must be 32 bytes, not \(keyBytes.count)") }
        self.box = KeyBox(key: Crypto.SymmetricKey(data: keyBytes))
    }

    /// Seals `plaintext` under `context`'s current (version 2) form.
    public func seal(_ plaintext: String, for context: SealingContext, random: inout some RandomNumberGenerator) -> String {
        var out: [UInt8] = []
        seal(plaintext, context: context.bytes, nonce: randomBytes(Self.nonceSize, using: &random)[...], into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Opens a value sealed for `context`: under its version 2 form, or (a value sealed before
    /// version 2) under its version 1 form when `legacy` allows it. The version 1 form of a
    /// policy key and of a module key of a device named `policy` are the same bytes, so a caller
    /// that has moved its values to version 2 passes `legacy: false` (see `PolicyStore`).
    public func open(_ sealed: String, for context: SealingContext, legacy: Bool = true) throws(SealError) -> String {
        let box = try sealedBox(sealed)
        if let plain = try? AES.GCM.open(box, using: key, authenticating: context.bytes) { return String(decoding: plain, as: UTF8.self) }
        if legacy, let plain = try? AES.GCM.open(box, using: key, authenticating: context.legacyBytes) {
            return String(decoding: plain, as: UTF8.self)
        }
        throw SealError("a stored key does not open with this data key (wrong data.key, or tampered data)")
    }

    /// Whether `sealed` opens under `context`'s version 2 form (not only under version 1).
    public func isSealedWithCurrentContext(_ sealed: String, for context: SealingContext) -> Bool {
        guard let box = try? sealedBox(sealed) else { return false }
        return (try? AES.GCM.open(box, using: key, authenticating: context.bytes)) != nil
    }

    /// Seals `plaintext` under a raw context; the nonce comes from `random` (the system's
    /// generator in production, a seeded one in golden-fixture tests). Keys of identities and
    /// policies are sealed with `seal(_:for:random:)`; this is the primitive under it.
    public func seal(_ plaintext: String, context: String, random: inout some RandomNumberGenerator) -> String {
        seal(plaintext, context: context, nonce: randomBytes(Self.nonceSize, using: &random))
    }

    public static let nonceSize = 12

    /// Seals with a nonce drawn beforehand (the writer draws nonces in order, then seals on
    /// several cores; the draws, and so a seeded run's output, stay what they were).
    public func seal(_ plaintext: String, context: String, nonce nonceBytes: [UInt8]) -> String {
        var out: [UInt8] = []
        seal(plaintext, context: Array(context.utf8), nonce: nonceBytes[...], into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the sealed form (`aes256gcm:` and the base64 of nonce, ciphertext and tag) to
    /// `out`: plain ASCII that needs no JSON escaping, so the writer's canonical encoder puts it
    /// in place without a String per key.
    public func seal(_ plaintext: String, context: [UInt8], nonce nonceBytes: ArraySlice<UInt8>, into out: inout [UInt8]) {
        // Both calls only fail for malformed nonces or keys, which the checks above rule out.
        let nonce = try! AES.GCM.Nonce(data: nonceBytes)
        let box = try! AES.GCM.seal(Array(plaintext.utf8), using: key, nonce: nonce, authenticating: context)
        out.append(contentsOf: Self.prefix.utf8)
        Base64.append(box.combined!, to: &out)
    }

    /// A key for another purpose (e.g. authenticating query continuation tokens), derived from
    /// the data key with HKDF-SHA256 and the purpose as its info: stable across restarts and
    /// nodes that share the data key, and useless for opening sealed keys.
    public func derivedKey(purpose: String) -> KeyBox {
        KeyBox(key: HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Array("registryd/\(purpose)".utf8), outputByteCount: 32))
    }

    /// Opens a value made by `seal` with the same raw context.
    public func open(_ sealed: String, context: String) throws(SealError) -> String {
        let box = try sealedBox(sealed)
        guard let plain = try? AES.GCM.open(box, using: key, authenticating: Array(context.utf8)) else {
            throw SealError("a stored key does not open with this data key (wrong data.key, or tampered data)")
        }
        return String(decoding: plain, as: UTF8.self)
    }

    private func sealedBox(_ sealed: String) throws(SealError) -> AES.GCM.SealedBox {
        guard sealed.hasPrefix(Self.prefix), let combined = Data(base64Encoded: String(sealed.dropFirst(Self.prefix.count))),
            let box = try? AES.GCM.SealedBox(combined: combined)
        else {
            throw SealError("a stored key is not in the sealed format")
        }
        return box
    }
}

/// Holds a key once, so sealing, opening and authenticating do not rebuild it per call, and
/// lets Sendable types keep one.
public final class KeyBox: @unchecked Sendable {
    // Why unchecked: Crypto.SymmetricKey is an immutable value that swift-crypto 3 does not mark
    // Sendable; it is never mutated after init.
    public let key: Crypto.SymmetricKey
    public init(key: Crypto.SymmetricKey) { self.key = key }
}

/// Sealing or opening failed. Never carries key material.
public struct SealError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
