import Dispatch
import Foundation
import Logging
import Synchronization

/// The daemon's log output: lines are formatted by swift-log's `StreamLogHandler` on the calling
/// task, then handed to one background thread that writes them to standard error. A request
/// never waits for a write to journald (which blocks when journald throttles or falls behind).
///
/// Bounded: at most `capacity` bytes wait; past that, lines are dropped and counted, and the
/// next write says how many were lost (a log that cannot keep up must not take the daemon's
/// memory or latency with it).
final class BackgroundLogOutput: Sendable {
    private struct State {
        var lines: [String] = []
        var bytes = 0
        var dropped = 0
        var writing = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let capacity: Int
    private let write: @Sendable (String) -> Void

    /// - Parameter write: where text goes (standard error in the daemon; tests capture it).
    init(capacity: Int = 4 << 20, write: @escaping @Sendable (String) -> Void = BackgroundLogOutput.standardError) {
        self.capacity = capacity
        self.write = write
        let thread = Thread { [self] in run() }
        thread.name = "registryd-log"
        thread.start()
    }

    static let standardError: @Sendable (String) -> Void = { text in
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Queues one formatted line (never blocks on I/O).
    func enqueue(_ line: String) {
        let signal = state.withLock { s -> Bool in
            guard s.bytes + line.utf8.count <= capacity else {
                s.dropped += 1
                return false
            }
            s.lines.append(line)
            s.bytes += line.utf8.count
            return s.lines.count == 1
        }
        if signal { wake.signal() }
    }

    /// Bytes waiting to be written (tests wait on it instead of on time).
    var queuedBytesForTests: Int { state.withLock { $0.bytes } }

    /// Waits until everything queued so far is written (at exit).
    func flush() {
        while state.withLock({ !$0.lines.isEmpty || $0.writing }) { usleep(1000) }
    }

    private func run() {
        while true {
            wake.wait()
            while true {
                let (lines, dropped) = state.withLock { s -> ([String], Int) in
                    defer {
                        s.lines.removeAll(keepingCapacity: true)
                        s.bytes = 0
                        s.dropped = 0
                    }
                    s.writing = !s.lines.isEmpty || s.dropped > 0
                    return (s.lines, s.dropped)
                }
                guard !lines.isEmpty || dropped > 0 else { break }
                var text = lines.joined()
                if dropped > 0 { text += "registryd: \(dropped) log lines dropped (the log output could not keep up)\n" }
                write(text)
                state.withLock { $0.writing = false }
            }
        }
    }

    /// A `TextOutputStream` for `StreamLogHandler` that queues what it is given.
    struct Stream: TextOutputStream, Sendable {
        let output: BackgroundLogOutput
        mutating func write(_ string: String) { output.enqueue(string) }
    }

    /// Makes every logger of the process write through `output` (call once, first thing).
    static func bootstrap(_ output: BackgroundLogOutput) {
        LoggingSystem.bootstrap { label in
            StreamLogHandler(label: label, stream: Stream(output: output), metadataProvider: nil)
        }
    }
}
