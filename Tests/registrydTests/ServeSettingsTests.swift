import ArgumentParser
import Foundation
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

@testable import registryd

/// Flags win over the environment, which wins over the `server` key of the file.
struct ServeSettingsTests {
    func json(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test func precedenceIsFlagThenEnvironmentThenFileThenDefault() throws {
        let file = try json(#"{"dataDir":"/file/data","listen":"0.0.0.0:9000","hubName":"file-hub","logLevel":"debug","plainHttp":true}"#)
        let environment = ["REGISTRYD_LISTEN": "127.0.0.1:9100", "REGISTRYD_LOG_LEVEL": "warning", "REGISTRYD_PLAIN_HTTP": "false"]
        let flags = ServeSettings.Flags(listen: "127.0.0.1:9200")
        let settings = try ServeSettings.resolve(flags: flags, environment: environment, file: file)
        #expect(settings.listen == "127.0.0.1:9200", "flag over environment and file")
        #expect(settings.logLevel == "warning", "environment over file")
        #expect(settings.plainHttp == false, "environment over file")
        #expect(settings.dataDir == "/file/data", "file over default")
        #expect(settings.hubName == "file-hub")
        #expect(settings.hostName == nil)
        let defaults = try ServeSettings.resolve(flags: .init(), environment: [:], file: nil)
        #expect(defaults == ServeSettings())
        #expect(defaults.listen == "127.0.0.1:8443" && defaults.dataDir == "./data" && defaults.logLevel == "info" && !defaults.plainHttp)
        // A flag turns plain HTTP off even when the environment turns it on.
        let off = try ServeSettings.resolve(flags: .init(plainHttp: false), environment: ["REGISTRYD_PLAIN_HTTP": "1"], file: nil)
        #expect(off.plainHttp == false)
    }

    @Test func badValuesAreRefusedWithTheirName() throws {
        #expect(throws: ValidationError.self) { try ServeSettings.resolve(flags: .init(), environment: ["REGISTRYD_PLAIN_HTTP": "maybe"], file: nil) }
        #expect(throws: ValidationError.self) { try ServeSettings.resolve(flags: .init(), environment: ["REGISTRYD_LOG_LEVEL": "loud"], file: nil) }
        #expect(throws: ValidationError.self) { try ServeSettings.resolve(flags: .init(), environment: [:], file: try json(#"{"port":1}"#)) }
        #expect(throws: ValidationError.self) { try ServeSettings.resolve(flags: .init(tlsCert: "/c.pem"), environment: [:], file: nil) }
        #expect(throws: ValidationError.self) { try ServeSettings.resolve(flags: .init(listen: "nowhere"), environment: [:], file: nil) }
        #expect(ServeSettings.unknownVariables(["REGISTRYD_LISTN": "x", "REGISTRYD_LISTEN": "y", "HOME": "/"]) == ["REGISTRYD_LISTN"])
    }

    @Test func fileSettingsTakeEnvironmentAndFlagValuesThroughTheSameChecks() throws {
        let file = try json(#"{"limits":{"maxModulesPerDevice":10,"maxIdentities":100},"routes":[]}"#)
        let environment = [
            "REGISTRYD_MAX_MODULES_PER_DEVICE": "20", "REGISTRYD_METRICS_OPEN": "true", "REGISTRYD_JOB_ROOTS": "/srv/a:/srv/b",
            "REGISTRYD_THROTTLE_QUERIES": "2.5",
        ]
        let merged = try SettingsOverlay.apply(to: file, environment: environment, flags: ["max-modules-per-device": "30"])
        let settings = try RegistryConfiguration(json: merged, source: "test")
        #expect(settings.limits.maxModulesPerDevice == 30, "flag over environment over file")
        #expect(settings.limits.maxIdentities == 100, "file kept where nothing overrides")
        #expect(settings.api.metricsOpen)
        #expect(settings.jobs.roots == ["/srv/a", "/srv/b"])
        #expect(settings.api.throttling.rates[.queries] == 2.5)
        let environmentOnly = try RegistryConfiguration(
            json: try SettingsOverlay.apply(to: file, environment: environment, flags: [:]),
            source: "test"
        )
        #expect(environmentOnly.limits.maxModulesPerDevice == 20)
        // The same validation as the file: a bad value names its source or field.
        #expect(throws: ValidationError.self) { try SettingsOverlay.apply(to: file, environment: ["REGISTRYD_MAX_IDENTITIES": "many"], flags: [:]) }
        #expect(throws: ValidationError.self) { try SettingsOverlay.apply(to: file, environment: [:], flags: ["metrics-open": "perhaps"]) }
        #expect(throws: ConfigurationError.self) {
            try RegistryConfiguration(
                json: try SettingsOverlay.apply(to: file, environment: ["REGISTRYD_MAX_MODULES_PER_DEVICE": "0"], flags: [:]),
                source: "test"
            )
        }
        #expect(ServeSettings.unknownVariables(["REGISTRYD_THROTTLE_BULK": "1"]).isEmpty)
    }

    @Test func serveTakesItsSettingsFromTheEnvironmentAndFile() async throws {
        try await withTemporaryDirectory { dir in
            let config = dir + "/registryd.json"
            try #"{"server": {"listen": "127.0.0.1:0", "hubName": "from-file"}}"#.write(toFile: config, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = try registrydBinary()
            process.arguments = ["serve"]
            process.environment = ["REGISTRYD_DATA_DIR": dir + "/data", "REGISTRYD_CONFIG": config, "PATH": "/usr/bin:/bin"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            // The data directory named by the environment gets the hub name from the file.
            // `serve` records its host name once it listens (then SIGTERM is a graceful stop).
            var hub: String?
            var listening = false
            for _ in 0..<800 where !listening {
                if let storage = try? RegistryStorage(directory: DataDirectory(path: dir + "/data"), create: false, needsKeys: false) {
                    hub = try? storage.metaString(MetaKey.hubName)
                    listening = (try? storage.metaString(MetaKey.hostName)) != nil
                }
                if !listening { try await Task.sleep(for: .milliseconds(25)) }
            }
            process.terminate()
            process.waitUntilExit()
            #expect(hub == "from-file", "\(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            #expect(process.terminationStatus == 0)
        }
    }
}

extension ServeSettingsTests {
    @Test func writerTimeoutAndStallThresholdAreLimitsKeys() throws {
        let defaults = try RegistryConfiguration(json: try json("{}"), source: "test")
        #expect(defaults.writer == WriterLimits())
        let settings = try RegistryConfiguration(json: try json(#"{"limits":{"writeTimeoutSeconds":2.5,"writerStallSeconds":40}}"#), source: "test")
        #expect(settings.writer.writeTimeout == .milliseconds(2500))
        #expect(settings.writer.stallThreshold == .seconds(40))
        for bad in [#"{"limits":{"writeTimeoutSeconds":0}}"#, #"{"limits":{"writerStallSeconds":"20"}}"#, #"{"limits":{"writerStallSecs":20}}"#] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try RegistryConfiguration(json: try json(bad), source: "test") }
        }
    }
}
