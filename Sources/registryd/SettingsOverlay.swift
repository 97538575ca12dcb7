import ArgumentParser
import RegistryCore

/// The configuration file's scalar settings that may also come from `REGISTRYD_*` variables and
/// `serve` flags (flags win over the environment, which wins over the file): the overlay is
/// written into the file's JSON before it is validated, so every source goes through the same
/// checks and error messages.
enum SettingsOverlay {
    enum Kind {
        case int, number, bool, list
    }

    struct Setting {
        var path: [String]
        var variable: String
        var flag: String
        var kind: Kind
    }

    static let settings: [Setting] = [
        Setting(path: ["limits", "maxModulesPerDevice"], variable: "REGISTRYD_MAX_MODULES_PER_DEVICE", flag: "max-modules-per-device", kind: .int),
        Setting(path: ["limits", "maxIdentities"], variable: "REGISTRYD_MAX_IDENTITIES", flag: "max-identities", kind: .int),
        Setting(path: ["limits", "maxRequestBodyBytes"], variable: "REGISTRYD_MAX_REQUEST_BODY_BYTES", flag: "max-request-body-bytes", kind: .int),
        Setting(path: ["metrics", "open"], variable: "REGISTRYD_METRICS_OPEN", flag: "metrics-open", kind: .bool),
        Setting(path: ["jobs", "roots"], variable: "REGISTRYD_JOB_ROOTS", flag: "job-roots", kind: .list),
        Setting(
            path: ["throttling", "registryReads"],
            variable: "REGISTRYD_THROTTLE_REGISTRY_READS",
            flag: "throttle-registry-reads",
            kind: .number
        ),
        Setting(
            path: ["throttling", "registryWrites"],
            variable: "REGISTRYD_THROTTLE_REGISTRY_WRITES",
            flag: "throttle-registry-writes",
            kind: .number
        ),
        Setting(path: ["throttling", "bulk"], variable: "REGISTRYD_THROTTLE_BULK", flag: "throttle-bulk", kind: .number),
        Setting(path: ["throttling", "queries"], variable: "REGISTRYD_THROTTLE_QUERIES", flag: "throttle-queries", kind: .number),
        Setting(path: ["throttling", "deviceAuth"], variable: "REGISTRYD_THROTTLE_DEVICE_AUTH", flag: "throttle-device-auth", kind: .number),
    ]

    static var variables: [String] { settings.map(\.variable) }

    /// `file` with the environment's values, then the flags' values, written in.
    /// - Parameter flags: values given on the command line, by flag name (without `--`).
    static func apply(to file: JSONValue, environment: [String: String], flags: [String: String]) throws -> JSONValue {
        guard case .object(var root) = file else { return file }
        for setting in settings {
            let text: String
            let source: String
            if let flag = flags[setting.flag] {
                (text, source) = (flag, "--\(setting.flag)")
            } else if let value = environment[setting.variable], !value.isEmpty {
                (text, source) = (value, setting.variable)
            } else {
                continue
            }
            let value: JSONValue
            switch setting.kind {
            case .int:
                guard let n = Int64(text) else { throw ValidationError("\(source) must be a whole number, got '\(text)'") }
                value = .int(n)
            case .number:
                guard let x = Double(text), x.isFinite else { throw ValidationError("\(source) must be a number, got '\(text)'") }
                value = .number(String(x))
            case .bool:
                switch text.lowercased() {
                case "1", "true", "yes", "on": value = .bool(true)
                case "0", "false", "no", "off": value = .bool(false)
                default: throw ValidationError("\(source) must be true or false, got '\(text)'")
                }
            case .list:
                value = .array(text.split(separator: ":").map { .string(String($0)) })
            }
            var section: [String: JSONValue] = [:]
            if case .object(let existing)? = root[setting.path[0]] { section = existing }
            section[setting.path[1]] = value
            root[setting.path[0]] = .object(section)
        }
        return .object(root)
    }
}
