import HTTPTypes
import Hummingbird

/// Answers 431 when a request's header block is larger than `ConnectionLimits.maxHeaderBytes`,
/// before authentication looks at it (a token is one header; nothing needs 32 KiB).
/// Header blocks over the decoder's own limit never get here: `RequestProgressHandler`
/// answers those.
struct HeaderSizeMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    let maxHeaderBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var total = 0
        for field in request.headers {
            // As on the wire: "name: value\r\n".
            total += field.name.rawName.utf8.count + field.value.utf8.count + 4
        }
        guard total <= maxHeaderBytes else {
            throw APIError(
                status: .init(code: 431, reasonPhrase: "Request Header Fields Too Large"),
                code: "RequestHeaderFieldsTooLarge",
                message: "The request's headers total \(total) bytes; the registry accepts at most \(maxHeaderBytes)."
            )
        }
        return try await next(request, context)
    }
}
