import LMDB
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
    func record(full value: Bool) -> Bool {
        full.exchange(value, ordering: .relaxed) != value
    }

    /// Whether `error` means "no space": ENOSPC or EDQUOT from the disk, or a map that cannot grow.
    public static func isNoSpace(_ error: any Error) -> Bool {
        guard let lmdb = error as? LMDBError else { return error is StorageFullError }
        return lmdb.code == 28 || lmdb.code == 122 || lmdb == .mapFull
    }
}

/// A write refused because the storage is full; nothing of it was written.
public struct StorageFullError: Error, CustomStringConvertible, Sendable {
    public var underlying: String
    public var description: String { "the registry's storage is full (\(underlying)); nothing was written" }
}
