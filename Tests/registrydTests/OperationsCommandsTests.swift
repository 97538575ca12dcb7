import Foundation
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// `backup` and `config check`, run as the real binary.
@Suite(.serialized) struct OperationsCommandsTests {
    @Test func backupWhileTheStoreIsOpenIsConsistentAndRestorable() async throws {
        try await withTemporaryDirectory { dir in
            let live = dir + "/live"
            // The store stays open (holding the writer lock) during the backup, as a daemon would.
            let store = try makeStore(live)
            for i in 0..<50 { _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d\(i)")), actor: "t", requestId: "\(i)") }
            _ = try await store.execute(.deleteDevice(deviceId: "d7", ifMatch: .any), actor: "t", requestId: "del")
            let key = try #require(try store.storage.device("d3")?.authentication.symmetricKey.primaryKey)

            let full = try runRegistryd(["backup", "--data-dir", live, "--to", dir + "/copy"])
            #expect(full.status == 0, "\(full.output)")
            #expect(full.output.contains("events 1...51"))
            #expect(full.output.contains("data.key"))
            // Writes continue after the snapshot; the copy is the snapshot.
            _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "later")), actor: "t", requestId: "later")
            store.close()

            #expect(try runRegistryd(["audit", "verify", "--data-dir", dir + "/copy"]).status == 0)
            let mode = try FileManager.default.attributesOfItem(atPath: dir + "/copy/data.key")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let restored = try RegistryStorage(directory: DataDirectory(path: dir + "/copy"), create: false)
            #expect(try restored.statistics().totalDeviceCount == 49)
            #expect(try restored.device("later") == nil)
            #expect(try restored.device("d3")?.authentication.symmetricKey.primaryKey == key, "the data key came along: keys open")

            let auditorCopy = try runRegistryd(["backup", "--data-dir", live, "--to", dir + "/auditor", "--without-secrets"])
            #expect(auditorCopy.status == 0)
            #expect(!FileManager.default.fileExists(atPath: dir + "/auditor/data.key"))
            #expect(try runRegistryd(["audit", "verify", "--data-dir", dir + "/auditor"]).status == 0)

            // Never over an existing backup.
            let again = try runRegistryd(["backup", "--data-dir", live, "--to", dir + "/copy"])
            #expect(again.status != 0)
            #expect(again.output.contains("not empty"))
        }
    }

    /// Item 8 of the hardening issue: the copied data key is owner-only from its first byte,
    /// under the most permissive umask (which the command inherits), and so are the TLS keys.
    #if os(Linux)
        @Test func backupCopiesSecretsOwnerOnlyFromTheirFirstByte() async throws {
            try await withTemporaryDirectory { dir in
                let store = try makeStore(dir + "/live")
                _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d")), actor: "t", requestId: "1")
                store.close()
                try LocalCertificateAuthority.ensure(.init(dataDirectory: dir + "/live"))
                // An existing empty directory is a valid target, and lets the watch start first.
                try FileManager.default.createDirectory(atPath: dir + "/copy", withIntermediateDirectories: true)
                let watch = try DirectoryWatch(dir + "/copy")
                let backup = try withUmask(0) { try runRegistryd(["backup", "--data-dir", dir + "/live", "--to", dir + "/copy"]) }
                #expect(backup.status == 0, "\(backup.output)")
                let own = watch.events().filter { $0.name == "data.key" }
                #expect(!own.isEmpty)
                #expect(own.filter(\.isAttributeChange).isEmpty, "data.key was chmod'ed after it appeared: \(own)")
                for secret in ["data.key", "tls/ca-key.pem", "tls/server-key.pem"] {
                    let mode = try FileManager.default.attributesOfItem(atPath: dir + "/copy/" + secret)[.posixPermissions] as? Int
                    #expect(mode == 0o600, "\(secret)")
                }
            }
        }
    #endif

    @Test func configCheckValidatesWithoutStarting() throws {
        try withTemporaryDirectory { dir in
            let good = dir + "/good.json"
            try
                #"{"limits":{"maxModulesPerDevice":10},"deviceAuth":{"hostNames":["hub.example.com"]},"endpoints":[{"name":"audit","type":"file","path":"/tmp/x.jsonl"}],"routes":[{"name":"r","source":"DeviceConnectionStateEvents","condition":"true","endpointNames":["audit"]}]}"#
                .write(toFile: good, atomically: true, encoding: .utf8)
            let ok = try runRegistryd(["config", "check", "--config", good])
            #expect(ok.status == 0, "\(ok.output)")
            #expect(ok.output.contains("ok (1 endpoints, 1 routes, maxModulesPerDevice 10"))

            for (body, complaint) in [
                (#"{"limitz":{}}"#, "unknown key 'limitz'"),
                (#"{"deviceAuth":{"emqx":"yes"}}"#, "'deviceAuth.emqx' must be true or false"),
                (#"{"deviceAuth":{"brokers":1}}"#, "'deviceAuth.brokers' unknown key"),
                (#"{"limits":{"maxModulesPerDevice":0}}"#, "limits.maxModulesPerDevice"),
                ("not json", "bad.json"),
            ] {
                let path = dir + "/bad.json"
                try body.write(toFile: path, atomically: true, encoding: .utf8)
                let result = try runRegistryd(["config", "check", "--config", path])
                #expect(result.status != 0, "\(body)")
                #expect(result.output.contains(complaint), "\(body): \(result.output)")
            }
            #expect(try runRegistryd(["config", "check", "--config", dir + "/missing.json"]).output.contains("cannot read"))
        }
    }
}

extension OperationsCommandsTests {
    @Test func policiesCommandsChangeAStoppedDaemonsPolicies() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            _ = try await PolicyStore.ensureBuiltIn(store)
            // While a writer holds the directory, the command points at the API.
            let refused = try runRegistryd(["policies", "add", "--data-dir", dir, "ops", "--rights", "RegistryRead"])
            #expect(refused.status != 0)
            #expect(refused.output.contains("/registry/policies"))
            store.close()

            #expect(try runRegistryd(["policies", "add", "--data-dir", dir, "ops", "--rights", "RegistryRead, ServiceConnect"]).status == 0)
            let listed = try runRegistryd(["policies", "list", "--data-dir", dir])
            #expect(listed.output.contains("ops\tRegistryRead, ServiceConnect"))
            let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false)
            let before = try #require(try PolicyStore.load(storage).first { $0.name == "ops" })
            #expect(try runRegistryd(["policies", "rotate", "--data-dir", dir, "ops", "--secondary"]).status == 0)
            let after = try #require(try PolicyStore.load(storage).first { $0.name == "ops" })
            #expect(after.primaryKey == before.primaryKey && after.secondaryKey != before.secondaryKey)
            #expect(try runRegistryd(["policies", "remove", "--data-dir", dir, "ops"]).status == 0)
            let lastOwner = try runRegistryd(["policies", "remove", "--data-dir", dir, "iothubowner"])
            #expect(lastOwner.status != 0)
            #expect(lastOwner.output.contains("all four rights"))
            #expect(try PolicyStore.load(storage).count == 5)
        }
    }
}
