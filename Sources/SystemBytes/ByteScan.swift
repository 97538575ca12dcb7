import CSystemCalls

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
                guard let base = haystack.baseAddress, let found = registryd_memmem(base + start, end - start, needle.baseAddress, needle.count)
                else { return nil }
                return UnsafeRawPointer(base).distance(to: found)
            }
        }
    }

    /// Whether `bytes[range]` equals `other`, byte for byte.
    public static func equal(_ bytes: [UInt8], _ range: Range<Int>, _ other: [UInt8]) -> Bool {
        equal(bytes, range, other, 0..<other.count)
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

extension ByteScan {
    /// The last index of `pattern` in `bytes[start..<end]`, or `nil`. The stored records keep a
    /// few members at their end (`prevHash`, `seq`, `type`), found from there backwards.
    public static func lastIndex(of pattern: [UInt8], in bytes: [UInt8], from start: Int = 0, to end: Int? = nil) -> Int? {
        let end = min(end ?? bytes.count, bytes.count)
        guard !pattern.isEmpty, start >= 0, end - start >= pattern.count else { return nil }
        return bytes.withUnsafeBufferPointer { haystack in
            pattern.withUnsafeBufferPointer { needle in
                let base = haystack.baseAddress!
                let head = needle[0]
                var i = end - needle.count
                while i >= start {
                    if base[i] == head, memcmp(base + i, needle.baseAddress!, needle.count) == 0 { return i }
                    i -= 1
                }
                return nil
            }
        }
    }

    /// Whether `a[rangeA]` equals `b[rangeB]`, byte for byte.
    public static func equal(_ a: [UInt8], _ rangeA: Range<Int>, _ b: [UInt8], _ rangeB: Range<Int>) -> Bool {
        guard rangeA.lowerBound >= 0, rangeA.upperBound <= a.count, rangeB.lowerBound >= 0, rangeB.upperBound <= b.count, rangeA.count == rangeB.count
        else { return false }
        guard !rangeA.isEmpty else { return true }
        return a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in memcmp(pa.baseAddress! + rangeA.lowerBound, pb.baseAddress! + rangeB.lowerBound, rangeA.count) == 0 }
        }
    }

    /// `a[rangeA]` against `b[rangeB]` in key order (bytes compared unsigned, then length), as
    /// LMDB orders keys.
    public static func compare(_ a: [UInt8], _ rangeA: Range<Int>, _ b: [UInt8], _ rangeB: Range<Int>) -> Int {
        let common = min(rangeA.count, rangeB.count)
        let c: Int32 =
            common == 0
            ? 0
            : a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in memcmp(pa.baseAddress! + rangeA.lowerBound, pb.baseAddress! + rangeB.lowerBound, common) }
            }
        if c != 0 { return c < 0 ? -1 : 1 }
        return rangeA.count == rangeB.count ? 0 : (rangeA.count < rangeB.count ? -1 : 1)
    }
}

extension ByteScan {
    /// A 64-bit fingerprint of `bytes[range]`, eight bytes at a time (a byte-at-a-time loop was
    /// most of a cache lookup). Not a hash for untrusted keys: callers compare in full on a match.
    public static func fingerprint(_ bytes: [UInt8], _ range: Range<Int>) -> UInt64 {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
        return bytes.withUnsafeBytes { raw in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(range.count)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                hash = (hash ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9e37_79b9_7f4a_7c15
                hash ^= hash >> 29
                i += 8
            }
            while i < range.upperBound {
                hash = (hash ^ UInt64(raw[i])) &* 0x100_0000_01b3
                i += 1
            }
            return hash
        }
    }
}
