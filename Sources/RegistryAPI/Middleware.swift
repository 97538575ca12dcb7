import Foundation
import HTTPTypes
import Hummingbird
import Logging
import RegistryCore
import RegistryTransfer
import Synchronization

/// Turns every failure into Azure's error format, and logs what the client is not told.
struct AzureErrorMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch let error as RegistryError {
            return APIError(error).response()
        } catch let error as WireFormatError {
            return APIError(status: .badRequest, code: error.code, message: error.message).response()
        } catch let error as StorageFullError {
            context.logger.error("write refused: storage full", metadata: ["error": "\(error)"])
            return APIError(
                status: .serviceUnavailable,
                code: "ServiceUnavailable",
                message: "The registry's storage is full; nothing was written. It resumes by itself when space returns; retry later."
            ).response()
        } catch let error as StorageUnavailableError {
            // A networked backend's database is down or failing over: nothing was written.
            context.logger.warning("request refused: storage unreachable", metadata: ["error": "\(error)"])
            var response = APIError(
                status: .serviceUnavailable,
                code: "ServiceUnavailable",
                message: "The registry's database is unreachable; nothing was written. Retry later."
            ).response()
            let (seconds, attoseconds) = error.retryAfter.components
            response.headers[.retryAfter] = String(max(1, seconds + (attoseconds > 0 ? 1 : 0)))
            return response
        } catch let error as WriteTimeoutError {
            // Withdrawn before the writer took it (see RegistryStore.execute): nothing was
            // written, so the client may retry the same request as it is.
            context.logger.warning("write refused: the writer took no work within the write timeout", metadata: ["error": "\(error)"])
            var response = APIError(
                status: .serviceUnavailable,
                code: "ServiceUnavailable",
                message: "The registry's writer is busy or stuck; the request was withdrawn and nothing was written. Retry later."
            ).response()
            // Whole seconds, rounded up (as the throttling's Retry-After).
            let (seconds, attoseconds) = error.waited.components
            response.headers[.retryAfter] = String(max(1, seconds + (attoseconds > 0 ? 1 : 0)))
            return response
        } catch let error as HTTPError {
            switch error.status {
            case .contentTooLarge:
                return APIError(status: .contentTooLarge, code: "MessageTooLarge", message: "The request body is too large.").response()
            case .notFound:
                return APIError(status: .notFound, code: "NotFound", message: "No such resource: \(request.method) \(request.uri.path)").response()
            case .methodNotAllowed:
                return APIError(status: .methodNotAllowed, code: "InvalidOperation", message: "\(request.method) is not supported here.").response()
            default:
                return APIError(status: error.status, code: "InvalidOperation", message: error.body ?? "\(error.status.reasonPhrase)").response()
            }
        } catch {
            context.logger.error("request failed", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            return APIError(status: .internalServerError, code: "ServerError", message: "The request failed on the server.").response()
        }
    }
}

/// Request ids for requests that bring none: a random per-process prefix and a counter (a UUID
/// per request showed up in the GET profile).
enum RequestIDs {
    static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        return String(UInt64.random(in: 0...UInt64.max, using: &generator), radix: 16)
    }()
    static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        "\(prefix)-\(String(counter.wrappingAdd(1, ordering: .relaxed).newValue, radix: 16))"
    }
}

/// Authenticates every request except health probes (and `/metrics` when opened) with a
/// service SAS token. Failures answer 401 IotHubUnauthorizedAccess whatever the reason; the reason goes
/// to the debug log only (never the token).
struct SASAuthenticationMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    let authenticator: ServiceAuthenticator
    let now: @Sendable () -> Int64
    /// Paths answered without a token: the health probes, and `/metrics` when the operator opens it.
    let openPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        var response: Response
        if openPaths.contains(request.uri.path) {
            response = try await next(request, context)
        } else {
            switch authenticator.authenticate(header: Self.signature(request.headers[.authorization]), now: now()) {
            case .success(let policy):
                context.policy = policy
                response = try await next(request, context)
            case .failure(let reason):
                context.logger.debug("authentication refused", metadata: ["auth.reason": "\(reason.rawValue)"])
                response = APIError.unauthorized.response()
            }
        }
        return response
    }

    /// The SAS token a request presents: the header itself, or, for a client that can only send
    /// HTTP Basic credentials (RabbitMQ's HTTP auth backend, given `https://name:TOKEN@host/…`),
    /// the Basic password, percent-decoded once (it arrives as written in the URL). Anything
    /// else is passed on unchanged and fails as a malformed token.
    static func signature(_ header: String?) -> String? {
        // Bytes, not Characters: this runs on every request.
        guard let header, header.utf8.count > 6, ASCIICase.equal(header.utf8.prefix(6), "basic ".utf8) else { return header }
        guard let decoded = Data(base64Encoded: header.dropFirst(6).trimmingCharacters(in: .whitespaces)),
            let credentials = String(data: decoded, encoding: .utf8),
            let colon = credentials.firstIndex(of: ":")
        else { return header }
        let password = credentials[credentials.index(after: colon)...]
        return PercentDecoding.decode(password.utf8) ?? String(password)
    }
}
