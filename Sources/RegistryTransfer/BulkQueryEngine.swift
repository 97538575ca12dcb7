import RegistryCore

/// Bulk by query: one change applied to every identity a query selects, through the writer in
/// batches, each identity under the etags it had when its page was read (an identity changed
/// since is reported as skipped, never overwritten). The engine of `bulkByQuery` jobs.
public enum BulkQueryEngine {
    public struct Counts: Sendable, Hashable {
        /// Identities the query selected (the count pass before the changes, or a dry run's answer).
        public var matched = 0
        /// Identities read and handed to the writer so far.
        public var processed = 0
        public var changed = 0
        /// Changed since the job read them (`PreconditionFailed`) or gone (`DeviceNotFound`, …).
        public var skipped = 0
        /// Refused for another reason (an x509 identity asked for new keys, …).
        public var failed = 0
        public init() {}
    }

    /// An identity the change did not apply to, and why.
    public struct Refusal: Sendable, Hashable {
        public var deviceId: String
        public var moduleId: String?
        public var errorCode: String
        public var message: String

        public var json: JSONValue {
            var o: [String: JSONValue] = ["deviceId": .string(deviceId), "errorCode": .string(errorCode), "errorStatus": .string(message)]
            if let moduleId { o["moduleId"] = .string(moduleId) }
            return .object(o)
        }
    }

    /// The query as the job runs it: whole twins (whatever it selects), its WHERE and TOP kept.
    /// Aggregates and GROUP BY are refused: they select groups, not identities.
    public static func selection(_ query: DeviceQuery) throws(BulkQueryError) -> DeviceQuery {
        guard !query.isAggregate, query.groupBy.isEmpty else {
            throw BulkQueryError("A bulk-by-query job selects identities: its query cannot aggregate or GROUP BY.")
        }
        var twins = query
        twins.selection = .all
        return twins
    }

    /// Counts the identities `query` selects, page by page (so no scan is bounded by the
    /// aggregate time limit).
    public static func count(
        store: any RegistryReader,
        query: DeviceQuery,
        pageSize: Int,
        bounds: QueryBounds,
        isCancelled: () -> Bool
    ) async throws -> Int {
        var cursor: QueryCursor?
        var total = 0
        repeat {
            if isCancelled() { throw ImportExportEngine.Cancelled() }
            let page = try await store.runQuery(query, cursor: cursor, pageSize: pageSize, bounds: bounds)
            total += page.items.count
            cursor = page.next
        } while cursor != nil
        return total
    }

    /// Applies `action` to every identity `query` (from `selection`) selects, in key order, one
    /// page per writer batch; the next page is read while the writer applies the previous one.
    public static func apply(
        store: any RegistryBackend,
        query: DeviceQuery,
        action: IdentityChange.Action,
        scope: PolicyScope? = nil,
        counts initial: Counts,
        batch: Int,
        bounds: QueryBounds,
        actor: String,
        requestId: String,
        refused: (Refusal) -> Void,
        isCancelled: () -> Bool,
        progress: (Counts) async -> Void
    ) async throws -> Counts {
        var counts = initial
        var inFlight: (changes: [IdentityChange], results: PendingCommands)?

        func settle() async throws {
            guard let (changes, submitted) = inFlight else { return }
            inFlight = nil
            for (result, change) in zip(try await submitted.value(), changes) {
                switch result {
                case .success:
                    counts.changed += 1
                case .failure(let error):
                    let changedSince = [.preconditionFailed, .deviceNotFound, .moduleNotFound].contains(error.code)
                    if changedSince { counts.skipped += 1 } else { counts.failed += 1 }
                    refused(Refusal(deviceId: change.deviceId, moduleId: change.moduleId, errorCode: error.code.name, message: error.message))
                }
            }
            await progress(counts)
        }

        var cursor: QueryCursor?
        repeat {
            if isCancelled() {
                try await settle()
                throw ImportExportEngine.Cancelled()
            }
            let page = try await store.runQuery(query, cursor: cursor, pageSize: batch, bounds: bounds)
            cursor = page.next
            var changes: [IdentityChange] = []
            changes.reserveCapacity(page.items.count)
            for twin in page.items {
                guard let deviceId = twin["deviceId"]?.stringValue, let etag = twin["deviceEtag"]?.stringValue,
                    let twinEtag = twin["etag"]?.stringValue
                else { continue }
                changes.append(
                    IdentityChange(deviceId: deviceId, moduleId: twin["moduleId"]?.stringValue, action: action, etag: etag, twinEtag: twinEtag)
                )
            }
            try await settle()
            counts.processed += changes.count
            if !changes.isEmpty {
                let commands = changes.map { change in scope.map { Command.scoped(.change(change), $0) } ?? .change(change) }
                inFlight = (changes, store.submit(commands, actor: actor, requestId: requestId))
            }
        } while cursor != nil
        try await settle()
        return counts
    }
}

/// A bulk-by-query request that cannot run as given.
public struct BulkQueryError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
