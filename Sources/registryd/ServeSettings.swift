import ArgumentParser
import Logging
import RegistryCore

/// The daemon's own settings, from three places: the `server` key of the configuration file,
/// `REGISTRYD_*` environment variables, and flags. Flags win over the environment, which wins
/// over the file; the README's table lists each (name, variable, flag, default).
struct ServeSettings: Equatable {
    var dataDir = "./data"
    var listen = "127.0.0.1:8443"
    var hostName: String?
    var hubName: String?
    var tlsCert: String?
    var tlsKey: String?
    var plainHttp = false
    var logLevel = "info"

    /// One setting: its file key (under `server`), variable and flag.
    struct Source {
        var fileKey: String
        var variable: String
        var flag: String
    }

    static let sources: [Source] = [
        Source(fileKey: "dataDir", variable: "REGISTRYD_DATA_DIR", flag: "--data-dir"),
        Source(fileKey: "listen", variable: "REGISTRYD_LISTEN", flag: "--listen"),
        Source(fileKey: "hostName", variable: "REGISTRYD_HOST_NAME", flag: "--host-name"),
        Source(fileKey: "hubName", variable: "REGISTRYD_HUB_NAME", flag: "--hub-name"),
        Source(fileKey: "tlsCert", variable: "REGISTRYD_TLS_CERT", flag: "--tls-cert"),
        Source(fileKey: "tlsKey", variable: "REGISTRYD_TLS_KEY", flag: "--tls-key"),
        Source(fileKey: "plainHttp", variable: "REGISTRYD_PLAIN_HTTP", flag: "--plain-http"),
        Source(fileKey: "logLevel", variable: "REGISTRYD_LOG_LEVEL", flag: "--log-level"),
    ]

    /// The configuration file's path: the flag, else `REGISTRYD_CONFIG`.
    static let configVariable = "REGISTRYD_CONFIG"

    /// Values given as flags (`nil`: not given).
    struct Flags: Equatable {
        var dataDir: String?
        var listen: String?
        var hostName: String?
        var hubName: String?
        var tlsCert: String?
        var tlsKey: String?
        var plainHttp: Bool?
        var logLevel: String?
    }

    /// Resolves every setting: flag, else environment, else the file's `server` object, else the default.
    static func resolve(flags: Flags, environment: [String: String], file: JSONValue?) throws -> ServeSettings {
        var settings = ServeSettings()
        var fileValues: [String: JSONValue] = [:]
        if let file {
            guard case .object(let members) = file else { throw ValidationError("'server' must be an object") }
            let known = Set(sources.map(\.fileKey))
            for key in members.keys.sorted() where !known.contains(key) {
                throw ValidationError("unknown key 'server.\(key)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            fileValues = members
        }
        func string(_ flag: String?, _ key: String) throws -> String? {
            if let flag { return flag }
            let source = sources.first { $0.fileKey == key }!
            if let value = environment[source.variable], !value.isEmpty { return value }
            guard let value = fileValues[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw ValidationError("'server.\(key)' must be a string") }
            return text
        }
        settings.dataDir = try string(flags.dataDir, "dataDir") ?? settings.dataDir
        settings.listen = try string(flags.listen, "listen") ?? settings.listen
        settings.hostName = try string(flags.hostName, "hostName")
        settings.hubName = try string(flags.hubName, "hubName")
        settings.tlsCert = try string(flags.tlsCert, "tlsCert")
        settings.tlsKey = try string(flags.tlsKey, "tlsKey")
        settings.logLevel = try string(flags.logLevel, "logLevel") ?? settings.logLevel
        if let flag = flags.plainHttp {
            settings.plainHttp = flag
        } else if let value = environment["REGISTRYD_PLAIN_HTTP"], !value.isEmpty {
            switch value.lowercased() {
            case "1", "true", "yes", "on": settings.plainHttp = true
            case "0", "false", "no", "off": settings.plainHttp = false
            default: throw ValidationError("REGISTRYD_PLAIN_HTTP must be true or false, got '\(value)'")
            }
        } else if let value = fileValues["plainHttp"] {
            guard case .bool(let flag) = value else { throw ValidationError("'server.plainHttp' must be true or false") }
            settings.plainHttp = flag
        }
        try settings.validate()
        return settings
    }

    func validate() throws {
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("the TLS certificate and key go together (--tls-cert/--tls-key)") }
        guard !(plainHttp && tlsCert != nil) else { throw ValidationError("plain HTTP and a TLS certificate exclude each other") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("log level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        _ = try ListenAddress(listen)
    }

    /// `REGISTRYD_*` variables that name no setting (likely typos), for a warning.
    static func unknownVariables(_ environment: [String: String]) -> [String] {
        let known = Set(sources.map(\.variable) + [configVariable, StorageSelection.variable] + SettingsOverlay.variables)
        return environment.keys.filter { $0.hasPrefix("REGISTRYD_") && !known.contains($0) }.sorted()
    }
}
