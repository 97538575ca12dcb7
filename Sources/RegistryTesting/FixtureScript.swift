import Foundation
import RegistryCore
import RegistryLMDB

/// The scripted histories behind `fixtures/events/*.jsonl`. Each runs through the real store with
/// a manual clock, seeded randomness and the fixture data key, so it produces the same bytes on
/// every run; the golden tests compare those bytes with the committed streams.
public enum FixtureScript {
    public struct Step: Sendable {
        public var advanceSeconds: Int64
        public var commands: [Command]
    }

    public static let names = ["lifecycle"]

    /// The file (in `fixtures/events`, without `.jsonl`) holding what the script produces today.
    /// `lifecycle.jsonl` was recorded when keys were sealed under version 1 contexts (see
    /// `SealingContext`) and stays as it was: old logs must keep decoding, replaying and opening.
    /// Since version 2 the same script seals differently (same plaintexts, other tags, so other
    /// hashes), and its stream is recorded beside it.
    public static func goldenStream(_ name: String) -> String { "\(name).sealed-v2" }

    /// Every recorded stream: the ones older code wrote, and the current ones.
    public static let streams = names.flatMap { [$0, goldenStream($0)] }

    /// Streams recorded under version 1 sealing contexts.
    public static let legacySealedStreams: Set<String> = Set(names)

    public static func steps(_ name: String) -> [Step] {
        let key16 = Data(repeating: 0x11, count: 16).base64EncodedString()
        let key32 = Data(repeating: 0x22, count: 32).base64EncodedString()
        let sha1 = String(repeating: "a1", count: 20)
        let sha256 = String(repeating: "B2", count: 32)
        switch name {
        case "lifecycle":
            return [
                Step(advanceSeconds: 0, commands: [.createDevice(DeviceSpec(deviceId: "sensor-01"))]),
                Step(
                    advanceSeconds: 1,
                    commands: [
                        .createDevice(
                            DeviceSpec(deviceId: "sensor-02", authentication: AuthenticationSpec(type: .sas, primaryKey: key16, secondaryKey: key32))
                        )
                    ]
                ),
                Step(
                    advanceSeconds: 1,
                    commands: [
                        .createDevice(
                            DeviceSpec(
                                deviceId: "camera-x509",
                                authentication: AuthenticationSpec(type: .selfSigned, primaryThumbprint: sha1, secondaryThumbprint: sha1)
                            )
                        ),
                        .createDevice(DeviceSpec(deviceId: "gateway-ca", authentication: AuthenticationSpec(type: .certificateAuthority))),
                        .createDevice(DeviceSpec(deviceId: "edge-01", capabilities: DeviceCapabilities(iotEdge: true))),
                    ]
                ),
                Step(
                    advanceSeconds: 1,
                    commands: [
                        .createModule(ModuleSpec(deviceId: "edge-01", moduleId: "$edgeAgent", managedBy: "IotEdge")),
                        .createModule(ModuleSpec(deviceId: "edge-01", moduleId: "filter")),
                    ]
                ),
                Step(
                    advanceSeconds: 60,
                    commands: [
                        .replaceDevice(
                            DeviceSpec(deviceId: "sensor-01", status: .disabled, statusReason: "lost in transit"),
                            ifMatch: .exact(etag(forSequence: 1))
                        )
                    ]
                ),
                Step(
                    advanceSeconds: 60,
                    commands: [
                        .replaceDevice(
                            DeviceSpec(deviceId: "sensor-02", authentication: AuthenticationSpec(primaryKey: key32, secondaryKey: key16)),
                            ifMatch: .any
                        )
                    ]
                ),
                Step(
                    advanceSeconds: 1,
                    commands: [
                        .replaceDevice(
                            DeviceSpec(deviceId: "camera-x509", authentication: AuthenticationSpec(primaryThumbprint: sha256)),
                            ifMatch: .absent
                        )
                    ]
                ),
                Step(
                    advanceSeconds: 1,
                    commands: [.replaceModule(ModuleSpec(deviceId: "edge-01", moduleId: "filter", managedBy: "ops"), ifMatch: .any)]
                ),
                Step(advanceSeconds: 1, commands: [.deleteModule(deviceId: "edge-01", moduleId: "filter", ifMatch: .any)]),
                Step(advanceSeconds: 1, commands: [.createModule(ModuleSpec(deviceId: "edge-01", moduleId: "filter"))]),
                Step(advanceSeconds: 3600, commands: [.deleteDevice(deviceId: "edge-01", ifMatch: .any)]),
                Step(advanceSeconds: 1, commands: [.createDevice(DeviceSpec(deviceId: "edge-01", status: .disabled))]),
                Step(advanceSeconds: 1, commands: [.replaceDevice(DeviceSpec(deviceId: "sensor-01", status: .enabled), ifMatch: .any)]),
                Step(advanceSeconds: 1, commands: [.deleteDevice(deviceId: "gateway-ca", ifMatch: .any)]),
                // A broker's reports: connection state changes without new etags.
                Step(
                    advanceSeconds: 5,
                    commands: [
                        .reportConnection(ConnectionReport(deviceId: "sensor-02", connected: true)),
                        .reportConnection(ConnectionReport(deviceId: "camera-x509", connected: true)),
                    ]
                ),
                Step(advanceSeconds: 30, commands: [.reportConnection(ConnectionReport(deviceId: "sensor-02", connected: false))]),
                // Twin tags: their own etag and version; the identity etag stays.
                Step(
                    advanceSeconds: 1,
                    commands: [.updateTwin(TwinUpdate(deviceId: "sensor-02", tags: ["site": .object(["region": .string("eu")])]))]
                ),
                Step(
                    advanceSeconds: 1,
                    commands: [
                        .updateTwin(
                            TwinUpdate(deviceId: "sensor-02", tags: ["site": .object(["floor": .int(3)])], ifMatch: .exact(twinEtag(forSequence: 23)))
                        )
                    ]
                ),
            ]
        default:
            fatalError("unknown fixture \(name)")
        }
    }

    /// Runs the script into a fresh data directory (holding the fixture key) and returns the raw
    /// stored event records, one per line.
    public static func run(_ name: String, in directory: String) async throws -> [[UInt8]] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixturesDirectory() + "/events/data.key", toPath: directory + "/data.key")
        let clock = ManualClock(Timestamp(iso8601: "2026-01-01T00:00:00Z")!)
        let store = try makeStore(directory, clock: clock, seed: 2026)
        for (i, step) in steps(name).enumerated() {
            clock.advance(seconds: step.advanceSeconds)
            let results = try await store.execute(step.commands, actor: "iothubowner", requestId: "\(name)-\(i + 1)")
            for result in results { _ = try result.get() }
        }
        let lines = try store.rawEvents(from: 1, limit: .max)
        store.close()
        return lines
    }

    /// Makes `directory` a data directory holding `lines` (events and their projections, as a
    /// replay builds them) and the fixture data key: old data, read by today's code.
    public static func dataDirectory(of lines: [[UInt8]], at directory: String, scratch: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixturesDirectory() + "/events/data.key", toPath: directory + "/data.key")
        let storage = try RegistryStorage(directory: DataDirectory(path: directory), create: true)
        if let outcome = try Replayer.load(stream: lines, into: storage, scratch: scratch + "/stream") {
            throw StoreError("the stream does not replay: \(outcome)")
        }
    }

    /// Rebuilds the projections of a stream (verifying its chain) in a fresh environment and
    /// returns them as canonical JSON: `{"devices":{id:…},"modules":{"dev/mod":…},"disabledDevices":n}`.
    public static func projection(of lines: [[UInt8]], scratch: String) throws -> (Replayer.Outcome?, [UInt8]) {
        let (outcome, json) = try Replayer.projection(of: lines, scratch: scratch)
        return (outcome, CanonicalJSON.encode(json) + [10])
    }
}
