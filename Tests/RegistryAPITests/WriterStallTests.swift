import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Synchronization
import Testing

/// Hardening item 14: the writer thread blocked for real inside a transaction (a `perform`
/// closure, or the commit observer, waiting on a semaphore) turns `/readyz` and the watchdog's
/// liveness false, and a write that waits past its timeout answers 503; time is a manual
/// monotonic clock, so the stall and the timeout happen exactly when the test advances it.
struct WriterStallTests {
    typealias R = RegistryRoutesTests

    /// What the tests hold: the router's client, the store, the clock, the timeout observations.
    struct Harness: Sendable {
        var client: any TestClientProtocol
        var store: RegistryStore
        var clock: ManualMonotonicClock
        var timeouts: AsyncStream<Bool>
    }

    static func withAPI(
        limits: WriterLimits,
        commitObserver: (@Sendable (CommitObservation) -> Void)? = nil,
        _ body: @escaping @Sendable (Harness) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualMonotonicClock()
            let (timeouts, observed) = AsyncStream<Bool>.makeStream()
            var configuration = RegistryStore.Configuration(dataDirectory: DataDirectory(path: dir), clock: ManualClock())
            configuration.writer = limits
            configuration.monotonicNow = { clock.now }
            configuration.monotonicSleep = { try await clock.sleep(for: $0) }
            configuration.writeTimeoutObserver = { observed.yield($0) }
            configuration.commitObserver = commitObserver
            let store = try RegistryStore(configuration: configuration, random: SeededRandom(seed: 1))
            let router = buildRouter(
                store: store,
                authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies),
                now: { R.now }
            )
            try await Application(router: router).test(.router) { client in
                try await body(Harness(client: client, store: store, clock: clock, timeouts: timeouts))
            }
            store.close()
        }
    }

    /// Blocks the writer thread inside a `perform` transaction until `release()`; returns once
    /// the writer is in it.
    final class BlockedWriter: Sendable {
        private let gate = DispatchSemaphore(value: 0)
        let finished: Task<Void, any Error>

        init(_ store: RegistryStore) async {
            let (entered, inside) = AsyncStream<Void>.makeStream()
            let gate = self.gate
            finished = Task {
                try await store.perform { _, _ in
                    inside.yield()
                    gate.wait()
                }
            }
            var iterator = entered.makeAsyncIterator()
            _ = await iterator.next()
        }

        func release() async throws {
            gate.signal()
            try await finished.value
        }
    }

    @Test func aStuckWriterTurnsReadinessAndLivenessFalseAndQueuedWritesAnswer503() async throws {
        let limits = WriterLimits(writeTimeout: .milliseconds(1500), stallThreshold: .seconds(5))
        try await Self.withAPI(limits: limits) { h in
            #expect(try await R.call(h.client, .get, "/readyz", auth: nil).status == .ok)
            #expect(h.store.isLive)

            let blocked = await BlockedWriter(h.store)
            // Busy for less than the threshold: progress, not a stall.
            h.clock.advance(.seconds(4))
            #expect(h.store.writerStall == nil)
            #expect(try await R.call(h.client, .get, "/readyz", auth: nil).status == .ok)

            // A write waits in the queue behind the blocked transaction; past its timeout it is
            // withdrawn and answered 503 (while the writer is still blocked).
            async let refused = R.call(h.client, .put, "/devices/late", body: "{}")
            await h.clock.waitForSleepers(1)
            h.clock.advance(.seconds(2))
            let reply = try await refused
            R.expectAzureError(reply, .serviceUnavailable, "ServiceUnavailable")
            #expect(reply.headers[.retryAfter] == "2")  // the 1.5 s timeout, in whole seconds rounded up
            var timeouts = h.timeouts.makeAsyncIterator()
            #expect(await timeouts.next() == true)

            // Six seconds in one transaction: stuck. /readyz says so and why; the watchdog's
            // liveness check (what `serve` pings systemd on) is false.
            let stall = try #require(h.store.writerStall)
            #expect(stall.inTransactionFor == .seconds(6))
            #expect(!h.store.isLive)
            let notReady = try await R.call(h.client, .get, "/readyz", auth: nil)
            #expect(notReady.status == .serviceUnavailable)
            #expect(notReady.json?["checks"]?["writer"] == .bool(false))
            #expect(notReady.json?["checks"]?["storage"] == .bool(true))
            #expect(notReady.json?["writerStall"]?.stringValue?.contains("running for 6 s") == true)

            // Released: everything recovers, and the 503 did not lie (the device was never written).
            try await blocked.release()
            #expect(h.store.writerStall == nil)
            #expect(h.store.isLive)
            let ready = try await R.call(h.client, .get, "/readyz", auth: nil)
            #expect(ready.status == .ok)
            #expect(ready.json?["writerStall"] == nil)
            R.expectAzureError(try await R.call(h.client, .get, "/devices/late"), .notFound, "DeviceNotFound")
            #expect(try await R.call(h.client, .put, "/devices/late", body: "{}").status == .ok)
            #expect(try await R.call(h.client, .get, "/devices/late").status == .ok)
        }
    }

    @Test func aWriteTheWriterHasTakenIsWaitedForPastItsTimeout() async throws {
        // The writer commits the device, then blocks (in the commit observer, before it hands
        // the results back); the request's timeout passes meanwhile. Answering 503 now would
        // be a lie, since the device is committed: the request waits and answers 200.
        let armed = Atomic<Bool>(false)
        let gate = DispatchSemaphore(value: 0)
        let (entered, inside) = AsyncStream<Void>.makeStream()
        let observer: @Sendable (CommitObservation) -> Void = { _ in
            guard armed.exchange(false, ordering: .relaxed) else { return }
            inside.yield()
            gate.wait()
        }
        let limits = WriterLimits(writeTimeout: .seconds(1), stallThreshold: .seconds(60))
        try await Self.withAPI(limits: limits, commitObserver: observer) { h in
            armed.store(true, ordering: .relaxed)
            async let created = R.call(h.client, .put, "/devices/taken", body: "{}")
            var inCommit = entered.makeAsyncIterator()
            _ = await inCommit.next()
            await h.clock.waitForSleepers(1)
            h.clock.advance(.seconds(3))
            var timeouts = h.timeouts.makeAsyncIterator()
            #expect(await timeouts.next() == false)  // the deadline passed; nothing was withdrawn
            gate.signal()
            let reply = try await created
            #expect(reply.status == .ok)
            let read = try await R.call(h.client, .get, "/devices/taken")
            #expect(read.status == .ok)
        }
    }

    @Test func aWriterThatKeepsFinishingJobsOrIsIdleIsNotStuck() async throws {
        let limits = WriterLimits(writeTimeout: .seconds(1), stallThreshold: .seconds(5))
        try await Self.withAPI(limits: limits) { h in
            // Idle for a long time: fine.
            h.clock.advance(.seconds(3600))
            #expect(h.store.writerStall == nil)
            let created = try await R.call(h.client, .put, "/devices/d1", body: "{}")
            #expect(created.status == .ok)
            h.clock.advance(.seconds(3600))
            #expect(h.store.writerStall == nil)
            #expect(h.store.isLive)
        }
    }
}
