import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The names the generated server certificate carries: always `localhost`, `127.0.0.1` and
/// `::1` (what local clients and the SDK tests use), plus the SAS host name the daemon is
/// configured with and the extra names of `tls.subjectAlternativeNames`, each as a DNS name or,
/// for an IP literal, an IP address.
public struct ServerNames: Sendable, Hashable {
    /// Lowercased DNS names.
    public private(set) var dnsNames: Set<String> = ["localhost"]
    /// Addresses in network byte order (4 or 16 bytes).
    public private(set) var ipAddresses: Set<[UInt8]> = [[127, 0, 0, 1], [UInt8](repeating: 0, count: 15) + [1]]

    /// `localhost`, `127.0.0.1` and `::1`.
    public init() {}

    /// The default names plus `hostName` (a `host[:port]` or `[v6]:port` SAS host name; the
    /// port is dropped) and `extra` names.
    public init(hostName: String?, extra: [String]) throws(ConfigurationFieldError) {
        if let hostName { try insert(Self.host(of: hostName), field: "server.hostName") }
        for name in extra { try insert(name, field: "tls.subjectAlternativeNames") }
    }

    /// Whether a certificate with these names also carries every one of `required`.
    public func covers(_ required: ServerNames) -> Bool {
        required.dnsNames.isSubset(of: dnsNames) && required.ipAddresses.isSubset(of: ipAddresses)
    }

    /// Names read from a certificate (not checked: any name it has counts).
    init(dnsNames: Set<String>, ipAddresses: Set<[UInt8]>) {
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
    }

    mutating func insert(_ name: String, field: String) throws(ConfigurationFieldError) {
        if let address = Self.address(name) {
            ipAddresses.insert(address)
            return
        }
        // A DNS name, or a wildcard in its first label only (RFC 6125 §6.4.3).
        let labels = name.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        let valid =
            name.utf8.count <= 253 && !labels.isEmpty
            && labels.enumerated().allSatisfy { index, label in
                (index == 0 && label == "*" && labels.count > 2)
                    || (!label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                        && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") })
            }
        guard valid else { throw ConfigurationFieldError(field, "'\(name)' is neither a DNS name nor an IP address") }
        dnsNames.insert(name.lowercased())
    }

    /// The host of a SAS host name: `host`, `host:port`, `[v6]` or `[v6]:port`.
    static func host(of hostName: String) -> String {
        if hostName.hasPrefix("["), let end = hostName.firstIndex(of: "]") {
            return String(hostName[hostName.index(after: hostName.startIndex)..<end])
        }
        let parts = hostName.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 2 ? String(parts[0]) : hostName
    }

    /// An IPv4 or IPv6 literal as bytes, else `nil`.
    static func address(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
