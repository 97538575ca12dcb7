import Foundation
import HTTPTypes
import Hummingbird
import Logging
import RegistryCore

/// Outermost middleware: stamps the request id (the client's `x-ms-client-request-id` or
/// `Request-Id`, else a generated one) on the context and the response, records the request
/// metrics, and writes the access log with request id, operation, identity, status and duration.
/// Never headers or bodies, so never a token, signature or key.
///
/// What gets a line of its own at `info` (the default): changes and refusals (every status of
/// 400 and up except a read's 404), at `warning` for 5xx. Successful reads, queries and device
/// checks, the bulk of a registry's traffic, get a line only at `debug`; at `info` they are
/// counted in `AccessLogSummary`, which the daemon logs once a minute. Probes and scrapes are
/// `debug` lines and not counted.
struct RequestObservationMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    let metrics: RegistryMetrics?
    let summary: AccessLogSummary?

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
        let (level, quietClass) = Self.level(method: request.method.rawValue, path: request.uri.path, status: response.status.code)
        if context.logger.logLevel <= level {
            var metadata: Logger.Metadata = [
                "request.id": .string(context.requestId),
                "operation": .string("\(request.method.rawValue) \(operation)"),
                "status": .stringConvertible(response.status.code),
                "duration_ms": .string(Self.milliseconds(duration)),
            ]
            if let identity = Self.identity(request.uri.path) { metadata["identity"] = .string(identity) }
            context.logger.log(level: level, "request", metadata: metadata)
        } else if let quietClass {
            summary?.record(quietClass, status: response.status.code)
        }
        return response
    }

    /// The level of a request's own line, and the summary class it is counted in when that
    /// level is off (`nil`: not counted). On every request's path: no allocation for a read.
    static func level(method: String, path: String, status: Int) -> (Logger.Level, AccessLogSummary.Class?) {
        if path == "/healthz" || path == "/readyz" || path == "/metrics" { return (.debug, nil) }
        if status >= 500 { return (.warning, nil) }
        if method == "GET" || method == "HEAD" {
            return status < 400 || status == 404 ? (.debug, .reads) : (.info, nil)
        }
        guard status < 400, method == "POST" else { return (.info, nil) }
        switch OperationClass.of(method: method, path: path) {
        case .deviceAuth: return (.debug, .deviceAuth)
        case .queries: return (.debug, .queries)
        default: return (.info, nil)
        }
    }

    /// `12.345`: milliseconds with three decimals, without Foundation's `String(format:)` (a
    /// few microseconds a call, on every logged request).
    static func milliseconds(_ duration: Duration) -> String {
        let micros = max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
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
