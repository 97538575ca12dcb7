import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A JSON Lines file: one message per line, fsync'd before `deliver` returns, owner-only,
/// rotated by size (`path.1` is the newest old file, up to `path.<maxFiles>`).
///
/// Writes and fsyncs run on the sink's own serial queue, never on the cooperative pool.
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
        do {
            if descriptor >= 0, size > 0, size + bytes.count > maxFileBytes { try rotate() }
            if descriptor < 0 { try open() }
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
            // Reopen next time: the file may have been moved or the disk may recover.
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
            return .failed("\(error)")
        }
    }

    private func open() throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SinkError("open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        fstat(fd, &st)
        descriptor = fd
        size = Int(st.st_size)
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
