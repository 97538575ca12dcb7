import ArgumentParser
import Foundation
import RegistryCore
import RegistryPostgres

/// Which backend holds the registry (issue 19): LMDB in the data directory (the default), or
/// PostgreSQL. From, in order of precedence: `--storage URL`, `REGISTRYD_STORAGE_URL`, the
/// configuration file's `storage` object:
///
/// ```json
/// {"storage": {"backend": "postgres", "url": "postgres://registryd@db:5432/registryd?sslmode=verify-full&sslrootcert=/etc/registryd/db-ca.pem",
///              "passwordFile": "/etc/registryd/db-password", "poolSize": 8, "dataKeyFile": "/etc/registryd/data.key"}}
/// ```
///
/// With PostgreSQL the data directory still holds what is the node's own (TLS files, and the
/// data key unless `dataKeyFile` names it elsewhere); every node needs the same data key file.
enum StorageSelection: Equatable {
    case lmdb
    case postgres(Postgres)

    struct Postgres: Equatable {
        var url: String
        var passwordFile: String?
        var poolSize: Int?
        var dataKeyFile: String?

        func location() throws -> PostgresLocation {
            try PostgresLocation(url: url, passwordFile: passwordFile, poolSize: poolSize)
        }

        /// The data key's path: `dataKeyFile`, else the data directory's.
        func dataKeyPath(_ directory: DataDirectory) -> String { dataKeyFile ?? directory.dataKeyPath }
    }

    static let variable = "REGISTRYD_STORAGE_URL"

    static func resolve(flag: String?, environment: [String: String], file: JSONValue?) throws -> StorageSelection {
        var selection = try file.map(parse) ?? .lmdb
        let url = flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        if let url {
            guard PostgresLocation.isURL(url) else { throw ValidationError("--storage takes a postgres://… URL (LMDB is the default: omit it)") }
            if case .postgres(var postgres) = selection {
                postgres.url = url
                selection = .postgres(postgres)
            } else {
                selection = .postgres(Postgres(url: url))
            }
        }
        if case .postgres(let postgres) = selection { _ = try postgres.location() }
        return selection
    }

    /// The file's `storage` object.
    static func parse(_ json: JSONValue) throws -> StorageSelection {
        guard case .object(let members) = json else { throw ValidationError("'storage' must be an object") }
        let known: Set = ["backend", "url", "passwordFile", "poolSize", "dataKeyFile"]
        for key in members.keys.sorted() where !known.contains(key) {
            throw ValidationError("unknown key 'storage.\(key)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        func string(_ key: String) throws -> String? {
            guard let value = members[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw ValidationError("'storage.\(key)' must be a string") }
            return text
        }
        switch try string("backend") ?? "lmdb" {
        case "lmdb":
            return .lmdb
        case "postgres", "postgresql":
            guard let url = try string("url") else { throw ValidationError("'storage.url' is required with backend postgres") }
            var poolSize: Int?
            if let value = members["poolSize"], value != .null {
                guard let size = value.intValue, (1...1000).contains(size) else { throw ValidationError("'storage.poolSize' must be 1 to 1000") }
                poolSize = Int(size)
            }
            return .postgres(Postgres(url: url, passwordFile: try string("passwordFile"), poolSize: poolSize, dataKeyFile: try string("dataKeyFile")))
        case let other:
            throw ValidationError("'storage.backend' is lmdb or postgres, not '\(other)'")
        }
    }
}
