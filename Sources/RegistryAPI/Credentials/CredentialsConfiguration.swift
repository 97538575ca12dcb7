import RegistryCore

/// The `credentials` key of the configuration file: when the registry announces that a
/// credential's validity window is ending.
///
/// ```json
/// {"credentials": {"expiryNoticeDays": 30, "checkIntervalSeconds": 60}}
/// ```
public struct CredentialsConfiguration: Sendable, Hashable {
    /// A `credentialExpiring` event is written once per window when fewer than this many days
    /// are left (0: never).
    public var expiryNoticeDays: Int
    /// How often the identities are scanned for windows entering that period.
    public var checkInterval: Duration

    public init(expiryNoticeDays: Int = 30, checkInterval: Duration = .seconds(60)) {
        self.expiryNoticeDays = expiryNoticeDays
        self.checkInterval = checkInterval
    }

    public init(json: JSONValue) throws(ConfigurationFieldError) {
        self.init()
        guard case .object(let fields) = json else { throw ConfigurationFieldError("credentials", "must be an object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "expiryNoticeDays":
                guard let n = value.intValue, n >= 0, n <= 3_650 else {
                    throw ConfigurationFieldError("credentials.expiryNoticeDays", "must be a whole number of days from 0 (off) to 3650")
                }
                expiryNoticeDays = Int(n)
            case "checkIntervalSeconds":
                checkInterval = try value.seconds("credentials.checkIntervalSeconds")
            default:
                throw ConfigurationFieldError("credentials.\(key)", "unknown key (known: checkIntervalSeconds, expiryNoticeDays)")
            }
        }
    }
}
