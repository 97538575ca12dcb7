import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An exclusive `flock` on `DATA_DIR/registryd.lock`: one writing process per data directory.
///
/// The kernel drops the lock when the process dies (even by SIGKILL), so a crash never leaves a
/// stale lock behind. The file holds the owner's pid for the error message.
public final class DirectoryLock: Sendable {
    /// The locked descriptor until `release()` (or deinit) gives it up.
    private let descriptor: Mutex<Int32?>

    public init(path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let owner = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw StoreError(
                "the data directory is in use by another registryd process\(owner.isEmpty ? "" : " (pid \(owner))"); "
                    + "stop it first (only one process may write a data directory)"
            )
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        self.descriptor = Mutex(fd)
    }

    /// Gives the directory up (idempotent): another store, even in this process, may then open it.
    public func release() {
        guard
            let fd = descriptor.withLock({ value -> Int32? in
                defer { value = nil }
                return value
            })
        else { return }
        flock(fd, LOCK_UN)
        close(fd)
    }

    deinit { release() }
}
