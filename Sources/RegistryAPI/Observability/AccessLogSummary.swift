import Synchronization

/// The access log's aggregate: requests that get no line of their own at the current level
/// (successful reads, queries and device checks) are counted here by class and status, and the
/// daemon logs one summary line per interval. A registry answers thousands of reads and broker
/// checks a second; a line for each would cost more than the answer (and journald rate-limits
/// it), while a refusal or a change is always worth its own line.
///
/// One atomic counter per (class, status) pair: counting is on every such request's path, so it
/// takes no lock and builds no string.
public final class AccessLogSummary: Sendable {
    enum Class: Int, CaseIterable {
        case reads, queries, deviceAuth
        var name: String {
            switch self {
            case .reads: "reads"
            case .queries: "queries"
            case .deviceAuth: "deviceAuth"
            }
        }
    }

    /// The statuses counted apart; any other is counted as `other`.
    static let statuses = [200, 204, 404]

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    private let counters: [Counter]

    public init() {
        counters = (0..<(Class.allCases.count * (Self.statuses.count + 1))).map { _ in Counter() }
    }

    private static func index(_ kind: Class, _ status: Int) -> Int {
        kind.rawValue * (statuses.count + 1) + (statuses.firstIndex(of: status) ?? statuses.count)
    }

    func record(_ kind: Class, status: Int) {
        counters[Self.index(kind, status)].value.add(1, ordering: .relaxed)
    }

    /// The counts since the last call (e.g. `["reads.200": 1520, "deviceAuth.200": 80]`), reset.
    public func drain() -> [String: Int] {
        var out: [String: Int] = [:]
        for kind in Class.allCases {
            for (i, status) in (Self.statuses.map(String.init) + ["other"]).enumerated() {
                let count = counters[kind.rawValue * (Self.statuses.count + 1) + i].value.exchange(0, ordering: .relaxed)
                if count > 0 { out["\(kind.name).\(status)"] = count }
            }
        }
        return out
    }
}
