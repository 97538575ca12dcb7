import Foundation
import Logging
import RegistryAPI
import ServiceLifecycle

/// Checks the generated server certificate every `interval` and renews it when due
/// (`CertificateRenewal`; `serve` has already checked it once at start). Without one (an
/// operator's certificate, or plain HTTP) it only waits for the shutdown, as a service must.
struct CertificateRenewalService: Service {
    let renewal: CertificateRenewal?
    let interval: Duration
    /// Told the new expiry after a renewal (the certificate-expiry metric).
    let onRenewed: @Sendable (Date) -> Void
    let logger: Logger

    func run() async throws {
        guard let renewal else {
            try? await gracefulShutdown()
            return
        }
        await everyInterval(interval) {
            do {
                if let expiry = try renewal.renewIfDue(now: Date()) { onRenewed(expiry) }
            } catch {
                logger.error("server certificate renewal failed; the running certificate stays", metadata: ["error": "\(error)"])
            }
        }
    }
}
