import Foundation
import LMDB
import RegistryCore

/// Replaying a bare stream of event records (fixtures, golden files): written into a scratch
/// environment as a log, then rebuilt by the same code `replay` runs.
extension Replayer {
    /// Makes `storage` hold `lines` (events and their projections, as a replay builds them).
    /// Returns where the stream does not replay, or `nil`.
    public static func load(stream lines: [[UInt8]], into storage: RegistryStorage, scratch: String) throws -> Outcome? {
        let (source, events) = try scratchLog(lines, at: scratch)
        var report = Report()
        return try source.read { txn in
            try rebuild(from: txn, events, into: storage.environment, storage.databases, report: &report, copyEvents: true)
        }
    }

    /// Rebuilds the projections of a stream (verifying its chain) in a fresh environment and
    /// returns them as JSON: `{"devices":{id:…},"modules":{"dev/mod":…},"disabledDevices":n,"connectedDevices":n}`.
    public static func projection(of lines: [[UInt8]], scratch: String) throws -> (Outcome?, JSONValue) {
        let (source, events) = try scratchLog(lines, at: scratch + "/source")
        try FileManager.default.createDirectory(atPath: scratch + "/target", withIntermediateDirectories: true)
        let target = try Environment(configuration: .init(path: scratch + "/target"))
        let targetDatabases = try target.write { try RegistryDatabases.open(in: $0) }
        var report = Report()
        let outcome = try source.read { txn in try rebuild(from: txn, events, into: target, targetDatabases, report: &report) }
        let json = try target.read { txn -> JSONValue in
            var devices: [String: JSONValue] = [:]
            var modules: [String: JSONValue] = [:]
            try txn.scan(targetDatabases.devices) { key, value in
                devices[String(decoding: key, as: UTF8.self)] = try JSONParser.parse(value)
                return true
            }
            try txn.scan(targetDatabases.modules) { key, value in
                modules[String(decoding: key, as: UTF8.self).replacingOccurrences(of: "\0", with: "/")] = try JSONParser.parse(value)
                return true
            }
            let disabled = try txn.get(targetDatabases.meta, MetaKey.disabledDevices).flatMap(StorageKey.sequence(from:)) ?? 0
            let connected = try txn.get(targetDatabases.meta, MetaKey.connectedDevices).flatMap(StorageKey.sequence(from:)) ?? 0
            return .object([
                "devices": .object(devices), "modules": .object(modules), "disabledDevices": .int(Int64(disabled)),
                "connectedDevices": .int(Int64(connected)),
            ])
        }
        return (outcome, json)
    }

    private static func scratchLog(_ lines: [[UInt8]], at path: String) throws -> (Environment, Database) {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let source = try Environment(configuration: .init(path: path))
        let databases = try source.write { try RegistryDatabases.open(in: $0) }
        try source.write { txn in
            for (i, line) in lines.enumerated() { try txn.put(databases.events, StorageKey.sequence(UInt64(i + 1)), line, flags: .append) }
        }
        return (source, databases.events)
    }
}
