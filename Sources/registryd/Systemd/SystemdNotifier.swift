import Logging
import NIOCore
import NIOPosix

/// systemd's notification protocol (sd_notify(3)) without libsystemd: plain datagrams such as
/// `READY=1` to the Unix socket named by `$NOTIFY_SOCKET`. Abstract sockets (`@name`) are not
/// supported by NIO's addresses; the unit we ship uses systemd's default path socket.
final class SystemdNotifier: Sendable {
    private let channel: any Channel
    private let address: SocketAddress
    private let logger: Logger

    private init(channel: any Channel, address: SocketAddress, logger: Logger) {
        self.channel = channel
        self.address = address
        self.logger = logger
    }

    /// The notifier for `$NOTIFY_SOCKET`, or `nil` when not run by systemd (or the socket is unusable).
    static func fromEnvironment(_ environment: [String: String], logger: Logger) async -> SystemdNotifier? {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        guard path.hasPrefix("/") else {
            logger.warning("NOTIFY_SOCKET is not a filesystem path; systemd notifications are off", metadata: ["systemd.socket": "\(path)"])
            return nil
        }
        do {
            let address = try SocketAddress(unixDomainSocketPath: path)
            let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(to: address).get()
            return SystemdNotifier(channel: channel, address: address, logger: logger)
        } catch {
            logger.warning("cannot reach NOTIFY_SOCKET; systemd notifications are off", metadata: ["systemd.socket": "\(path)", "error": "\(error)"])
            return nil
        }
    }

    /// Sends one notification (`KEY=value` lines). Failures are logged, never fatal.
    func notify(_ state: String) async {
        do {
            try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(string: state))).get()
        } catch {
            logger.warning("systemd notification failed", metadata: ["systemd.state": "\(state.prefix(while: { $0 != "=" }))", "error": "\(error)"])
        }
    }

    func close() async {
        try? await channel.close()
    }
}

/// The watchdog interval systemd asks for (`$WATCHDOG_USEC`, for this process when
/// `$WATCHDOG_PID` is set), or `nil`.
func watchdogInterval(_ environment: [String: String], pid: Int32) -> Duration? {
    guard let text = environment["WATCHDOG_USEC"], let usec = Int64(text), usec > 0 else { return nil }
    if let owner = environment["WATCHDOG_PID"], Int32(owner) != pid { return nil }
    return .microseconds(usec)
}
