import Foundation

/// Rebuilding projections from the log and comparing them with live ones: the verdict types and
/// the work split every backend's verification shares (the walk itself is the backend's).
public enum Replayer {
    /// What a verification found.
    public enum Outcome: Sendable, Hashable {
        case clean
        /// The log itself is bad at `seq` (gap, broken chain, undecodable or non-canonical record).
        case logCorrupt(seq: UInt64, reason: String)
        /// The log is fine but a live projection differs from the rebuilt one.
        case projectionDiffers(database: String, key: String, detail: String)
    }

    public struct Report: Sendable, Hashable {
        public var events: UInt64 = 0
        public var devices = 0
        public var modules = 0
        public var historyEntries = 0
        public var outcome: Outcome = .clean
        public init() {}
    }

    /// Events verified per parallel chunk (and applied per scratch transaction).
    public static let chunk = 10_000

    /// The cores the log walk, the verifier's scans and the writer's preparation spread over.
    public static let cores = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))

    /// Shares per scan batch: more than the cores, so that a core slowed by the ordered work
    /// running beside it does not hold the batch back.
    public static let shares = cores * 4
}
