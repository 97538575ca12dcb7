import Synchronization

/// How long writes may wait for the writer, and how long the writer may go without progress
/// before it counts as stuck (`limits.writeTimeoutSeconds`, `limits.writerStallSeconds`).
public struct WriterLimits: Sendable, Hashable {
    /// How long an identity write (`RegistryStore.execute`) may wait in the queue for the writer
    /// to take it. Past it the commands are taken back out of the queue, so they are never
    /// written, and the caller gets `WriteTimeoutError` (503). Commands the writer has taken
    /// are waited for to the end: their transaction commits or fails as a whole, and answering
    /// before it would say nothing true about them (a wedged transaction is the watchdog's).
    public var writeTimeout: Duration
    /// How long one writer transaction may run, or queued work wait while the writer takes none,
    /// before the writer counts as stuck: `/readyz` turns false and the systemd watchdog pings stop.
    public var stallThreshold: Duration

    public init(writeTimeout: Duration = .seconds(10), stallThreshold: Duration = .seconds(20)) {
        self.writeTimeout = writeTimeout
        self.stallThreshold = stallThreshold
    }
}

/// Why the writer counts as stuck: what `/readyz` says and the watchdog withholds its ping for.
public struct WriterStall: Sendable, Hashable, CustomStringConvertible {
    /// How long the current transaction has been running (`nil`: the writer is in none).
    public var inTransactionFor: Duration?
    /// Writes queued for the writer, and how long the oldest of them has waited.
    public var queued: Int
    public var oldestWaitingFor: Duration?

    public var description: String {
        if let running = inTransactionFor {
            return "a write transaction has been running for \(running.components.seconds) s (\(queued) writes queued behind it)"
        }
        return "\(queued) writes queued for \(oldestWaitingFor?.components.seconds ?? 0) s without the writer taking one"
    }
}

/// The writer thread's heartbeat: when its current job began and when it last began or finished
/// one. Written by the writer thread, read by `/readyz` and the watchdog from any thread.
package final class WriterProgress: Sendable {
    private struct State {
        var jobStartedAt: Duration?
        var lastProgressAt: Duration
    }
    private let state: Mutex<State>

    package init(now: Duration) { state = Mutex(State(jobStartedAt: nil, lastProgressAt: now)) }

    package func began(at now: Duration) {
        state.withLock {
            $0.jobStartedAt = now
            $0.lastProgressAt = now
        }
    }

    package func finished(at now: Duration) {
        state.withLock {
            $0.jobStartedAt = nil
            $0.lastProgressAt = now
        }
    }

    /// Whether the writer is stuck at `now`: a job running for longer than `threshold`, or work
    /// queued for longer than it while the writer neither began nor finished a job (a writer
    /// that keeps finishing jobs is slow, not stuck; one that is idle with nothing queued is fine).
    package func stall(now: Duration, threshold: Duration, queued: Int, oldestQueuedAt: Duration?) -> WriterStall? {
        let s = state.withLock { $0 }
        if let started = s.jobStartedAt, now - started > threshold {
            return WriterStall(inTransactionFor: now - started, queued: queued, oldestWaitingFor: oldestQueuedAt.map { now - $0 })
        }
        if s.jobStartedAt == nil, let oldest = oldestQueuedAt, now - oldest > threshold, now - s.lastProgressAt > threshold {
            return WriterStall(inTransactionFor: nil, queued: queued, oldestWaitingFor: now - oldest)
        }
        return nil
    }
}

/// An identity write that waited longer than `WriterLimits.writeTimeout` for the writer to take
/// it: it was taken back out of the queue, so nothing of it was written (retrying is safe).
public struct WriteTimeoutError: Error, Sendable, Hashable, CustomStringConvertible {
    public var waited: Duration
    package init(waited: Duration) { self.waited = waited }
    public var description: String {
        "the write waited \(waited.components.seconds) s for the registry's writer and was withdrawn; nothing was written"
    }
}
