import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Synchronization
import Testing

/// Throttling (token buckets on a manual clock), `/metrics` and `/readyz` at router level.
struct OperationsRoutesTests {
    typealias R = RegistryRoutesTests

    final class ManualMonotonic: Sendable {
        let nanoseconds = Atomic<Int64>(0)
        func advance(_ d: Duration) {
            nanoseconds.add(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000, ordering: .relaxed)
        }
        var now: Duration { .nanoseconds(nanoseconds.load(ordering: .relaxed)) }
    }

    static func withAPI(
        configuration: RegistryAPIConfiguration,
        clock: ManualMonotonic = ManualMonotonic(),
        readiness: Readiness = Readiness(listening: true),
        policies: [SharedAccessPolicy] = R.policies,
        _ body: @escaping @Sendable (any TestClientProtocol, RegistryStore) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { dir in
            let metrics = RegistryMetrics()
            var storeConfiguration = RegistryStore.Configuration(
                dataDirectory: DataDirectory(path: dir),
                clock: ManualClock(Timestamp(iso8601: "2026-01-01T00:00:00Z")!)
            )
            storeConfiguration.commitObserver = { metrics.commit($0) }
            let store = try RegistryStore(configuration: storeConfiguration, random: SeededRandom(seed: 1))
            let router = buildRouter(
                store: store,
                authenticator: ServiceAuthenticator(hostName: R.host, policies: policies),
                configuration: configuration,
                readiness: readiness,
                metrics: metrics,
                throttleClock: { clock.now },
                now: { R.now }
            )
            try await Application(router: router).test(.router) { client in try await body(client, store) }
            store.close()
        }
    }

    @Test func throttlingAnswers429WithRetryAfterAndRecovers() async throws {
        let clock = ManualMonotonic()
        let configuration = RegistryAPIConfiguration(throttling: ThrottlingConfiguration(rates: [.registryReads: 2]))
        try await Self.withAPI(configuration: configuration, clock: clock) { client, _ in
            _ = try await R.call(client, .put, "/devices/d1", body: "{}")
            #expect(try await R.call(client, .get, "/devices/d1").status == .ok)
            #expect(try await R.call(client, .get, "/devices/d1").status == .ok)
            let refused = try await R.call(client, .get, "/devices/d1")
            R.expectAzureError(refused, .tooManyRequests, "ThrottlingException")
            let retryAfter = try #require(refused.headers[.retryAfter].flatMap(Int.init))
            #expect(retryAfter == 1)
            // Other classes and the probes have their own budget (none configured: unlimited).
            for i in 0..<5 { #expect(try await R.call(client, .put, "/devices/w\(i)", body: "{}").status == .ok) }
            let probe = try await R.call(client, .get, "/healthz", auth: nil)
            #expect(probe.status == .ok)
            // A client that waits as told gets through; half of it is not enough at 2/s for two.
            clock.advance(.seconds(retryAfter))
            #expect(try await R.call(client, .get, "/devices/d1").status == .ok)
            #expect(try await R.call(client, .get, "/devices/d1").status == .ok)
            #expect(try await R.call(client, .get, "/devices/d1").status == .tooManyRequests)
            clock.advance(.milliseconds(500))
            #expect(try await R.call(client, .get, "/devices/d1").status == .ok)
            #expect(try await R.call(client, .get, "/devices/d1").status == .tooManyRequests)
        }
    }

    /// Issue 17 item 5: every spelling of a route the router accepts (doubled or trailing
    /// slashes) draws on its class's budget; before, `//devices/query` and `/devices/query/`
    /// escaped the query class and `//devices` the bulk class.
    @Test func throttlingClassifiesEverySpellingOfARoute() async throws {
        let clock = ManualMonotonic()
        let configuration = RegistryAPIConfiguration(
            throttling: ThrottlingConfiguration(rates: [.queries: 1, .bulk: 1, .deviceAuth: 1, .registryReads: 1])
        )
        let classes: [(HTTPRequest.Method, [String], String)] = [
            (
                .post, ["/devices/query", "/devices/query/", "//devices/query", "/devices//query", "//devices//query//"],
                #"{"query":"SELECT * FROM devices"}"#
            ),
            (.post, ["/devices", "/devices/", "//devices", "///devices//"], "[]"),
            (.post, ["/jobs/create", "//jobs/create", "/jobs//create/"], "{}"),
            (.post, ["/registry/auth/device", "//registry/auth/device", "/registry//auth/device/"], "{}"),
            (.get, ["/devices/d1", "//devices/d1", "/devices//d1/"], ""),
        ]
        try await Self.withAPI(configuration: configuration, clock: clock) { client, _ in
            for (method, spellings, body) in classes {
                for spelling in spellings.dropFirst() {
                    // The canonical spelling takes the class's one token; the other spelling is refused.
                    clock.advance(.seconds(5))
                    #expect(try await R.call(client, method, spellings[0], body: body).status != .tooManyRequests)
                    let refused = try await R.call(client, method, spelling, body: body)
                    #expect(refused.status == .tooManyRequests, "\(method) \(spelling) escaped its class")
                    // And the other way round.
                    clock.advance(.seconds(5))
                    #expect(try await R.call(client, method, spelling, body: body).status != .tooManyRequests)
                    #expect(try await R.call(client, method, spellings[0], body: body).status == .tooManyRequests, "\(method) \(spelling)")
                }
            }
        }
    }

    /// A log handler that keeps what it is given.
    final class Lines: Sendable {
        let all = Mutex<[(Logger.Level, Logger.Metadata)]>([])
    }

    struct CapturingLogHandler: LogHandler {
        let lines: Lines
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            guard event.message.description == "request" else { return }
            lines.all.withLock { $0.append((event.level, metadata.merging(event.metadata ?? [:]) { $1 })) }
        }
    }

    /// Issue 17, the defaults: at `info` a change or a refusal gets its own access-log line; a
    /// successful read, query or device check is only counted (one summary line a minute).
    @Test func theAccessLogKeepsLinesForChangesAndRefusalsAndCountsTheRest() async throws {
        let captured = Lines()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(lines: captured) }
        let summary = AccessLogSummary()
        try await withTemporaryDirectory { (dir: String) async throws in
            let store = try RegistryStore(configuration: .init(dataDirectory: DataDirectory(path: dir)), random: SeededRandom(seed: 1))
            let router = buildRouter(
                store: store,
                authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies),
                accessLog: summary,
                now: { R.now }
            )
            try await Application(router: router, logger: logger).test(.router) { (client: any TestClientProtocol) async throws in
                #expect(try await R.call(client, .put, "/devices/d1", body: "{}").status == .ok)
                for _ in 0..<3 { #expect(try await R.call(client, .get, "/devices/d1").status == .ok) }
                #expect(try await R.call(client, .get, "/devices/nobody").status == .notFound)
                #expect(try await R.call(client, .get, "/devices/d1", auth: "SharedAccessSignature sr=x&sig=y&se=1").status == .unauthorized)
                #expect(try await QueryRouteTests.query(client, "SELECT * FROM devices").0 == .ok)
                #expect(try await R.call(client, .post, "/registry/auth/device", body: #"{"deviceId":"d1","token":"nope"}"#).status == .ok)
                #expect(try await R.call(client, .delete, "/devices/d1").status == .noContent)
                #expect(try await R.call(client, .get, "/healthz", auth: nil).status == .ok)
            }
            store.close()
        }
        let lines = captured.all.withLock { $0 }.map { "\($0.1["operation"] ?? "?") \($0.1["status"] ?? "?")" }
        #expect(lines == ["PUT /devices/{deviceId} 200", "GET /devices/{deviceId} 401", "DELETE /devices/{deviceId} 204"])
        #expect(summary.drain() == ["reads.200": 3, "reads.404": 1, "queries.200": 1, "deviceAuth.200": 1])
        #expect(summary.drain().isEmpty, "drained")
    }

    /// Issue 17 item 6 through the API: a query over one of its bounds answers Azure's 400.
    @Test func aQueryOverItsBoundsAnswers400() async throws {
        var configuration = RegistryAPIConfiguration()
        configuration.queryBounds = QueryBounds(groups: 2)
        try await Self.withAPI(configuration: configuration) { client, _ in
            for id in ["g1", "g2", "g3"] { _ = try await R.call(client, .put, "/devices/\(id)", body: "{}") }
            let (status, headers, body) = try await QueryRouteTests.query(client, "SELECT deviceId, COUNT() AS n FROM devices GROUP BY deviceId")
            #expect(status == .badRequest)
            #expect(headers[HTTPField.Name("iothub-errorcode")!] == "ArgumentInvalid")
            #expect(body?["Message"]?.stringValue?.contains("more than 2 groups") == true)
            #expect(try await QueryRouteTests.query(client, "SELECT status, COUNT() AS n FROM devices GROUP BY status").0 == .ok)
        }
    }

    @Test func connectionAndEventStreamSettingsAreValidated() throws {
        let connections = try ConnectionLimits(
            json: try JSONParser.parse(Array(#"{"maxConnections": 8, "headerTimeoutSeconds": 0.5, "maxHeaderBytes": 8192}"#.utf8))
        )
        #expect(connections.maxConnections == 8 && connections.headerTimeout == .milliseconds(500) && connections.maxHeaderBytes == 8192)
        #expect(connections.idleTimeout == .seconds(60), "unset keys keep their defaults")
        for bad in [
            #"{"maxConnections": 0}"#, #"{"idleTimeoutSeconds": -1}"#, #"{"maxHeaderBytes": 100}"#, #"{"maxHeaderBytes": 100000}"#, #"{"nope": 1}"#,
            "[]",
        ] {
            #expect(throws: ConfigurationFieldError.self, "\(bad)") { try ConnectionLimits(json: try JSONParser.parse(Array(bad.utf8))) }
        }
        let streams = try EventStreamLimits(json: try JSONParser.parse(Array(#"{"maxPerPolicy": 3, "stallTimeoutSeconds": 2}"#.utf8)))
        #expect(streams.maxPerPolicy == 3 && streams.stallTimeout == .seconds(2))
        for bad in [#"{"maxPerPolicy": 0}"#, #"{"stallTimeoutSeconds": 0}"#, #"{"heartbeat": 1}"#] {
            #expect(throws: ConfigurationFieldError.self, "\(bad)") { try EventStreamLimits(json: try JSONParser.parse(Array(bad.utf8))) }
        }
    }

    @Test func throttlingConfigurationIsValidated() throws {
        let parsed = try ThrottlingConfiguration(
            json: try JSONParser.parse(Array(#"{"registryWrites": 10, "queries": 0.5, "burstSeconds": 2}"#.utf8))
        )
        #expect(parsed.rates == [.registryWrites: 10, .queries: 0.5])
        #expect(parsed.burstSeconds == 2)
        #expect(throws: ConfigurationFieldError.self) { try ThrottlingConfiguration(json: try JSONParser.parse(Array(#"{"reads": 1}"#.utf8))) }
        #expect(throws: ConfigurationFieldError.self) { try ThrottlingConfiguration(json: try JSONParser.parse(Array(#"{"bulk": -1}"#.utf8))) }
    }

    static func metric(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func metricsMoveWithRequestsAndNeedRegistryRead() async throws {
        try await Self.withAPI(configuration: RegistryAPIConfiguration()) { client, _ in
            #expect(try await R.call(client, .get, "/metrics", auth: nil).status == .unauthorized)
            #expect(try await R.call(client, .get, "/metrics", auth: R.token("device")).status == .unauthorized)
            _ = try await R.call(client, .put, "/devices/m1", body: "{}")
            _ = try await R.call(client, .put, "/devices/m2", body: #"{"status":"disabled"}"#)
            _ = try await R.call(client, .get, "/devices/m1")
            _ = try await R.call(client, .get, "/devices/nope")
            let text = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: R.token("registryRead")]) { response in
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                return String(buffer: response.body)
            }
            #expect(Self.metric(text, #"registryd_http_requests_total{operation="GET /devices/{deviceId}",status="200"}"#) == 1)
            #expect(Self.metric(text, #"registryd_http_requests_total{operation="GET /devices/{deviceId}",status="404"}"#) == 1)
            #expect(Self.metric(text, #"registryd_http_requests_total{operation="PUT /devices/{deviceId}",status="200"}"#) == 2)
            #expect(Self.metric(text, "registryd_events_appended_total") == 2)
            #expect(Self.metric(text, #"registryd_identities{kind="device",status="disabled"}"#) == 1)
            #expect(Self.metric(text, #"registryd_identities{kind="device",status="enabled"}"#) == 1)
            #expect((Self.metric(text, "registryd_lmdb_map_used_bytes") ?? 0) > 0)
            #expect((Self.metric(text, "registryd_writer_commit_seconds_count") ?? 0) >= 2)
            // Where the writer's time went, by phase: one observation per commit in each.
            for phase in ["idle", "write", "commit"] {
                #expect(
                    Self.metric(text, #"registryd_writer_phase_seconds_count{phase="\#(phase)"}"#)
                        == Self.metric(text, "registryd_writer_commit_seconds_count"),
                    "phase \(phase)"
                )
            }
            #expect(text.contains("# TYPE registryd_http_request_duration_seconds histogram"))
        }
    }

    /// A policy with only the `Metrics` right, for Prometheus: it scrapes, and every other route
    /// refuses it (RegistryRead, which /metrics also accepts, reads device keys).
    @Test func aMetricsOnlyPolicyScrapesAndReadsNothingElse() async throws {
        let rights = try #require(AccessRights(description: "Metrics"))
        #expect(rights.description == "Metrics")
        #expect(AccessRights(description: "registryRead, metrics") == [.registryRead, rights])
        #expect(!rights.allow(.registryRead) && !AccessRights.all.allow(rights), "Metrics implies nothing and is implied by nothing")
        let prometheus = SharedAccessPolicy(
            name: "prometheus",
            rights: rights,
            primaryKey: Data(repeating: 3, count: 32).base64EncodedString(),
            secondaryKey: Data(repeating: 4, count: 32).base64EncodedString()
        )
        let scrape = SharedAccessSignature.make(resource: R.host, key: prometheus.primaryKey, keyName: prometheus.name, expiry: R.now + 3600)
        for open in [false, true] {
            try await Self.withAPI(configuration: RegistryAPIConfiguration(metricsOpen: open), policies: R.policies + [prometheus]) { client, _ in
                _ = try await R.call(client, .put, "/devices/d1", body: "{}")
                let scraped = try await R.call(client, .get, "/metrics", auth: scrape)
                #expect(scraped.status == .ok)
                let text = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: scrape]) { String(buffer: $0.body) }
                #expect(Self.metric(text, #"registryd_identities{kind="device",status="enabled"}"#) == 1)
                // Without a credential only when opened; RegistryRead keeps working (existing scrapers).
                #expect(try await R.call(client, .get, "/metrics", auth: nil).status == (open ? .ok : .unauthorized))
                #expect(try await R.call(client, .get, "/metrics", auth: R.token("registryRead")).status == .ok)
                // Nothing else answers the metrics token, opened or not.
                for (method, uri, body) in [
                    (HTTPRequest.Method.get, "/devices", nil), (.get, "/devices/d1", nil), (.get, "/devices/d1/modules", nil),
                    (.get, "/twins/d1", nil), (.get, "/statistics/devices", nil), (.get, "/statistics/service", nil),
                    (.get, "/registry/policies", nil), (.get, "/registry/devices/d1/history", nil),
                    (.post, "/devices/query", #"{"query":"SELECT * FROM devices"}"#), (.put, "/devices/d2", "{}"), (.delete, "/devices/d1", nil),
                    (.post, "/registry/auth/device", #"{"deviceId":"d1","certificateAuthority":true}"#),
                ] as [(HTTPRequest.Method, String, String?)] {
                    R.expectAzureError(try await R.call(client, method, uri, body: body, auth: scrape), .unauthorized, "IotHubUnauthorizedAccess")
                }
            }
        }
    }

    @Test func deviceAuthenticationAnswersAreCountedByRouteAndDecision() async throws {
        try await Self.withAPI(configuration: RegistryAPIConfiguration()) { client, _ in
            let created = try await R.call(client, .put, "/devices/a1", body: "{}")
            let key = try #require(created.json?["authentication"]?["symmetricKey"]?["primaryKey"]?.stringValue)
            let good = DeviceAuthRouteTests.deviceToken("devices/a1", key: key)
            let expired = DeviceAuthRouteTests.deviceToken("devices/a1", key: key, expiry: R.now - 1)
            for (body, count) in [
                (#"{"deviceId":"a1","token":"\#(good)"}"#, 2), (#"{"deviceId":"a1","token":"\#(expired)"}"#, 1),
                (#"{"deviceId":"ghost","token":"\#(good)"}"#, 1),
            ] {
                for _ in 0..<count {
                    #expect(try await R.call(client, .post, "/registry/auth/device", body: body, auth: R.token("device")).status == .ok)
                }
            }
            let login = #"{"username":"\#(R.host)/a1/?api-version=2021-04-12","password":"\#(good)","clientid":"a1"}"#
            #expect(try await R.call(client, .post, "/registry/auth/emqx", body: login, auth: R.token("device")).json?["result"] == .string("allow"))
            let text = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: R.token("registryRead")]) {
                String(buffer: $0.body)
            }
            func decisions(_ labels: String) -> Double? { Self.metric(text, "registryd_device_auth_decisions_total{\(labels)}") }
            #expect(decisions(#"route="device",result="allow",detail="sas""#) == 2)
            #expect(decisions(#"route="device",result="deny",detail="expired""#) == 1)
            #expect(decisions(#"route="device",result="deny",detail="unknownIdentity""#) == 1)
            #expect(decisions(#"route="device",result="deny",detail="badSignature""#) == 0)
            #expect(decisions(#"route="emqx",result="allow",detail="sas""#) == 1)
        }
    }

    @Test func metricsCanBeOpenedAndReadinessReportsChecks() async throws {
        let readiness = Readiness(listening: false)
        try await Self.withAPI(configuration: RegistryAPIConfiguration(metricsOpen: true), readiness: readiness) { client, _ in
            #expect(try await R.call(client, .get, "/metrics", auth: nil).status == .ok)
            let notReady = try await R.call(client, .get, "/readyz", auth: nil)
            #expect(notReady.status == .serviceUnavailable)
            #expect(notReady.json?["checks"]?["listening"] == .bool(false))
            #expect(notReady.json?["checks"]?["writer"] == .bool(true))
            readiness.setListening(true)
            #expect(try await R.call(client, .get, "/readyz", auth: nil).status == .ok)
        }
    }
}
