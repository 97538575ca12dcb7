import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension PrivateFile {
    /// `create(_:)` relative to an open directory (`openat(2)`): the file lands in that very
    /// directory even if its path has been re-pointed since it was opened (a job container
    /// swapped for a symbolic link), owner-only from the first byte and exclusive.
    /// - Parameter name: a plain file name, no `/`.
    public static func create(_ name: String, in directory: Int32) throws -> FileHandle {
        let descriptor = openat(directory, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StoreError("cannot create \(name): \(String(cString: strerror(errno)))") }
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }
}
