import SystemBytes

/// Cryptographic randomness straight from the kernel's CSPRNG, read 16 KiB at a time
/// (`SystemEntropy`: one `getrandom` per refill). Used only on the writer thread, and for the
/// few keys of a policy change.
///
/// Why buffered: `SystemRandomNumberGenerator` makes one `getrandom` system call per 8 bytes,
/// and so does swift-crypto's key generation underneath it; every create needs 64 bytes of keys
/// and 24 of nonces, and those calls were a large share of the writer's time on an import.
/// Why not a keystream of our own (an earlier version ran AES-CTR under a fresh key per
/// refill): the kernel's generator is reviewed, reseeded and fork-safe, and reading it in bulk
/// already removes the per-call cost, so there is nothing left for a home-made generator to win.
///
/// Each word is zeroed once handed out, so the buffer never keeps a copy of key material that
/// is already in use (a core dump shows only words not yet drawn).
public struct BufferedSystemRandom: RandomNumberGenerator, Sendable {
    static let bufferBytes = 16 << 10

    /// Allocated on the first draw, so making a generator costs nothing until it is used.
    private var words: [UInt64] = []
    private var index = 0
    /// Buffers read from the kernel so far (tests check that the refill path runs).
    private(set) var refills = 0

    public init() {}

    public mutating func next() -> UInt64 {
        if index == words.count { refill() }
        let word = words[index]
        words[index] = 0
        index += 1
        return word
    }

    private mutating func refill() {
        if words.isEmpty { words = [UInt64](repeating: 0, count: Self.bufferBytes / 8) }
        SystemEntropy.fill(&words)
        index = 0
        refills += 1
    }
}
