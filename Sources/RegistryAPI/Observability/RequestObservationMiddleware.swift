import Foundation
import HTTPTypes
import Hummingbird
import Logging
import RegistryCore

/// Outermost middleware: stamps the request id (the client's `x-ms-client-request-id` or
/// `Request-Id`, else a generated one) on the context and the response, records the request
/// metrics, and writes one log line per request (at `info`, probes and scrapes at `debug`;
/// `--log-level notice` turns them off) with request id, operation, identity, status and duration. Never headers or bodies, so
/// never a token, signature or key.
struct RequestObservationMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    let metrics: RegistryMetrics?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var context = context
        context.requestId = request.headers[.clientRequestId] ?? request.headers[.legacyRequestId] ?? RequestIDs.next()
        var response = try await next(request, context)
        response.headers[.requestId] = context.requestId
        let duration = ContinuousClock.now - started
        // The route template bounds the label set; unmatched paths share one label.
        let operation = context.endpointPath ?? "unmatched"
        metrics?.request(operation: operation, method: request.method.rawValue, status: response.status.code, duration: duration)
        // Probes and scrapes come every few seconds: debug, so they do not drown the requests.
        let level: Logger.Level = ["/healthz", "/readyz", "/metrics"].contains(request.uri.path) ? .debug : .info
        if context.logger.logLevel <= level {
            var metadata: Logger.Metadata = [
                "request.id": .string(context.requestId),
                "operation": .string("\(request.method.rawValue) \(operation)"),
                "status": .stringConvertible(response.status.code),
                "duration_ms": .string(String(format: "%.3f", Double(duration.components.attoseconds) / 1e15 + Double(duration.components.seconds) * 1000)),
            ]
            if let identity = Self.identity(request.uri.path) { metadata["identity"] = .string(identity) }
            context.logger.log(level: level, "request", metadata: metadata)
        }
        return response
    }

    /// `device` or `device/module` from a registry path, percent-decoded.
    static func identity(_ path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let first = parts.first else { return nil }
        let start = first == "registry" ? 1 : 0
        guard parts.count > start + 1, parts[start] == "devices" else { return nil }
        let device = RegistryRoutes.percentDecoded(String(parts[start + 1])) ?? String(parts[start + 1])
        if parts.count > start + 3, parts[start + 2] == "modules" {
            return device + "/" + (RegistryRoutes.percentDecoded(String(parts[start + 3])) ?? String(parts[start + 3]))
        }
        return device
    }
}
