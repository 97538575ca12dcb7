/// Paging and bounds of a query, as every backend runs it.

/// Where a paged query resumes: after this storage key, with this many items already returned
/// (for TOP).
public struct QueryCursor: Sendable, Hashable {
    public var afterKey: [UInt8]
    public var returned: Int

    public init(afterKey: [UInt8], returned: Int) {
        self.afterKey = afterKey
        self.returned = returned
    }
}

/// One page of results; `next` is `nil` on the last page.
public struct QueryPage: Sendable {
    public var items: [JSONValue]
    public var next: QueryCursor?

    public init(items: [JSONValue], next: QueryCursor?) {
        self.items = items
        self.next = next
    }
}

/// The bounds on one query request's work (issue 17): a page stops early at `pageBytes` of
/// stored documents or after `pageTime` (with a continuation, so nothing is lost); an aggregate
/// may keep at most `groups` groups and must finish within `aggregateTime`, else it fails with
/// `QueryLimitError` (the API answers 400).
public struct QueryBounds: Sendable, Hashable {
    public var pageBytes: Int
    public var pageTime: Duration
    public var groups: Int
    public var aggregateTime: Duration

    public init(pageBytes: Int = 4 << 20, pageTime: Duration = .seconds(5), groups: Int = 10_000, aggregateTime: Duration = .seconds(30)) {
        self.pageBytes = pageBytes
        self.pageTime = pageTime
        self.groups = groups
        self.aggregateTime = aggregateTime
    }
}

/// A query that would exceed one of its `QueryBounds`.
public struct QueryLimitError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
