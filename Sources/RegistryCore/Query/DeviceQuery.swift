/// A parsed registry query: IoT Hub's SQL-like language over device and module twins (spec §8.3).
///
/// `SELECT [TOP n] (* | field [AS alias], ... | aggregate AS alias, ...) FROM devices[.modules]
/// [WHERE condition] [GROUP BY field, ...]`
public struct DeviceQuery: Sendable, Hashable {
    public enum Source: Sendable, Hashable {
        case devices
        case modules
    }

    public struct Field: Sendable, Hashable {
        public var path: [String]
        public var alias: String
        public init(path: [String], alias: String) {
            self.path = path
            self.alias = alias
        }
    }

    public struct Aggregate: Sendable, Hashable {
        public enum Function: String, Sendable, Hashable {
            case count = "COUNT", sum = "SUM", avg = "AVG", min = "MIN", max = "MAX"
        }
        public var function: Function
        /// The argument path (`nil` for `COUNT()`).
        public var path: [String]?
        public var alias: String
    }

    public enum Selection: Sendable, Hashable {
        case all
        /// Fields and aggregates, in the order written (aggregates make it an aggregate query).
        case items(fields: [Field], aggregates: [Aggregate], order: [String])
    }

    public var selection: Selection
    public var top: Int?
    public var source: Source
    public var filter: QueryExpression?
    public var groupBy: [[String]]

    /// Whether results are whole twins (`x-ms-item-type: Twin`) rather than projections (`Raw`).
    public var returnsTwins: Bool { selection == .all }

    public var isAggregate: Bool {
        if case .items(_, let aggregates, _) = selection { return !aggregates.isEmpty }
        return false
    }
}
