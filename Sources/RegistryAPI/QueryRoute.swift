import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RegistryCore
import RegistryTransfer

/// `POST /devices/query`: the IoT Hub query language over device and module twins (ServiceConnect).
///
/// Body `{"query": "..."}`; page size from `x-ms-max-item-count` (default 100, at most 1000);
/// `x-ms-continuation` resumes (clients re-send the same query with it). Answers a JSON array
/// with `x-ms-item-type` `Twin` (SELECT *) or `Raw`, and `x-ms-continuation` unless it is the
/// last page. A malformed query answers 400 with the position of the error.
struct QueryRoute: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes
    let tokens: QueryContinuationToken

    init(store: any RegistryBackend, routes: RegistryRoutes) {
        self.store = store
        self.routes = routes
        self.tokens = QueryContinuationToken(key: store.serverKey(purpose: "query-continuation"))
    }

    static let defaultPageSize = 100
    static let maximumPageSize = 1000

    /// Registered as `POST devices/:deviceId` so that a device named `query` can still be read
    /// with GET (a literal `devices/query` segment would shadow it).
    func handle(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.serviceConnect)
        let json = try IdentityRequestDecoder.parse(try await routes.body(request))
        guard let text = try IdentityRequestDecoder.string(json, "query"), !text.isEmpty else {
            throw APIError(status: .badRequest, code: "ArgumentNull", message: "The body must be {\"query\": \"SELECT ...\"}.")
        }
        var query: DeviceQuery
        do {
            query = try QueryParser.parse(text)
        } catch {
            throw APIError.invalid(error.description)
        }
        // A scoped caller queries inside its scope: the scope is ANDed into the WHERE.
        if let scope = context.scope { query.filter = query.filter.map { .and($0, scope.queryCondition) } ?? scope.queryCondition }
        var pageSize = Self.defaultPageSize
        if let header = request.headers[.maxItemCount] {
            guard let n = Int(header.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw APIError.invalid("x-ms-max-item-count must be a positive whole number.")
            }
            pageSize = min(n, Self.maximumPageSize)
        }
        var cursor: QueryCursor?
        if let token = request.headers[.continuation], !token.isEmpty {
            guard let decoded = tokens.decode(token, query: text, policy: context.actor, top: query.top) else {
                throw APIError.invalid(
                    "x-ms-continuation is not a token this registry issued for this query and policy; re-send the query without it."
                )
            }
            cursor = decoded
        }
        let page: QueryPage
        do {
            // A query may scan the whole registry: the backend runs it off the cooperative pool.
            page = try await store.runQuery(query, cursor: cursor, pageSize: pageSize, bounds: routes.configuration.queryBounds)
        } catch let error as QueryLimitError {
            throw APIError.invalid("The query is over a limit: \(error.description).")
        }
        return respond(page, query: query, text: text, context: context)
    }

    func respond(_ page: QueryPage, query: DeviceQuery, text: String, context: RegistryRequestContext) -> Response {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(ascii: "["))
        for (i, item) in page.items.enumerated() {
            if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeBytes(CanonicalJSON.encode(item))
        }
        buffer.writeInteger(UInt8(ascii: "]"))
        var headers: HTTPFields = [.contentType: jsonContentType, .itemType: query.returnsTwins ? "Twin" : "Raw"]
        if let next = page.next { headers[.continuation] = tokens.encode(next, query: text, policy: context.actor) }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: buffer))
    }
}

extension HTTPField.Name {
    static let maxItemCount = HTTPField.Name("x-ms-max-item-count")!
    static let continuation = HTTPField.Name("x-ms-continuation")!
    static let itemType = HTTPField.Name("x-ms-item-type")!
}
