import LMDB
import RegistryCore

extension StorageHealth {
    /// Whether `error` means "no space": ENOSPC or EDQUOT from the disk, or a map that cannot grow.
    /// (LMDB's classification; `StorageHealth` itself is the backend-neutral flag `/readyz` reads.)
    static func isNoSpace(_ error: any Error) -> Bool {
        guard let lmdb = error as? LMDBError else { return error is StorageFullError }
        return lmdb.code == 28 || lmdb.code == 122 || lmdb == .mapFull
    }
}
