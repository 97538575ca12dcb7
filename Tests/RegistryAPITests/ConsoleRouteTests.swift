import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

@testable import RegistryAPI

/// The operator console's files and the audit routes it uses, at router level. The console
/// itself is driven in a real browser by Tests/console-e2e.
struct ConsoleRouteTests {
    typealias R = RegistryRoutesTests

    static func withAPI(
        console: Bool = true,
        _ body: @escaping @Sendable (any TestClientProtocol, RegistryStore) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            var configuration = RegistryAPIConfiguration()
            configuration.console = console
            let router = buildRouter(
                store: store,
                authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies),
                configuration: configuration,
                now: { R.now }
            )
            try await Application(router: router).test(.router) { client in try await body(client, store) }
            store.close()
        }
    }

    struct Fetched {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var text: String
    }

    static func get(_ client: any TestClientProtocol, _ path: String, auth: String? = nil) async throws -> Fetched {
        var headers = HTTPFields()
        if let auth { headers[.authorization] = auth }
        return try await client.execute(uri: path, method: .get, headers: headers) {
            Fetched(status: $0.status, headers: $0.headers, text: String(buffer: $0.body))
        }
    }

    @Test func theConsoleIsServedWithoutATokenUnderAStrictPolicy() async throws {
        try await Self.withAPI { client, _ in
            let page = try await Self.get(client, "/console/")
            let html = page.text
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let policy = try #require(page.headers[.contentSecurityPolicy])
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe"))
            #expect(policy.contains("frame-ancestors 'none'"))
            #expect(page.headers[.xContentTypeOptions] == "nosniff")
            #expect(html.contains(#"<script src="app.js" defer></script>"#))
            for name in ["app.js", "app.css"] {
                let file = try await Self.get(client, "/console/\(name)")
                #expect(file.status == .ok, "\(name)")
                #expect(file.headers[.contentSecurityPolicy] == policy)
            }
            let redirect = try await Self.get(client, "/console")
            #expect(redirect.status == .movedPermanently && redirect.headers[.location] == "/console/")
            // Only the console's own files are open; anything else under /console needs a token.
            let fetched1 = try await Self.get(client, "/console/secrets.json")
            #expect(fetched1.status == .unauthorized)
            let fetched2 = try await Self.get(client, "/console/secrets.json", auth: R.token())
            #expect(fetched2.status == .notFound)
            // The API it calls is not.
            let fetched3 = try await Self.get(client, "/devices")
            #expect(fetched3.status == .unauthorized)
        }
    }

    /// What the policy forbids is not needed: no inline script or style, no handler attributes,
    /// no other origin anywhere in the files.
    @Test func theFilesNeedNothingThePolicyForbids() {
        for (name, asset) in ConsoleAssets.files {
            // The SVG namespace is a name, not a place the page goes.
            let text = asset.text.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
            #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"), "\(name): another origin")
            if name.hasSuffix(".html") {
                let scripts = text.components(separatedBy: "<script").dropFirst()
                #expect(scripts.allSatisfy { $0.hasPrefix(#" src=""#) && $0.contains("></script>") }, "inline script")
                #expect(text.range(of: #"\son[a-z]+="#, options: .regularExpression) == nil, "an inline handler")
                #expect(!text.contains("style="), "an inline style")
                #expect(!text.contains("<style"), "an inline style sheet")
            }
            if name.hasSuffix(".js") {
                #expect(!text.contains("innerHTML") && !text.contains("eval("), "data reaches the page as text only")
                #expect(!text.contains("localStorage") && !text.contains("sessionStorage"), "the key is kept in memory only")
            }
        }
    }

    /// The embedded files are the ones in Console/assets (tools/embed-console.py was run).
    @Test func theEmbeddedFilesAreTheAssets() throws {
        let assets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/RegistryAPI/Console/assets")
        let names = try FileManager.default.contentsOfDirectory(atPath: assets.path).sorted()
        #expect(names == ConsoleAssets.files.keys.sorted())
        for name in names {
            var text = try String(contentsOf: assets.appendingPathComponent(name), encoding: .utf8)
            if text.hasSuffix("\n") { text.removeLast() }
            #expect(ConsoleAssets.files[name]?.text == text, "run tools/embed-console.py: \(name) changed")
        }
    }

    @Test func offWhenTheOperatorSaysSo() async throws {
        try await Self.withAPI(console: false) { client, _ in
            let fetched4 = try await Self.get(client, "/console/")
            #expect(fetched4.status == .unauthorized)
            let fetched5 = try await Self.get(client, "/console/", auth: R.token())
            #expect(fetched5.status == .notFound)
        }
    }

    @Test func theChainHeadAndAVerificationThatStreamsItsProgress() async throws {
        try await Self.withAPI { client, _ in
            _ = try await R.call(client, .put, "/devices/d1", body: "{}")
            _ = try await R.call(client, .put, "/devices/d2", body: "{}")
            let head = try await R.call(client, .get, "/registry/log/head")
            #expect(head.json?["seq"]?.intValue == 2)
            #expect(head.json?["hash"]?.stringValue?.count == 64)
            var headers = HTTPFields()
            headers[.authorization] = R.token("registryRead")
            let response = try await client.execute(uri: "/registry/audit/verify", method: .post, headers: headers) {
                Fetched(status: $0.status, headers: $0.headers, text: String(buffer: $0.body))
            }
            #expect(response.status == .ok)
            let lines = response.text.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }
            #expect(lines.last?["result"]?.stringValue == "clean")
            #expect(lines.last?["events"]?.intValue == 2)
            #expect(lines.dropLast().allSatisfy { $0["total"]?.intValue == 2 })
            // A device policy may not read the registry.
            let refused = try await R.call(client, .get, "/registry/log/head", auth: R.token("device"))
            #expect(refused.status == .unauthorized)
        }
    }
}
