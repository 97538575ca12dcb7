import AsyncAlgorithms
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RegistryCore
import ServiceLifecycle
import Synchronization

/// `GET /registry/events`: pull subscribers get the routed messages as Server-Sent Events.
///
/// Query: `source` (default `DeviceLifecycleEvents`), optional `condition`, `from` (first
/// sequence number; default: only what is committed after the request), optional `limit` (close
/// after that many messages). A `Last-Event-ID` header (an `id` of an earlier message) resumes
/// right after it. Needs ServiceConnect, as Azure's event streams do.
///
/// Bounded (issue 17): the log is read only as fast as the client takes the data (the reader
/// hands one chunk of at most 256 events at a time to the writer and waits for it to be taken),
/// a client that takes nothing for `stallTimeout` has its connection closed (it resumes with
/// `Last-Event-ID`), a quiet stream sends a heartbeat comment every half `stallTimeout` (so a
/// client that went away is noticed), and each policy holds at most `maxPerPolicy` streams
/// (more answer 429).
struct EventStreamRoute: Sendable {
    let store: any RegistryBackend
    let hubName: String
    let limits: EventStreamLimits
    let slots: EventStreamSlots

    init(store: any RegistryBackend, hubName: String, limits: EventStreamLimits) {
        self.store = store
        self.hubName = hubName
        self.limits = limits
        self.slots = EventStreamSlots(limit: limits.maxPerPolicy)
    }

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/events") { request, context in try stream(request, context) }
    }

    func stream(_ request: Request, _ context: RegistryRequestContext) throws -> Response {
        try context.require(.serviceConnect)
        try context.requireUnscoped("the event stream")
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
            guard let seq = lastId.split(separator: "-").last.flatMap({ UInt64($0) }) else {
                throw APIError.invalid("Last-Event-ID is not a message id.")
            }
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
        let policy = context.actor
        guard slots.acquire(policy) else {
            var response = APIError(
                status: .tooManyRequests,
                code: "ThrottlingException",
                message: "Policy '\(policy)' already holds \(slots.limit) event streams (eventStreams.maxPerPolicy); close one first."
            ).response()
            response.headers[.retryAfter] = "1"
            return response
        }
        let (store, hub, start, max, slots, stallTimeout) = (store, hubName, after, limit, slots, limits.stallTimeout)
        let (channel, logger) = (context.channel, context.logger)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                defer { slots.release(policy) }
                // A reader task reads the log into chunks; this task writes them to the client.
                // The channel holds one chunk: the reader waits until the writer took the last
                // one, and the writer waits until the connection took it (NIO's writability).
                // The reader ends at the limit or when the daemon shuts down gracefully (a stream
                // never ends by itself); a client that goes away ends the writes, and the group
                // cancels the rest.
                let chunks = AsyncChannel<ByteBuffer>()
                let progress = WriteProgress()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        defer { chunks.finish() }
                        try? await cancelWhenGracefulShutdown {
                            try await Self.produce(
                                store: store,
                                hub: hub,
                                source: source,
                                condition: condition,
                                after: start,
                                limit: max,
                                into: chunks
                            )
                        }
                    }
                    group.addTask {
                        // Heartbeats (an SSE comment) on a quiet stream: a client that went away
                        // is only noticed by a write failing (the connection is not read while
                        // the response runs), and proxies keep a talking stream open.
                        let interval = stallTimeout / 2
                        while !Task.isCancelled {
                            try await Task.sleep(for: interval)
                            if progress.quiet(longerThan: interval) { await chunks.send(Self.heartbeat) }
                        }
                    }
                    group.addTask {
                        // The stall watchdog: a write pending for longer than the timeout means the
                        // client stopped reading; closing the connection fails the write.
                        while !Task.isCancelled {
                            try await Task.sleep(for: stallTimeout / 4)
                            // A client that went away while no event was due: end the stream so
                            // its slot is free (a write would only notice at the next event).
                            if !channel.isActive {
                                chunks.finish()
                                return
                            }
                            if progress.stalled(longerThan: stallTimeout) {
                                logger.notice(
                                    "event stream closed: the client took no data",
                                    metadata: ["policy": "\(policy)", "stream.stall_timeout": "\(stallTimeout)"]
                                )
                                channel.close(promise: nil)
                                return
                            }
                        }
                    }
                    for await chunk in chunks {
                        progress.begin()
                        try await writer.write(chunk)
                        progress.end()
                    }
                    group.cancelAll()
                }
                try await writer.finish(nil)
            }
        )
    }

    static let heartbeat = ByteBuffer(string: ":\n\n")

    static func produce(
        store: any RegistryBackend,
        hub: String,
        source: RouteSource,
        condition: RouteCondition,
        after start: UInt64,
        limit: Int,
        into sink: AsyncChannel<ByteBuffer>
    ) async throws {
        var cursor = start
        var sent = 0
        for await committed in store.commits.updates() {
            while cursor < committed && sent < limit {
                try Task.checkCancellation()
                let records = try await store.events(from: cursor + 1, limit: 256)
                guard !records.isEmpty else { break }
                var buffer = ByteBuffer()
                for record in records where sent < limit {
                    cursor = record.seq
                    guard let message = RouteMessage(record: record, source: source, hubName: hub), condition.evaluate(message) == true else {
                        continue
                    }
                    buffer.writeString("id: \(message.id)\nevent: \(message.applicationProperties["opType"] ?? "message")\ndata: ")
                    buffer.writeBytes(message.encoded)
                    buffer.writeString("\n\n")
                    sent += 1
                }
                // Suspends until the writer takes it (returns at once when cancelled).
                if buffer.readableBytes > 0 { await sink.send(buffer) }
            }
            if sent >= limit || Task.isCancelled { return }
        }
    }
}

/// When the stream's pending write began (if one is pending) and when the last one ended.
final class WriteProgress: Sendable {
    private struct State {
        var pendingSince: ContinuousClock.Instant?
        var lastWrite = ContinuousClock.now
    }

    private let state = Mutex(State())

    func begin() { state.withLock { $0.pendingSince = .now } }

    func end() {
        state.withLock {
            $0.pendingSince = nil
            $0.lastWrite = .now
        }
    }

    func stalled(longerThan timeout: Duration) -> Bool {
        state.withLock { s in s.pendingSince.map { ContinuousClock.now - $0 > timeout } ?? false }
    }

    /// Nothing written and nothing pending for `interval`.
    func quiet(longerThan interval: Duration) -> Bool {
        state.withLock { s in s.pendingSince == nil && ContinuousClock.now - s.lastWrite >= interval }
    }
}
