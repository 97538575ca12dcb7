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
        let signal = await ShutdownSignal.wait()
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        store.close()
    }
}

/// Waits for SIGTERM or SIGINT.
enum ShutdownSignal {
    static func wait() async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let box = SignalSources(continuation: continuation)
            box.start()
        }
    }
}

private final class SignalSources: @unchecked Sendable {
    // Why unchecked: mutated only on `queue`.
    private let queue = DispatchQueue(label: "registryd.signals")
    private var sources: [any DispatchSourceSignal] = []
    private var continuation: CheckedContinuation<Int32, Never>?

    init(continuation: CheckedContinuation<Int32, Never>) { self.continuation = continuation }

    func start() {
        queue.sync {
            for sig in [SIGTERM, SIGINT] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                source.setEventHandler { [self] in
                    continuation?.resume(returning: sig)
                    continuation = nil
                    for s in sources { s.cancel() }
                }
                source.resume()
                sources.append(source)
            }
        }
    }
}
