import Foundation

/// The files of a registry data directory.
///
/// ```
/// DATA_DIR/
///   lmdb/data.mdb, lmdb/lock.mdb   the LMDB environment (log + projections)
///   data.key                        the key that seals device keys (owner-only, keep separate backups)
///   registryd.lock                  held (flock) by the one process that writes
/// ```
public struct DataDirectory: Sendable, Hashable {
    public var path: String

    public init(path: String) { self.path = path }

    public var environmentPath: String { path + "/lmdb" }
    public var dataKeyPath: String { path + "/data.key" }
    public var lockPath: String { path + "/registryd.lock" }

    /// Whether this looks like an initialised registry.
    public var exists: Bool { FileManager.default.fileExists(atPath: environmentPath + "/data.mdb") }

    /// Creates the directories, owner-only.
    public func create() throws {
        for dir in [path, environmentPath] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
    }

    /// Loads the data key, creating a random one (owner-only file) when `create` is set and none exists.
    /// `keyPath` names a key file elsewhere (a PostgreSQL node's `storage.dataKeyFile`).
    public func loadDataKey(create: Bool, keyPath: String? = nil) throws -> [UInt8] {
        let dataKeyPath = keyPath ?? self.dataKeyPath
        if let text = try? String(contentsOfFile: dataKeyPath, encoding: .utf8) {
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw StoreError("\(dataKeyPath) does not hold a base64 32-byte key")
            }
            return Array(data)
        }
        guard create else { throw StoreError("\(dataKeyPath) is missing: the sealed device keys cannot be opened without it") }
        var generator = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let text = Data(key).base64EncodedString() + "\n"
        // Owner-only from the first byte, and never over an existing file: a data key that cannot
        // be read (damaged, or not ours to read) must stop the start, not be replaced, since every
        // key sealed under it would be lost with it.
        try PrivateFile.write(Array(text.utf8), to: dataKeyPath, existing: .refuse)
        return key
    }
}

/// A storage-level failure with an operator-facing message (never key material).
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
