import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Held while a test runs under a changed umask. Without it two such sections running in
/// parallel could interleave their restores and leave the process at the other's mask.
private let umaskLock = NSLock()

/// Runs `body` with the process's file-creation mask set to `mask`, then restores it.
///
/// The tests of secret files run under `umask 0`, the most permissive, so that only the mode a
/// file is created with keeps it private. The mask is process-wide (other tests running at the
/// same time create their files under it too, which only widens their temporary files' modes),
/// so keep `body` short and synchronous; such sections run one at a time.
public func withUmask<R>(_ mask: mode_t, _ body: () throws -> R) rethrows -> R {
    umaskLock.lock()
    defer { umaskLock.unlock() }
    let previous = umask(mask)
    defer { umask(previous) }
    return try body()
}
