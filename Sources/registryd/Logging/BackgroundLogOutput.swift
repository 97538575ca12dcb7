import Dispatch
import Foundation
import Logging
import Synchronization

/// The daemon's log output: events are captured on the calling task (`BackgroundLogHandler`),
/// then formatted and written to standard error by one background thread. A request never
/// waits for a write to journald (which blocks when journald throttles or falls behind), nor
/// pays for formatting the line.
///
/// Bounded: at most `capacity` bytes wait; past that, lines are dropped and counted, and the
/// next write says how many were lost (a log that cannot keep up must not take the daemon's
/// memory or latency with it).
final class BackgroundLogOutput: Sendable {
    private struct State {
        var lines: [@Sendable () -> String] = []
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

    /// Queues one line (never blocks on I/O).
    func enqueue(_ line: String) {
        enqueue(line.utf8.count) { line }
    }

    /// Queues a line that `make` formats on the log thread; `bytes` counts against the bound.
    func enqueue(_ bytes: Int, _ make: @escaping @Sendable () -> String) {
        let signal = state.withLock { s -> Bool in
            guard s.bytes + bytes <= capacity else {
                s.dropped += 1
                return false
            }
            s.lines.append(make)
            s.bytes += bytes
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
                let (lines, dropped) = state.withLock { s -> ([@Sendable () -> String], Int) in
                    defer {
                        s.lines.removeAll(keepingCapacity: true)
                        s.bytes = 0
                        s.dropped = 0
                    }
                    s.writing = !s.lines.isEmpty || s.dropped > 0
                    return (s.lines, s.dropped)
                }
                guard !lines.isEmpty || dropped > 0 else { break }
                var text = ""
                for make in lines { text += make() }
                if dropped > 0 { text += "registryd: \(dropped) log lines dropped (the log output could not keep up)\n" }
                write(text)
                state.withLock { $0.writing = false }
            }
        }
    }

    /// Makes every logger of the process write through `output` (call once, first thing).
    static func bootstrap(_ output: BackgroundLogOutput) {
        LoggingSystem.bootstrap { label in BackgroundLogHandler(label: label, output: output) }
    }
}

/// A swift-log handler whose `log` only captures the event (time, level, merged metadata) and
/// queues it: the line is formatted on the log thread, in `StreamLogHandler`'s format
/// (`2026-01-01T00:00:00+0000 info registryd: key=value … [Source] message`), so a request pays
/// neither `strftime`/`localtime` nor the metadata's sorting and interpolation.
struct BackgroundLogHandler: LogHandler {
    let label: String
    let output: BackgroundLogOutput
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let explicit = event.metadata, !explicit.isEmpty { merged.merge(explicit) { $1 } }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        let captured = CapturedLine(time: time(nil), level: event.level, label: label, metadata: merged, source: event.source, message: event.message)
        output.enqueue(captured.estimatedBytes) { captured.formatted() }
    }
}

/// One log event as captured on the caller's task, formatted later on the log thread.
struct CapturedLine: Sendable {
    let time: time_t
    let level: Logger.Level
    let label: String
    let metadata: Logger.Metadata
    let source: String
    let message: Logger.Message

    /// For the queue's byte bound, without formatting.
    var estimatedBytes: Int { 64 + label.utf8.count + source.utf8.count + message.description.utf8.count + metadata.count * 32 }

    func formatted() -> String {
        let pretty = metadata.isEmpty ? "" : " " + metadata.lazy.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
        return "\(Self.timestamp(time)) \(level)\(label.isEmpty ? "" : " ")\(label):\(pretty) [\(source)] \(message)\n"
    }

    static func timestamp(_ seconds: time_t) -> String {
        var seconds = seconds
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
