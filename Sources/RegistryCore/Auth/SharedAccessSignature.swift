import Crypto
import Foundation
import Synchronization

/// A parsed `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` token.
public struct SharedAccessSignature: Sendable, Hashable {
    /// `sr` exactly as received (still percent-encoded): what the signature covers.
    public private(set) var rawResource: String
    /// `sr` percent-decoded: the audience whose scope is checked.
    public var resource: String
    /// The signature bytes (`sig` percent-decoded, then base64-decoded).
    public var signature: [UInt8]
    /// `se` exactly as received (it is part of the signed string).
    public private(set) var rawExpiry: String
    /// Expiry, seconds since the Unix epoch.
    public var expiry: Int64
    /// The policy name; absent for device-key tokens.
    public var keyName: String?

    /// Parses an `Authorization` header value. Field names are case-insensitive and their order
    /// is free; `sig` is percent-decoded without turning `+` into a space. Works on the UTF-8
    /// bytes: Foundation's string operations were most of a device check's parse cost.
    public init?(header: String) {
        let bytes = Array(header.utf8)
        guard Self.hasScheme(bytes) else { return nil }
        self.init(fields: bytes[Self.scheme.count...])
    }

    /// Parses a token as brokers pass it: with or without the `SharedAccessSignature ` scheme.
    public init?(credential: String) {
        let bytes = Array(credential.utf8)
        self.init(fields: Self.hasScheme(bytes) ? bytes[Self.scheme.count...] : bytes[...])
    }

    static let scheme = Array("sharedaccesssignature ".utf8)

    static func hasScheme(_ bytes: [UInt8]) -> Bool {
        bytes.count > scheme.count && zip(bytes, scheme).allSatisfy { ASCIICase.lower($0) == $1 }
    }

    /// The `name=value` fields after the scheme, separated by `&`.
    init?(fields bytes: ArraySlice<UInt8>) {
        var sr: ArraySlice<UInt8>?
        var sig: ArraySlice<UInt8>?
        var se: ArraySlice<UInt8>?
        var skn: ArraySlice<UInt8>?
        var cursor = bytes.startIndex
        while cursor < bytes.endIndex {
            let partEnd = bytes[cursor...].firstIndex(of: UInt8(ascii: "&")) ?? bytes.endIndex
            let part = bytes[cursor..<partEnd]
            cursor = partEnd + 1
            if part.isEmpty { continue }
            guard let eq = part.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            var name = part[..<eq]
            while let c = name.first, c == 0x20 || c == 0x09 { name.removeFirst() }
            while let c = name.last, c == 0x20 || c == 0x09 { name.removeLast() }
            let value = part[(eq + 1)...]
            func take(_ slot: inout ArraySlice<UInt8>?) -> Bool {
                guard slot == nil else { return false }  // a repeated field is ambiguous: refuse
                slot = value
                return true
            }
            if Self.isName(name, Self.srName) {
                guard take(&sr) else { return nil }
            } else if Self.isName(name, Self.sigName) {
                guard take(&sig) else { return nil }
            } else if Self.isName(name, Self.seName) {
                guard take(&se) else { return nil }
            } else if Self.isName(name, Self.sknName) {
                guard take(&skn) else { return nil }
            }
        }
        guard let sr, let sig, let se,
            let resource = PercentDecoding.decode(sr),
            let sigText = PercentDecoding.decode(sig), let signature = Data(base64Encoded: sigText)
        else { return nil }
        let seText = String(decoding: se, as: UTF8.self)
        guard let expiry = Int64(seText) ?? Double(seText).flatMap({ $0.isFinite ? Int64(exactly: $0.rounded(.down)) : nil }) else { return nil }
        self.rawResource = String(decoding: sr, as: UTF8.self)
        self.resource = resource
        self.signature = Array(signature)
        self.rawExpiry = seText
        self.expiry = expiry
        var message: [UInt8] = []
        message.reserveCapacity(sr.count + 1 + se.count)
        message.append(contentsOf: sr)
        message.append(UInt8(ascii: "\n"))
        message.append(contentsOf: se)
        self.signedMessage = message
        if let skn {
            guard let name = PercentDecoding.decode(skn) else { return nil }
            self.keyName = name
        } else {
            self.keyName = nil
        }
    }

    static let srName = Array("sr".utf8), sigName = Array("sig".utf8), seName = Array("se".utf8), sknName = Array("skn".utf8)

    /// Whether a field name is `lowercaseName`, in any case (no String per field).
    static func isName(_ name: ArraySlice<UInt8>, _ lowercaseName: [UInt8]) -> Bool {
        ASCIICase.equal(name, lowercaseName)
    }

    /// Builds a token for `resource` signed with `key` (base64), as the SDKs do: `sr` is the
    /// resource percent-encoded (`:` and `/` too), `sig` percent-encoded base64.
    public static func make(resource: String, key: String, keyName: String?, expiry: Int64) -> String {
        let sr = resource.addingPercentEncoding(withAllowedCharacters: .sasUnreserved) ?? resource
        let mac = sign(rawResource: sr, rawExpiry: String(expiry), key: key) ?? []
        let sig = Data(mac).base64EncodedString().addingPercentEncoding(withAllowedCharacters: .sasUnreserved) ?? ""
        var token = "SharedAccessSignature sr=\(sr)&sig=\(sig)&se=\(expiry)"
        if let keyName { token += "&skn=\(keyName)" }
        return token
    }

    /// HMAC-SHA256 of `sr + "\n" + se` under the base64-decoded key.
    static func sign(rawResource: String, rawExpiry: String, key: String) -> [UInt8]? {
        guard let keyBytes = Data(base64Encoded: key) else { return nil }
        let mac = HMAC<SHA256>.authenticationCode(for: Data((rawResource + "\n" + rawExpiry).utf8), using: Crypto.SymmetricKey(data: keyBytes))
        return Array(mac)
    }

    /// Whether the signature was made with `key`, compared in constant time.
    public func isSigned(with key: String) -> Bool {
        guard let keyBytes = Data(base64Encoded: key) else { return false }
        return isSigned(withKeyBytes: Array(keyBytes))
    }

    /// Constant-time check against raw key bytes.
    public func isSigned(withKeyBytes key: [UInt8]) -> Bool {
        isSigned(with: SigningKey(key))
    }

    /// Constant-time check against a prepared key.
    public func isSigned(with key: SigningKey) -> Bool {
        key.verifies(signedMessage, signature: signature)
    }

    /// What the signature covers: `sr` as received, a newline, `se` as received (the bytes,
    /// kept from the parse).
    public private(set) var signedMessage: [UInt8]
}

/// A symmetric key ready to verify SAS signatures. HMAC-SHA256 hashes the key's inner and outer
/// pads before any message; that state is computed once per key and copied for each check
/// (device checks verify against every key of the identity on every call).
public final class SigningKey: @unchecked Sendable {
    // Why unchecked: `prepared` is never mutated after init; each check works on a copy (a
    // value type whose hashing state is copied on write).
    private let prepared: HMAC<SHA256>?

    public init(_ bytes: [UInt8]) {
        prepared = bytes.isEmpty ? nil : HMAC<SHA256>(key: Crypto.SymmetricKey(data: bytes))
    }

    /// Whether `signature` is the HMAC of `message` under this key, compared in constant time.
    func verifies(_ message: [UInt8], signature: [UInt8]) -> Bool {
        guard var mac = prepared else { return false }
        mac.update(data: message)
        return mac.finalize() == signature
    }
}

extension CharacterSet {
    /// RFC 3986 unreserved characters: everything else is percent-encoded in SAS fields.
    static let sasUnreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// Why a request was refused. Never reported to the client beyond `IotHubUnauthorizedAccess`;
/// kept for the server's own (secret-free) log.
public enum AuthenticationFailure: String, Error, Sendable, Hashable {
    case missing = "no SharedAccessSignature authorization header"
    case malformed = "malformed token"
    case expired = "token expired"
    case unknownPolicy = "unknown policy"
    case wrongAudience = "token names another host"
    case badSignature = "signature does not verify"
    case insufficientRights = "policy lacks the right for this operation"
}

/// Verifies service tokens against the registry's policies (shared/spec/azure-registry-contract.md §2.1).
///
/// Verified tokens are remembered (bounded): clients send the same token for many requests
/// (the SDKs re-sign at most once per second), and parsing plus two HMACs per request was the
/// largest cost of a GET. A remembered token is still checked for expiry on every use, and only
/// an identical header string can hit, so nothing weaker than a full verification ever passes.
/// They are remembered under the SHA-256 of the header, not the header: looking a string up
/// compares it with remembered ones byte by byte and stops at the first difference, which
/// would time how much of a forged signature matches a valid one; digests reveal nothing.
public final class ServiceAuthenticator: Sendable {
    private struct State {
        var hostName: String
        var policies: [String: SharedAccessPolicy]
        /// The generation of `policies` when they came from a policy change (0 otherwise).
        var generation: Int64 = 0
        var verified: [Hash32: (policy: SharedAccessPolicy, expiry: Int64)] = [:]
    }

    private let state: Mutex<State>
    static let cacheLimit = 4096

    public init(hostName: String, policies: [SharedAccessPolicy]) {
        self.state = Mutex(State(hostName: hostName, policies: Self.byName(policies)))
    }

    static func byName(_ policies: [SharedAccessPolicy]) -> [String: SharedAccessPolicy] {
        Dictionary(policies.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public var hostName: String { state.withLock { $0.hostName } }

    /// The policies tokens are checked against.
    public var policyList: [SharedAccessPolicy] { state.withLock { Array($0.policies.values) } }

    /// One policy by name, as it stands now (no copy of the whole set: device checks ask per request).
    public func policy(named name: String) -> SharedAccessPolicy? { state.withLock { $0.policies[name] } }

    /// Installs the policies as of a policy change (an add, remove, rights change or key
    /// rotation), forgetting every verified token: a removed policy or a rotated key stops
    /// working on the next request. A set older than the one installed is ignored: two changes
    /// that commit one after the other can finish their requests in the other order, and
    /// installing the older set last would bring back a rotated key or a removed policy until
    /// the next change.
    public func setPolicies(_ snapshot: PolicySnapshot) {
        state.withLock {
            guard snapshot.generation > $0.generation else { return }
            $0.policies = Self.byName(snapshot.policies)
            $0.generation = snapshot.generation
            $0.verified.removeAll()
        }
    }

    /// Changes the host name tokens must name (forgetting tokens verified for the old one).
    public func setHostName(_ name: String) {
        state.withLock {
            $0.hostName = name
            $0.verified.removeAll()
        }
    }

    /// The policy that signed `header`, if the token is well-formed, unexpired at `now` (no grace),
    /// names this host, and verifies with one of the policy's keys.
    public func authenticate(header: String?, now: Int64) -> Result<SharedAccessPolicy, AuthenticationFailure> {
        guard let header else { return .failure(.missing) }
        let digest = Hash32(SHA256.hash(data: Array(header.utf8)))
        // The common case first, taking only the remembered entry out of the lock (copying the
        // host name and the policy map out too cost reference counts shared by every request).
        if let remembered = state.withLock({ $0.verified[digest] }) {
            return remembered.expiry >= now ? .success(remembered.policy) : .failure(.expired)
        }
        let (host, policies) = state.withLock { ($0.hostName, $0.policies) }
        guard let token = SharedAccessSignature(header: header) else { return .failure(.malformed) }
        guard token.expiry >= now else { return .failure(.expired) }
        guard let name = token.keyName, let policy = policies[name] else { return .failure(.unknownPolicy) }
        guard Self.audience(token.resource, matches: host) else { return .failure(.wrongAudience) }
        // Check both keys regardless of the first result, so timing does not reveal which matched.
        let primary = token.isSigned(with: policy.primaryKey)
        let secondary = token.isSigned(with: policy.secondaryKey)
        guard primary || secondary else { return .failure(.badSignature) }
        state.withLock { s in
            // Not remembered if the host or the policy changed meanwhile.
            guard s.hostName == host, s.policies[policy.name] == policy else { return }
            if s.verified.count >= Self.cacheLimit { s.verified.removeAll(keepingCapacity: true) }
            s.verified[digest] = (policy, token.expiry)
        }
        return .success(policy)
    }

    /// The audience must be this host (ASCII case-insensitive; with or without the port; a
    /// trailing slash tolerated). Compared byte by byte: it runs on every device check, and
    /// lowercasing and splitting both names allocated four strings per call.
    static func audience(_ audience: some StringProtocol, matches hostName: String) -> Bool {
        var a = Substring(audience).utf8
        if a.last == UInt8(ascii: "/") { a = a.dropLast() }
        let host = hostName.utf8
        let hostWithoutPort = host.firstIndex(of: UInt8(ascii: ":")).map { host[..<$0] } ?? host[...]
        return ASCIICase.equal(a, host[...]) || ASCIICase.equal(a, hostWithoutPort)
    }
}
