/// `%XX` decoding of URL parts, on UTF-8 bytes (no String per character): SAS token fields, path
/// segments, and form bodies (`plusAsSpace`, `application/x-www-form-urlencoded`). One decoder,
/// so every place answers a bad escape the same way.
public enum PercentDecoding {
    /// The decoded text; `nil` for a bad escape or a result that is not UTF-8. With
    /// `plusAsSpace`, `+` is a space (forms); otherwise it stays `+` (SAS signatures, paths).
    public static func decode(_ bytes: some Collection<UInt8>, plusAsSpace: Bool = false) -> String? {
        guard bytes.contains(UInt8(ascii: "%")) || (plusAsSpace && bytes.contains(UInt8(ascii: "+"))) else {
            return String(validating: bytes, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let c = iterator.next() {
            switch c {
            case UInt8(ascii: "%"):
                guard let high = hex(iterator.next()), let low = hex(iterator.next()) else { return nil }
                out.append(high << 4 | low)
            case UInt8(ascii: "+") where plusAsSpace:
                out.append(UInt8(ascii: " "))
            default:
                out.append(c)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hex(_ c: UInt8?) -> UInt8? {
        switch c {
        case let c? where c >= 48 && c <= 57: c - 48
        case let c? where c >= 65 && c <= 70: c - 55
        case let c? where c >= 97 && c <= 102: c - 87
        default: nil
        }
    }
}
