import Crypto
import PostgresNIO
import RegistryCore

/// `audit verify` on PostgreSQL: walks the hub's log from seq 1 checking every record (its own
/// hash, canonical form, seq and link to the previous one, as on LMDB, with the same
/// `EventRecord.fastVerified`), folds the identity documents the log implies, and compares them
/// with the stored projections and the head row.
///
/// The fold keeps a digest per identity, not the document: 32 bytes each.
struct PostgresVerifier {
    let store: PostgresStore
    static let page = 5_000

    private struct Expected {
        var digest: [UInt8]
        var disabled: Bool
        var connected: Bool
    }

    func verify(progress: (@Sendable (UInt64) -> Void)?) async throws -> Replayer.Report {
        var report = Replayer.Report()
        var expected: [[UInt8]: Expected] = [:]
        var prevHash = EventRecord.genesisHash
        var seq: UInt64 = 0
        while true {
            let records = try await store.rawEvents(from: seq + 1, limit: Self.page)
            for bytes in records {
                switch EventRecord.fastVerified(bytes, expectedSeq: seq + 1, prevHash: prevHash) {
                case .failure(let error):
                    report.outcome = .logCorrupt(seq: seq + 1, reason: error.description)
                    return report
                case .success(let event):
                    let key = IdentityKey.of(deviceId: event.deviceId, moduleId: event.moduleId)
                    if event.type.isDelete {
                        expected[key] = nil
                    } else {
                        expected[key] = Expected(
                            digest: Array(SHA256.hash(data: event.payloadBytes)),
                            disabled: event.moduleId == nil && event.disabled,
                            connected: event.moduleId == nil && event.connected
                        )
                    }
                    prevHash = event.hash
                    seq = event.seq
                    report.events += 1
                    report.historyEntries += 1
                }
            }
            progress?(seq)
            if records.count < Self.page { break }
        }
        let head = try await store.head()
        guard head.seq == seq, head.hash == prevHash else {
            report.outcome = .projectionDiffers(
                database: "log_head",
                key: store.location.hub,
                detail: "the head row says seq \(head.seq), the log ends at seq \(seq)"
            )
            return report
        }
        for modules in [false, true] {
            let database = modules ? "modules" : "devices"
            var after: [UInt8]?
            while true {
                let rows = try await store.projectionRows(modules: modules, after: after, limit: Self.page)
                for row in rows {
                    let name = Self.describe(row.key)
                    guard let wanted = expected.removeValue(forKey: row.key) else {
                        report.outcome = .projectionDiffers(database: database, key: name, detail: "stored, but the log has no such identity")
                        return report
                    }
                    guard wanted.digest == Array(SHA256.hash(data: row.doc)) else {
                        report.outcome = .projectionDiffers(database: database, key: name, detail: "the stored document is not the log's last one")
                        return report
                    }
                    guard modules || (wanted.disabled == row.disabled && wanted.connected == row.connected) else {
                        report.outcome = .projectionDiffers(database: database, key: name, detail: "the status or connection flags differ")
                        return report
                    }
                    if modules { report.modules += 1 } else { report.devices += 1 }
                }
                guard rows.count == Self.page, let last = rows.last else { break }
                after = last.key
            }
        }
        if let missing = expected.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).first {
            report.outcome = .projectionDiffers(
                database: missing.contains(0) ? "modules" : "devices",
                key: Self.describe(missing),
                detail: "the log has this identity, the projection does not"
            )
        }
        return report
    }

    /// `device` or `device/module`.
    static func describe(_ key: [UInt8]) -> String {
        guard let zero = key.firstIndex(of: 0) else { return String(decoding: key, as: UTF8.self) }
        return "\(String(decoding: key[..<zero], as: UTF8.self))/\(String(decoding: key[(zero + 1)...], as: UTF8.self))"
    }
}

extension PostgresStore {
    struct ProjectionRow: Sendable {
        var key: [UInt8]
        var doc: [UInt8]
        var disabled: Bool
        var connected: Bool
    }

    /// Stored projection rows in key order with the device flags (modules have none: false).
    func projectionRows(modules: Bool, after: [UInt8]?, limit: Int) async throws -> [ProjectionRow] {
        let (hub, logger) = (self.hub, self.logger)
        let start = ByteBuffer(bytes: after ?? [])
        let limit = Int64(clamping: limit)
        return try await database { connection in
            var rows: [ProjectionRow] = []
            if modules {
                let result = try await connection.query(
                    "SELECT key, doc FROM modules WHERE hub = \(hub) AND key > \(start) ORDER BY key LIMIT \(limit)",
                    logger: logger
                )
                for try await (key, doc) in result.decode((ByteBuffer, ByteBuffer).self) {
                    rows.append(
                        ProjectionRow(key: Array(key.readableBytesView), doc: Array(doc.readableBytesView), disabled: false, connected: false)
                    )
                }
            } else {
                let result = try await connection.query(
                    "SELECT key, doc, disabled, connected FROM devices WHERE hub = \(hub) AND key > \(start) ORDER BY key LIMIT \(limit)",
                    logger: logger
                )
                for try await (key, doc, disabled, connected) in result.decode((ByteBuffer, ByteBuffer, Bool, Bool).self) {
                    rows.append(
                        ProjectionRow(key: Array(key.readableBytesView), doc: Array(doc.readableBytesView), disabled: disabled, connected: connected)
                    )
                }
            }
            return rows
        }
    }
}
