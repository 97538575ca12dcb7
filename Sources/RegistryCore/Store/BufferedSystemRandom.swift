import Crypto

/// Cryptographic randomness made 16 KiB at a time: the AES-256-CTR keystream (taken from
/// AES-GCM over zeros) under a fresh 256-bit key from the system for every refill, as a
/// CTR_DRBG does. Used only on the writer thread.
///
/// Why not the system generator directly: `SystemRandomNumberGenerator` makes one `getrandom`
/// system call per 8 bytes, and so does swift-crypto's key generation underneath it; every
/// create needs 64 bytes of keys and 24 of nonces, and those calls were a large share of the
/// writer's time on an import. A fresh key per refill means the fixed nonce never repeats
/// under one key.
public struct BufferedSystemRandom: RandomNumberGenerator, Sendable {
    private var words: [UInt64] = []
    private var index = 0

    private static let blockBytes = 16 << 10
    private static let zeros = [UInt8](repeating: 0, count: blockBytes)

    public init() {}

    public mutating func next() -> UInt64 {
        if index == words.count { refill() }
        defer { index += 1 }
        return words[index]
    }

    private mutating func refill() {
        let key = Crypto.SymmetricKey(size: .bits256)
        // Only fails for a malformed nonce or key, which these are not.
        let stream = try! AES.GCM.seal(Self.zeros, using: key, nonce: AES.GCM.Nonce(data: [UInt8](repeating: 0, count: 12))).ciphertext
        let bytes = [UInt8](stream)
        words = stride(from: 0, to: bytes.count, by: 8).map { offset in
            bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) }
        }
        index = 0
    }
}
