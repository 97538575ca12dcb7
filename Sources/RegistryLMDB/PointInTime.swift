import Foundation
import LMDB
import RegistryCore

extension Replayer {
    /// Builds a fresh data directory holding the log up to `point` (verified on the way) and the
    /// projections it implies, with a copy of the data key so its identities can be read.
    /// Read-only on `source`: safe beside a running daemon.
    public static func materialize(source: RegistryStorage, until point: ReplayPoint, into directory: DataDirectory) throws -> (
        events: UInt64, corruption: Outcome?
    ) {
        try directory.create()
        if let key = try? Data(contentsOf: URL(fileURLWithPath: source.directory.dataKeyPath)) {
            try PrivateFile.write(Array(key), to: directory.dataKeyPath, existing: .replace)
        }
        let target = try Environment(configuration: .init(path: directory.environmentPath, mapSize: 64 << 20, flags: [.noSync]))
        let databases = try target.write { txn in try RegistryDatabases.open(in: txn) }
        var report = Report()
        let corruption = try source.read { txn, db in
            try rebuild(from: txn, db.events, into: target, databases, report: &report, until: point, copyEvents: true)
        }
        try target.sync()
        return (report.events, corruption)
    }
}
