import HTTPTypes
import Hummingbird
import NIOCore
import RegistryCore
import RegistryDelivery
import ServiceLifecycle

/// `GET /registry/events`: pull subscribers get the routed messages as Server-Sent Events.
///
/// Query: `source` (default `DeviceLifecycleEvents`), optional `condition`, `from` (first
/// sequence number; default: only what is committed after the request), optional `limit` (close
/// after that many messages). A `Last-Event-ID` header (an `id` of an earlier message) resumes
/// right after it. Needs ServiceConnect, as Azure's event streams do.
struct EventStreamRoute: Sendable {
    let store: RegistryStore
    let hubName: String

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/events") { request, context in try stream(request, context) }
    }

    func stream(_ request: Request, _ context: RegistryRequestContext) throws -> Response {
        try context.require(.serviceConnect)
        let query = request.uri.queryParameters
        let sourceName = query.get("source") ?? RouteSource.deviceLifecycleEvents.rawValue
        guard let source = RouteSource.allCases.first(where: { $0.rawValue.lowercased() == sourceName.lowercased() }) else {
            throw APIError.invalid("source must be one of \(RouteSource.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        let condition: RouteCondition
        do {
            condition = try RouteCondition(query.get("condition") ?? "true")
        } catch {
            throw APIError.invalid("condition: \(error.description)")
        }
        var after = store.commits.committed
        if let lastId = request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let seq = lastId.split(separator: "-").last.flatMap({ UInt64($0) }) else { throw APIError.invalid("Last-Event-ID is not a message id.") }
            after = seq
        } else if let from = query.get("from") {
            guard let seq = UInt64(from), seq >= 1 else { throw APIError.invalid("from must be a sequence number (1 or more).") }
            after = seq - 1
        }
        var limit = Int.max
        if let text = query.get("limit") {
            guard let value = Int(text), value > 0 else { throw APIError.invalid("limit must be a positive integer.") }
            limit = value
        }
        let (store, hub, start, max) = (store, hubName, after, limit)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                // A producer task reads the log; this task writes to the client. The producer
                // ends at the limit or when the daemon shuts down gracefully (a stream never ends
                // by itself); a client that goes away ends the writes, and the group cancels it.
                let (chunks, sink) = AsyncStream<ByteBuffer>.makeStream()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        defer { sink.finish() }
                        try? await cancelWhenGracefulShutdown {
                            try await Self.produce(store: store, hub: hub, source: source, condition: condition, after: start, limit: max, into: sink)
                        }
                    }
                    for await chunk in chunks { try await writer.write(chunk) }
                    group.cancelAll()
                }
                try await writer.finish(nil)
            }
        )
    }

    static func produce(
        store: RegistryStore,
        hub: String,
        source: RouteSource,
        condition: RouteCondition,
        after start: UInt64,
        limit: Int,
        into sink: AsyncStream<ByteBuffer>.Continuation
    ) async throws {
        var cursor = start
        var sent = 0
        for await committed in store.commits.updates() {
            while cursor < committed && sent < limit {
                try Task.checkCancellation()
                let records = try store.storage.events(from: cursor + 1, limit: 256)
                guard !records.isEmpty else { break }
                var buffer = ByteBuffer()
                for record in records where sent < limit {
                    cursor = record.seq
                    guard let message = RouteMessage(record: record, source: source, hubName: hub), condition.evaluate(message) == true else { continue }
                    buffer.writeString("id: \(message.id)\nevent: \(message.applicationProperties["opType"] ?? "message")\ndata: ")
                    buffer.writeBytes(message.encoded)
                    buffer.writeString("\n\n")
                    sent += 1
                }
                if buffer.readableBytes > 0 { sink.yield(buffer) }
            }
            if sent >= limit || Task.isCancelled { return }
        }
    }
}
