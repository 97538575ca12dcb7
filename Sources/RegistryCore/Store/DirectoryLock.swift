import Foundation

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
    private let descriptor: Int32

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
        self.descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
