import ArgumentParser
import Dispatch
import Foundation
import Logging
import RegistryCore

/// `registryd serve`: opens the data directory for writing and runs until SIGTERM or SIGINT.
///
/// For now it hosts the store only (the HTTPS API arrives with its own issue); it already takes
/// the directory's exclusive lock and drains the writer on shutdown.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the registry daemon.")

    @OptionGroup var data: DataDirectoryOptions

    func run() async throws {
        let shutdown = ShutdownSignal()
        var logger = Logger(label: "registryd")
        logger.logLevel = .info
        let store: RegistryStore
        do {
            store = try RegistryStore(configuration: .init(dataDirectory: DataDirectory(path: data.dataDir)), logger: logger)
        } catch {
            throw ValidationError("cannot open \(data.dataDir): \(error)")
        }
        let head = try store.storage.head()
        logger.info("registry open", metadata: ["data.dir": "\(data.dataDir)", "log.seq": "\(head.seq)"])
        let signal = await shutdown.wait()
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        store.close()
    }
}

/// SIGTERM and SIGINT, caught from the moment it is created (so a signal that arrives while the
/// store opens is not lost) and delivered once to `wait()`.
final class ShutdownSignal: @unchecked Sendable {
    // Why unchecked: mutated only on `queue`.
    private let queue = DispatchQueue(label: "registryd.signals")
    private var sources: [any DispatchSourceSignal] = []
    private var received: Int32?
    private var continuation: CheckedContinuation<Int32, Never>?

    init() {
        queue.sync {
            for sig in [SIGTERM, SIGINT] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                source.setEventHandler { [unowned self] in
                    guard received == nil else { return }
                    received = sig
                    continuation?.resume(returning: sig)
                    continuation = nil
                }
                source.resume()
                sources.append(source)
            }
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }

    /// Returns the first signal received (at once if one already arrived).
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            queue.async {
                if let received = self.received {
                    continuation.resume(returning: received)
                } else {
                    self.continuation = continuation
                }
            }
        }
    }
}
