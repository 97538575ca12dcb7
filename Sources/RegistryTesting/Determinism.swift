import RegistryCore
import Synchronization

/// SplitMix64: a tiny seeded generator, so generated keys and sealing nonces are reproducible.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A clock that moves only when told to.
public final class ManualClock: RegistryClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp = Timestamp(iso8601: "2026-01-01T00:00:00Z")!) { current = Mutex(start) }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func advance(seconds: Int64) { current.withLock { $0.ticks += seconds * 10_000_000 } }

    public func set(_ t: Timestamp) { current.withLock { $0 = t } }
}
