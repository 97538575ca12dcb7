import ArgumentParser
import Foundation
import LMDB
import RegistryAPI
import RegistryCore

/// `registryd history`: every change to one identity, from the per-device index.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Every change to a device (or one module): time, sequence, event, actor, request id and changed fields, as JSON Lines."
    )

    @OptionGroup var data: DataDirectoryOptions

    @Argument(help: "The device id.")
    var deviceId: String

    @Option(help: "Only this module of the device.")
    var module: String?

    func run() throws {
        let directory = DataDirectory(path: data.dataDir)
        // With the data key, key rotations are told apart from re-sealing; without it, history still works.
        let storage = try RegistryStorage(directory: directory, create: false, needsKeys: FileManager.default.fileExists(atPath: directory.dataKeyPath))
        let entries = try storage.history(deviceId: deviceId, moduleId: module)
        guard !entries.isEmpty else { throw ValidationError("no history for \(deviceId)\(module.map { "/\($0)" } ?? "")") }
        for entry in entries { print(String(decoding: CanonicalJSON.encode(HistoryJSON.encode(entry)), as: UTF8.self)) }
    }
}

/// `registryd events`: the raw stored events as JSON Lines, hash fields included, for external
/// audit tools (`tools/verify-chain.py` re-verifies the chain from them).
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Print the raw events (JSON Lines, with hashes).")

    @OptionGroup var data: DataDirectoryOptions

    @Option(help: "First sequence number.")
    var from: UInt64 = 1

    @Option(help: "Last sequence number.")
    var to: UInt64 = .max

    func run() throws {
        let storage = try RegistryStorage(directory: DataDirectory(path: data.dataDir), create: false, needsKeys: false)
        let out = FileHandle.standardOutput
        try storage.read { txn, db in
            var buffer: [UInt8] = []
            try txn.scan(db.events, from: StorageKey.sequence(from)) { key, value in
                guard let seq = StorageKey.sequence(from: key), seq <= to else { return false }
                buffer += value
                buffer.append(10)
                if buffer.count > 1 << 20 {
                    out.write(Data(buffer))
                    buffer.removeAll(keepingCapacity: true)
                }
                return true
            }
            out.write(Data(buffer))
        }
    }
}

