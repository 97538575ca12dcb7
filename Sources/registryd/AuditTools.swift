import ArgumentParser
import Foundation
import RegistryAPI
import RegistryCore

/// `registryd history`: every change to one identity, from the per-device index.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Every change to a device (or one module): time, sequence, event, actor, request id and changed fields, as JSON Lines."
    )

    @OptionGroup var data: DataDirectoryOptions

    @Argument(help: "The device id.")
    var deviceId: String

    @Option(help: "Only this module of the device.")
    var module: String?

    func run() async throws {
        let directory = DataDirectory(path: data.dataDir)
        // With the data key, key rotations are told apart from re-sealing; without it, history still works.
        let storage = try await data.reader(needsKeys: FileManager.default.fileExists(atPath: directory.dataKeyPath))
        let entries = try await storage.history(deviceId: deviceId, moduleId: module)
        guard !entries.isEmpty else { throw ValidationError("no history for \(deviceId)\(module.map { "/\($0)" } ?? "")") }
        for entry in entries { print(String(decoding: CanonicalJSON.encode(HistoryJSON.encode(entry)), as: UTF8.self)) }
    }
}

/// `registryd events`: the raw stored events as JSON Lines, hash fields included, for external
/// audit tools (`tools/verify-chain.py` re-verifies the chain from them).
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Print the raw events (JSON Lines, with hashes).")

    @OptionGroup var data: DataDirectoryOptions

    @Option(help: "First sequence number.")
    var from: UInt64 = 1

    @Option(help: "Last sequence number.")
    var to: UInt64 = .max

    func run() async throws {
        let storage = try await data.reader(needsKeys: false)
        let out = FileHandle.standardOutput
        // The log is gapless from 1, so record `offset` of a page read from `next` is seq
        // `next + offset` (`--from 0` starts at 1, as the first seq is).
        var next = max(from, 1)
        while next <= to {
            let records = try await storage.rawEvents(from: next, limit: 10_000)
            var buffer: [UInt8] = []
            for (offset, record) in records.enumerated() where next + UInt64(offset) <= to {
                buffer += record
                buffer.append(10)
            }
            out.write(Data(buffer))
            guard records.count == 10_000 else { break }
            next += 10_000
        }
    }
}
