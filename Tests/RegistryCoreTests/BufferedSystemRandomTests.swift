import Testing

@testable import RegistryCore

/// Item 16 of the hardening issue: the generator behind every key reads the kernel's CSPRNG in
/// 16 KiB buffers. These are sanity checks (a stuck, repeated or reused buffer fails them with
/// certainty; a good generator passes them with overwhelming probability), not a statistical
/// test suite: the randomness itself is the kernel's.
struct BufferedSystemRandomTests {
    /// 64 KiB: four buffers, so three refills happen between draws.
    static let words = (64 << 10) / 8

    static func bytes(of words: [UInt64]) -> [UInt8] {
        words.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) } }
    }

    @Test func refillsEverySixteenKiBWithFreshWords() {
        var generator = BufferedSystemRandom()
        #expect(generator.refills == 0, "nothing is read before the first draw")
        let words = (0..<Self.words).map { _ in generator.next() }
        #expect(generator.refills == 4)
        // 8192 words from 2^64: any repeat (a buffer reused, a refill that did not happen, a
        // constant) fails this; chance has about one in 2^38 of it.
        #expect(Set(words).count == words.count)
        // A zero would mean a drawn word was handed out after being wiped.
        #expect(!words.contains(0))
        _ = generator.next()
        #expect(generator.refills == 5)
    }

    @Test func twoGeneratorsDrawDifferentStreams() {
        var a = BufferedSystemRandom()
        var b = BufferedSystemRandom()
        let first = (0..<2048).map { _ in a.next() }
        let second = (0..<2048).map { _ in b.next() }
        #expect(Set(first).isDisjoint(with: second))
    }

    @Test func everyByteValueAppearsInBalancedCounts() {
        var generator = BufferedSystemRandom()
        let bytes = Self.bytes(of: (0..<Self.words).map { _ in generator.next() })
        var counts = [Int](repeating: 0, count: 256)
        for byte in bytes { counts[Int(byte)] += 1 }
        #expect(!counts.contains(0), "every byte value appears in 64 KiB")
        // Chi-squared with 255 degrees of freedom: mean 255, standard deviation about 22.6. A
        // good source exceeds 450 in about one run in 10^12; a biased or patterned one at once.
        let expected = Double(bytes.count) / 256
        let chiSquared = counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
        #expect(chiSquared < 450, "chi-squared \(chiSquared)")
        // Each bit position is set in about half the bytes (65536 draws: a deviation of 128).
        for bit in 0..<8 {
            let ones = bytes.reduce(0) { $0 + Int($1 >> bit & 1) }
            #expect(abs(ones - bytes.count / 2) < 8 * 128, "bit \(bit): \(ones) ones")
        }
    }
}
