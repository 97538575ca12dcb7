import Synchronization

/// Whether the last write found the storage full (the disk, or the map at its configured
/// maximum). Set and cleared by the writer; `/readyz` reports it, writes answer 503 meanwhile,
/// and `serve` probes with a tiny write until one succeeds (space came back).
public final class StorageHealth: Sendable {
    private let full = Atomic<Bool>(false)

    public init() {}

    public var isFull: Bool { full.load(ordering: .relaxed) }

    /// Records the outcome of a write; returns whether the state changed.
    @discardableResult
    package func record(full value: Bool) -> Bool {
        full.exchange(value, ordering: .relaxed) != value
    }
}

/// A write refused because the storage is full; nothing of it was written.
public struct StorageFullError: Error, CustomStringConvertible, Sendable {
    public var underlying: String
    package init(underlying: String) { self.underlying = underlying }
    public var description: String { "the registry's storage is full (\(underlying)); nothing was written" }
}
