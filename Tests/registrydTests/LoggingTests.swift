import Foundation
import Logging
import RegistryAPI
import Synchronization
import Testing

@testable import registryd

/// The daemon's log output (issue 17, "the defaults are what we benchmark"): lines leave on a
/// background thread, bounded, and the access log keeps its own lines for what matters.
struct LoggingTests {
    final class Captured: Sendable {
        let text = Mutex("")
        let writes = Atomic<Int>(0)
        let gate = Mutex(true)
    }

    @Test func linesAreWrittenInOrderByTheBackgroundThread() {
        let captured = Captured()
        let output = BackgroundLogOutput { text in
            captured.writes.add(1, ordering: .relaxed)
            captured.text.withLock { $0 += text }
        }
        for i in 0..<1000 { output.enqueue("line \(i)\n") }
        output.flush()
        let lines = captured.text.withLock { $0 }.split(separator: "\n")
        #expect(lines == (0..<1000).map { "line \($0)" }[...].map { Substring($0) })
        // Lines that wait are written together, not one write each.
        #expect(captured.writes.load(ordering: .relaxed) <= 1000)
    }

    @Test func aBlockedOutputDropsLinesAndSaysHowMany() {
        let captured = Captured()
        let release = DispatchSemaphore(value: 0)
        let first = Atomic<Bool>(true)
        // The first write blocks (journald not reading), as a full pipe would.
        let output = BackgroundLogOutput(capacity: 100) { text in
            if first.exchange(false, ordering: .relaxed) { release.wait() }
            captured.text.withLock { $0 += text }
        }
        output.enqueue("first\n")
        // Wait until the writer holds "first" (the queue is empty again), without timing.
        while captured.text.withLock({ $0.isEmpty }) && output.queuedBytesForTests > 0 { usleep(100) }
        // 100 bytes of room: 10 lines of 10 bytes fit, the other 40 are dropped; enqueue never blocks.
        for i in 0..<50 { output.enqueue("line \(String(i).padding(toLength: 4, withPad: " ", startingAt: 0))\n") }
        release.signal()
        output.flush()
        let text = captured.text.withLock { $0 }
        #expect(text.hasPrefix("first\nline 0   \n"))
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("line ") }.count == 10)
        #expect(text.contains("registryd: 40 log lines dropped"))
    }

    struct Collect: TextOutputStream, Sendable {
        let into: Captured
        mutating func write(_ string: String) { into.text.withLock { $0 += string } }
    }

    /// Lines formatted on the log thread read as swift-log's own `StreamLogHandler` writes them
    /// (operators' greps and the end-to-end tests depend on the format).
    @Test func linesKeepStreamLogHandlersFormat() {
        let ours = Captured()
        let output = BackgroundLogOutput { text in ours.text.withLock { $0 += text } }
        let reference = Captured()
        var a = Logger(label: "registryd") { label in BackgroundLogHandler(label: label, output: output) }
        var b = Logger(label: "registryd") { label in StreamLogHandler(label: label, stream: Collect(into: reference), metadataProvider: nil) }
        a[metadataKey: "hb.request.id"] = "r1"
        b[metadataKey: "hb.request.id"] = "r1"
        for logger in [a, b] {
            logger.info("request", metadata: ["status": .stringConvertible(200), "operation": "PUT /devices/{deviceId}", "b": ["x", "y"]])
            logger.warning("plain")
        }
        output.flush()
        // Equal but for the timestamp (the first word), which may tick between the two.
        func body(_ text: String) -> [String] { text.split(separator: "\n").map { String($0.drop { $0 != " " }) } }
        #expect(body(ours.text.withLock { $0 }) == body(reference.text.withLock { $0 }))
        #expect(body(ours.text.withLock { $0 }).count == 2)
    }
}
