import Crypto
import Foundation
import RegistryCore

/// `x-ms-continuation` tokens of `POST /devices/query`: where the next page starts, made
/// unforgeable.
///
/// A token carries the storage key to resume after and the count already returned (for TOP).
/// Both come back from the client, so they are authenticated: HMAC-SHA256 under a server key
/// derived from the data key (stable across restarts), over the cursor, a digest of the query
/// text and the name of the policy that asked. A token altered in any byte, minted for another
/// query or replayed by another policy does not verify; a verified token is still range-checked
/// before use (defence in depth against a leaked server key).
///
/// Form: `base64url(payload) "." base64url(mac)`, payload = canonical JSON `{"k","n","p","q"}`.
struct QueryContinuationToken: Sendable {
    private let box: KeyBox
    private var key: Crypto.SymmetricKey { box.key }

    /// The longest resume key: a module key is a device id, 0x00 and a module id (128 + 1 + 128).
    static let maximumKeyBytes = 257
    /// No query returns more items than this across its pages (well above any registry's size).
    static let maximumReturned = 1 << 40

    init(key: KeyBox) { self.box = key }

    func encode(_ cursor: QueryCursor, query: String, policy: String) -> String {
        let payload = CanonicalJSON.encode(
            .object([
                "k": .string(Hex.encode(cursor.afterKey)), "n": .int(Int64(cursor.returned)),
                "p": .string(policy), "q": .string(Self.digest(query)),
            ])
        )
        let mac = HMAC<SHA256>.authenticationCode(for: payload, using: key)
        return Self.base64URL(Data(payload)) + "." + Self.base64URL(Data(mac))
    }

    /// The cursor of a token this server made for `query` and `policy`; `nil` for anything else.
    func decode(_ token: String, query: String, policy: String, top: Int?) -> QueryCursor? {
        // Bounded before any work: a real token is under 1 KB.
        guard token.utf8.count <= 2048 else { return nil }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Self.fromBase64URL(parts[0]), let mac = Self.fromBase64URL(parts[1]),
            // Constant time: swift-crypto compares the codes without an early exit.
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: payload, using: key),
            let json = try? JSONParser.parse(Array(payload)),
            json["q"]?.stringValue == Self.digest(query), json["p"]?.stringValue == policy,
            let keyHex = json["k"]?.stringValue, keyHex.utf8.count <= 2 * Self.maximumKeyBytes,
            let afterKey = Hex.decode(keyHex), !afterKey.isEmpty,
            let returned = json["n"]?.intValue, returned >= 0, returned <= Self.maximumReturned
        else { return nil }
        if let top, returned > top { return nil }
        return QueryCursor(afterKey: afterKey, returned: Int(returned))
    }

    static func digest(_ query: String) -> String {
        Hex.encode(Array(SHA256.hash(data: Array(query.utf8))))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func fromBase64URL(_ text: Substring) -> Data? {
        guard text.utf8.allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "=") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        // Canonical only: the last character of unpadded base64 has spare bits that decoders
        // ignore, so without this check a token could be spelled several ways.
        guard let data = Data(base64Encoded: base64), base64URL(data) == text else { return nil }
        return data
    }
}
