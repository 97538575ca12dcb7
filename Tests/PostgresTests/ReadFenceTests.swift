import Synchronization
import Testing

@testable import RegistryPostgres

/// The fence that lets point reads come from a node's view of the log: every reader gets a head
/// read that started after it arrived (so it covers every write acknowledged before), and
/// concurrent readers share reads. No database here: the head is a counter.
@Suite struct ReadFenceTests {
    @Test func everyReaderGetsAHeadReadThatStartedAfterItArrived() async throws {
        let fence = ReadFence()
        let committed = Counter()
        let reads = Counter()
        let readHead: @Sendable () async throws -> UInt64 = {
            reads.value.add(1, ordering: .relaxed)
            let seen = committed.value.load(ordering: .sequentiallyConsistent)
            // A round trip, during which more readers arrive (and must wait for the next read).
            try await Task.sleep(for: .milliseconds(2))
            return seen
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    // A write acknowledged just before this read began...
                    let acknowledged = committed.value.add(1, ordering: .sequentiallyConsistent).newValue
                    // ...is covered by the head this read is given.
                    let head = try await fence.committedSeq(readHead)
                    #expect(head >= acknowledged)
                }
            }
            try await group.waitForAll()
        }
        #expect(reads.value.load(ordering: .relaxed) <= 200)
    }

    final class Counter: Sendable {
        let value = Atomic<UInt64>(0)
    }

    @Test func aFailedHeadReadFailsItsReadersAndTheNextReadTriesAgain() async throws {
        struct Unreachable: Error {}
        let fence = ReadFence()
        await #expect(throws: Unreachable.self) { _ = try await fence.committedSeq { throw Unreachable() } }
        #expect(try await fence.committedSeq { 7 } == 7)
    }
}
