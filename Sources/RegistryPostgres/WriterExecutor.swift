import NIOCore
import NIOPosix

/// The writer's own thread: one event loop that both serves the writer's database connections
/// and runs the writer task (a task executor preference), so a reply from PostgreSQL resumes
/// the writer on the thread that read it, without queueing behind every HTTP request's task on
/// the cooperative pool. Under load a batch makes about ten round trips inside the log head's
/// lock; measured on the shared pool each took 1-5 ms of scheduling (`registryd_writer_phase_seconds`).
final class WriterExecutor: TaskExecutor {
    let group: MultiThreadedEventLoopGroup
    private let loop: any EventLoop

    init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Ends the thread (once nothing runs on it).
    func shutdown() async {
        try? await group.shutdownGracefully()
    }
}
