import Foundation

/// Why a device was refused (machine-readable, stable).
public enum DeviceAuthDenial: String, Sendable, Hashable, CaseIterable {
    case unknownIdentity
    case disabled
    case wrongCredentialType
    case badSignature
    case expired
    case wrongScope
    case malformed
    /// The credential that matched has a validity window that has not begun.
    case notYetValid
    /// The credential that matched has a validity window that has ended.
    case credentialExpired
}

/// What a broker or gateway presents for one device or module.
public struct DeviceCredentials: Sendable, Hashable {
    public enum Credential: Sendable, Hashable {
        /// A SAS token: a device (or module) key token without `skn`, or a policy token with `skn`.
        case token(String)
        /// The SHA-1 or SHA-256 thumbprint of the client certificate (self-signed identities).
        case thumbprint(String)
        /// The caller verified a CA-issued chain itself; only the identity's type is confirmed.
        case certificateAuthority
    }

    public var deviceId: String
    public var moduleId: String?
    public var credential: Credential

    public init(deviceId: String, moduleId: String? = nil, credential: Credential) {
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.credential = credential
    }
}

/// The answer: allowed (with the identity's authentication type), or the reason it is not.
public enum DeviceAuthDecision: Sendable, Hashable {
    case allow(AuthenticationType)
    case deny(DeviceAuthDenial)
}

/// Decides device authentication from the registry's current state on every call: a disabled or
/// deleted device is refused on the very next check after the change returned.
public struct DeviceAuthenticator: Sendable {
    /// The host names a token's `sr` may name: the daemon's own, then any the operator added
    /// (`deviceAuth.hostNames`: the name devices use to reach the broker).
    public var hostNames: [String]
    /// The policy a gateway token names (`skn`), looked up at the moment of the check.
    public var policy: @Sendable (String) -> SharedAccessPolicy?

    public init(hostName: String, additionalHostNames: [String] = [], policy: @escaping @Sendable (String) -> SharedAccessPolicy?) {
        self.hostNames = [hostName] + additionalHostNames
        self.policy = policy
    }

    /// - Parameter callerScope: the scope of the policy asking (a broker's); an identity outside
    ///   it is answered as unknown.
    public func check(
        _ credentials: DeviceCredentials,
        storage: some RegistryReader,
        now: Int64,
        callerScope: PolicyScope? = nil
    ) throws -> DeviceAuthDecision {
        guard let record = try storage.credentials(deviceId: credentials.deviceId, moduleId: credentials.moduleId) else {
            return .deny(.unknownIdentity)
        }
        if let callerScope, !record.isInside(callerScope, deviceId: credentials.deviceId) { return .deny(.unknownIdentity) }
        // A module connects through its device: a disabled device refuses its modules too.
        guard !record.deviceDisabled else { return .deny(.disabled) }
        switch credentials.credential {
        case .certificateAuthority:
            return record.type == .certificateAuthority ? .allow(.certificateAuthority) : .deny(.wrongCredentialType)
        case .thumbprint(let presented):
            guard record.type == .selfSigned else { return .deny(.wrongCredentialType) }
            let candidate = presented.replacingOccurrences(of: ":", with: "").lowercased()
            guard let index = record.thumbprints.firstIndex(of: candidate) else { return .deny(.badSignature) }
            if let denial = record.windowDenial(record.thumbprintWindows, index, now: Timestamp(unixSeconds: now)) { return .deny(denial) }
            return .allow(.selfSigned)
        case .token(let text):
            guard let token = SharedAccessSignature(credential: text) else {
                return .deny(.malformed)
            }
            guard token.expiry >= now else { return .deny(.expired) }
            if token.keyName == nil, isExactScope(token.resource, credentials) {
                // The common case, a device-key token naming exactly this identity: checked
                // without splitting the resource into segments.
                guard record.type == .sas else { return .deny(.wrongCredentialType) }
                return keyDecision(token, record, now: now)
            }
            let identityPath = ["devices", credentials.deviceId] + (credentials.moduleId.map { ["modules", $0] } ?? [])
            guard let scope = scopePath(token.resource) else { return .deny(.wrongScope) }
            if let name = token.keyName {
                // A policy token (a gateway): the policy needs DeviceConnect and the scope may be
                // any segment prefix of the identity's path (`{host}/devices` covers them all).
                guard let policy = policy(name), policy.rights.contains(.deviceConnect) else { return .deny(.badSignature) }
                guard !scope.isEmpty, scope.count <= identityPath.count, Array(identityPath.prefix(scope.count)) == scope else {
                    return .deny(.wrongScope)
                }
                let primary = token.isSigned(with: policy.primaryKey)
                let secondary = token.isSigned(with: policy.secondaryKey)
                guard primary || secondary else { return .deny(.badSignature) }
                // A scoped policy's gateway token admits only the identities in its scope (told
                // only to a caller whose signature verified).
                if let policyScope = policy.scope, !record.isInside(policyScope, deviceId: credentials.deviceId) { return .deny(.wrongScope) }
                // The contract's step 5 (spec §2.3) holds for policy tokens too: a token admits
                // only `sas` identities. An X.509 or `none` device authenticates with its
                // certificate or not at all, so a gateway holding DeviceConnect must not be able
                // to log one in with a token. Checked after the signature, in the contract's order.
                return record.type == .sas ? .allow(.sas) : .deny(.wrongCredentialType)
            }
            // A device-key token names exactly this identity and is signed with its own key.
            guard scope == identityPath else { return .deny(.wrongScope) }
            guard record.type == .sas else { return .deny(.wrongCredentialType) }
            return keyDecision(token, record, now: now)
        }
    }

    /// A device-key token: allowed if a key verifies it and that key's window admits `now`.
    func keyDecision(_ token: SharedAccessSignature, _ record: CredentialRecord, now: Int64) -> DeviceAuthDecision {
        guard let index = verifyingKey(token, record) else { return .deny(.badSignature) }
        if let denial = record.windowDenial(record.keyWindows, index, now: Timestamp(unixSeconds: now)) { return .deny(denial) }
        return .allow(.sas)
    }

    /// Keys in order (primary, then secondary), each comparison constant-time. Stopping at the
    /// first key that verifies tells a timing observer only which key signed a token that is
    /// valid anyway (no byte of any signature or key), and saves an HMAC on most checks; a
    /// token that verifies with no key is always tried against every key.
    func verifyingKey(_ token: SharedAccessSignature, _ record: CredentialRecord) -> Int? {
        let message = token.signedMessage
        return record.keys.firstIndex { $0.verifies(message, signature: token.signature) }
    }

    /// Whether `resource` is exactly `{host}/devices/{id}[/modules/{mid}]` for a known host (what
    /// the SDKs send); anything else takes the general segment comparison.
    func isExactScope(_ resource: String, _ credentials: DeviceCredentials) -> Bool {
        guard let slash = resource.utf8.firstIndex(of: UInt8(ascii: "/")) else { return false }
        // `/devices/{id}[/modules/{mid}]`, compared piece by piece (no string built per check).
        var rest = resource.utf8[slash...]
        func consume(_ part: String.UTF8View) -> Bool {
            guard rest.starts(with: part) else { return false }
            rest = rest.dropFirst(part.count)
            return true
        }
        guard consume("/devices/".utf8), consume(credentials.deviceId.utf8) else { return false }
        if let moduleId = credentials.moduleId {
            guard consume("/modules/".utf8), consume(moduleId.utf8) else { return false }
        }
        return rest.isEmpty && isKnownHost(resource[..<slash])
    }

    func scopePath(_ audience: String) -> [String]? {
        let parts = audience.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let host = parts.first, hostNames.contains(where: { ServiceAuthenticator.audience(host, matches: $0) }) else { return nil }
        return Array(parts.dropFirst()).filter { !$0.isEmpty }
    }

    /// Whether `host` is one of the names this registry answers to.
    public func isKnownHost(_ host: some StringProtocol) -> Bool {
        hostNames.contains { ServiceAuthenticator.audience(host, matches: $0) }
    }
}

/// Azure's MQTT connect convention: client id `{deviceId}` or `{deviceId}/{moduleId}`, user name
/// `{host}/{deviceId}[/{moduleId}]/?api-version=...` (anything after the identity is ignored),
/// password the SAS token. Parsed here so a broker can hand the three fields over unchanged.
public struct MQTTConnectIdentity: Sendable, Hashable {
    public var host: String
    public var deviceId: String
    public var moduleId: String?

    /// `nil` when the user name does not follow the convention or names another identity than
    /// the client id does (a device must not log in under another's id).
    public init?(username: String, clientId: String) {
        // On UTF-8 bytes (ids compare exactly, and brokers ask on every connect and topic).
        let user = Array(username.utf8)
        let path = user[..<(user.firstIndex(of: UInt8(ascii: "?")) ?? user.endIndex)]
        let segments = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard segments.count >= 2, !segments[0].isEmpty, !segments[1].isEmpty else { return nil }
        let client = Array(clientId.utf8)
        let clientParts = client.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard clientParts.count <= 2, clientParts.first.map({ $0.elementsEqual(segments[1]) }) == true else { return nil }
        host = String(decoding: segments[0], as: UTF8.self)
        deviceId = String(decoding: segments[1], as: UTF8.self)
        if clientParts.count == 2 {
            // A module: the user name must name the same module right after the device.
            guard segments.count >= 3, segments[2].elementsEqual(clientParts[1]), !clientParts[1].isEmpty,
                segments.dropFirst(3).allSatisfy(\.isEmpty)
            else { return nil }
            moduleId = String(decoding: clientParts[1], as: UTF8.self)
        } else {
            guard segments.dropFirst(2).allSatisfy(\.isEmpty) else { return nil }
            moduleId = nil
        }
    }
}
