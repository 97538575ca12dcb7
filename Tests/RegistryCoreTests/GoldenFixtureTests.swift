import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// Golden event streams: every stored schema must stay decodable and replay to the same state,
/// and the current code must still produce the same bytes for the same script. The streams
/// recorded under version 1 sealing contexts stay as recorded (`FixtureScript.goldenStream`).
/// `REGENERATE_FIXTURES=1 swift test --filter GoldenFixtureTests` rewrites them (review the diff!).
@Suite(.serialized) struct GoldenFixtureTests {
    let events = fixturesDirectory() + "/events"
    let regenerate = ProcessInfo.processInfo.environment["REGENERATE_FIXTURES"] == "1"

    func lines(_ name: String) throws -> [[UInt8]] {
        try String(contentsOfFile: "\(events)/\(name).jsonl", encoding: .utf8).split(separator: "\n").map { Array($0.utf8) }
    }

    @Test(arguments: FixtureScript.names) func scriptStillProducesTheGoldenStream(name: String) async throws {
        try await withTemporaryDirectory { dir in
            let produced = try await FixtureScript.run(name, in: dir + "/data")
            let text = produced.map { String(decoding: $0, as: UTF8.self) + "\n" }.joined()
            let file = FixtureScript.goldenStream(name)
            if regenerate {
                try text.write(toFile: "\(events)/\(file).jsonl", atomically: true, encoding: .utf8)
                let (_, projection) = try FixtureScript.projection(of: produced, scratch: dir)
                try Data(projection).write(to: URL(fileURLWithPath: "\(events)/\(file).projection.json"))
            }
            let golden = try String(contentsOfFile: "\(events)/\(file).jsonl", encoding: .utf8)
            #expect(text == golden, "the encoding of events changed: old logs must stay decodable; add a schema version instead")
        }
    }

    @Test(arguments: FixtureScript.streams) func goldenStreamReplaysToTheExpectedProjection(name: String) throws {
        try withTemporaryDirectory { dir in
            let (outcome, projection) = try FixtureScript.projection(of: try lines(name), scratch: dir)
            #expect(outcome == nil)
            let expected = try Data(contentsOf: URL(fileURLWithPath: "\(events)/\(name).projection.json"))
            #expect(projection == Array(expected))
        }
    }

    @Test(arguments: FixtureScript.streams) func persistentProjectionsEqualTheDomainFold(name: String) throws {
        // The LMDB projections and the pure `evolve` fold must agree on every stream.
        let records = try lines(name).map(EventRecord.decode)
        var snapshot = RegistrySnapshot()
        for record in records {
            let identity = try IdentityCodec.decode(record.payload) { sealed, _ in sealed }
            snapshot = evolve(snapshot, RegistryEvent(seq: record.seq, time: record.time, type: record.type, identity: identity))
        }
        let projection = try JSONParser.parse(Array(Data(contentsOf: URL(fileURLWithPath: "\(events)/\(name).projection.json"))))
        guard case .object(let devices)? = projection["devices"], case .object(let modules)? = projection["modules"] else {
            Issue.record("bad projection file")
            return
        }
        #expect(Set(devices.keys) == Set(snapshot.devices.keys))
        #expect(Set(modules.keys) == Set(snapshot.modules.keys.map { "\($0.deviceId)/\($0.moduleId)" }))
        for (id, device) in snapshot.devices {
            #expect(IdentityCodec.encode(.device(device)) { k, _ in k } == devices[id])
        }
        #expect(projection["disabledDevices"] == .int(Int64(snapshot.devices.values.filter { $0.status == .disabled }.count)))
    }

    @Test func tamperingWithTheGoldenStreamIsDetected() throws {
        try withTemporaryDirectory { dir in
            var stream = try lines("lifecycle")
            let i = stream[4].firstIndex(of: UInt8(ascii: "Z"))!
            stream[4][i] = UInt8(ascii: "z")
            let (outcome, _) = try FixtureScript.projection(of: stream, scratch: dir)
            #expect(outcome == .logCorrupt(seq: 5, reason: "hash does not match the content"))
        }
    }
}
