import Foundation
import RegistryCore
import RegistryTransfer

// On Linux `struct stat` comes from whichever clang module first includes <sys/stat.h>: the
// compiler names CDispatch with some build flags and CoreFoundation with others, and
// MemberImportVisibility wants the one it picked imported.
#if canImport(CDispatch)
    import CDispatch
#endif
#if canImport(CoreFoundation)
    import CoreFoundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A job container opened when the job runs, and every file of the job opened relative to it.
///
/// Why not paths: a container is checked when the job is created, but the job runs later, and
/// anyone who can write under a job root can swap the directory for a symbolic link meanwhile.
/// Opening the resolved path one component at a time without following links, then creating,
/// reading and renaming with `openat`/`renameat` on that descriptor, keeps every file of the job
/// in the directory that was checked: a link anywhere on the path fails the job instead.
final class JobDirectory: Sendable {
    /// The container's path, as resolved when the job was created (no symbolic link in it).
    let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Opens `path` without following a symbolic link in any component, and checks again that
    /// it is inside one of `roots` (resolved now: a root re-pointed since counts as it is now).
    static func opened(_ path: String, roots: [String]) throws -> JobDirectory {
        var current = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard current >= 0 else { throw ImportExportError("cannot open /: \(String(cString: strerror(errno)))") }
        var walked = ""
        for component in path.split(separator: "/").map(String.init) {
            walked += "/" + component
            let next = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let failure = errno
            let kind: Entry = next >= 0 ? .directory : entry(component, in: current)
            close(current)
            guard next >= 0 else {
                if kind == .symbolicLink {
                    throw ImportExportError(
                        "\(walked) is a symbolic link now (it was not when the job was created); jobs write and read only inside their root"
                    )
                }
                throw ImportExportError("cannot open the container \(path) at \(walked): \(String(cString: strerror(failure)))")
            }
            current = next
        }
        let directory = JobDirectory(path: path, descriptor: current)
        guard roots.contains(where: { JobService.isInside(path, JobService.realPath($0)) }) else {
            throw ImportExportError("the container \(path) is no longer inside the configured job roots")
        }
        return directory
    }

    enum Entry: Equatable {
        case missing, regularFile, directory, symbolicLink, other
    }

    /// What is at `name` in the directory (a link is reported as a link, not followed).
    func entry(_ name: String) -> Entry { Self.entry(name, in: descriptor) }

    private static func entry(_ name: String, in descriptor: Int32) -> Entry {
        var status = stat()
        guard fstatat(descriptor, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { return .missing }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .regularFile
        case S_IFDIR: return .directory
        case S_IFLNK: return .symbolicLink
        default: return .other
        }
    }

    /// Throws unless `name` is free or a regular file that a job output may replace.
    func checkReplaceable(_ name: String) throws {
        switch entry(name) {
        case .missing, .regularFile: return
        case .directory: throw ImportExportError("\(path)/\(name) is a directory; a job replaces only a regular file and never removes a directory")
        case .symbolicLink: throw ImportExportError("\(path)/\(name) is a symbolic link; jobs read and write regular files only")
        case .other: throw ImportExportError("\(path)/\(name) is not a regular file")
        }
    }

    /// A new file for a job's output, owner-only from its first byte (`PrivateFile`); an
    /// existing file or link at `name` is an error.
    func createPrivate(_ name: String) throws -> FileHandle {
        do {
            return try PrivateFile.create(name, in: descriptor)
        } catch {
            throw ImportExportError("\(path)/\(error)")
        }
    }

    /// Opens a regular file for reading, and its size. A link, a FIFO or a device is refused
    /// (`O_NONBLOCK` so that opening a FIFO cannot hang the job; regular files ignore it).
    func openForReading(_ name: String) throws -> (handle: FileHandle, size: Int) {
        let file = openat(descriptor, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else {
            if entry(name) == .symbolicLink { throw ImportExportError("\(path)/\(name) is a symbolic link; jobs read and write regular files only") }
            throw ImportExportError("cannot read \(path)/\(name): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard fstat(file, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(file)
            throw ImportExportError("\(path)/\(name) is not a regular file")
        }
        return (FileHandle(fileDescriptor: file, closeOnDealloc: true), Int(status.st_size))
    }

    /// Publishes a finished temporary file under `name` in one step (`renameat`): the name holds
    /// the old file until then, and a directory there is never replaced (the rename itself
    /// refuses one, should it appear after the check).
    func publish(_ temporary: String, as name: String) throws {
        try checkReplaceable(name)
        guard renameat(descriptor, temporary, descriptor, name) == 0 else {
            let failure = errno
            try checkReplaceable(name)
            throw ImportExportError("cannot rename \(temporary) to \(path)/\(name): \(String(cString: strerror(failure)))")
        }
        // The new name is part of the directory: durable once the directory is.
        _ = fsync(descriptor)
    }

    /// Removes a temporary file left by a job that did not finish.
    func remove(_ name: String) {
        _ = unlinkat(descriptor, name, 0)
    }
}
