import Crypto

/// Cryptographic randomness fetched 4 KiB at a time from BoringSSL's generator (through
/// swift-crypto's key generation).
///
/// `SystemRandomNumberGenerator` makes one `getrandom` system call per 8 bytes; every create
/// needs 64 bytes of keys and 24 of nonces, and the profile of the store benchmark showed those
/// calls as the writer's largest single cost. Used only on the writer thread.
public struct BufferedSystemRandom: RandomNumberGenerator, Sendable {
    private var words: [UInt64] = []
    private var index = 0

    public init() {}

    public mutating func next() -> UInt64 {
        if index == words.count { refill() }
        defer { index += 1 }
        return words[index]
    }

    private mutating func refill() {
        let bytes = Crypto.SymmetricKey(size: SymmetricKeySize(bitCount: 4096 * 8)).withUnsafeBytes { Array($0) }
        words = stride(from: 0, to: bytes.count, by: 8).map { offset in
            bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) }
        }
        index = 0
    }
}
