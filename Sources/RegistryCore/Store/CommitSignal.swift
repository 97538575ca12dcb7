import Synchronization

/// The committed-sequence signal: the highest sequence number durably committed, and a way to
/// wait for it to pass a value. Delivery and event streams wake on it after each commit.
public final class CommitSignal: Sendable {
    private struct State {
        var committed: UInt64
        var waiters: [(after: UInt64, continuation: CheckedContinuation<UInt64, Never>)] = []
        var streams: [Int: AsyncStream<UInt64>.Continuation] = [:]
        var nextStream = 0
    }

    private let state: Mutex<State>

    package init(committed: UInt64) { state = Mutex(State(committed: committed)) }

    /// The last committed sequence number (0 for an empty log).
    public var committed: UInt64 { state.withLock { $0.committed } }

    /// Returns once the committed sequence exceeds `seq` (at once if it already does).
    public func wait(after seq: UInt64) async -> UInt64 {
        await withCheckedContinuation { continuation in
            let ready: UInt64? = state.withLock { s in
                if s.committed > seq { return s.committed }
                s.waiters.append((seq, continuation))
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// A stream of committed sequence numbers, starting with the current one. Slow consumers see
    /// only the newest value (each value means "everything up to here is committed").
    public func updates() -> AsyncStream<UInt64> {
        let (stream, continuation) = AsyncStream<UInt64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s in
            let id = s.nextStream
            s.nextStream += 1
            s.streams[id] = continuation
            continuation.yield(s.committed)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: id) }
        }
        return stream
    }

    package func publish(_ seq: UInt64) {
        let ready = state.withLock { s -> [CheckedContinuation<UInt64, Never>] in
            s.committed = max(s.committed, seq)
            for stream in s.streams.values { stream.yield(s.committed) }
            let due = s.waiters.filter { $0.after < s.committed }.map(\.continuation)
            s.waiters.removeAll { $0.after < s.committed }
            return due
        }
        for continuation in ready { continuation.resume(returning: seq) }
    }

    package func finish() {
        let streams = state.withLock { s in
            defer { s.streams.removeAll() }
            return Array(s.streams.values)
        }
        for stream in streams { stream.finish() }
    }
}
