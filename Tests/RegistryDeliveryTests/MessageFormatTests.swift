import Foundation
import RegistryCore
import RegistryDelivery
import RegistryTesting
import Testing

/// The documented wire form, pinned by a golden file: every message of the golden event stream
/// in both sources, exactly as the file endpoint writes it.
/// `REGENERATE_FIXTURES=1 swift test --filter MessageFormatTests` rewrites it (review the diff!).
struct MessageFormatTests {
    let golden = fixturesDirectory() + "/routes/lifecycle.messages.jsonl"

    func messages() throws -> [RouteMessage] {
        let records = try String(contentsOfFile: fixturesDirectory() + "/events/lifecycle.jsonl", encoding: .utf8)
            .split(separator: "\n").map { try EventRecord.decode(Array($0.utf8)) }
        return RouteSource.allCases.flatMap { source in records.compactMap { RouteMessage(record: $0, source: source, hubName: "fixture-hub") } }
    }

    @Test func fileLinesMatchTheGoldenFormat() async throws {
        let lines = try messages()
        try await withTemporaryDirectory { dir in
            let sink = FileSink(path: dir + "/out.jsonl", maxFileBytes: 1 << 30, maxFiles: 2)
            #expect(await sink.deliver(lines) == .delivered)
            await sink.shutdown()
            let written = try String(contentsOfFile: dir + "/out.jsonl", encoding: .utf8)
            if ProcessInfo.processInfo.environment["REGENERATE_FIXTURES"] == "1" {
                try FileManager.default.createDirectory(atPath: fixturesDirectory() + "/routes", withIntermediateDirectories: true)
                try written.write(toFile: golden, atomically: true, encoding: .utf8)
            }
            #expect(written == (try String(contentsOfFile: golden, encoding: .utf8)))
            let mode = try FileManager.default.attributesOfItem(atPath: dir + "/out.jsonl")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test func sourcesCarryTheRightOperationsAndNoKeys() throws {
        let all = try messages()
        let lifecycle = all.filter { $0.source == .deviceLifecycleEvents }
        let changes = all.filter { $0.source == .deviceIdentityChangeEvents }
        #expect(Set(lifecycle.compactMap { $0.applicationProperties["opType"] }) == ["createDeviceIdentity", "deleteDeviceIdentity"])
        #expect(changes.contains { $0.applicationProperties["opType"] == "updateDeviceIdentity" && $0.body["status"] == .string("disabled") })
        #expect(changes.count > lifecycle.count)
        // Connection state: only in its own source, with an order key per identity and no twin body.
        let connections = all.filter { $0.source == .deviceConnectionStateEvents }
        #expect(connections.map { $0.applicationProperties["opType"] } == ["deviceConnected", "deviceConnected", "deviceDisconnected"])
        #expect(connections.map { $0.applicationProperties["deviceId"] } == ["sensor-02", "camera-x509", "sensor-02"])
        #expect(connections.allSatisfy { $0.systemProperties["iothub-message-source"] == "deviceConnectionStateEvents" })
        let orderKeys = connections.filter { $0.applicationProperties["deviceId"] == "sensor-02" }.compactMap {
            $0.body["sequenceNumber"]?.stringValue
        }
        #expect(orderKeys.count == 2 && orderKeys[0] < orderKeys[1] && orderKeys.allSatisfy { $0.count == 20 })
        #expect(connections.allSatisfy { $0.body["deviceId"] == nil })
        #expect(!(lifecycle + changes).contains { ["deviceConnected", "deviceDisconnected"].contains($0.applicationProperties["opType"]) })
        for message in all {
            let text = String(decoding: message.encoded, as: UTF8.self)
            #expect(!text.contains("aes256gcm:"))
            #expect(!text.contains("primaryKey"))
            #expect(message.id == "fixture-hub-\(message.seq)")
            if let module = message.applicationProperties["moduleId"] {
                #expect(message.systemProperties["iothub-connection-module-id"] == module)
                #expect(message.applicationProperties["opType"]?.hasSuffix("DeviceIdentity") == true)  // Azure's 2024 behaviour
            }
        }
    }

    @Test func fileRotationKeepsTheNewestFiles() async throws {
        let lines = try messages()
        try await withTemporaryDirectory { dir in
            let path = dir + "/rot.jsonl"
            let sink = FileSink(path: path, maxFileBytes: 3000, maxFiles: 2)
            for message in lines { #expect(await sink.deliver([message]) == .delivered) }
            await sink.shutdown()
            let fm = FileManager.default
            #expect(fm.fileExists(atPath: path + ".1") && fm.fileExists(atPath: path + ".2") && !fm.fileExists(atPath: path + ".3"))
            let current = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            #expect(current.last.map(String.init) == String(decoding: lines.last!.encoded, as: UTF8.self))
            let size = try fm.attributesOfItem(atPath: path)[.size] as? Int ?? Int.max
            #expect(size <= 3000 + 2000)
        }
    }

    @Test func webhookSignatureFollowsStandardWebhooks() {
        // The specification's own test vector.
        let secret = Array(Data(base64Encoded: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")!)
        let signature = WebhookSink.signature(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1_614_265_330,
            body: Array(#"{"test": 2432232314}"#.utf8),
            secret: secret
        )
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }
}
