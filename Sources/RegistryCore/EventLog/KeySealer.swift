import Crypto
import Foundation

/// Seals device and module keys with AES-256-GCM under the registry's data key, so that the
/// log, the projections and their backups can be handed to an auditor without the keys.
///
/// Each sealed value is bound to its identity and slot (the additional authenticated data),
/// so ciphertext copied from one device to another does not open.
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

    /// Seals `plaintext`; the nonce comes from `random` (the system's generator in production,
    /// a seeded one in golden-fixture tests).
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
    public func derivedKey(purpose: String) -> Crypto.SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Array("registryd/\(purpose)".utf8), outputByteCount: 32)
    }

    /// Opens a value made by `seal` with the same context.
    public func open(_ sealed: String, context: String) throws(SealError) -> String {
        guard sealed.hasPrefix(Self.prefix), let combined = Data(base64Encoded: String(sealed.dropFirst(Self.prefix.count))) else {
            throw SealError("a stored key is not in the sealed format")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: combined)
            let plain = try AES.GCM.open(box, using: key, authenticating: Array(context.utf8))
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw SealError("a stored key does not open with this data key (wrong data.key, or tampered data)")
        }
    }
}

/// Holds the key once, so sealing and opening do not rebuild it per call.
private final class KeyBox: @unchecked Sendable {
    // Why unchecked: Crypto.SymmetricKey is an immutable value that swift-crypto 3 does not mark
    // Sendable; it is never mutated after init.
    let key: Crypto.SymmetricKey
    init(key: Crypto.SymmetricKey) { self.key = key }
}

/// Sealing or opening failed. Never carries key material.
public struct SealError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
