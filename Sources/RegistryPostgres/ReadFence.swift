import Synchronization

/// Read-your-writes across nodes for point reads, without a document query per read.
///
/// A read must see every write acknowledged (on any node) before it arrived. It asks the fence
/// for the committed head seq; once this node's view of the log (`LogFollower`) has folded that
/// far, the view answers. The fence reads the head once for everyone waiting: a read joins the
/// next head read that *starts after it arrived* (one already in flight may predate a write the
/// reader saw acknowledged), so concurrent reads share one small query instead of each sending
/// its own, which is what made GETs cost a round trip each (issue 19, ReadIndex batching as in
/// Raft implementations).
final class ReadFence: Sendable {
    private struct State {
        var reading = false
        /// Readers waiting for a head read that starts after they arrived.
        var waiting: [CheckedContinuation<UInt64, any Error>] = []
    }

    private let state = Mutex(State())

    /// The committed head seq, read after this call began (by `readHead`, shared with the
    /// readers that arrive meanwhile).
    func committedSeq(_ readHead: @escaping @Sendable () async throws -> UInt64) async throws -> UInt64 {
        try await withCheckedThrowingContinuation { continuation in
            let starts = state.withLock { s -> Bool in
                s.waiting.append(continuation)
                guard !s.reading else { return false }
                s.reading = true
                return true
            }
            if starts { Task { await self.readRounds(readHead) } }
        }
    }

    /// Reads the head for whoever waits, round after round, until no one does.
    private func readRounds(_ readHead: @Sendable () async throws -> UInt64) async {
        while true {
            let readers = state.withLock { s -> [CheckedContinuation<UInt64, any Error>] in
                defer { s.waiting = [] }
                if s.waiting.isEmpty { s.reading = false }
                return s.waiting
            }
            if readers.isEmpty { return }
            let result: Result<UInt64, any Error>
            do { result = .success(try await readHead()) } catch { result = .failure(error) }
            for reader in readers { reader.resume(with: result) }
        }
    }
}
