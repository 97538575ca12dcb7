import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import RegistryCore
import RegistryTransfer

/// `registryd rabbitmq-bridge`: feeds the registry's connection state from a RabbitMQ broker.
///
/// RabbitMQ tells nobody over HTTP when an MQTT client connects or goes (its event exchange
/// speaks AMQP only, and its `connection.closed` event does not even name the user). Its
/// management API does list the open connections, so the bridge reads that list every
/// `--interval` and posts the difference to `POST /registry/connections` (`BrokerConnections`):
/// state, not events, so a missed poll or a restart of the bridge loses nothing, and a device
/// reconnecting under the same client id is never shown disconnected. A report the registry did
/// not take is sent again on the next round.
struct RabbitMQBridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rabbitmq-bridge",
        abstract: "Report devices connecting and disconnecting through a RabbitMQ broker to the registry.",
        discussion: """
            Reads the broker's open MQTT connections from its management API (plugin \
            rabbitmq_management) and posts the changes to the registry's /registry/connections, \
            which sets connectionState and routes DeviceConnectionStateEvents. Runs until stopped.
            """
    )

    @Option(help: "The management API's base URL, e.g. http://127.0.0.1:15672.")
    var management: String

    @Option(help: "A management user with the monitoring (or administrator) tag.")
    var managementUser: String

    @Option(help: "A file holding that user's password.")
    var managementPasswordFile: String

    @Option(help: "The registry's base URL, e.g. https://registry.example.com:8443.")
    var registry: String

    @Option(help: "A file holding a SAS token of a policy with DeviceConnect (read again on every round: replace it to rotate).")
    var tokenFile: String

    @Option(help: "The CA certificate (PEM) the registry's certificate is checked against (default: the system's).")
    var caFile: String?

    @Option(help: "Seconds between two readings of the broker's connections.")
    var interval: Double = 1

    func validate() throws {
        guard interval >= 0.05, interval <= 3600 else { throw ValidationError("--interval must be from 0.05 to 3600 seconds") }
        for url in [management, registry] where URL(string: url)?.host == nil {
            throw ValidationError("\(url) is not a URL with a host")
        }
    }

    func run() async throws {
        let logger = Logger(label: "registryd.rabbitmq-bridge")
        let password = try Self.secret(managementPasswordFile)
        var configuration = HTTPClient.Configuration()
        if let caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            configuration.tlsConfiguration = tls
        }
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let managementAuth = "Basic " + Data("\(managementUser):\(password)".utf8).base64EncodedString()
        var reported: BrokerConnections?
        while !Task.isCancelled {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            do {
                let current = BrokerConnections(try await connections(client, authorization: managementAuth), now: now)
                let changes = current.reports(since: reported, now: now)
                if !changes.isEmpty {
                    try await report(changes, client)
                    logger.info("connection state reported", metadata: ["reports": "\(changes.count)", "connected": "\(current.connected.count)"])
                }
                reported = current
            } catch {
                logger.warning("round failed; trying again", metadata: ["error": "\(error)"])
            }
            if (try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))) == nil { break }
        }
        try? await client.shutdown()
    }

    /// The broker's open MQTT connections.
    private func connections(_ client: HTTPClient, authorization: String) async throws -> [BrokerConnections.Connection] {
        var request = HTTPClientRequest(url: management.trimmingSuffix("/") + "/api/connections?columns=user,protocol,connected_at")
        request.headers.add(name: "Authorization", value: authorization)
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else {
            throw ValidationError("the management API answered \(response.status.code) \(String(buffer: body).prefix(200))")
        }
        guard case .array(let items) = try JSONParser.parse(Array(body.readableBytesView)) else {
            throw ValidationError("the management API's connections are not a JSON array")
        }
        return items.compactMap { item in
            guard item["protocol"]?.stringValue?.hasPrefix("MQTT") == true, let user = item["user"]?.stringValue else { return nil }
            return BrokerConnections.Connection(username: user, connectedAt: item["connected_at"]?.intValue)
        }
    }

    /// Posts the changes as one array of reports; throws unless the registry took them all.
    private func report(_ changes: [(identity: BrokerConnections.Identity, connected: Bool, time: Int64)], _ client: HTTPClient) async throws {
        let reports: [JSONValue] = changes.map { change in
            var report: [String: JSONValue] = [
                "deviceId": .string(change.identity.deviceId),
                "state": .string(change.connected ? "connected" : "disconnected"),
                "time": .int(change.time),
            ]
            if let moduleId = change.identity.moduleId { report["moduleId"] = .string(moduleId) }
            return .object(report)
        }
        var request = HTTPClientRequest(url: registry.trimmingSuffix("/") + "/registry/connections?api-version=2021-04-12")
        request.method = .POST
        request.headers.add(name: "Authorization", value: try Self.secret(tokenFile))
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: CanonicalJSON.encode(.array(reports))))
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw ValidationError("the registry answered \(response.status.code) \(String(buffer: body).prefix(300))")
        }
        // A report for an identity the registry does not know (deleted meanwhile) is its
        // error to keep: logged, not retried for ever.
        if let errors = try? JSONParser.parse(Array(body.readableBytesView))["errors"], case .array(let list) = errors, !list.isEmpty {
            Logger(label: "registryd.rabbitmq-bridge").notice("reports refused", metadata: ["errors": "\(list.count)"])
        }
    }

    /// A secret file's first line.
    private static func secret(_ path: String) throws -> String {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let line = text.split(whereSeparator: \.isNewline).first.map(String.init), !line.isEmpty else {
            throw ValidationError("\(path) is empty")
        }
        return line
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
