import LMDB

/// Substring search over stored bytes: the stored forms are canonical JSON, so a few fixed
/// member patterns can be found without building a JSON tree (see `EventRecord.fastVerified`
/// and `IdentityDocument`). Forward searches use the C library's `memmem` (`LMDB.ByteScan`).
enum ByteSearch {
    static func first(_ pattern: [UInt8], in bytes: [UInt8], from start: Int = 0, to end: Int? = nil) -> Int? {
        ByteScan.firstIndex(of: pattern, in: bytes, from: start, to: end)
    }

    static func last(_ pattern: [UInt8], in bytes: [UInt8]) -> Int? {
        guard let head = pattern.first, bytes.count >= pattern.count else { return nil }
        var i = bytes.count - pattern.count
        while i >= 0 {
            if bytes[i] == head, bytes[i..<(i + pattern.count)].elementsEqual(pattern) { return i }
            i -= 1
        }
        return nil
    }
}
