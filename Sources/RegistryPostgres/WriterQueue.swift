import RegistryCore
import Synchronization

/// The queue between callers and a node's writer task: batches in arrival order, each with a
/// ticket so a batch that waited past the write timeout can be withdrawn (then it is never
/// written).
final class WriterQueue: Sendable {
    private struct Entry {
        var batch: QueuedBatch
        var ticket: UInt64
        var queuedAt: Duration
    }

    private struct State {
        var entries: [Entry] = []
        var nextTicket: UInt64 = 1
        var open = true
        /// The writer, waiting for work.
        var waiter: CheckedContinuation<Void, Never>?
        /// Whether the writer holds taken batches it has not finished.
        var busy = false
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let now: @Sendable () -> Duration

    init(now: @escaping @Sendable () -> Duration) { self.now = now }

    var isOpen: Bool { state.withLock { $0.open } }

    var backlog: (count: Int, oldestQueuedAt: Duration?) {
        state.withLock { ($0.entries.count, $0.entries.first?.queuedAt) }
    }

    func enqueue(_ batch: QueuedBatch) -> UInt64? {
        let at = now()
        let (ticket, waiter): (UInt64?, CheckedContinuation<Void, Never>?) = state.withLock { s in
            guard s.open else { return (nil, nil) }
            let ticket = s.nextTicket
            s.nextTicket += 1
            s.entries.append(Entry(batch: batch, ticket: ticket, queuedAt: at))
            defer { s.waiter = nil }
            return (ticket, s.waiter)
        }
        guard let ticket else {
            batch.complete(.failure(StoreError("the store is closed")))
            return nil
        }
        waiter?.resume()
        return ticket
    }

    func withdraw(_ ticket: UInt64) -> QueuedBatch? {
        state.withLock { s in
            guard let index = s.entries.firstIndex(where: { $0.ticket == ticket }) else { return nil }
            return s.entries.remove(at: index).batch
        }
    }

    /// The next batches, at least one and at most `maxCommands` commands (a caller's batch is
    /// never split); `nil` once closed and empty.
    func take(maxCommands: Int) async -> [QueuedBatch]? {
        while true {
            enum Next {
                case batches([QueuedBatch])
                case finished
                case wait
            }
            let next: Next = state.withLock { s in
                if s.entries.isEmpty { return s.open ? .wait : .finished }
                var taken: [QueuedBatch] = []
                var commands = 0
                while let first = s.entries.first, taken.isEmpty || commands + first.batch.commands.count <= maxCommands {
                    commands += first.batch.commands.count
                    taken.append(s.entries.removeFirst().batch)
                }
                s.busy = true
                return .batches(taken)
            }
            switch next {
            case .batches(let batches):
                return batches
            case .finished:
                finishedTake()
                return nil
            case .wait:
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { s in
                        if !s.entries.isEmpty || !s.open { return true }
                        s.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
        }
    }

    /// The writer finished what it took; wakes `drained()` once closed and empty.
    func finishedTake() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { s in
            s.busy = false
            guard !s.open, s.entries.isEmpty else { return [] }
            defer { s.drainWaiters = [] }
            return s.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func close() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { s in
            s.open = false
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    func drained() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { s in
                if !s.open, s.entries.isEmpty, !s.busy { return true }
                s.drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
