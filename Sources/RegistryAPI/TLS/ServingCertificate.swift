import Foundation
import NIOCore
import NIOSSL
import Synchronization

/// The certificate chain and key the server presents, re-read from their files on SIGHUP. Each
/// TLS handshake takes the current pair (NIOSSL's per-handshake context callback), so a reload
/// applies to new connections while established ones carry on undisturbed.
public final class ServingCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let current: Mutex<NIOSSLContextConfigurationOverride>

    public init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        current = Mutex(try Self.load(certificatePath: certificatePath, keyPath: keyPath))
    }

    static func load(certificatePath: String, keyPath: String) throws -> NIOSSLContextConfigurationOverride {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = chain.map { .certificate($0) }
        override.privateKey = .privateKey(key)
        return override
    }

    /// Re-reads both files; on any error the running pair stays and the error is thrown.
    /// - Returns: the new certificate's expiry, when readable.
    @discardableResult
    public func reload() throws -> Date? {
        let fresh = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
        current.withLock { $0 = fresh }
        return LocalCertificateAuthority.expiry(ofCertificateAt: certificatePath)
    }

    /// A TLS 1.2+ server configuration whose handshakes use the current pair.
    public func serverConfiguration() throws -> TLSConfiguration {
        var configuration = try LocalCertificateAuthority.serverConfiguration(certificatePath: certificatePath, keyPath: keyPath)
        configuration.sslContextCallback = { [self] _, promise in
            promise.succeed(current.withLock { $0 })
        }
        return configuration
    }
}
