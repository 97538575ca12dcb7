import ArgumentParser
import Foundation
import RegistryCore
import RegistryLMDB

/// `registryd-bench query --data-dir DIR`: a query paged to the end (as a client would, 1,000
/// per page) against, in the same run, a raw scan of the same database and a raw scan that
/// also parses every document (the least any evaluation must do).
struct QueryBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "A full paged query vs raw scans of the same data.")

    @OptionGroup var data: DataDirectoryOptions

    @Option(help: "The query.")
    var query = "SELECT * FROM devices WHERE status = 'disabled'"

    @Option(help: "Page size (x-ms-max-item-count).")
    var page = 1000

    func run() throws {
        let storage = try RegistryStorage(directory: DataDirectory(path: data.dataDir), create: false, needsKeys: false)
        let parsed = try QueryParser.parse(query)
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        var documents = 0
        let scan = try seconds {
            var n = 0
            try LMDBBaseline.scan(storage, parsed.source == .devices ? "devices" : "modules") { _, _ in n += 1 }
            documents = n
        }
        let parse = try seconds {
            try LMDBBaseline.scan(storage, parsed.source == .devices ? "devices" : "modules") { _, value in _ = try JSONParser.parse(value) }
        }
        var results = 0
        var pages = 0
        let run = try seconds {
            var cursor: QueryCursor?
            repeat {
                let result = try storage.queryPage(parsed, cursor: cursor, pageSize: page)
                results += result.items.count
                pages += 1
                cursor = result.next
            } while cursor != nil
        }
        print(String(format: "raw scan:            %d documents in %.2f s", documents, scan))
        print(String(format: "raw scan + parse:    %.2f s", parse))
        print(String(format: "query (%d pages):    %d results in %.2f s = %.0f%% of raw scan + parse", pages, results, run, 100 * parse / run))
        print("query: \(query)")
    }
}
