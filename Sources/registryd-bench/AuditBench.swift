import ArgumentParser
import Foundation
import RegistryCore
import RegistryLMDB

/// `registryd-bench audit --data-dir DIR`: `audit verify` against a raw scan of the same log
/// (a cursor over every event, copying each value), measured in the same run.
struct AuditBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "audit verify vs a raw scan of the same log.")

    @OptionGroup var data: DataDirectoryOptions

    func run() throws {
        let storage = try RegistryStorage(directory: DataDirectory(path: data.dataDir), create: false, needsKeys: false)
        var start = DispatchTime.now().uptimeNanoseconds
        var count = 0
        var bytes = 0
        try LMDBBaseline.scan(storage, "events") { _, value in
            count += 1
            bytes += value.count
        }
        let scan = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        start = DispatchTime.now().uptimeNanoseconds
        let report = try Replayer.verify(source: storage)
        let verify = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print(String(format: "raw scan: %d events, %.0f MB in %.2f s", count, Double(bytes) / 1e6, scan))
        print(String(format: "audit verify: %@ in %.2f s = %.1f%% of the raw scan's rate", "\(report.outcome)", verify, 100 * scan / verify))
    }
}
