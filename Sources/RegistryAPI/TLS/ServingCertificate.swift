import Foundation
import NIOCore
import NIOSSL
import Synchronization
import X509

/// The certificate chain and key the server presents, re-read from their files on SIGHUP. Each
/// TLS handshake takes the current pair (NIOSSL's per-handshake context callback), so a reload
/// applies to new connections while established ones carry on undisturbed.
///
/// A pair whose key is not the certificate's is refused, at the first load and at a reload (the
/// running pair stays): served, it would fail every handshake, and NIOSSL does not check it
/// when a pair is swapped in per handshake.
public final class ServingCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let current: Mutex<Loaded>

    struct Loaded {
        var override: NIOSSLContextConfigurationOverride
        var certificate: Certificate
    }

    public init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        current = Mutex(try Self.load(certificatePath: certificatePath, keyPath: keyPath))
    }

    static func load(certificatePath: String, keyPath: String) throws -> Loaded {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        let certificate = try LocalCertificateAuthority.firstCertificate(atPath: certificatePath)
        // The error names the files, never the key.
        let privateKey: Certificate.PrivateKey
        do {
            privateKey = try Certificate.PrivateKey(pemEncoded: try String(contentsOfFile: keyPath, encoding: .utf8))
        } catch {
            throw CertificateMismatch(path: keyPath, problem: "is not a PEM private key of a supported type (P-256, P-384, P-521, RSA, Ed25519)")
        }
        guard privateKey.publicKey == certificate.publicKey else {
            throw CertificateMismatch(path: keyPath, problem: "does not hold the key of the certificate in \(certificatePath)")
        }
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = chain.map { .certificate($0) }
        override.privateKey = .privateKey(key)
        return Loaded(override: override, certificate: certificate)
    }

    /// The certificate served now (the first of the chain).
    public var certificate: Certificate { current.withLock { $0.certificate } }

    /// Re-reads both files; on any error the running pair stays and the error is thrown.
    /// - Returns: the new certificate's expiry.
    @discardableResult
    public func reload() throws -> Date? {
        let fresh = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
        current.withLock { $0 = fresh }
        return fresh.certificate.notValidAfter
    }

    /// A TLS 1.2+ server configuration whose handshakes use the current pair.
    public func serverConfiguration() throws -> TLSConfiguration {
        var configuration = try LocalCertificateAuthority.serverConfiguration(certificatePath: certificatePath, keyPath: keyPath)
        configuration.sslContextCallback = { [self] _, promise in
            promise.succeed(current.withLock { $0.override })
        }
        return configuration
    }
}
