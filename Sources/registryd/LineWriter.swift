import Foundation
import Synchronization

/// Writes whole lines to stdout unbuffered (one `write` each), so a reader sees every line that
/// was written before the process died.
final class LineWriter: Sendable {
    private let lock = Mutex(())

    func line(_ text: String) {
        let data = Data((text + "\n").utf8)
        lock.withLock { _ in FileHandle.standardOutput.write(data) }
    }
}
