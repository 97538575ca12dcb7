import Synchronization

/// The result of one command: its events and the identity as it now stands (`nil` after a delete).
public struct CommandOutcome: Sendable, Hashable {
    public var events: [RegistryEvent]
    public var identity: Identity?

    public init(events: [RegistryEvent], identity: Identity?) {
        self.events = events
        self.identity = identity
    }
}

/// One durable commit of identity commands, as the writer saw it.
public struct CommitObservation: Sendable, Hashable {
    /// Commands in the transaction (several callers' batches share one commit).
    public var commands: Int
    /// Events appended (0 when every command was refused).
    public var events: Int
    /// From the start of the transaction to the end of its durable commit.
    public var duration: Duration
    /// Where the writer's time went, phase by phase (a backend's own names: `lease`, `lock`,
    /// `commit`, …), including the wait for this batch (`idle`): their sum is the writer's cycle.
    /// Empty for a backend that does not split its commits.
    public var phases: [String: Duration]

    public init(commands: Int, events: Int, duration: Duration, phases: [String: Duration] = [:]) {
        self.commands = commands
        self.events = events
        self.duration = duration
        self.phases = phases
    }
}

/// Laps of a writer's cycle: each `lap` adds the time since the previous one to its phase.
public final class PhaseLaps: Sendable {
    private struct State {
        var last: ContinuousClock.Instant
        var laps: [String: Duration] = [:]
    }
    private let state: Mutex<State>

    public init(since start: ContinuousClock.Instant = .now) { state = Mutex(State(last: start)) }

    public func lap(_ phase: String) {
        let now = ContinuousClock.now
        state.withLock { s in
            s.laps[phase, default: .zero] += now - s.last
            s.last = now
        }
    }

    public var laps: [String: Duration] { state.withLock { $0.laps } }
}

/// Commands handed to the writer by `RegistryBackend.submit`, whose results are awaited later.
public final class PendingCommands: Sendable {
    public typealias Results = [Result<CommandOutcome, RegistryError>]
    private enum State {
        case waiting(CheckedContinuation<Results, any Error>?)
        case done(Result<Results, any Error>)
    }
    private let state = Mutex<State>(.waiting(nil))

    public init() {}

    public func complete(_ result: Result<Results, any Error>) {
        let waiter: CheckedContinuation<Results, any Error>? = state.withLock { state in
            guard case .waiting(let continuation) = state else { return nil }
            state = .done(result)
            return continuation
        }
        waiter?.resume(with: result)
    }

    /// The commands' results, once their transaction has committed (awaited once).
    public func value() async throws -> Results {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Results, any Error>? = state.withLock { state in
                switch state {
                case .done(let result): return result
                case .waiting(let earlier):
                    precondition(earlier == nil, "the results of a submission are awaited once")
                    state = .waiting(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
