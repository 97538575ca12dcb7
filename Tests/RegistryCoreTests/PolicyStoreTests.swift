import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Policy changes against a real store: concurrent rotations and rights updates of one policy
/// must end as some serial order of them would (no change lost, no rotated key restored).
struct PolicyStoreTests {
    enum Operation: Sendable, Hashable {
        case rotate
        case setRights(AccessRights)
    }

    /// Rights for the updates: distinct, none the policy's initial RegistryRead, so each update's
    /// answer says which update it was and a rotation's answer says which update preceded it.
    static let rights: [AccessRights] = [
        [.registryWrite], [.serviceConnect], [.deviceConnect], [.registryRead, .serviceConnect],
        [.registryRead, .deviceConnect], [.serviceConnect, .deviceConnect], [.registryWrite, .serviceConnect], [.registryWrite, .deviceConnect],
    ]

    @Test func concurrentRotationsAndRightsUpdatesEndAsSomeSerialOrder() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            _ = try await PolicyStore.ensureBuiltIn(store)
            let initial = try #require(try PolicyStore.load(store.storage).first { $0.name == "registryRead" })
            for round in 0..<3 {
                let start = try #require(try PolicyStore.load(store.storage).first { $0.name == "registryRead" })
                let answers = try await withThrowingTaskGroup(of: (Operation, SharedAccessPolicy).self) { group in
                    for rights in Self.rights {
                        group.addTask { (.rotate, try await store.rotatePolicy(name: "registryRead", secondary: false)) }
                        group.addTask { (.setRights(rights), try await store.upsertPolicy(name: "registryRead", rights: rights)) }
                    }
                    var all: [(Operation, SharedAccessPolicy)] = []
                    for try await answer in group { all.append(answer) }
                    return all
                }
                let final = try #require(try PolicyStore.load(store.storage).first { $0.name == "registryRead" })
                // Bound first: the expectation's message would otherwise print every key.
                let serial = Self.serialOrderExists(from: start, to: final, answers)
                #expect(serial, "round \(round): no serial order of the \(answers.count) changes gives their answers and the final state")
                // Every rotation gave a key of its own, and only the last one is current.
                let keys = answers.filter { $0.0 == .rotate }.map(\.1.primaryKey)
                #expect(Set(keys).count == Self.rights.count)
                #expect(keys.contains(final.primaryKey))
                #expect(final.secondaryKey == initial.secondaryKey)
            }
            store.close()
        }
    }

    /// Whether some order of the operations, applied one at a time from `start`, gives every
    /// operation the answer it got and ends at `final`. A depth-first search over orders, pruned
    /// by the answers (a rotation answers the rights it saw, an update the keys it saw) and
    /// remembering the (remaining operations, state) pairs already found to lead nowhere.
    static func serialOrderExists(from start: SharedAccessPolicy, to final: SharedAccessPolicy, _ answers: [(Operation, SharedAccessPolicy)]) -> Bool
    {
        func same(_ a: SharedAccessPolicy, _ b: SharedAccessPolicy) -> Bool {
            a.name == b.name && a.rights == b.rights && a.primaryKey == b.primaryKey && a.secondaryKey == b.secondaryKey
        }
        var deadEnds = Set<[Int]>()
        func search(_ state: SharedAccessPolicy, _ stateIndex: Int, _ remaining: [Int]) -> Bool {
            if remaining.isEmpty { return same(state, final) }
            guard !deadEnds.contains(remaining + [stateIndex]) else { return false }
            for (position, index) in remaining.enumerated() {
                let (operation, answer) = answers[index]
                let follows: Bool
                switch operation {
                case .rotate:
                    follows = answer.rights == state.rights && answer.secondaryKey == state.secondaryKey && answer.primaryKey != state.primaryKey
                case .setRights(let rights):
                    follows = answer.rights == rights && answer.primaryKey == state.primaryKey && answer.secondaryKey == state.secondaryKey
                }
                var rest = remaining
                rest.remove(at: position)
                if follows, search(answer, index, rest) { return true }
            }
            deadEnds.insert(remaining + [stateIndex])
            return false
        }
        return search(start, -1, Array(answers.indices))
    }

    /// The interleaving that lost a rotation, made deterministic: both callers read the policy
    /// before either writes. The rotation made against the etag it read lands; the rights update
    /// made against the same etag is refused; made without one, it changes only the rights.
    @Test func aStaleChangeIsRefusedAndAnUnconditionalOneKeepsTheRotatedKey() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            _ = try await PolicyStore.ensureBuiltIn(store)
            func stored() throws -> SharedAccessPolicy? { try PolicyStore.load(store.storage).first { $0.name == "registryRead" } }
            let readByRotator = try #require(try stored())
            let readByEditor = try #require(try stored())
            #expect(readByRotator.etag == readByEditor.etag)

            let rotated = try await PolicyStore.apply(
                .rotate(secondary: false),
                to: "registryRead",
                ifMatch: .exact(readByRotator.etag),
                store: store
            )
            let newKey = try #require(rotated.policy?.primaryKey)
            #expect(newKey != readByEditor.primaryKey)
            #expect(rotated.policy?.etag != readByRotator.etag)
            await #expect(throws: PolicyError.self) {
                try await PolicyStore.apply(
                    .setRights([.registryRead, .serviceConnect]),
                    to: "registryRead",
                    ifMatch: .exact(readByEditor.etag),
                    store: store
                )
            }
            do throws(PolicyError) {
                _ = try await PolicyStore.apply(.remove, to: "registryRead", ifMatch: .exact(readByEditor.etag), store: store)
                Issue.record("a removal against a stale etag went through")
            } catch {
                #expect(error.preconditionFailed && !error.notFound)
            }
            #expect(try stored()?.primaryKey == newKey)
            #expect(try stored()?.rights == .registryRead)

            let updated = try await PolicyStore.apply(.setRights([.registryRead, .serviceConnect]), to: "registryRead", store: store)
            #expect(updated.policy?.primaryKey == newKey)
            #expect(updated.policy?.secondaryKey == readByEditor.secondaryKey)
            #expect(updated.generation > rotated.generation)
            #expect(try stored() == updated.policy)
            #expect(updated.policies.sorted { $0.name < $1.name } == (try PolicyStore.load(store.storage)).sorted { $0.name < $1.name })

            // A policy removed and added again never gets an etag back.
            _ = try await PolicyStore.apply(.remove, to: "registryRead", store: store)
            let again = try await PolicyStore.apply(.setRights(.registryRead), to: "registryRead", store: store)
            #expect(try #require(again.policy).version > (try #require(updated.policy)).version)

            // The authenticator keeps the newest set when the answers arrive out of order.
            let authenticator = ServiceAuthenticator(hostName: "registry.test", policies: [])
            authenticator.setPolicies(again)
            authenticator.setPolicies(updated)
            #expect(authenticator.policy(named: "registryRead") == again.policy)
            store.close()
        }
    }
}
