/// ASCII case folding, compared byte by byte. Azure's names match case-insensitively (JSON
/// property names, enum values, SAS field names and scheme, host names); lowercasing made a String
/// per comparison on every request body and device check. Names are ASCII, so folding A-Z is
/// what .NET's ordinal-ignore-case does with them.
public enum ASCIICase {
    /// The byte with A-Z folded to a-z.
    @inlinable
    public static func lower(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte + 32 : byte }

    /// Whether two byte sequences are equal once A-Z is folded.
    @inlinable
    public static func equal<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { lower($0) == lower($1) }
    }

    /// Whether two strings are equal once A-Z is folded.
    public static func equal(_ a: String, _ b: String) -> Bool { equal(a.utf8, b.utf8) }
}
