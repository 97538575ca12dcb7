import Foundation
import Logging

/// Keeps the generated server certificate (the local CA's, never an operator's) current while
/// the daemon runs: `renewIfDue(now:)` issues a new one when it comes within its renewal margin
/// of expiry (`LocalCertificateAuthority.renewalDue`) or stops naming the configured names,
/// then swaps it in for new handshakes. The daemon calls it periodically with the clock's time;
/// tests call it with the time they choose.
public struct CertificateRenewal: Sendable {
    public let paths: LocalCertificateAuthority.Paths
    public let names: ServerNames
    public let serving: ServingCertificate
    let logger: Logger

    /// `nil` unless `serving` serves the generated certificate of `paths`: an operator's
    /// certificate (`--tls-cert`) is theirs to renew, and is never replaced.
    public init?(paths: LocalCertificateAuthority.Paths, names: ServerNames, serving: ServingCertificate, logger: Logger) {
        guard serving.certificatePath == paths.serverCertificate, serving.keyPath == paths.serverKey else { return nil }
        self.paths = paths
        self.names = names
        self.serving = serving
        self.logger = logger
    }

    /// Renews the certificate if it is due at `now`, and serves the new one.
    /// - Returns: the new certificate's expiry, or `nil` when nothing was due.
    @discardableResult
    public func renewIfDue(now: Date) throws -> Date? {
        guard case .issued(let reason) = try LocalCertificateAuthority.ensure(paths, names: names, now: now) else { return nil }
        let expiry = try serving.reload()
        logger.notice(
            "issued a new server certificate with the local CA",
            metadata: ["tls.certificate": "\(paths.serverCertificate)", "tls.reason": "\(reason)", "tls.expiry": "\(expiry.map { "\($0)" } ?? "?")"]
        )
        return expiry
    }
}
