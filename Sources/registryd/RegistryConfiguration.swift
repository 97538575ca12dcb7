import ArgumentParser
import Foundation
import RegistryAPI
import RegistryCore
import RegistryDelivery

/// The JSON configuration file (`--config FILE`, DESIGN §8): one object, each part of the daemon
/// owns one top-level key, and unknown keys are errors naming the field.
///
/// ```json
/// {"limits": {"maxModulesPerDevice": 50, "maxIdentities": null, "maxRequestBodyBytes": 262144}}
/// ```
struct RegistryConfiguration: Sendable {
    var limits = RegistryLimits()
    var api = RegistryAPIConfiguration()
    var delivery = DeliveryConfiguration()
    var jobs = JobsConfiguration()
    var credentials = CredentialsConfiguration()
    var tls = GeneratedCertificateConfiguration()
    /// The writer's timeout and stall threshold (`limits.writeTimeoutSeconds`, `limits.writerStallSeconds`).
    var writer = WriterLimits()
    /// The `server` object (serve's own settings), resolved with the environment and flags by `ServeSettings`.
    var server: JSONValue?
    /// The `storage` object (the backend), resolved with `REGISTRYD_STORAGE_URL` and `--storage` by `StorageSelection`.
    var storage: JSONValue?

    static let topLevelKeys: Set<String> = [
        "limits", "endpoints", "routes", "delivery", "deviceAuth", "throttling", "metrics", "jobs", "server", "connections", "eventStreams", "tls",
        "storage", "console", "credentials",
    ]

    init() {}

    init(file path: String) throws {
        try self.init(json: try Self.json(file: path), source: path)
    }

    /// The file's JSON, not yet validated (`serve` writes environment and flag values into it first).
    static func json(file path: String) throws -> JSONValue {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ConfigurationError("cannot read \(path): \(error.localizedDescription)")
        }
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw ConfigurationError("\(path): \(error)")
        }
    }

    init(json: JSONValue, source: String) throws {
        guard case .object(let members) = json else { throw ConfigurationError("\(source): the configuration must be a JSON object") }
        for key in members.keys.sorted() where !Self.topLevelKeys.contains(key) {
            throw ConfigurationError("\(source): unknown key '\(key)' (known: \(Self.topLevelKeys.sorted().joined(separator: ", ")))")
        }
        do {
            delivery = try DeliveryConfiguration(configuration: members)
        } catch {
            throw ConfigurationError("\(source): \(error.description)")
        }
        if let parsed = try section(members, "deviceAuth", source, DeviceAuthConfiguration.init(json:)) { api.deviceAuth = parsed }
        if let server = members["server"] {
            do {
                _ = try ServeSettings.resolve(flags: .init(), environment: [:], file: server)
            } catch let error as ValidationError {
                throw ConfigurationError("\(source): \(error.message)")
            }
            self.server = server
        }
        if let storage = members["storage"] {
            do {
                _ = try StorageSelection.parse(storage)
            } catch let error as ValidationError {
                throw ConfigurationError("\(source): \(error.message)")
            }
            self.storage = storage
        }
        if let parsed = try section(members, "jobs", source, JobsConfiguration.init(json:)) { self.jobs = parsed }
        if let parsed = try section(members, "credentials", source, CredentialsConfiguration.init(json:)) { self.credentials = parsed }
        if let parsed = try section(members, "tls", source, GeneratedCertificateConfiguration.init(json:)) { self.tls = parsed }
        if let parsed = try section(members, "throttling", source, ThrottlingConfiguration.init(json:)) { api.throttling = parsed }
        if let parsed = try section(members, "connections", source, ConnectionLimits.init(json:)) { api.connections = parsed }
        if let parsed = try section(members, "eventStreams", source, EventStreamLimits.init(json:)) { api.eventStreams = parsed }
        if let metrics = members["metrics"] {
            guard case .object(let fields) = metrics else { throw ConfigurationError("\(source): 'metrics' must be an object") }
            for (key, value) in fields {
                guard key == "open" else { throw ConfigurationError("\(source): unknown key 'metrics.\(key)' (known: open)") }
                guard case .bool(let open) = value else { throw ConfigurationError("\(source): 'metrics.open' must be true or false") }
                api.metricsOpen = open
            }
        }
        if let console = members["console"] {
            guard case .object(let fields) = console else { throw ConfigurationError("\(source): 'console' must be an object") }
            for (key, value) in fields {
                guard key == "enabled" else { throw ConfigurationError("\(source): unknown key 'console.\(key)' (known: enabled)") }
                guard case .bool(let enabled) = value else { throw ConfigurationError("\(source): 'console.enabled' must be true or false") }
                api.console = enabled
            }
        }
        if let limits = members["limits"] {
            guard case .object(let fields) = limits else { throw ConfigurationError("\(source): 'limits' must be an object") }
            for (key, value) in fields {
                func positive() throws -> Int {
                    guard let v = value.intValue, v > 0 else { throw ConfigurationError("\(source): 'limits.\(key)' must be a positive integer") }
                    return Int(v)
                }
                func seconds() throws -> Duration {
                    do {
                        return try value.seconds("limits.\(key)")
                    } catch {
                        throw ConfigurationError("\(source): \(error)")
                    }
                }
                switch key {
                case "maxModulesPerDevice": self.limits.maxModulesPerDevice = try positive()
                case "maxIdentities": self.limits.maxIdentities = value.isNull ? nil : try positive()
                case "maxRequestBodyBytes": self.api.maxRequestBodyBytes = try positive()
                case "writeTimeoutSeconds": self.writer.writeTimeout = try seconds()
                case "writerStallSeconds": self.writer.stallThreshold = try seconds()
                default: throw ConfigurationError("\(source): unknown key 'limits.\(key)'")
                }
            }
        }
    }
}

/// The section `key` parsed by `parse` when the file has it; a refusal names the file.
private func section<T>(_ members: [String: JSONValue], _ key: String, _ source: String, _ parse: (JSONValue) throws -> T) throws -> T? {
    guard let json = members[key] else { return nil }
    do {
        return try parse(json)
    } catch {
        throw ConfigurationError("\(source): \(error)")
    }
}

struct ConfigurationError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
