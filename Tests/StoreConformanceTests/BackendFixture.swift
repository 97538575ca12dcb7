import Foundation
import RegistryCore
import RegistryLMDB
import RegistryPostgres
import RegistryTesting
import Testing

/// How the conformance suite opens a backend: a fresh, empty store for one test, and a
/// read-only view of a directory a backup wrote. Every backend adds its fixture to
/// `BackendFixtures.all`; the suite then runs unchanged against it.
protocol BackendFixture: Sendable, CustomTestStringConvertible {
    /// A fresh, empty store (deterministic clock and randomness), closed after `body`.
    func withBackend(_ body: (any RegistryBackend) async throws -> Void) async throws
}

enum BackendFixtures {
    static let all: [any BackendFixture] = [LMDBFixture(), PostgresFixture()]
}

/// The embedded default: LMDB in a temporary data directory.
struct LMDBFixture: BackendFixture {
    var testDescription: String { "LMDB" }

    func withBackend(_ body: (any RegistryBackend) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let store = try makeStore(directory, clock: ManualClock(Timestamp(iso8601: "2026-01-01T00:00:00Z")!), seed: 18)
            defer { store.close() }
            try await body(store)
        }
    }
}

/// PostgreSQL (issue 19): the database `tools/test.sh` starts (its URL in
/// `REGISTRYD_TEST_POSTGRES_URL`), each test in a hub of its own, so tests share the database
/// and never each other's log. Without the variable the tests fail, naming it: a backend the
/// suite silently skipped would pass nothing.
struct PostgresFixture: BackendFixture {
    var testDescription: String { "PostgreSQL" }

    static var url: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_URL"] else {
                throw StoreError("REGISTRYD_TEST_POSTGRES_URL is not set: run tools/test.sh, which starts a PostgreSQL cluster for the tests")
            }
            return url
        }
    }

    func withBackend(_ body: (any RegistryBackend) async throws -> Void) async throws {
        let hub = "conformance-\(UUID().uuidString.prefix(8).lowercased())"
        var random = SeededRandom(seed: 19)
        let key = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        var configuration = PostgresStore.Configuration(
            location: try PostgresLocation(url: try Self.url + (try Self.url.contains("?") ? "&" : "?") + "hub=\(hub)"),
            dataKey: key
        )
        configuration.clock = ManualClock(Timestamp(iso8601: "2026-01-01T00:00:00Z")!)
        let store = try await PostgresStore.open(configuration, random: SeededRandom(seed: 18))
        defer { store.close() }
        try await body(store)
    }
}
