import Foundation
import NIOSSL
import PostgresNIO
import RegistryCore

/// Where a PostgreSQL-backed registry lives: a `postgres://user[:password]@host[:port]/database`
/// URL with libpq's `sslmode` / `sslrootcert` parameters, plus the hub whose chain this node
/// serves (`?hub=`, default `default`: every table is keyed by hub, so one database can hold
/// several). The password may instead come from a file (`passwordFile`, or `?passwordFile=`),
/// so it never has to sit in a unit file or a process list.
///
/// Never printed with its password: `description` is the URL with the password replaced.
public struct PostgresLocation: Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable {
        /// No TLS (a Unix socket or a trusted loopback).
        case disable
        /// TLS if the server offers it, unverified; else plain (libpq's `prefer` and `allow`).
        case prefer
        /// TLS required, the server's certificate not verified (libpq's `require`).
        case require
        /// TLS required, the certificate verified against `sslrootcert`, not the host name.
        case verifyCA = "verify-ca"
        /// TLS required, the certificate verified against `sslrootcert` and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    /// A directory holding the server's Unix socket (`?host=/path`, as libpq): used instead of TCP.
    public var socketDirectory: String?
    public var username: String
    public var database: String
    public var hub: String
    public var tls: TLSMode
    public var caFile: String?
    /// Connections in this node's pool (the writer and the log follower hold one each).
    public var poolSize: Int
    private var password: String?

    /// Parses a storage URL.
    /// - Parameters:
    ///   - passwordFile: a file whose first line is the password (overrides one in the URL).
    /// - Throws: `StoreError` naming what is wrong (never echoing the password).
    public init(url: String, passwordFile: String? = nil, poolSize: Int? = nil) throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
            throw StoreError("a storage URL looks like postgres://user@host:5432/database (got a URL with another scheme or none)")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        username = components.user.map { $0.removingPercentEncoding ?? $0 } ?? "registryd"
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = components.port ?? 5432
        socketDirectory = query["host"].flatMap { $0.hasPrefix("/") ? $0 : nil }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? username : (path.removingPercentEncoding ?? path)
        hub = query["hub"] ?? "default"
        guard (1...128).contains(hub.utf8.count) else { throw StoreError("the storage URL's hub name must have 1 to 128 characters") }
        let mode = query["sslmode"] ?? (socketDirectory == nil ? "prefer" : "disable")
        switch mode {
        case "disable": tls = .disable
        case "allow", "prefer": tls = .prefer
        case "require": tls = .require
        case "verify-ca": tls = .verifyCA
        case "verify-full": tls = .verifyFull
        default: throw StoreError("sslmode=\(mode) is not one of disable, allow, prefer, require, verify-ca, verify-full")
        }
        caFile = query["sslrootcert"]
        if tls == .verifyFull || tls == .verifyCA, caFile == nil {
            throw StoreError("sslmode=\(mode) needs sslrootcert=/path/to/ca.pem in the storage URL")
        }
        if let file = passwordFile ?? query["passwordFile"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw StoreError("cannot read the database password file \(file)")
            }
            password = String(text.split(whereSeparator: \.isNewline).first ?? "")
        }
        self.poolSize = max(3, poolSize ?? query["poolSize"].flatMap { Int($0) } ?? 8)
    }

    /// Whether `text` names a PostgreSQL store (rather than a data directory).
    public static func isURL(_ text: String) -> Bool { text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") }

    /// The URL without its password: what logs, errors and `/metrics` may show.
    public var description: String {
        let credentials = password == nil ? username : "\(username):***"
        let socket = socketDirectory.map { "&host=\($0)" } ?? ""
        return "postgres://\(credentials)@\(host):\(port)/\(database)?hub=\(hub)&sslmode=\(tls.rawValue)\(socket)"
    }

    /// PostgresNIO's client configuration for this location.
    public func clientConfiguration() throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)",
                username: username,
                password: password,
                database: database
            )
        } else {
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: try tlsSetting())
        }
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = 1
        // A lost server is noticed within seconds, not at the next TCP timeout.
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(5))
        configuration.options.additionalStartupParameters = Self.sessionSettings
        return configuration
    }

    /// Server-side settings of every session: a node that dies or is cut off inside a
    /// transaction (holding the log head's row lock) or holding a route lease must not keep
    /// them for the kernel's default two hours. The server ends an idle transaction after
    /// 15 s and probes a silent client's TCP connection after 5 s (3 probes, 2 s apart).
    static let sessionSettings: [(String, String)] = [
        ("idle_in_transaction_session_timeout", "15s"),
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "2"),
        ("tcp_keepalives_count", "3"),
    ]

    /// A single connection's configuration (route leases hold one each, outside the pool).
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)",
                username: username,
                password: password,
                database: database
            )
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch self.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: try tlsConfiguration()))
            case .require, .verifyCA, .verifyFull: tls = .require(try NIOSSLContext(configuration: try tlsConfiguration()))
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.additionalStartupParameters = Self.sessionSettings
        return configuration
    }

    private func tlsSetting() throws -> PostgresClient.Configuration.TLS {
        switch tls {
        case .disable: return .disable
        case .prefer: return .prefer(try tlsConfiguration())
        case .require, .verifyCA, .verifyFull: return .require(try tlsConfiguration())
        }
    }

    private func tlsConfiguration() throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch tls {
        case .disable, .prefer, .require:
            configuration.certificateVerification = .none
        case .verifyCA:
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .file(caFile ?? "")
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
            configuration.trustRoots = .file(caFile ?? "")
        }
        return configuration
    }
}
