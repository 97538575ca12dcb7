import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Substring search and comparison over byte arrays with the C library's vectorised `memmem`
/// and `memcmp`. Here because this target holds every unsafe pointer of the package: the
/// stored forms are canonical JSON searched for fixed member patterns on every read of the log
/// (audit verify, replay, queries), where a byte-at-a-time loop was the largest cost.
public enum ByteScan {
    /// The first index of `pattern` in `bytes[start..<end]`, or `nil`.
    public static func firstIndex(of pattern: [UInt8], in bytes: [UInt8], from start: Int = 0, to end: Int? = nil) -> Int? {
        let end = min(end ?? bytes.count, bytes.count)
        guard !pattern.isEmpty, start >= 0, end - start >= pattern.count else { return nil }
        return bytes.withUnsafeBufferPointer { haystack in
            pattern.withUnsafeBufferPointer { needle in
                guard let base = haystack.baseAddress, let found = registryd_memmem(base + start, end - start, needle.baseAddress, needle.count) else { return nil }
                return UnsafeRawPointer(base).distance(to: found)
            }
        }
    }

    /// Whether `bytes[range]` equals `other`, byte for byte.
    public static func equal(_ bytes: [UInt8], _ range: Range<Int>, _ other: [UInt8]) -> Bool {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count, range.count == other.count else { return false }
        guard !other.isEmpty else { return true }
        return bytes.withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in memcmp(a.baseAddress! + range.lowerBound, b.baseAddress!, other.count) == 0 }
        }
    }
}

/// Bytes as a dictionary key, hashed in one call over the whole buffer (an `[UInt8]` key hashes
/// element by element, which dominated the log verifier's million-entry maps).
public struct ByteKey: Hashable, Sendable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func == (a: ByteKey, b: ByteKey) -> Bool { a.bytes == b.bytes }
}
