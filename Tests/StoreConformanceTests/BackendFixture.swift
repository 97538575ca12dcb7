import Foundation
import RegistryCore
import RegistryLMDB
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
    static let all: [any BackendFixture] = [LMDBFixture()]
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
