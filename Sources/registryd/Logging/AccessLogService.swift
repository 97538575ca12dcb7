import Logging
import RegistryAPI
import ServiceLifecycle

/// Logs the access log's summary (`AccessLogSummary`) once per interval at `info`, when there is
/// something to report, and once more at shutdown.
struct AccessLogService: Service {
    let summary: AccessLogSummary
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await everyInterval(interval) { report() }
        report()
    }

    func report() {
        let counts = summary.drain()
        guard !counts.isEmpty else { return }
        var metadata: Logger.Metadata = [:]
        for (key, count) in counts { metadata["requests.\(key)"] = .stringConvertible(count) }
        logger.info("requests answered without a line of their own", metadata: metadata)
    }
}
