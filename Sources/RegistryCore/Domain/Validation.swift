/// The registry's input rules (shared/spec/azure-registry-contract.md §5, DESIGN §4).
public enum Validation {
    /// Characters allowed in device and module ids besides ASCII letters and digits: the identity
    /// registry documentation's list. `+`, `#`, `;` and everything else are refused.
    static let idPunctuation: Set<UInt8> = Set("-.%_*?!(),:=@$'".utf8)

    public static let maximumIdLength = 128
    public static let maximumStatusReasonLength = 128
    public static let minimumKeyBytes = 16
    public static let maximumKeyBytes = 64

    /// Checks a device or module id: 1 to 128 ASCII characters from the allowed set.
    public static func checkId(_ id: String, kind: String) throws(RegistryError) {
        let bytes = id.utf8
        guard !bytes.isEmpty else { throw .invalid("The \(kind) id must not be empty.") }
        guard bytes.count <= maximumIdLength else {
            throw .invalid("The \(kind) id is longer than \(maximumIdLength) characters.")
        }
        for b in bytes {
            let alphanumeric = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
            guard alphanumeric || idPunctuation.contains(b) else {
                throw .invalid(
                    "The \(kind) id '\(id)' contains a character that is not allowed; "
                        + "use ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ '"
                )
            }
        }
    }

    /// Decoded length of a base64 key, or `nil` when it is not canonical base64.
    static func base64DecodedCount(_ text: String) -> Int? {
        let b = text.utf8
        let count = b.count
        guard count > 0, count % 4 == 0 else { return nil }
        var padding = 0
        var i = 0
        let alphabet = base64Alphabet  // once, not a lazy-global check per character
        for c in b {
            let isAlphabet = alphabet[Int(c)]
            if c == 61 {  // '='
                guard i >= count - 2 else { return nil }
                padding += 1
            } else {
                guard isAlphabet, padding == 0 else { return nil }
            }
            i += 1
        }
        return count / 4 * 3 - padding
    }

    /// Whether each byte is in the base64 alphabet (A-Z, a-z, 0-9, +, /): one load per
    /// character (every key of every create is checked on the writer's thread).
    private static let base64Alphabet: [Bool] = (0..<256).map { c in
        (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 43 || c == 47
    }

    static func checkKey(_ key: String, name: String) throws(RegistryError) {
        guard let count = base64DecodedCount(key) else {
            throw .invalid("The \(name) is not valid base64.")
        }
        guard (minimumKeyBytes...maximumKeyBytes).contains(count) else {
            throw .invalid("The \(name) must decode to \(minimumKeyBytes) to \(maximumKeyBytes) bytes; it has \(count).")
        }
    }

    static func checkThumbprint(_ thumbprint: String, name: String) throws(RegistryError) {
        let b = thumbprint.utf8
        let isHex = b.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) }
        guard isHex, b.count == 40 || b.count == 64 else {
            throw .invalid("The \(name) must be 40 (SHA-1) or 64 (SHA-256) hexadecimal characters.")
        }
    }

    static func checkStatusReason(_ reason: String?) throws(RegistryError) {
        if let reason, reason.count > maximumStatusReasonLength {
            throw .invalid("statusReason is longer than \(maximumStatusReasonLength) characters.")
        }
    }
}

extension Optional where Wrapped == String {
    /// `nil` for nil or empty: clients send `""` and `null` alike for "not given".
    var nonEmpty: String? {
        switch self {
        case .some(let s) where !s.isEmpty: s
        default: nil
        }
    }
}
