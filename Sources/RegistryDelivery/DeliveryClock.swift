import Foundation

/// The time delivery runs on: the retry window and the backoff between attempts are measured on
/// `now` and waited with `sleep`, and webhooks are stamped with `unixSeconds`. Injected so a
/// test moves time by hand (a `ManualMonotonicClock` behind `now` and `sleep`) instead of
/// sleeping and polling; the daemon runs on `.system`.
public struct DeliveryClock: Sendable {
    /// Monotonic time since an arbitrary origin (never the wall clock: a clock step must not
    /// shorten or stretch a retry window).
    public var now: @Sendable () -> Duration
    /// Sleeps on the same clock as `now`; throws `CancellationError` when the task is cancelled.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// Wall-clock seconds since 1970, for the `webhook-timestamp` header (receivers compare it
    /// with their own clock to refuse replays, so it must be real time, not monotonic).
    public var unixSeconds: @Sendable () -> Int64

    public init(
        now: @escaping @Sendable () -> Duration,
        sleep: @escaping @Sendable (Duration) async throws -> Void,
        unixSeconds: @escaping @Sendable () -> Int64
    ) {
        self.now = now
        self.sleep = sleep
        self.unixSeconds = unixSeconds
    }

    /// The process's continuous clock, `Task.sleep` and the system's wall clock.
    public static let system: DeliveryClock = {
        let origin = ContinuousClock.now
        return DeliveryClock(
            now: { ContinuousClock.now - origin },
            sleep: { try await Task.sleep(for: $0) },
            unixSeconds: { Int64(Date().timeIntervalSince1970) }
        )
    }()
}
