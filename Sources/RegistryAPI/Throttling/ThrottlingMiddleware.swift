import HTTPTypes
import Hummingbird

/// Answers 429 `ThrottlingException` with `Retry-After` (whole seconds, rounded up) when the
/// request's class has no token left. Runs after authentication, so unauthenticated requests
/// never use up a client's budget.
struct ThrottlingMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    let throttle: Throttle
    let metrics: RegistryMetrics?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let operationClass = OperationClass.of(method: request.method.rawValue, path: request.uri.path),
            let wait = throttle.acquire(operationClass)
        else { return try await next(request, context) }
        metrics?.throttledRequest(operationClass: operationClass.rawValue)
        let seconds = max(1, wait.components.seconds + (wait.components.attoseconds > 0 ? 1 : 0))
        var response = APIError(
            status: .tooManyRequests,
            code: "ThrottlingException",
            message: "Too many \(operationClass.rawValue) requests; retry after \(seconds) s."
        ).response()
        response.headers[.retryAfter] = String(seconds)
        return response
    }
}
