import Foundation
import RegistryCore
import RegistryPostgres
import RegistryTesting
import Synchronization
import Testing

/// The PostgreSQL writer reports where each commit's time went (`registryd_writer_phase_seconds`),
/// which is how its round trips inside the log head's lock were found and cut (issue 19).
@Suite(.serialized) struct WriterPhaseTests {
    @Test func everyCommitReportsEachPhaseOfItsTransaction() async throws {
        guard let url = ProcessInfo.processInfo.environment["REGISTRYD_TEST_POSTGRES_URL"] else {
            throw StoreError("REGISTRYD_TEST_POSTGRES_URL is not set: run tools/test.sh, which starts a PostgreSQL cluster for the tests")
        }
        let hub = "phases-\(UUID().uuidString.prefix(8).lowercased())"
        let location = try PostgresLocation(url: url + (url.contains("?") ? "&" : "?") + "hub=\(hub)")
        var configuration = PostgresStore.Configuration(location: location, dataKey: MultiNodeTests.dataKey)
        let observed = Mutex<[CommitObservation]>([])
        configuration.commitObserver = { observation in observed.withLock { $0.append(observation) } }
        let store = try await PostgresStore.open(configuration, random: SeededRandom(seed: 7))
        defer { store.close() }
        _ = try await store.execute(MultiNodeTests.create("p1"), actor: "test", requestId: "r1")
        _ = try await store.execute(.replaceDevice(DeviceSpec(deviceId: "p1", status: .disabled), ifMatch: .any), actor: "test", requestId: "r2")
        await #expect(throws: RegistryError.self) { try await store.execute(MultiNodeTests.create("p1"), actor: "test", requestId: "r3") }
        let observations = observed.withLock { $0 }
        #expect(observations.count == 3)
        let transaction = ["idle", "lease", "begin", "lock", "load", "decide", "release", "fold"]
        for (i, observation) in observations.enumerated() {
            // A refused command writes nothing: no sealing, no statements, no COMMIT.
            let expected = observation.events > 0 ? transaction + ["seal", "write", "commit"] : transaction
            #expect(Set(observation.phases.keys) == Set(expected), "commit \(i)")
            let sum = observation.phases.values.reduce(Duration.zero, +)
            #expect(sum >= observation.duration, "the phases cover the commit (and the wait before it)")
        }
        #expect(observations.map(\.events) == [1, 1, 0])
    }
}
