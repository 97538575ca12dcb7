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
        try QueryRunner.page(query, cursor: cursor, pageSize: pageSize, bounds: bounds) { after, deadline, visit in
            try scanMatching(query, after: after, chunkWork: chunkWork, deadline: deadline, visit)
        }
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
    ) throws -> QueryScanEnd {
        let matcher = QueryMatcher(query)
        var after = start
        var seen = 0
        while true {
            var examined = 0
            var outcome: QueryScanEnd?  // nil: chunk used up, go on in a new transaction
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
                    let (twin, work) = try matcher.match(value)
                    examined += work
                    guard let twin else { return true }
                    if try visit(key, twin, value.count) { return true }
                    outcome = .stoppedByVisitor
                    return false
                }
            }
            if let outcome { return outcome }
        }
    }

    /// `project` for tests that build their own reference results.
    public static func projectForTests(_ query: DeviceQuery, _ twin: JSONValue) -> JSONValue { QueryRunner.project(query, twin) }
}
