import ArgumentParser
import RegistryCore

/// A test aid: creates devices through the writer at a given concurrency and prints each id on
/// stdout as soon as its create has returned. The crash test SIGKILLs it mid-run and checks that
/// every printed id survived.
struct WriteLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write-load",
        abstract: "Create devices under load, printing each id once its create returned (for crash tests).",
        shouldDisplay: false
    )

    @OptionGroup var data: DataDirectoryOptions
    @Option var count = 100_000
    @Option var concurrency = 64
    @Option var prefix = "load"

    func run() async throws {
        let store = try StoreOpening.writer(DataDirectory(path: data.dataDir))
        let output = LineWriter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var i = worker
                    while i < count {
                        let id = "\(prefix)-\(i)"
                        _ = try await store.execute(.createDevice(DeviceSpec(deviceId: id)), actor: "write-load", requestId: id)
                        output.line("created \(id)")
                        i += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        store.close()
    }
}
