import NIOCore
import NIOPosix
import Synchronization

/// The writer's own thread: one event loop that both serves the writer's database connections
/// and runs the writer task (a task executor preference), so a reply from PostgreSQL resumes
/// the writer on the thread that read it, without queueing behind every HTTP request's task on
/// the cooperative pool. Under load a batch makes several round trips inside the log head's
/// lock; on the shared pool each took 1-5 ms of scheduling (`registryd_writer_phase_seconds`).
final class WriterExecutor: TaskExecutor {
    let group: MultiThreadedEventLoopGroup
    private let loop: any EventLoop
    /// Once the thread is going away, work still arriving (a transaction abandoned by its
    /// watchdog ends whenever its connection fails) runs on the global executor instead.
    private let closed = Mutex(false)

    init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let onLoop = closed.withLock { closed in
            guard !closed else { return false }
            // Under the lock: `shutdown` cannot begin between the check and the hand-over.
            loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
            return true
        }
        if !onLoop { globalConcurrentExecutor.enqueue(job) }
    }

    /// Ends the thread; later work runs on the global executor.
    func shutdown() async {
        let first = closed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        try? await group.shutdownGracefully()
    }
}
