import Testing

@testable import RegistryCore

/// The stall rule of hardening item 14 as a table: when the writer counts as stuck, given its
/// heartbeat and the queue (the cases a real store cannot be put into on demand included).
struct WriterProgressTests {
    let threshold = Duration.seconds(5)

    @Test func idleIsNeverStuckAndARunningJobIsStuckOnlyPastTheThreshold() {
        let progress = WriterProgress(now: .zero)
        #expect(progress.stall(now: .seconds(3600), threshold: threshold, queued: 0, oldestQueuedAt: nil) == nil)
        progress.began(at: .seconds(100))
        #expect(progress.stall(now: .seconds(105), threshold: threshold, queued: 3, oldestQueuedAt: .seconds(101)) == nil)
        let stall = progress.stall(now: .seconds(106), threshold: threshold, queued: 3, oldestQueuedAt: .seconds(101))
        #expect(stall == WriterStall(inTransactionFor: .seconds(6), queued: 3, oldestWaitingFor: .seconds(5)))
        #expect(stall?.description == "a write transaction has been running for 6 s (3 writes queued behind it)")
        progress.finished(at: .seconds(106))
        #expect(progress.stall(now: .seconds(106), threshold: threshold, queued: 3, oldestQueuedAt: .seconds(101)) == nil)
    }

    @Test func queuedWorkWithoutProgressIsStuck() {
        let progress = WriterProgress(now: .zero)
        // Work waits and the writer neither began nor finished anything for longer than the threshold.
        let stall = progress.stall(now: .seconds(20), threshold: threshold, queued: 2, oldestQueuedAt: .seconds(10))
        #expect(stall == WriterStall(inTransactionFor: nil, queued: 2, oldestWaitingFor: .seconds(10)))
        #expect(stall?.description == "2 writes queued for 10 s without the writer taking one")
        // A writer that keeps finishing jobs is slow, not stuck, even with old work queued.
        progress.began(at: .seconds(18))
        progress.finished(at: .seconds(19))
        #expect(progress.stall(now: .seconds(20), threshold: threshold, queued: 2, oldestQueuedAt: .seconds(10)) == nil)
        // Work that has waited less than the threshold is not a stall either.
        #expect(progress.stall(now: .seconds(40), threshold: threshold, queued: 1, oldestQueuedAt: .seconds(38)) == nil)
    }
}
