import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Writable fields of an identity: what an export followed by an import must reproduce.
private func essence(_ identity: Identity) -> String {
    switch identity {
    case .device(let d):
        "device \(d.deviceId) \(d.status) \(d.statusReason ?? "-") \(d.authentication) \(d.capabilities) \(d.deviceScope ?? "-") \(d.parentScopes)"
    case .module(let m):
        "module \(m.deviceId)/\(m.moduleId) \(m.managedBy ?? "-") \(m.authentication)"
    }
}

private func essences(_ dir: String) throws -> [String] {
    let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false)
    var out: [String] = []
    for device in try storage.devices(limit: 100_000) {
        out.append(essence(.device(device)))
        out += try storage.modules(of: device.deviceId).map { essence(.module($0)) }
    }
    return out
}

@Suite(.serialized) struct ExportImportTests {
    @Test func anExportImportedIntoAnEmptyRegistryReproducesEveryIdentity() async throws {
        try await withTemporaryDirectory { dir in
            _ = try await FixtureScript.run("lifecycle", in: dir + "/source")
            let store = try makeStore(dir + "/source", seed: 5)
            _ = try await store.execute(
                [
                    .createDevice(DeviceSpec(deviceId: "gw", capabilities: DeviceCapabilities(iotEdge: true))),
                    .createModule(ModuleSpec(deviceId: "gw", moduleId: "$edgeHub", managedBy: "IotEdge")),
                    .createModule(
                        ModuleSpec(
                            deviceId: "gw",
                            moduleId: "cam",
                            authentication: AuthenticationSpec(primaryThumbprint: String(repeating: "c", count: 64))
                        )
                    ),
                    .createDevice(DeviceSpec(deviceId: "gw-leaf", status: .disabled, statusReason: "held", parentScopes: ["scope-1"])),
                ],
                actor: "t",
                requestId: "extra"
            )
            store.close()
            let original = try essences(dir + "/source")
            #expect(original.count >= 8)

            let exported = try runRegistryd(["export", "--data-dir", dir + "/source"])
            #expect(exported.status == 0)
            let lines = exported.output.split(separator: "\n").filter { $0.hasPrefix("{") }
            try lines.joined(separator: "\n").write(toFile: dir + "/devices.txt", atomically: true, encoding: .utf8)
            #expect(lines.count == original.count)
            #expect(lines.allSatisfy { !$0.contains("aes256gcm:") })

            let imported = try runRegistryd(["import", "--data-dir", dir + "/target", dir + "/devices.txt", "--errors", dir + "/importErrors.log"])
            #expect(imported.status == 0, "\(imported.output)")
            #expect(try essences(dir + "/target") == original)  // keys included
            #expect(try String(contentsOfFile: dir + "/importErrors.log", encoding: .utf8).isEmpty)

            // Without keys: the same identities, with newly generated SAS keys.
            let keyless = try runRegistryd(["export", "--data-dir", dir + "/source", "--exclude-keys"])
            let keylessLines = keyless.output.split(separator: "\n").filter { $0.hasPrefix("{") }
            #expect(keylessLines.allSatisfy { !$0.contains("\"primaryKey\":\"") })
            try keylessLines.joined(separator: "\n").write(toFile: dir + "/keyless.txt", atomically: true, encoding: .utf8)
            #expect(try runRegistryd(["import", "--data-dir", dir + "/keyless", dir + "/keyless.txt", "--errors", dir + "/e2.log"]).status == 0)
            let storage = try RegistryStorage(directory: DataDirectory(path: dir + "/keyless"), create: false)
            let sensor = try #require(try storage.device("sensor-02"))
            #expect(sensor.authentication.type == .sas)
            #expect(sensor.authentication.symmetricKey.primaryKey != nil)
            #expect(sensor.authentication.symmetricKey.primaryKey != Data(repeating: 0x22, count: 32).base64EncodedString())
        }
    }

    @Test func badLinesAreLoggedAndTheImportGoesOn() throws {
        try withTemporaryDirectory { dir in
            let text = [
                #"{"id":"ok-1","status":"enabled"}"#,
                "this is not json",
                #"{"id":"bad id"}"#,
                #"{"id":"ok-2","importMode":"create","status":"disabled"}"#,
                #"{"id":"ok-1","moduleId":"m","importMode":"create"}"#,
                #"{"id":"ghost","moduleId":"m","importMode":"create"}"#,
            ].joined(separator: "\n")
            try text.write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
            let result = try runRegistryd(["import", "--data-dir", dir + "/data", dir + "/in.txt", "--errors", dir + "/errors.log"])
            #expect(result.status == 4)
            #expect(result.output.contains("imported 3 identities; 3 lines failed"))
            let errors = try String(contentsOfFile: dir + "/errors.log", encoding: .utf8).split(separator: "\n").map {
                try JSONParser.parse(String($0))
            }
            #expect(errors.map { $0["line"]?.intValue } == [2, 3, 6])
            #expect(errors.map { $0["errorCode"]?.stringValue } == ["DeserializationError", "ArgumentInvalid", "DeviceNotFound"])
            let storage = try RegistryStorage(directory: DataDirectory(path: dir + "/data"), create: false)
            #expect(try storage.device("ok-2")?.status == .disabled)
            #expect(try storage.module("ok-1", "m") != nil)
        }
    }

    /// Issue 18 item 8: without `--errors` the errors file goes to the data directory, never to
    /// the working directory (an import run from a checkout once left one there).
    @Test func importWithoutErrorsWritesNothingIntoTheWorkingDirectory() throws {
        try withTemporaryDirectory { dir in
            let cwd = dir + "/cwd"
            try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
            try "{\"id\":\"x\"}\nnot json".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
            let result = try runRegistryd(["import", "--data-dir", dir + "/data", dir + "/in.txt"], in: cwd)
            #expect(result.status == 4, "\(result.output)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: cwd).isEmpty)
            let errors = try String(contentsOfFile: dir + "/data/importErrors.log", encoding: .utf8)
            #expect(errors.contains("DeserializationError"))
            #expect(result.output.contains("see \(dir)/data/importErrors.log"))
        }
    }

    @Test func importRefusesWhileAnotherWriterHoldsTheDirectory() throws {
        try withTemporaryDirectory { dir in
            let store = try makeStore(dir + "/data")
            try "{\"id\":\"x\"}".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
            let result = try runRegistryd(["import", "--data-dir", dir + "/data", dir + "/in.txt", "--errors", dir + "/e.log"])
            #expect(result.status != 0)
            #expect(result.output.contains("in use by another registryd process"))
            store.close()
        }
    }
}
