#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A reader-writer lock that keeps map resizes away from open transactions.
///
/// `mdb_env_set_mapsize` may only be called while this process has no transaction open, so
/// every transaction holds the shared side for its (short) life and a resize takes the
/// exclusive side. The default glibc lock prefers readers, which keeps nested read
/// transactions on one thread deadlock-free; resizes are rare and transactions short, so the
/// resize waits at most for the transactions already open.
final class ResizeLock: @unchecked Sendable {
    // Why unchecked: the pthread lock is itself the synchronisation; its storage never moves.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        precondition(pthread_rwlock_init(lock, nil) == 0, "pthread_rwlock_init failed")
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    @inline(__always)
    func withShared<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withExclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
