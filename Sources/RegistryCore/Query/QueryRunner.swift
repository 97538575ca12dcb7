/// How a scan of matching documents ended.
public enum QueryScanEnd: Sendable {
    case reachedEnd
    case stoppedByVisitor
    /// The deadline passed; the scan stopped after this key.
    case paused(after: [UInt8])
}

/// A backend's scan for `QueryRunner`: visits, in key order after `after` (devices by id;
/// modules by device, then module id), every stored document that matches the query's WHERE
/// (see `QueryMatcher`), as its twin with the stored document's size; `visit` returns false to
/// stop. Past `deadline` the scan may pause.
public typealias QueryScan = (
    _ after: [UInt8]?,
    _ deadline: ContinuousClock.Instant?,
    _ visit: (_ key: [UInt8], _ twin: JSONValue, _ storedBytes: Int) throws -> Bool
) throws -> QueryScanEnd

/// Pages, projections and aggregates of a query over any backend's scan of matching documents.
public enum QueryRunner {
    /// Runs one page of `query` in key order. Aggregate queries scan everything and answer in one
    /// page.
    public static func page(_ query: DeviceQuery, cursor: QueryCursor?, pageSize: Int, bounds: QueryBounds, scan: QueryScan) throws -> QueryPage {
        if query.isAggregate { return QueryPage(items: try aggregate(query, bounds: bounds, scan: scan), next: nil) }
        // Cursors come back from clients: the API authenticates them, and the arithmetic below
        // must not trap whatever they hold.
        if let cursor, cursor.returned < 0 || cursor.returned > 1 << 40 { return QueryPage(items: [], next: nil) }
        let limit = min(pageSize, query.top.map { $0 - (cursor?.returned ?? 0) } ?? Int.max)
        guard limit > 0 else { return QueryPage(items: [], next: nil) }
        var items: [JSONValue] = []
        var bytes = 0
        var lastReturnedKey: [UInt8]?
        let deadline = ContinuousClock.now + bounds.pageTime
        let end = try scan(cursor?.afterKey, deadline) { key, twin, storedBytes in
            items.append(Self.project(query, twin))
            lastReturnedKey = key
            bytes += storedBytes
            return items.count < limit && bytes < bounds.pageBytes
        }
        let returned = (cursor?.returned ?? 0) + items.count
        let more = returned < (query.top ?? Int.max)
        switch end {
        case .reachedEnd:
            return QueryPage(items: items, next: nil)
        case .stoppedByVisitor:
            return QueryPage(items: items, next: more ? lastReturnedKey.map { QueryCursor(afterKey: $0, returned: returned) } : nil)
        case .paused(let examined):
            // Out of time: resume after the last document examined, matched or not.
            return QueryPage(items: items, next: more ? QueryCursor(afterKey: examined, returned: returned) : nil)
        }
    }

    package static func project(_ query: DeviceQuery, _ twin: JSONValue) -> JSONValue {
        guard case .items(let fields, _, _) = query.selection else { return twin }
        var out: [String: JSONValue] = [:]
        for field in fields {
            guard let (name, value) = QueryEvaluator.resolve(field.path, in: twin) else { continue }
            // Without AS, the key is the property's own name (`DeviceId` answers `deviceId`).
            let explicitAlias = field.alias != field.path.last
            out[explicitAlias ? field.alias : name] = value
        }
        return .object(out)
    }

    /// COUNT/SUM/AVG/MIN/MAX, optionally per GROUP BY key, over every matching document.
    static func aggregate(_ query: DeviceQuery, bounds: QueryBounds, scan: QueryScan) throws -> [JSONValue] {
        guard case .items(let fields, let aggregates, _) = query.selection else { return [] }
        struct Accumulator {
            var count = 0
            var sums: [Double]
            var counts: [Int]
            var minimums: [JSONValue?]
            var maximums: [JSONValue?]
            var groupValues: [JSONValue?]
        }
        var groups: [[JSONValue?]: Accumulator] = [:]
        var order: [[JSONValue?]] = []
        let deadline = ContinuousClock.now + bounds.aggregateTime
        let end = try scan(nil, deadline) { _, twin, _ in
            let groupKey = query.groupBy.map { QueryEvaluator.resolve($0, in: twin)?.value }
            if groups[groupKey] == nil, groups.count >= bounds.groups {
                throw QueryLimitError("the query makes more than \(bounds.groups) groups; group by fewer distinct values or narrow it with WHERE")
            }
            var acc =
                groups[groupKey]
                ?? {
                    order.append(groupKey)
                    return Accumulator(
                        sums: Array(repeating: 0, count: aggregates.count),
                        counts: Array(repeating: 0, count: aggregates.count),
                        minimums: Array(repeating: nil, count: aggregates.count),
                        maximums: Array(repeating: nil, count: aggregates.count),
                        groupValues: groupKey
                    )
                }()
            acc.count += 1
            for (i, aggregate) in aggregates.enumerated() {
                guard let path = aggregate.path, let v = QueryEvaluator.resolve(path, in: twin)?.value else { continue }
                if let x = v.doubleValue {
                    acc.sums[i] += x
                    acc.counts[i] += 1
                }
                if acc.minimums[i].map({ QueryEvaluator.compare(.less, v, $0) == true }) ?? true { acc.minimums[i] = v }
                if acc.maximums[i].map({ QueryEvaluator.compare(.greater, v, $0) == true }) ?? true { acc.maximums[i] = v }
            }
            groups[groupKey] = acc
            return true
        }
        if case .paused = end {
            throw QueryLimitError("the aggregate did not finish within \(bounds.aggregateTime); narrow it with WHERE")
        }
        // A plain COUNT over nothing still answers one row (0), as Azure does.
        if groups.isEmpty && query.groupBy.isEmpty {
            order = [[]]
            groups[[]] = Accumulator(
                sums: Array(repeating: 0, count: aggregates.count),
                counts: Array(repeating: 0, count: aggregates.count),
                minimums: Array(repeating: nil, count: aggregates.count),
                maximums: Array(repeating: nil, count: aggregates.count),
                groupValues: []
            )
        }
        var rows: [JSONValue] = []
        for key in order {
            guard let acc = groups[key] else { continue }
            var row: [String: JSONValue] = [:]
            for field in fields {
                let index = query.groupBy.firstIndex { $0.map { $0.lowercased() } == field.path.map { $0.lowercased() } }
                if let index, let value = acc.groupValues[index] { row[field.alias] = value }
            }
            for (i, aggregate) in aggregates.enumerated() {
                switch aggregate.function {
                case .count: row[aggregate.alias] = .int(Int64(acc.count))
                case .sum: row[aggregate.alias] = QueryEvaluator.number(acc.sums[i])
                case .avg: if acc.counts[i] > 0 { row[aggregate.alias] = .number(String(acc.sums[i] / Double(acc.counts[i]))) }
                case .min: if let v = acc.minimums[i] { row[aggregate.alias] = v }
                case .max: if let v = acc.maximums[i] { row[aggregate.alias] = v }
                }
            }
            rows.append(.object(row))
        }
        return rows
    }
}
