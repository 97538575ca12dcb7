import Logging
import PostgresNIO
import RegistryCore
import Synchronization

/// Reads shared by the store, the writer and the log follower, and how every database call
/// waits for a connection.
enum PostgresReads {
    /// Up to `limit` stored event records from `seq` on, verbatim.
    static func records(from seq: UInt64, limit: Int, hub: String, on connection: PostgresConnection, logger: Logger) async throws -> [[UInt8]] {
        let rows = try await connection.query(
            "SELECT record FROM events WHERE hub = \(hub) AND seq >= \(Int64(clamping: seq)) ORDER BY seq LIMIT \(Int64(clamping: limit))",
            logger: logger
        )
        var records: [[UInt8]] = []
        for try await record in rows.decode(ByteBuffer.self) { records.append(Array(record.readableBytesView)) }
        return records
    }

    /// The stored record at `seq`, or `nil`.
    static func record(at seq: UInt64, hub: String, on connection: PostgresConnection, logger: Logger) async throws -> [UInt8]? {
        let rows = try await connection.query("SELECT record FROM events WHERE hub = \(hub) AND seq = \(Int64(clamping: seq))", logger: logger)
        for try await record in rows.decode(ByteBuffer.self) { return Array(record.readableBytesView) }
        return nil
    }
}

extension PostgresClient {
    /// Runs `body` on a leased connection, failing with `StorageUnavailableError` when no
    /// connection could be had within `timeout` (the database is down or failing over). Once
    /// `body` has its connection it runs to its end: a statement in flight is never abandoned
    /// (for a write that could leave its outcome unknown).
    func leased<T: Sendable>(
        within timeout: Duration,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let race = LeaseRace()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await self.withConnection { connection in
                    // Too late: the caller was already told the database is unavailable.
                    guard race.start() else { throw CancellationError() }
                    return try await body(connection)
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                if race.expire() { throw StorageUnavailableError("no database connection within \(timeout.components.seconds) s") }
                return nil
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let value = next { return value }
            }
            throw StorageUnavailableError("the database call ended without a result")
        }
    }
}

/// Whether a leased call started before its wait expired: decided once, atomically, so a
/// connection that arrives as the wait expires never runs a body whose caller gave up.
final class LeaseRace: Sendable {
    private let state = Mutex<Bool?>(nil)  // nil: undecided; true: started; false: expired

    func start() -> Bool {
        state.withLock { s in
            if s == nil { s = true }
            return s == true
        }
    }

    func expire() -> Bool {
        state.withLock { s in
            if s == nil { s = false }
            return s == false
        }
    }
}
