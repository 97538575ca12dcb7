import HTTPTypes
import Hummingbird

/// `GET /console/…`: the operator console's static files (`ConsoleAssets`, built into the
/// binary), served on the API's own listener and TLS. They are the one thing served without a
/// token besides the probes: the browser loads them before the operator has pasted a connection
/// string, and they hold no data (every datum then comes through the authenticated API). A strict
/// Content-Security-Policy allows only these files' own script and style, and calls to this
/// origin; no inline script, no other origin, no framing.
struct ConsoleRoute: Sendable {
    /// Paths answered without a token (exact, never a prefix).
    static let openPaths: Set<String> = Set(["/console", "/console/"] + ConsoleAssets.files.keys.map { "/console/\($0)" })

    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    func register(on router: Router<RegistryRequestContext>) {
        // One route for `/console` and `/console/` (the router ignores a trailing slash); the
        // page's relative links need the slash, so the bare path is sent there.
        router.get("console") { request, _ in
            request.uri.path.hasSuffix("/") ? Self.file("index.html") : Response(status: .movedPermanently, headers: [.location: "/console/"])
        }
        router.get("console/:file") { _, context in
            guard let name = context.parameters.get("file"), ConsoleAssets.files[name] != nil else {
                return Response(
                    status: .notFound,
                    headers: Self.headers(contentType: "text/plain; charset=utf-8"),
                    body: .init(byteBuffer: ByteBuffer(string: "not found"))
                )
            }
            return Self.file(name)
        }
    }

    static func file(_ name: String) -> Response {
        let asset = ConsoleAssets.files[name]!
        return Response(status: .ok, headers: headers(contentType: asset.contentType), body: .init(byteBuffer: ByteBuffer(string: asset.text)))
    }

    static func headers(contentType: String) -> HTTPFields {
        [
            .contentType: contentType,
            .contentSecurityPolicy: contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
            .referrerPolicy: "no-referrer",
            .cacheControl: "no-cache",
            .xFrameOptions: "DENY",
        ]
    }
}

extension HTTPField.Name {
    static let xFrameOptions = Self("X-Frame-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
}
