import Logging
import ServiceLifecycle

/// Keeps systemd informed while the daemon runs: `WATCHDOG=1` at half the interval systemd set
/// for as long as the daemon is healthy (a wedged writer stops the pings, so systemd restarts
/// it), and `STOPPING=1` as soon as a graceful shutdown begins. `READY=1` is sent by `serve`
/// once the listener accepts connections.
///
/// Listed last in the service group, so it is the first to see the shutdown.
struct SystemdService: Service {
    let notifier: SystemdNotifier?
    let watchdog: Duration?
    let healthy: @Sendable () -> Bool
    let logger: Logger

    func run() async throws {
        guard let notifier else {
            try? await gracefulShutdown()
            return
        }
        if let watchdog {
            let period = watchdog / 2
            logger.info(
                "systemd watchdog on",
                metadata: ["systemd.watchdog_ms": "\(period.components.seconds * 1000 + period.components.attoseconds / 1_000_000_000_000_000)"]
            )
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                if healthy() {
                    await notifier.notify("WATCHDOG=1")
                } else {
                    logger.error("not healthy: withholding the systemd watchdog ping")
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: period) }
            }
        } else {
            try? await gracefulShutdown()
        }
        await notifier.notify("STOPPING=1\nSTATUS=stopping: finishing requests, draining the writer")
        await notifier.close()
    }
}
