import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a file that holds a secret (the data key, a TLS private key, a backup of either) so
/// that no one but its owner can read it at any moment, whatever the umask.
///
/// The bytes go to a temporary file beside the destination, created by `open(2)` with
/// `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600: owner-only from the first byte (a umask only
/// removes bits), and never a file someone else created or a symbolic link planted there. It is
/// fsync'd, then published under its name in one step, and the directory is fsync'd: after a
/// crash the name holds the whole secret or nothing new, never a part of it.
///
/// Why not `FileManager.createFile(atPath:contents:attributes: [.posixPermissions: 0o600])`:
/// on Linux it writes a file with the default mode (0666 less the umask), renames it into place
/// and only then chmods it, so for a moment anyone can open the key, and a descriptor opened
/// then keeps reading it after the chmod.
public enum PrivateFile {
    /// What to do when the destination exists already.
    public enum Existing: Sendable, Hashable {
        /// Replace it (the TLS material, which is made again as a set).
        case replace
        /// Fail and leave it as it is (a data key, whose loss makes every sealed key unreadable;
        /// a backup, which never writes over anything).
        case refuse
    }

    /// Writes `bytes` to `path`, owner-only (0600) from the first byte, and fsyncs them.
    /// Errors name the path, never the contents.
    public static func write(_ bytes: [UInt8], to path: String, existing: Existing) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + "." + String(UInt64.random(in: .min ... .max), radix: 16) + ".tmp"
        let descriptor = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("cannot create", temporary) }
        // The temporary name goes once published (renamed, or linked and then removed).
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            defer { close(descriptor) }
            try writeAll(bytes, to: descriptor, path: temporary)
            guard fsync(descriptor) == 0 else { throw failure("cannot fsync", temporary) }
        }
        switch existing {
        case .replace:
            guard rename(temporary, path) == 0 else { throw failure("cannot rename into", path) }
            renamed = true
        case .refuse:
            // link(2), unlike rename(2), fails when the name exists (EEXIST).
            guard link(temporary, path) == 0 else { throw failure("cannot create", path) }
        }
        try syncDirectory(directory)
    }

    /// Creates `path` for a secret written as a stream (a dump of device keys): owner-only from
    /// the first byte, and exclusive (a file or link already there is an error, not a target).
    /// The caller writes through the handle; it closes when released.
    public static func create(_ path: String) throws -> FileHandle {
        let descriptor = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("cannot create", path) }
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    /// Copies the file at `source` (a secret) to `destination` as `write` does.
    public static func copy(from source: String, to destination: String, existing: Existing) throws {
        let contents: Data
        do {
            contents = try Data(contentsOf: URL(fileURLWithPath: source))
        } catch {
            throw StoreError("cannot read \(source): \(error.localizedDescription)")
        }
        try write(Array(contents), to: destination, existing: existing)
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            // A short write is rare for a regular file; copying the rest then costs nothing.
            let remaining = offset == 0 ? bytes : Array(bytes[offset...])
            let written = systemWrite(descriptor, remaining, remaining.count)
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write", path)
            }
            offset += written
        }
    }

    /// Makes the new name durable: a rename or link is an update of the directory.
    private static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot open", path) }
        defer { close(descriptor) }
        // Some file systems do not sync directories (EINVAL); their renames are as durable as they get.
        guard fsync(descriptor) == 0 || errno == EINVAL else { throw failure("cannot fsync", path) }
    }

    private static func failure(_ what: String, _ path: String) -> StoreError {
        StoreError("\(what) \(path): \(String(cString: strerror(errno)))")
    }
}

/// `write(2)`, named apart from `PrivateFile.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: [UInt8], _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.write(descriptor, bytes, count)
    #elseif canImport(Musl)
        Musl.write(descriptor, bytes, count)
    #else
        Darwin.write(descriptor, bytes, count)
    #endif
}
