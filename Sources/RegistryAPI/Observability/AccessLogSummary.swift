import Synchronization

/// The access log's aggregate: requests that get no line of their own at the current level
/// (successful reads, queries and device checks) are counted here by operation class and status,
/// and the daemon logs one summary line per interval. A registry answers thousands of reads and
/// broker checks a second; a line for each would cost more than the answer (and journald
/// rate-limits it), while a refusal or a change is always worth its own line.
public final class AccessLogSummary: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    public init() {}

    func record(_ operationClass: String, status: Int) {
        counts.withLock { $0["\(operationClass).\(status)", default: 0] += 1 }
    }

    /// The counts since the last call (e.g. `["reads.200": 1520, "deviceAuth.200": 80]`), reset.
    public func drain() -> [String: Int] {
        counts.withLock { all in
            defer { all.removeAll(keepingCapacity: true) }
            return all
        }
    }
}
