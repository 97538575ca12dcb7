import ServiceLifecycle

/// Runs `tick` every `interval` until the graceful shutdown, which also ends the wait in
/// progress (no tick after it): the loop of the daemon's periodic services.
func everyInterval(_ interval: Duration, _ tick: () async -> Void) async {
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
        await tick()
    }
}
