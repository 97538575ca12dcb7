import Foundation
import LMDB
import RegistryCore

extension RegistryStorage {
    /// Work per read transaction (a parsed document counts 10, a skipped one 1): long scans are
    /// split so no transaction stays open for long (a long reader keeps the writer from reusing
    /// pages).
    public static let queryChunk = 50_000

    /// Runs one page of `query` in key order (devices by id; modules by device, then module id).
    /// Aggregate queries scan everything and answer in one page. Blocking: call it off the
    /// cooperative pool for large registries.
    /// - Parameter chunkWork: work per read transaction (tests make it small to cross chunks).
    public func queryPage(
        _ query: DeviceQuery,
        cursor: QueryCursor?,
        pageSize: Int,
        bounds: QueryBounds = .init(),
        chunkWork: Int = RegistryStorage.queryChunk
    ) throws -> QueryPage {
        if query.isAggregate { return QueryPage(items: try aggregate(query, bounds: bounds, chunkWork: chunkWork), next: nil) }
        // Cursors come back from clients: the API authenticates them, and the arithmetic below
        // must not trap whatever they hold.
        if let cursor, cursor.returned < 0 || cursor.returned > 1 << 40 { return QueryPage(items: [], next: nil) }
        let limit = min(pageSize, query.top.map { $0 - (cursor?.returned ?? 0) } ?? Int.max)
        guard limit > 0 else { return QueryPage(items: [], next: nil) }
        var items: [JSONValue] = []
        var bytes = 0
        var lastReturnedKey: [UInt8]?
        let deadline = ContinuousClock.now + bounds.pageTime
        let end = try scanMatching(query, after: cursor?.afterKey, chunkWork: chunkWork, deadline: deadline) { key, twin, storedBytes in
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

    enum ScanEnd {
        case reachedEnd
        case stoppedByVisitor
        /// The deadline passed; the scan stopped after this key.
        case paused(after: [UInt8])
    }

    /// Visits, in key order after `after`, every document that matches the query's WHERE (as
    /// its twin), in read transactions of at most `chunkWork` work each (a parsed document counts
    /// 10, one the byte prefilter skips 1). `visit` gets the stored document's size and returns
    /// false to stop. Past `deadline` (checked every 256 documents) the scan pauses.
    func scanMatching(
        _ query: DeviceQuery,
        after start: [UInt8]?,
        chunkWork: Int,
        deadline: ContinuousClock.Instant? = nil,
        _ visit: (_ key: [UInt8], _ twin: JSONValue, _ storedBytes: Int) throws -> Bool
    ) throws -> ScanEnd {
        let patterns = Self.requiredPatterns(query.filter)
        var after = start
        var seen = 0
        while true {
            var examined = 0
            var outcome: ScanEnd?  // nil: chunk used up, go on in a new transaction
            try read { txn, db in
                let database = query.source == .devices ? db.devices : db.modules
                outcome = .reachedEnd
                try txn.scan(database, from: after.map { $0 + [0] }) { key, value in
                    // Stop before this document: the next transaction resumes at it.
                    if examined >= chunkWork {
                        outcome = nil
                        return false
                    }
                    seen += 1
                    if let deadline, seen & 255 == 0, let last = after, ContinuousClock.now > deadline {
                        outcome = .paused(after: last)
                        return false
                    }
                    after = key
                    guard Self.mayMatch(value, patterns) else {
                        examined += 1
                        return true
                    }
                    examined += 10
                    let twin = try Self.twin(value)
                    guard QueryEvaluator.matches(query.filter, twin) else { return true }
                    if try visit(key, twin, value.count) { return true }
                    outcome = .stoppedByVisitor
                    return false
                }
            }
            if let outcome { return outcome }
        }
    }

    /// Byte patterns every matching stored document must contain, from the equality tests on
    /// plain identity fields in the WHERE clause's top-level AND chain. A document without one
    /// of them cannot match, so it is skipped without being parsed (parsing dominates a scan);
    /// a document with all of them is still parsed and evaluated, so the filter only saves work.
    /// The patterns are the members as stored (`StoredIdentityLayout.memberBytes`).
    static func requiredPatterns(_ filter: QueryExpression?) -> [[UInt8]] {
        guard let filter else { return [] }
        switch filter {
        case .and(let a, let b):
            return requiredPatterns(a) + requiredPatterns(b)
        case .compare(.equal, .path(let path), .literal(let value)), .compare(.equal, .literal(let value), .path(let path)):
            guard let field = storedMember[path.map { $0.lowercased() }.joined(separator: ".")] else { return [] }
            switch value {
            case .string, .bool: return StoredIdentityLayout.memberBytes(field, equalTo: value).map { [$0] } ?? []
            default: return []
            }
        default:
            return []
        }
    }

    /// Twin fields (lower case) that `TwinDocument` copies unchanged from a stored member: a
    /// document whose twin has `field = value` holds that member's stored bytes.
    static let storedMember: [String: StoredIdentityLayout.Field] = [
        "deviceid": .deviceId, "moduleid": .moduleId, "status": .status, "statusreason": .statusReason,
        "connectionstate": .connectionState, "devicescope": .deviceScope, "generationid": .generationId,
        "managedby": .managedBy, "authenticationtype": .authenticationType, "capabilities.iotedge": .iotEdge,
    ]

    static func mayMatch(_ stored: [UInt8], _ patterns: [[UInt8]]) -> Bool {
        patterns.allSatisfy { ByteSearch.first($0, in: stored) != nil }
    }

    static func twin(_ stored: [UInt8]) throws -> JSONValue {
        TwinDocument.make(try JSONParser.parse(stored), lastUpdated: Timestamp.unset.iso8601, includeTags: true)
    }

    /// `project` for tests that build their own reference results.
    public static func projectForTests(_ query: DeviceQuery, _ twin: JSONValue) -> JSONValue { project(query, twin) }

    static func project(_ query: DeviceQuery, _ twin: JSONValue) -> JSONValue {
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
    func aggregate(_ query: DeviceQuery, bounds: QueryBounds, chunkWork: Int) throws -> [JSONValue] {
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
        let end = try scanMatching(query, after: nil, chunkWork: chunkWork, deadline: deadline) { _, twin, _ in
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
