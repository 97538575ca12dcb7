import Foundation

/// A fixed set of threads for blocking work (long read scans, file I/O of jobs) so that it never
/// runs on the cooperative pool and never grows the process's thread count with the load: work
/// beyond the threads waits in order.
///
/// Not for writes: the store's single writer has its own thread.
public final class BlockingPool: @unchecked Sendable {
    // Why unchecked: `work` and `closed` are guarded by `condition`.
    private let condition = NSCondition()
    private var work: [@Sendable () -> Void] = []
    private var closed = false

    /// The process-wide pool: as many threads as cores, at least two.
    public static let shared = BlockingPool(threads: max(2, ProcessInfo.processInfo.activeProcessorCount), name: "registryd-block")

    public init(threads: Int, name: String) {
        for i in 0..<max(1, threads) {
            let thread = Thread { [self] in self.loop() }
            thread.name = "\(name)-\(i)"
            thread.start()
        }
    }

    /// Runs `body` on one of the pool's threads and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue { continuation.resume(with: Result { try body() }) }
        }
    }

    private func enqueue(_ item: @escaping @Sendable () -> Void) {
        condition.lock()
        work.append(item)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while work.isEmpty && !closed { condition.wait() }
            if work.isEmpty {
                condition.unlock()
                return
            }
            let item = work.removeFirst()
            condition.unlock()
            item()
        }
    }

    /// Lets the threads end once the queued work is done (tests that make their own pools).
    public func shutdown() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}
