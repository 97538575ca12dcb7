import Dispatch
import Foundation
import RegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A JSON Lines file: one message per line, fsync'd before `deliver` returns, owner-only,
/// rotated by size (`path.1` is the newest old file, up to `path.<maxFiles>`).
///
/// Writes and fsyncs run on the sink's own serial queue, never on the cooperative pool.
///
/// A batch that fails halfway (a full disk, an I/O error) is cut back off the file before the
/// failure is reported, and a file found ending in a partial line when the sink opens it (a
/// crash mid-write, or a cut that failed) loses that partial line: the retried batch always
/// starts on a fresh line, so a reader never sees a torn JSON line glued to a whole one.
public final class FileSink: Sink, @unchecked Sendable {
    // Why unchecked: `descriptor` and `size` are touched only on `queue`.
    public let path: String
    let maxFileBytes: Int
    let maxFiles: Int
    private let queue: DispatchQueue
    private var descriptor: Int32 = -1
    private var size = 0

    public var maxBatch: Int { 512 }

    public init(path: String, maxFileBytes: Int, maxFiles: Int) {
        self.path = path
        self.maxFileBytes = maxFileBytes
        self.maxFiles = maxFiles
        self.queue = DispatchQueue(label: "registryd.file-sink")
    }

    public func deliver(_ messages: [RouteMessage]) async -> DeliveryOutcome {
        var bytes: [UInt8] = []
        for message in messages {
            bytes += message.encoded
            bytes.append(10)
        }
        let data = bytes
        return await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: self.write(data)) }
        }
    }

    private func write(_ bytes: [UInt8]) -> DeliveryOutcome {
        var sizeBefore: Int?
        do {
            if descriptor >= 0, size > 0, size + bytes.count > maxFileBytes { try rotate() }
            if descriptor < 0 { try open() }
            sizeBefore = size
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, bytes.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SinkError("write \(path): \(String(cString: strerror(errno)))")
                }
                offset += n
            }
            guard fsync(descriptor) == 0 else { throw SinkError("fsync \(path): \(String(cString: strerror(errno)))") }
            size += bytes.count
            return .delivered
        } catch {
            if descriptor >= 0 {
                // Best effort: if this cut fails too, `open` drops the partial line instead.
                if let sizeBefore { try? Self.cut(descriptor, to: sizeBefore, path: path) }
                close(descriptor)
            }
            // Reopen next time: the file may have been moved or the disk may recover.
            descriptor = -1
            return .failed("\(error)")
        }
    }

    /// Truncates the file back to `length`: what it held before a batch that failed. The
    /// descriptor appends (`O_APPEND`), so the next write lands at the new end.
    static func cut(_ descriptor: Int32, to length: Int, path: String) throws {
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw SinkError("truncate \(path): \(String(cString: strerror(errno)))") }
    }

    /// The length of the file's whole lines: up to and including its last newline (0 if it has
    /// none). Reads backwards from the end, a block at a time; a torn line is at most one
    /// message long.
    static func lengthOfWholeLines(_ descriptor: Int32, size: Int, path: String) throws -> Int {
        var end = size
        var block = [UInt8](repeating: 0, count: 4096)
        while end > 0 {
            let start = max(0, end - block.count)
            let count = end - start
            let n = pread(descriptor, &block, count, off_t(start))
            if n < 0 {
                if errno == EINTR { continue }
                throw SinkError("read \(path): \(String(cString: strerror(errno)))")
            }
            guard n == count else { throw SinkError("read \(path): the file shrank while it was opened") }
            if let newline = block[0..<count].lastIndex(of: 10) { return start + newline + 1 }
            end = start
        }
        return 0
    }

    private func open() throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Read as well as write: `lengthOfWholeLines` looks at the file's end.
        let fd = Glibc.open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SinkError("open \(path): \(String(cString: strerror(errno)))") }
        do {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw SinkError("stat \(path): \(String(cString: strerror(errno)))") }
            let whole = try Self.lengthOfWholeLines(fd, size: Int(st.st_size), path: path)
            if whole < Int(st.st_size) { try Self.cut(fd, to: whole, path: path) }
            descriptor = fd
            size = whole
        } catch {
            close(fd)
            throw error
        }
    }

    private func rotate() throws {
        close(descriptor)
        descriptor = -1
        let fm = FileManager.default
        try? fm.removeItem(atPath: "\(path).\(maxFiles)")
        if maxFiles > 1 {
            for i in stride(from: maxFiles - 1, through: 1, by: -1) where fm.fileExists(atPath: "\(path).\(i)") {
                try fm.moveItem(atPath: "\(path).\(i)", toPath: "\(path).\(i + 1)")
            }
        }
        try fm.moveItem(atPath: path, toPath: "\(path).1")
    }

    public func shutdown() async {
        await withCheckedContinuation { continuation in
            queue.async {
                if self.descriptor >= 0 { close(self.descriptor) }
                self.descriptor = -1
                continuation.resume()
            }
        }
    }
}

struct SinkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
