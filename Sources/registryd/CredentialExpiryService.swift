import Logging
import RegistryAPI
import RegistryCore
import ServiceLifecycle

/// Runs `CredentialExpiryNotices` at start and then every `checkInterval` until shutdown. A
/// failed scan (the database away, the disk full) is logged and tried again at the next tick.
struct CredentialExpiryService: Service {
    let notices: CredentialExpiryNotices
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await check()
        await everyInterval(interval) { await check() }
    }

    func check() async {
        do {
            try await notices.check(now: SystemClock().now())
        } catch {
            logger.warning("credential expiry scan failed; it runs again at the next interval", metadata: ["error": "\(error)"])
        }
    }
}
