import Foundation
import RegistryAPI
import RegistryTesting
import Testing
import X509

/// Item 15 of the hardening issue: a certificate is served only with its own key, at the first
/// load and at a reload (SIGHUP), where a refused pair leaves the running one in service.
struct ServingCertificateTests {
    /// Two generated pairs, `a` and `b`, in their own directories.
    static func withTwoPairs(_ body: (LocalCertificateAuthority.Paths, LocalCertificateAuthority.Paths) throws -> Void) throws {
        try withTemporaryDirectory { dir in
            let a = LocalCertificateAuthority.Paths(dataDirectory: dir + "/a")
            let b = LocalCertificateAuthority.Paths(dataDirectory: dir + "/b")
            try LocalCertificateAuthority.ensure(a)
            try LocalCertificateAuthority.ensure(b)
            try body(a, b)
        }
    }

    @Test func aKeyThatDoesNotMatchItsCertificateIsRefusedAtLoad() throws {
        try Self.withTwoPairs { a, b in
            #expect(throws: CertificateMismatch.self) { try ServingCertificate(certificatePath: a.serverCertificate, keyPath: b.serverKey) }
            _ = try ServingCertificate(certificatePath: a.serverCertificate, keyPath: a.serverKey)
        }
    }

    @Test func aReloadWithAMismatchedKeyIsRefused() throws {
        try Self.withTwoPairs { a, b in
            let serving = try ServingCertificate(certificatePath: a.serverCertificate, keyPath: a.serverKey)
            let served = serving.certificate
            try FileManager.default.removeItem(atPath: a.serverKey)
            try FileManager.default.copyItem(atPath: b.serverKey, toPath: a.serverKey)
            #expect(throws: CertificateMismatch.self) { try serving.reload() }
            #expect(serving.certificate == served, "the running pair stays in service")
            // The matching key back: the reload goes through.
            try FileManager.default.removeItem(atPath: a.serverKey)
            try FileManager.default.copyItem(atPath: b.serverKey, toPath: a.serverKey)
            try FileManager.default.removeItem(atPath: a.serverCertificate)
            try FileManager.default.copyItem(atPath: b.serverCertificate, toPath: a.serverCertificate)
            #expect(try serving.reload() != nil)
            #expect(serving.certificate != served)
        }
    }
}
