import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import RegistryCore

/// An HTTP or HTTPS endpoint, signed per the Standard Webhooks specification:
/// `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
/// "id.timestamp.body">`, so off-the-shelf verifiers accept it. 2xx is success, 410 means gone,
/// anything else (or a timeout or refused connection) is a failure to retry.
///
/// Redirects are never followed: a 3xx is a failed delivery like any other non-2xx. Following
/// one would send the signed message (and its signature) to an address the operator never
/// configured, chosen by whoever controls the receiver's answers.
public final class WebhookSink: Sink {
    let url: String
    let secret: [UInt8]
    let timeout: TimeAmount
    let client: HTTPClient
    let now: @Sendable () -> Int64

    public var maxBatch: Int { 1 }

    public init(
        url: String,
        secret: [UInt8],
        caFile: String?,
        timeoutMs: Int,
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) throws {
        self.url = url
        self.secret = secret
        self.timeout = .milliseconds(Int64(timeoutMs))
        self.now = now
        var configuration = HTTPClient.Configuration()
        if let caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            configuration.tlsConfiguration = tls
        }
        configuration.timeout = .init(connect: .milliseconds(Int64(timeoutMs)), read: .milliseconds(Int64(timeoutMs)))
        // AsyncHTTPClient follows up to five redirects by default; see the type's comment.
        configuration.redirectConfiguration = .disallow
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// `v1,<base64 HMAC-SHA256(secret, "id.timestamp.body")>`.
    public static func signature(id: String, timestamp: Int64, body: [UInt8], secret: [UInt8]) -> String {
        var content = Array("\(id).\(timestamp).".utf8)
        content += body
        let mac = HMAC<SHA256>.authenticationCode(for: content, using: Crypto.SymmetricKey(data: secret))
        return "v1," + Data(mac).base64EncodedString()
    }

    public func deliver(_ messages: [RouteMessage]) async -> DeliveryOutcome {
        for message in messages {
            let outcome = await post(message)
            guard outcome == .delivered else { return outcome }
        }
        return .delivered
    }

    func post(_ message: RouteMessage) async -> DeliveryOutcome {
        let body = message.encoded
        let timestamp = now()
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "webhook-id", value: message.id)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature", value: Self.signature(id: message.id, timestamp: timestamp, body: body, secret: secret))
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            // Drain (bounded) so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            switch response.status.code {
            case 200..<300: return .delivered
            case 410: return .gone("the receiver answered 410 Gone")
            case 300..<400: return .failed("the receiver answered \(response.status.code), a redirect (not followed)")
            default: return .failed("the receiver answered \(response.status.code)")
            }
        } catch {
            return .failed("\(error)")
        }
    }

    public func shutdown() async {
        try? await client.shutdown()
    }
}
