import Logging
import RegistryCore

/// Writes one `deviceCredentialExpiring` / `moduleCredentialExpiring` event per validity window
/// once fewer than `expiryNoticeDays` are left (or it has already ended unnoticed, e.g. while the
/// daemon was down). The event marks the window noticed in the identity, so a restart or another
/// node scanning at the same time writes no second one; routes with the `CredentialExpiryEvents`
/// source deliver it. A window changed since (a new `notAfter`, a new key) is noticed afresh.
public struct CredentialExpiryNotices: Sendable {
    let store: any RegistryBackend
    let configuration: CredentialsConfiguration
    let logger: Logger

    /// Notices written per batch through the writer.
    static let batch = 1_000

    public init(store: any RegistryBackend, configuration: CredentialsConfiguration, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// One scan at `now`: the number of notices written.
    @discardableResult
    public func check(now: Timestamp) async throws -> Int {
        guard configuration.expiryNoticeDays > 0 else { return 0 }
        let until = Timestamp(ticks: now.ticks + Int64(configuration.expiryNoticeDays) * 86_400 * 10_000_000)
        let due = try await ExpiringCredentials.scan(store, until: until).filter { !$0.window.expiryNoticed }
        var written = 0
        for start in stride(from: 0, to: due.count, by: Self.batch) {
            let commands = due[start..<min(due.count, start + Self.batch)].map {
                Command.noticeCredentialExpiry(
                    CredentialExpiryNotice(deviceId: $0.deviceId, moduleId: $0.moduleId, slot: $0.slot, notAfter: $0.notAfter)
                )
            }
            for result in try await store.execute(commands, actor: "registryd", requestId: "credential-expiry") {
                if case .success(let outcome) = result { written += outcome.events.count }
            }
        }
        if written > 0 {
            logger.info("credential expiry notices written", metadata: ["notices": "\(written)", "notice.days": "\(configuration.expiryNoticeDays)"])
        }
        return written
    }
}
