/// Standard padded base64 (RFC 4648 section 4) written straight into bytes or a String.
///
/// Foundation's `Data(...).base64EncodedString()` went through a `Data` built from a generic
/// sequence (a dynamic cast per call) and a String per value: about 3% of an import, where every
/// event has an etag and every key is sealed. Decoding stays with Foundation (rare, not hot).
public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Characters `append` writes for `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the base64 of `bytes` to `out`.
    public static func append(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        // One copy into an array (a memcpy for Data and arrays), then whole groups by index:
        // iterating a Data byte by byte cost more than the encoding.
        let input = Array(bytes)
        out.reserveCapacity(out.count + encodedCount(input.count))
        var i = 0
        while i + 3 <= input.count {
            let word = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(alphabet[Int(word >> 18 & 63)])
            out.append(alphabet[Int(word >> 12 & 63)])
            out.append(alphabet[Int(word >> 6 & 63)])
            out.append(alphabet[Int(word & 63)])
            i += 3
        }
        let left = input.count - i
        guard left > 0 else { return }
        let word = UInt32(input[i]) << 16 | (left == 2 ? UInt32(input[i + 1]) << 8 : 0)
        out.append(alphabet[Int(word >> 18 & 63)])
        out.append(alphabet[Int(word >> 12 & 63)])
        out.append(left == 2 ? alphabet[Int(word >> 6 & 63)] : 61)
        out.append(61)
    }

    /// The base64 of `bytes`.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out: [UInt8] = []
        append(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
