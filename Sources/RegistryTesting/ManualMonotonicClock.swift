import Synchronization

/// Monotonic time that moves only when told to, with sleeps that end when `advance` passes their
/// deadline: drives `RegistryStore.Configuration.monotonicNow` and `.monotonicSleep` in tests,
/// so a write timeout or a writer stall happens exactly when the test says.
public final class ManualMonotonicClock: Sendable {
    private struct Sleeper {
        var id: UInt64
        var until: Duration
        var continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var now: Duration = .zero
        var sleepers: [Sleeper] = []
        var nextId: UInt64 = 0
        /// Sleeps cancelled before they registered (their registration then throws at once).
        var cancelledEarly: Set<UInt64> = []
    }
    private let state = Mutex(State())

    public init() {}

    public var now: Duration { state.withLock { $0.now } }

    /// Sleeps waiting for `advance`.
    public var sleeping: Int { state.withLock { $0.sleepers.count } }

    /// Moves time on and ends every sleep whose deadline it passed.
    public func advance(_ duration: Duration) {
        let due: [Sleeper] = state.withLock { s in
            s.now += duration
            let now = s.now
            let due = s.sleepers.filter { $0.until <= now }
            s.sleepers.removeAll { $0.until <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Returns once `advance` moved time `duration` past now; throws `CancellationError` when
    /// the task is cancelled first.
    public func sleep(for duration: Duration) async throws {
        let (id, until) = state.withLock { s in
            s.nextId += 1
            return (s.nextId, s.now + duration)
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Start { case wait, done, cancelled }
                let start: Start = state.withLock { s in
                    if s.cancelledEarly.remove(id) != nil { return .cancelled }
                    if until <= s.now { return .done }
                    s.sleepers.append(Sleeper(id: id, until: until, continuation: continuation))
                    return .wait
                }
                switch start {
                case .wait: break
                case .done: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiting: CheckedContinuation<Void, any Error>? = state.withLock { s in
                guard let index = s.sleepers.firstIndex(where: { $0.id == id }) else {
                    s.cancelledEarly.insert(id)
                    return nil
                }
                return s.sleepers.remove(at: index).continuation
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    /// Returns once `count` sleeps wait (the test's way to know a request reached its deadline's
    /// wait before it advances time).
    public func waitForSleepers(_ count: Int) async {
        while sleeping < count { await Task.yield() }
    }
}
