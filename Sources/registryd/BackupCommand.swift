import ArgumentParser
import Foundation
import RegistryCore

/// `registryd backup --data-dir DIR --to PATH`: a consistent, compacted copy of a data directory,
/// safe while the daemon runs (LMDB copies from one read snapshot and never blocks the writer).
///
/// PATH becomes a data directory of its own: `lmdb/` (compacted), and unless `--without-secrets`
/// the data key and the TLS material, so `serve --data-dir PATH` restores the registry as it was.
/// Without the secrets the copy still verifies (`audit verify`) and replays; the device keys in
/// it stay sealed.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy a data directory consistently (compacted), even while the daemon runs."
    )

    @OptionGroup var data: DataDirectoryOptions

    @Option(help: "The new directory to write (must not exist, or be empty).")
    var to: String

    @Flag(help: "Leave out data.key and the TLS keys (for auditors: the copy verifies, its device keys stay sealed).")
    var withoutSecrets = false

    func run() async throws {
        let source = DataDirectory(path: data.dataDir)
        let storage = try StoreOpening.reader(source, needsKeys: false)
        let fm = FileManager.default
        if fm.fileExists(atPath: to), !((try? fm.contentsOfDirectory(atPath: to))?.isEmpty ?? false) {
            throw ValidationError("\(to) exists and is not empty; back up into a new directory")
        }
        let target = DataDirectory(path: to)
        try await storage.backup(into: target)
        var copied = ["lmdb/data.mdb"]
        if !withoutSecrets {
            if fm.fileExists(atPath: source.dataKeyPath) {
                try copyPrivate(source.dataKeyPath, to: target.dataKeyPath)
                copied.append("data.key")
            }
            let tls = source.path + "/tls"
            if let names = try? fm.contentsOfDirectory(atPath: tls) {
                try fm.createDirectory(atPath: to + "/tls", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                for name in names.sorted() {
                    try copyPrivate(tls + "/" + name, to: to + "/tls/" + name)
                    copied.append("tls/" + name)
                }
            }
        }
        let head = try await StoreOpening.reader(target, needsKeys: false).head()
        print("backed up \(data.dataDir) to \(to): events 1...\(head.seq) (\(copied.joined(separator: ", ")))")
    }

    /// Copies a file owner-only from the first byte (no window where a key is readable by
    /// others), fsync'd, and never over an existing file.
    func copyPrivate(_ source: String, to destination: String) throws {
        try PrivateFile.copy(from: source, to: destination, existing: .refuse)
    }
}
