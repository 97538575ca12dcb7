import RegistryCore

/// The `tls` key of the configuration file: names the generated server certificate carries
/// besides `localhost`, `127.0.0.1`, `::1` and the SAS host name (read at start; the
/// certificate is issued again when it does not name them all).
///
/// ```json
/// {"tls": {"subjectAlternativeNames": ["registry.example.com", "10.0.0.5"]}}
/// ```
public struct GeneratedCertificateConfiguration: Sendable, Hashable {
    /// DNS names (a `*.` wildcard first label allowed) and IP addresses.
    public var subjectAlternativeNames: [String]

    public init(subjectAlternativeNames: [String] = []) {
        self.subjectAlternativeNames = subjectAlternativeNames
    }

    public init(json: JSONValue) throws(ConfigurationFieldError) {
        self.init()
        guard case .object(let fields) = json else { throw ConfigurationFieldError("tls", "must be an object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "subjectAlternativeNames":
                guard case .array(let items) = value else {
                    throw ConfigurationFieldError("tls.subjectAlternativeNames", "must be an array of host names")
                }
                for item in items {
                    guard let name = item.stringValue else { throw ConfigurationFieldError("tls.subjectAlternativeNames", "must hold strings") }
                    subjectAlternativeNames.append(name)
                }
                // The same check as at start, so a bad name is refused with its field here.
                _ = try ServerNames(hostName: nil, extra: subjectAlternativeNames)
            default:
                throw ConfigurationFieldError("tls.\(key)", "unknown key (known: subjectAlternativeNames)")
            }
        }
    }
}
