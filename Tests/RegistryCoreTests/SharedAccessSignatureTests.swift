import Foundation
import Testing

@testable import RegistryCore

/// The SAS token parser (byte-level) and signature check, against a token made by Python's
/// standard library the way Microsoft's SDKs make them.
struct SharedAccessSignatureTests {
    static let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    static let python =
        "SharedAccessSignature sr=hub.example.com%2Fdevices%2Fdev%201&sig=oPid%2BgrGW%2B3w3%2FLLNrWJtZcubvcf%2FKuLPNuGZ4crhDQ%3D&se=1800000000"

    @Test func parsesAndVerifiesAnSDKToken() throws {
        let token = try #require(SharedAccessSignature(header: Self.python))
        #expect(token.resource == "hub.example.com/devices/dev 1")
        #expect(token.rawResource == "hub.example.com%2Fdevices%2Fdev%201")
        #expect(token.expiry == 1_800_000_000)
        #expect(token.keyName == nil)
        #expect(Data(token.signature).base64EncodedString() == "oPid+grGW+3w3/LLNrWJtZcubvcf/KuLPNuGZ4crhDQ=")
        #expect(token.isSigned(with: Self.key))
        #expect(!token.isSigned(with: Data(repeating: 9, count: 32).base64EncodedString()))
        #expect(!token.isSigned(withKeyBytes: []))
        // `make` produces the same bytes as the SDKs.
        #expect(
            SharedAccessSignature.make(resource: "hub.example.com/devices/dev 1", key: Self.key, keyName: nil, expiry: 1_800_000_000) == Self.python
        )
    }

    @Test func fieldOrderCaseAndPolicyNames() throws {
        let reordered = try #require(
            SharedAccessSignature(
                header:
                    "sharedaccesssignature SE=1800000000&Skn=my%20policy&SIG=oPid%2BgrGW%2B3w3%2FLLNrWJtZcubvcf%2FKuLPNuGZ4crhDQ%3D&sr=hub.example.com%2Fdevices%2Fdev%201&extra=1"
            )
        )
        #expect(reordered.keyName == "my policy")
        #expect(reordered.isSigned(with: Self.key))
        // A literal '+' in sig stays a '+' (no form decoding).
        let plus = try #require(SharedAccessSignature(header: "SharedAccessSignature sr=h&sig=oPid+grGW+3w3/LLNrWJtZcubvcf/KuLPNuGZ4crhDQ=&se=1.8e9"))
        #expect(Data(plus.signature).base64EncodedString() == "oPid+grGW+3w3/LLNrWJtZcubvcf/KuLPNuGZ4crhDQ=")
        #expect(plus.expiry == 1_800_000_000)
    }

    @Test func malformedTokensAreRefused() {
        for header in [
            "",
            "SharedAccessSignature ",
            "Bearer sr=h&sig=AAAA&se=1",
            "SharedAccessSignature sr=h&sig=AAAA",  // no se
            "SharedAccessSignature sig=AAAA&se=1",  // no sr
            "SharedAccessSignature sr=h&sr=g&sig=AAAA&se=1",  // repeated field
            "SharedAccessSignature sr=h%2&sig=AAAA&se=1",  // bad escape
            "SharedAccessSignature sr=h%zz&sig=AAAA&se=1",
            "SharedAccessSignature sr=h%FF&sig=AAAA&se=1",  // not UTF-8
            "SharedAccessSignature sr=h&sig=not*base64&se=1",
            "SharedAccessSignature sr=h&sig=AAAA&se=soon",
            "SharedAccessSignature sr=h&sig=AAAA&se=1&novalue",
        ] {
            #expect(SharedAccessSignature(header: header) == nil, "\(header)")
        }
    }

    @Test func brokerCredentialsWithOrWithoutTheScheme() throws {
        let bare = String(Self.python.dropFirst("SharedAccessSignature ".count))
        for text in [Self.python, bare, "sharedAccessSignature " + bare] {
            let token = try #require(SharedAccessSignature(credential: text), "\(text)")
            #expect(token.isSigned(with: Self.key))
            #expect(token.signedMessage == Array("hub.example.com%2Fdevices%2Fdev%201\n1800000000".utf8))
        }
        // Without the scheme a header is not a header.
        #expect(SharedAccessSignature(header: bare) == nil)
        for text in ["", "SharedAccessSignature", "sr=h&sig=AAAA", "Bearer " + bare] {
            #expect(SharedAccessSignature(credential: text) == nil, "\(text)")
        }
    }

    @Test func audiencesMatchTheHostInAnyCaseWithOrWithoutPort() {
        let host = "Hub.Example.com:8443"
        for audience in ["hub.example.com:8443", "HUB.EXAMPLE.COM", "hub.example.com/", "hub.example.com:8443/"] {
            #expect(ServiceAuthenticator.audience(audience, matches: host), "\(audience)")
        }
        for audience in ["hub.example.co", "hub.example.com:8444", "hub.example.com//", "other.example.com", "", "hub.example.com:"] {
            #expect(!ServiceAuthenticator.audience(audience, matches: host), "\(audience)")
        }
        #expect(ServiceAuthenticator.audience("localhost".prefix(9), matches: "localhost"))
    }
}
