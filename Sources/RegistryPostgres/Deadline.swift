import PostgresNIO
import RegistryCore

/// Waiting on the database with a deadline that holds even when a statement never answers.
///
/// PostgresNIO statements cannot be cancelled, and one in flight when its server vanished was
/// seen never to answer nor fail, even after its connection was closed. So `body` runs in a
/// task of its own; past `deadline` the caller gets `StorageUnavailableError` and `body` is left
/// to end whenever it does (its caller must then treat its connection as lost).
func withDeadline<T: Sendable>(_ deadline: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let (results, delivery) = AsyncThrowingStream<T, any Error>.makeStream()
    let work = Task {
        do {
            delivery.yield(try await body())
            delivery.finish()
        } catch {
            delivery.finish(throwing: error)
        }
    }
    let timer = Task {
        try await Task.sleep(for: deadline)
        delivery.finish(throwing: StorageUnavailableError("\(what) did not answer within \(deadline)"))
        work.cancel()
    }
    defer { timer.cancel() }
    for try await result in results { return result }
    throw StorageUnavailableError("\(what) ended without a result")
}

extension PostgresConnection {
    /// Runs a statement whose rows are not wanted, reading them all: an error the server sends
    /// after the first row reaches only a reader of the rows.
    func run(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}
