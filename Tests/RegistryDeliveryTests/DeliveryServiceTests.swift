import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import Logging
import NIOCore
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Synchronization
import Testing

@testable import RegistryDelivery

/// A real HTTP receiver: records every request, answers with whatever `respond` says.
final class Receiver: Sendable {
    struct Hit: Sendable {
        var id: String
        var timestamp: String
        var signature: String
        var body: [UInt8]
        var json: JSONValue
    }

    let hits = Mutex<[Hit]>([])
    let respond = Mutex<@Sendable (JSONValue) -> HTTPResponse.Status>({ _ in .ok })

    func app() -> some ApplicationProtocol {
        let router = Router()
        router.post("hook") { request, _ -> Response in
            var buffer = try await request.body.collect(upTo: 1 << 20)
            let body = buffer.readBytes(length: buffer.readableBytes) ?? []
            let json = try JSONParser.parse(body)
            let status = self.respond.withLock { $0 }(json)
            if status == .ok {
                let hit = Hit(
                    id: request.headers[HTTPField.Name("webhook-id")!] ?? "",
                    timestamp: request.headers[HTTPField.Name("webhook-timestamp")!] ?? "",
                    signature: request.headers[HTTPField.Name("webhook-signature")!] ?? "",
                    body: body,
                    json: json
                )
                self.hits.withLock { $0.append(hit) }
            }
            return Response(status: status)
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    var deviceOps: [String] {
        hits.withLock { hits in
            hits.map {
                "\($0.json["applicationProperties"]?["opType"]?.stringValue ?? "?"):\($0.json["applicationProperties"]?["deviceId"]?.stringValue ?? "?")"
            }
        }
    }
}

/// A router under test: its store, its service, the live receiver and the manual clock its
/// backoff sleeps wait on.
struct RouterHarness: Sendable {
    let store: RegistryStore
    let service: DeliveryService
    let receiver: Receiver
    let clock: ManualMonotonicClock
    let policy: DeliveryConfiguration.RetryPolicy

    func create(_ id: String) async throws {
        _ = try await store.execute(.createDevice(DeviceSpec(deviceId: id)), actor: "t", requestId: id)
    }

    var status: RouteStatus { get async { await service.statuses()[0] } }

    /// Waits until the worker sleeps between attempts (it sleeps only after a failed attempt it
    /// will retry: never after delivering, parking or finding the endpoint gone).
    func waitUntilBackingOff() async throws {
        try await DeliveryServiceTests.eventually("a backoff sleep") { clock.sleeping == 1 }
    }

    /// Lets one backoff pass: waits for the sleep, then moves time past the longest backoff.
    func passBackoff() async throws {
        try await waitUntilBackingOff()
        clock.advance(.milliseconds(policy.maxBackoffMs))
    }

    /// Waits until the route's worker has finished with every commit so far: from then on
    /// nothing more happens for them (no sleep in between, so "nothing happened" is observed,
    /// not guessed).
    func settle() async throws {
        let head = store.commits.committed
        try await DeliveryServiceTests.eventually("the route settled at \(head)") { (service.settled(route: "hooked") ?? 0) >= head }
    }
}

extension DeliveryClock {
    /// Webhook timestamps in the tests (2026-01-01T00:00:00Z): fixed, so a test can see they
    /// come from the injected clock.
    static let testUnixSeconds: Int64 = 1_767_225_600

    /// `clock` behind the retry window and the backoff sleeps; `recordSleep` hears each sleep.
    static func manual(_ clock: ManualMonotonicClock, recordSleep: @escaping @Sendable (Duration) -> Void = { _ in }) -> DeliveryClock {
        DeliveryClock(
            now: { clock.now },
            sleep: { duration in
                recordSleep(duration)
                try await clock.sleep(for: duration)
            },
            unixSeconds: { testUnixSeconds }
        )
    }
}

@Suite(.serialized) struct DeliveryServiceTests {
    static let secret = [UInt8](repeating: 42, count: 32)
    static let seed: UInt64 = 18

    static func configuration(port: Int, condition: String = "true", retryWindow: Double = 3600) throws -> DeliveryConfiguration {
        var configuration = DeliveryConfiguration(
            endpoints: [.init(name: "hook", kind: .webhook(url: "http://127.0.0.1:\(port)/hook", secret: secret, caFile: nil, timeoutMs: 2000))],
            routes: [
                .init(name: "hooked", source: .deviceLifecycleEvents, condition: try RouteCondition(condition), endpointName: "hook", isEnabled: true)
            ]
        )
        configuration.retry.initialBackoffMs = 5
        configuration.retry.maxBackoffMs = 20
        configuration.retry.retryWindowSeconds = retryWindow
        return configuration
    }

    /// Runs the router beside a live receiver and a fresh store, on a manual clock and a seeded
    /// random source.
    func withRouter(
        condition: String = "true",
        retryWindow: Double = 3600,
        adjust: @escaping @Sendable (inout DeliveryConfiguration.RetryPolicy) -> Void = { _ in },
        recordSleep: @escaping @Sendable (Duration) -> Void = { _ in },
        _ body: @escaping @Sendable (RouterHarness) async throws -> Void
    ) async throws {
        let receiver = Receiver()
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            try await receiver.app().test(.live) { client in
                let port = try #require(client.port)
                var configuration = try Self.configuration(port: port, condition: condition, retryWindow: retryWindow)
                adjust(&configuration.retry)
                let clock = ManualMonotonicClock()
                let service = DeliveryService(
                    store: store,
                    hubName: "test-hub",
                    configuration: configuration,
                    logger: Logger(label: "test"),
                    clock: .manual(clock, recordSleep: recordSleep),
                    random: SeededRandom(seed: Self.seed)
                )
                try await service.prepareCursors()
                let running = Task { try await service.run() }
                defer { running.cancel() }
                try await body(RouterHarness(store: store, service: service, receiver: receiver, clock: clock, policy: configuration.retry))
                running.cancel()
                _ = await running.result
            }
            store.close()
        }
    }

    /// Polls until `condition` holds (bounded: fails after 15 s). Only for what happens on
    /// another task or process (an HTTP round trip, a worker's step), never to let time pass:
    /// the manual clock does that.
    static func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<1500 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws { try await Self.eventually(what, condition) }

    @Test func deliversEveryCreateAndDeleteInOrderSignedAcrossAnOutage() async throws {
        try await withRouter { h in
            // The receiver is down (503) for its first requests: the route retries in order.
            let failures = Atomic<Int>(4)
            h.receiver.respond.withLock { $0 = { _ in failures.wrappingSubtract(1, ordering: .relaxed).oldValue > 0 ? .serviceUnavailable : .ok } }
            for i in 0..<10 { try await h.create("d\(i)") }
            _ = try await h.store.execute(.createModule(ModuleSpec(deviceId: "d1", moduleId: "m")), actor: "t", requestId: "m")
            _ = try await h.store.execute(.replaceDevice(DeviceSpec(deviceId: "d2", status: .disabled), ifMatch: .any), actor: "t", requestId: "u")
            _ = try await h.store.execute(.deleteDevice(deviceId: "d1", ifMatch: .any), actor: "t", requestId: "x")
            // Each refused attempt is followed by one backoff sleep; nothing moves until it passes.
            for _ in 0..<4 { try await h.passBackoff() }
            try await h.settle()
            let expected =
                (0..<10).map { "createDeviceIdentity:d\($0)" } + ["createDeviceIdentity:d1", "deleteDeviceIdentity:d1", "deleteDeviceIdentity:d1"]
            #expect(h.receiver.deviceOps == expected)  // the update is not a lifecycle event
            for hit in h.receiver.hits.withLock({ $0 }) {
                let expectedSignature = WebhookSink.signature(id: hit.id, timestamp: Int64(hit.timestamp)!, body: hit.body, secret: Self.secret)
                #expect(hit.signature == expectedSignature)
                #expect(hit.id == hit.json["id"]?.stringValue)
                #expect(hit.timestamp == String(DeliveryClock.testUnixSeconds))  // the injected wall clock
            }
            let status = await h.status
            #expect(status.cursor == h.store.commits.committed)
            #expect(status.health == .healthy)
            #expect(status.failedAttempts == 4)
            #expect(status.delivered == 13)
            #expect(status.lag == 0)
            #expect(h.clock.sleeping == 0)
        }
    }

    @Test func aGoneEndpointIsDeadUntilReEnabled() async throws {
        try await withRouter { h in
            h.receiver.respond.withLock { $0 = { _ in .gone } }
            try await h.create("a")
            try await h.settle()
            #expect(await h.status.health == .dead)
            try await h.create("b")
            // The worker has handled b's commit: a dead route neither delivers nor retries.
            try await h.settle()
            #expect(await h.status.cursor == 0)  // stopped before the first undelivered message
            #expect(h.receiver.hits.withLock { $0.isEmpty })
            #expect(h.clock.sleeping == 0)
            #expect(await h.status.failedAttempts == 1)
            h.receiver.respond.withLock { $0 = { _ in .ok } }
            try await h.service.enable(route: "hooked")
            try await eventually("the cursor at the head") { await h.status.cursor == h.store.commits.committed }
            #expect(h.receiver.deviceOps == ["createDeviceIdentity:a", "createDeviceIdentity:b"])
            #expect(await h.status.health == .healthy)
        }
    }

    @Test func aMessageIsRetriedForTheWholeWindowThenParkedAndRedelivered() async throws {
        try await withRouter(retryWindow: 1) { h in
            // The receiver refuses one device's messages: they are parked, the rest flows on.
            h.receiver.respond.withLock {
                $0 = { json in json["applicationProperties"]?["deviceId"] == .string("poison") ? .internalServerError : .ok }
            }
            for id in ["a", "poison", "b"] { try await h.create(id) }
            // Just short of the window: the next attempt fails and is retried again (the worker
            // sleeps only when it will retry), nothing is parked and b waits behind it.
            try await h.waitUntilBackingOff()
            h.clock.advance(.milliseconds(999))
            try await h.waitUntilBackingOff()
            #expect(try await h.service.parkedMessages(route: "hooked").isEmpty)
            #expect(await h.status.failedAttempts == 2)
            #expect(await h.status.health == .unhealthy)
            #expect(h.receiver.deviceOps == ["createDeviceIdentity:a"])
            // Past the window: the attempt after this backoff fails, the message is parked, the
            // route moves on.
            h.clock.advance(.milliseconds(h.policy.maxBackoffMs))
            try await h.settle()
            #expect(h.receiver.deviceOps == ["createDeviceIdentity:a", "createDeviceIdentity:b"])
            #expect(try await h.service.parkedMessages(route: "hooked").map(\.seq) == [2])
            #expect(await h.status.parked == 1)
            #expect(await h.status.failedAttempts == 3)
            #expect(await h.status.cursor == h.store.commits.committed)
            h.receiver.respond.withLock { $0 = { _ in .ok } }
            h.service.redeliverParked(route: "hooked")
            // The parked entry is removed after the receiver confirmed, so not always by the time it has the hit.
            try await eventually("unparked") { (try? await h.service.parkedMessages(route: "hooked").isEmpty) == true }
            // Redelivered after the ones that followed it.
            #expect(h.receiver.deviceOps == ["createDeviceIdentity:a", "createDeviceIdentity:b", "createDeviceIdentity:poison"])
        }
    }

    @Test func conditionsFilterByOpTypeAndDeviceIdPrefix() async throws {
        try await withRouter(condition: "opType = 'deleteDeviceIdentity' OR starts_with(deviceId, 'keep-')") { h in
            for id in ["keep-1", "drop-1", "keep-2"] { try await h.create(id) }
            _ = try await h.store.execute(.deleteDevice(deviceId: "drop-1", ifMatch: .any), actor: "t", requestId: "d")
            try await h.settle()
            #expect(await h.status.cursor == h.store.commits.committed)
            #expect(h.receiver.deviceOps == ["createDeviceIdentity:keep-1", "createDeviceIdentity:keep-2", "deleteDeviceIdentity:drop-1"])
        }
    }

    /// The backoff is exponential with jitter drawn from the injected source: with a seeded
    /// source the service sleeps exactly the durations the policy gives for that seed.
    @Test func backoffSleepsComeFromThePolicyAndTheInjectedRandomSource() async throws {
        let slept = Mutex<[Duration]>([])
        try await withRouter(
            adjust: {
                $0.initialBackoffMs = 100
                $0.maxBackoffMs = 1600
            },
            recordSleep: { duration in slept.withLock { $0.append(duration) } }
        ) { h in
            h.receiver.respond.withLock { $0 = { _ in .serviceUnavailable } }
            try await h.create("a")
            for _ in 0..<7 { try await h.passBackoff() }
            try await h.waitUntilBackingOff()
            var random = SeededRandom(seed: Self.seed)
            let expected = (0..<8).map { h.policy.backoff(attempt: $0, random: &random) }
            #expect(slept.withLock { $0 } == expected)
            for (attempt, duration) in expected.enumerated() {
                let base = min(1600, 100 << attempt)
                #expect(duration >= .milliseconds(base / 2) && duration <= .milliseconds(base), "attempt \(attempt): \(duration)")
            }
        }
    }

    @Test func aRestartedRouterResumesFromItsCursor() async throws {
        let receiver = Receiver()
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            try await receiver.app().test(.live) { client in
                let configuration = try Self.configuration(port: try #require(client.port))
                for round in 0..<2 {
                    let service = DeliveryService(
                        store: store,
                        hubName: "h",
                        configuration: configuration,
                        logger: Logger(label: "t"),
                        clock: .manual(ManualMonotonicClock()),
                        random: SeededRandom(seed: Self.seed)
                    )
                    try await service.prepareCursors()
                    let running = Task { try await service.run() }
                    for i in 0..<5 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "r\(round)-\(i)")), actor: "t", requestId: "x") }
                    let head = store.commits.committed
                    try await eventually("round \(round)") { (service.settled(route: "hooked") ?? 0) >= head }
                    #expect(await service.statuses().first?.cursor == head)
                    running.cancel()
                    _ = await running.result
                }
                // The second router started from the persisted cursor: no gap, no repeats here.
                #expect(receiver.deviceOps == (0..<2).flatMap { r in (0..<5).map { "createDeviceIdentity:r\(r)-\($0)" } })
            }
            store.close()
        }
    }
}
