import Foundation
import Logging
import RegistryCore
import Synchronization

extension DeliveryService {
    /// One route's loop, run while this node holds the route's delivery lease (with several
    /// nodes on one store, one of them delivers each route; the others wait to take over).
    func runRoute(_ route: DeliveryConfiguration.Route, configuration: DeliveryConfiguration, sink: any Sink) async {
        await store.withRouteLease(route.name) {
            await self.runRouteHoldingLease(route, configuration: configuration, sink: sink)
        }
    }

    /// Catches up from the persisted cursor whenever woken (commit, redeliver, enable).
    func runRouteHoldingLease(_ route: DeliveryConfiguration.Route, configuration: DeliveryConfiguration, sink: any Sink) async {
        let (wakeups, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        var status = Self.initialStatus(route, configuration)
        var cursor: Cursor
        // Retried until it can be read (a networked store may be failing over): a route whose
        // loop returned would not be delivered again until a restart.
        while true {
            do {
                if let stored = try await loadCursor(route: route.name) {
                    cursor = stored
                } else {
                    // A new route starts at the current head: it carries changes from its creation on.
                    cursor = Cursor(seq: store.commits.committed, dead: false)
                    try await persistCursor(route: route.name, seq: cursor.seq, dead: false)
                }
                break
            } catch {
                logger.error("cannot read the route cursor; retrying", metadata: ["route": "\(route.name)", "error": "\(error)"])
                do { try await Task.sleep(for: .seconds(1)) } catch { return }
            }
        }
        status.cursor = cursor.seq
        status.health = cursor.dead ? .dead : .healthy
        state.withLock { s in
            s.routes[route.name] = status
            s.wakeups[route.name] = continuation
        }
        continuation.yield()
        var random = self.random
        for await _ in wakeups {
            if Task.isCancelled { break }
            // Read before the step: the step finishes with at least this much of the log.
            let head = store.commits.committed
            do {
                if state.withLock({ $0.redeliver.remove(route.name) != nil }) {
                    try await redeliverParked(route, sink: sink, policy: configuration.retry, random: &random)
                }
                if let reloaded = try await loadCursor(route: route.name) { cursor = reloaded }
                if !cursor.dead {
                    try await catchUp(route, sink: sink, cursor: &cursor, policy: configuration.retry, random: &random)
                }
                state.withLock { $0.settled[route.name] = head }
            } catch is CancellationError {
                break
            } catch {
                logger.error("delivery step failed", metadata: ["route": "\(route.name)", "error": "\(error)"])
                update(route.name) { $0.lastError = "\(error)" }
            }
        }
        state.withLock { s in
            if s.wakeups[route.name] != nil { s.wakeups[route.name] = nil }
        }
    }

    /// Delivers every committed event after the cursor, in order, moving the cursor after each
    /// confirmed (or parked) batch.
    func catchUp(
        _ route: DeliveryConfiguration.Route,
        sink: any Sink,
        cursor: inout Cursor,
        policy: DeliveryConfiguration.RetryPolicy,
        random: inout some RandomNumberGenerator
    ) async throws {
        while cursor.seq < store.commits.committed {
            try Task.checkCancellation()
            let records = try await store.events(from: cursor.seq + 1, limit: Self.readBatch)
            guard let last = records.last else { return }
            var undefined: UInt64 = 0
            let messages = records.compactMap { record -> RouteMessage? in
                guard let message = RouteMessage(record: record, source: route.source, hubName: hubName) else { return nil }
                switch route.condition.evaluate(message) {
                case true?: return message
                case false?: return nil
                case nil:
                    undefined += 1
                    return nil
                }
            }
            if undefined > 0 { update(route.name) { $0.undefinedConditions += undefined } }
            var start = 0
            while start < messages.count {
                let chunk = Array(messages[start..<min(messages.count, start + sink.maxBatch)])
                switch try await deliverWithRetry(chunk, route: route, sink: sink, policy: policy, random: &random) {
                case .delivered, .parked:
                    start += chunk.count
                case .dead:
                    // Stop before this chunk: everything before it was delivered.
                    let stoppedAt = chunk[0].seq - 1
                    cursor = Cursor(seq: stoppedAt, dead: true)
                    try await persistCursor(route: route.name, seq: stoppedAt, dead: true)
                    update(route.name) { $0.cursor = stoppedAt }
                    return
                }
            }
            cursor.seq = last.seq
            try await persistCursor(route: route.name, seq: last.seq, dead: false)
            update(route.name) { $0.cursor = last.seq }
        }
    }

    enum ChunkResult { case delivered, parked, dead }

    /// Retries with exponential backoff and jitter until delivered, gone (410), or the retry
    /// window ran out (then the messages are parked and the route moves on).
    func deliverWithRetry(
        _ chunk: [RouteMessage],
        route: DeliveryConfiguration.Route,
        sink: any Sink,
        policy: DeliveryConfiguration.RetryPolicy,
        random: inout some RandomNumberGenerator
    ) async throws -> ChunkResult {
        let started = clock.now()
        var attempt = 0
        while true {
            switch await sink.deliver(chunk) {
            case .delivered:
                update(route.name) {
                    $0.delivered += UInt64(chunk.count)
                    $0.health = .healthy
                }
                return .delivered
            case .gone(let reason):
                logger.warning("endpoint gone: route stopped until re-enabled", metadata: ["route": "\(route.name)", "reason": "\(reason)"])
                update(route.name) {
                    $0.health = .dead
                    $0.lastError = reason
                    $0.failedAttempts += 1
                }
                return .dead
            case .failed(let reason):
                update(route.name) {
                    $0.health = .unhealthy
                    $0.lastError = reason
                    $0.failedAttempts += 1
                }
                if clock.now() - started >= .milliseconds(Int64(policy.retryWindowSeconds * 1000)) {
                    try await park(chunk, route: route.name)
                    logger.warning("messages parked after the retry window", metadata: ["route": "\(route.name)", "count": "\(chunk.count)"])
                    return .parked
                }
                try await clock.sleep(policy.backoff(attempt: attempt, random: &random))
                attempt += 1
            }
        }
    }

    func park(_ messages: [RouteMessage], route: String) async throws {
        try await store.park(route: route, messages.map { ParkedRecord(seq: $0.seq, message: $0.encoded) })
        update(route) { $0.parked += messages.count }
    }

    /// Delivers parked messages again, oldest first; each leaves the parked set once confirmed.
    func redeliverParked(
        _ route: DeliveryConfiguration.Route,
        sink: any Sink,
        policy: DeliveryConfiguration.RetryPolicy,
        random: inout some RandomNumberGenerator
    ) async throws {
        for parked in try await parkedMessages(route: route.name) {
            guard let message = RouteMessage(json: parked.message) else { continue }
            guard await sink.deliver([message]) == .delivered else {
                update(route.name) { $0.failedAttempts += 1 }
                return
            }
            try await store.unpark(route: route.name, seq: parked.seq)
            update(route.name) {
                $0.delivered += 1
                $0.parked = max(0, $0.parked - 1)
            }
        }
    }
}
