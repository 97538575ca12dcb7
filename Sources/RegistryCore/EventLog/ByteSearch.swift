import SystemBytes

/// Substring search over stored bytes: the stored forms are canonical JSON, so a few fixed
/// member patterns can be found without building a JSON tree (see `EventRecord.layout` and
/// `IdentityDocument`). The searches run in the C library (`LMDB.ByteScan`).
package enum ByteSearch {
    package static func first(_ pattern: [UInt8], in bytes: [UInt8], from start: Int = 0, to end: Int? = nil) -> Int? {
        ByteScan.firstIndex(of: pattern, in: bytes, from: start, to: end)
    }

    package static func last(_ pattern: [UInt8], in bytes: [UInt8], from start: Int = 0, to end: Int? = nil) -> Int? {
        ByteScan.lastIndex(of: pattern, in: bytes, from: start, to: end)
    }
}
