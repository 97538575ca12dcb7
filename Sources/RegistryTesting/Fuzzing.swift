/// Property-based fuzzing for the parsers that take what callers send (issue 17): seeded, so a
/// failure names the seed and input that reproduce it, and bounded, so CI runs a fixed number of
/// inputs (`REGISTRYD_FUZZ_ITERATIONS` raises it for a longer run by hand).
///
/// Inputs come from three sources in turn: mutations of a seed corpus (bytes replaced, inserted,
/// deleted, duplicated, and tokens from a dictionary spliced in), deep nesting built from the
/// corpus's own brackets and operators, and random bytes.
public struct Fuzzer {
    public let corpus: [[UInt8]]
    /// Fragments worth splicing in: the grammar's keywords, brackets and quotes.
    public let dictionary: [[UInt8]]
    /// Ways to nest: an opening and a closing fragment (`(` and `)`, `NOT ` and ``).
    public let nestings: [(open: [UInt8], close: [UInt8])]

    public init(corpus: [String], dictionary: [String], nestings: [(String, String)]) {
        self.corpus = corpus.map { Array($0.utf8) }
        self.dictionary = dictionary.map { Array($0.utf8) }
        self.nestings = nestings.map { (Array($0.0.utf8), Array($0.1.utf8)) }
    }

    public static var iterations: Int {
        if let text = getenvString("REGISTRYD_FUZZ_ITERATIONS"), let n = Int(text), n > 0 { return n }
        return 3000
    }

    /// The `index`-th input of the run seeded with `seed`.
    public func input(_ index: Int, seed: UInt64) -> [UInt8] {
        var random = SeededRandom(seed: seed &+ UInt64(index) &* 0x9E37_79B9)
        let base = corpus[Int(random.next() % UInt64(corpus.count))]
        switch index % 10 {
        case 0:
            // Deep: thousands of levels, past any limit.
            let (open, close) = nestings[Int(random.next() % UInt64(nestings.count))]
            let depth = 1 + Int(random.next() % 20_000)
            return Array(repeating: open, count: depth).flatMap { $0 } + base + Array(repeating: close, count: depth).flatMap { $0 }
        case 1:
            // Long: a fragment repeated, e.g. a chain of `AND x = 1`.
            let piece = dictionary[Int(random.next() % UInt64(dictionary.count))] + base
            return Array(repeating: piece, count: 1 + Int(random.next() % 2_000)).flatMap { $0 }
        case 2:
            return (0..<Int(random.next() % 512)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        default:
            var bytes = base
            for _ in 0..<(1 + Int(random.next() % 8)) { mutate(&bytes, &random) }
            return bytes
        }
    }

    func mutate(_ bytes: inout [UInt8], _ random: inout SeededRandom) {
        let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count + 1))
        switch random.next() % 6 {
        case 0 where !bytes.isEmpty && position < bytes.count:
            bytes[position] = UInt8(truncatingIfNeeded: random.next())
        case 1:
            bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
        case 2 where !bytes.isEmpty:
            let length = min(bytes.count - min(position, bytes.count), 1 + Int(random.next() % 8))
            bytes.removeSubrange(min(position, bytes.count)..<(min(position, bytes.count) + length))
        case 3:
            bytes.insert(contentsOf: dictionary[Int(random.next() % UInt64(dictionary.count))], at: position)
        case 4 where !bytes.isEmpty:
            let end = min(bytes.count, position + 1 + Int(random.next() % 16))
            let slice = Array(bytes[min(position, end)..<end])
            bytes.insert(contentsOf: slice, at: min(position, bytes.count))
        default:
            // A multi-byte or invalid UTF-8 sequence.
            let odd: [[UInt8]] = [[0xC3, 0xA9], [0xE2, 0x80, 0xAE], [0xF0, 0x9F, 0x92, 0xA9], [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0]]
            bytes.insert(contentsOf: odd[Int(random.next() % UInt64(odd.count))], at: position)
        }
    }

    /// Runs `body` on `iterations` inputs; returns the inputs that took longer than `bound`
    /// (with their index, for a failure message). A crash fails the whole test process, which
    /// is why the deep cases also have exit tests.
    public func run(seed: UInt64, iterations: Int = Fuzzer.iterations, bound: Duration = .seconds(2), _ body: ([UInt8]) -> Void) -> [(
        index: Int, took: Duration
    )] {
        var slow: [(Int, Duration)] = []
        let clock = ContinuousClock()
        for index in 0..<iterations {
            let input = input(index, seed: seed)
            let took = clock.measure { body(input) }
            if took > bound { slow.append((index, took)) }
        }
        return slow
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private func getenvString(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
