import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Synchronization
import Testing

@testable import RegistryDelivery

/// Two real receivers: the configured one answers every webhook with a redirect to the other,
/// which records whatever reaches it (any method: a followed 302 turns the POST into a GET).
final class RedirectingReceivers: Sendable {
    let redirect: HTTPResponse.Status
    let reachedSecond = Mutex<[String]>([])

    init(redirect: HTTPResponse.Status) { self.redirect = redirect }

    func second() -> some ApplicationProtocol {
        let router = Router()
        for method in [HTTPRequest.Method.get, .post, .put] {
            router.on("elsewhere", method: method) { request, _ -> Response in
                let signature = request.headers[HTTPField.Name("webhook-signature")!] ?? "none"
                self.reachedSecond.withLock { $0.append("\(request.method) signature=\(signature)") }
                return Response(status: .ok)
            }
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    func first(redirectingTo port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.post("hook") { _, _ -> Response in
            Response(status: self.redirect, headers: [.location: "http://127.0.0.1:\(port)/elsewhere"])
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// Runs `body` with the first receiver's port while both listen.
    func run(_ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await second().test(.live) { secondClient in
            let secondPort = try #require(secondClient.port)
            try await first(redirectingTo: secondPort).test(.live) { firstClient in
                try await body(try #require(firstClient.port))
            }
        }
    }
}

/// Item 11 of the hardening issue: a signature never travels to an address the operator did not
/// configure, so a 3xx is a failed delivery, not a hop.
@Suite struct WebhookRedirectTests {
    static let message = RouteMessage(
        seq: 1,
        id: "message-1",
        source: .deviceLifecycleEvents,
        applicationProperties: ["opType": "createDeviceIdentity", "deviceId": "d"],
        systemProperties: [:],
        body: .object(["deviceId": .string("d")])
    )

    @Test(arguments: [HTTPResponse.Status.found, .temporaryRedirect])
    func aRedirectIsAFailedDeliveryAndIsNotFollowed(_ redirect: HTTPResponse.Status) async throws {
        let receivers = RedirectingReceivers(redirect: redirect)
        try await receivers.run { port in
            let sink = try WebhookSink(url: "http://127.0.0.1:\(port)/hook", secret: DeliveryServiceTests.secret, caFile: nil, timeoutMs: 2000)
            let outcome = await sink.deliver([Self.message])
            await sink.shutdown()
            #expect(outcome == .failed("the receiver answered \(redirect.code), a redirect (not followed)"))
            #expect(receivers.reachedSecond.withLock { $0 }.isEmpty)
        }
    }
}

extension DeliveryServiceTests {
    /// The route's status names the redirect, and the message is retried rather than counted as
    /// delivered.
    @Test func aRedirectingEndpointIsUnhealthyWithTheStatusInItsLastError() async throws {
        let receivers = RedirectingReceivers(redirect: .found)
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            try await receivers.run { port in
                let configuration = try Self.configuration(port: port)
                let clock = ManualMonotonicClock()
                let service = DeliveryService(
                    store: store,
                    hubName: "h",
                    configuration: configuration,
                    logger: Logger(label: "t"),
                    clock: .manual(clock),
                    random: SeededRandom(seed: Self.seed)
                )
                try await service.prepareCursors()
                let running = Task { try await service.run() }
                defer { running.cancel() }
                _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "a")), actor: "t", requestId: "1")
                // Two attempts: the worker backs off after each (it would not after a delivery).
                let h = RouterHarness(store: store, service: service, receiver: Receiver(), clock: clock, policy: configuration.retry)
                try await h.passBackoff()
                try await h.waitUntilBackingOff()
                let status = await service.statuses()[0]
                #expect(status.failedAttempts == 2)
                #expect(status.health == .unhealthy)
                #expect(status.delivered == 0)
                #expect(status.cursor == 0)
                #expect(status.lastError?.contains("answered 302, a redirect") == true)
                #expect(receivers.reachedSecond.withLock { $0 }.isEmpty)
                running.cancel()
                _ = await running.result
            }
            store.close()
        }
    }
}
