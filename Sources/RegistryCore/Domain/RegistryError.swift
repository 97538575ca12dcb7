/// A rejection by the registry's rules, named as Azure names it (`iothub-errorcode`).
///
/// The domain throws these; the HTTP layer maps them to status codes and Azure's error body.
public struct RegistryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Azure's error code name, e.g. `DeviceNotFound`.
    public var code: Code
    /// A human-readable explanation (never contains key material).
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }

    /// Azure's error codes that the registry produces: the name and the numeric code
    /// (HTTP status × 1000 + sub-code).
    public enum Code: String, Hashable, Sendable, CaseIterable {
        case argumentInvalid = "ArgumentInvalid"
        case argumentNull = "ArgumentNull"
        case formatError = "IotHubFormatError"
        case deviceNotFound = "DeviceNotFound"
        case moduleNotFound = "ModuleNotFound"
        case deviceAlreadyExists = "DeviceAlreadyExists"
        case moduleAlreadyExists = "ModuleAlreadyExistsOnDevice"
        case preconditionFailed = "PreconditionFailed"
        case tooManyModulesOnDevice = "TooManyModulesOnDevice"
        case quotaExceeded = "IotHubQuotaExceeded"
        /// A scoped policy's write outside its scope (Azure's 401 code).
        case unauthorized = "IotHubUnauthorizedAccess"

        public var name: String { rawValue }

        public var numericCode: Int {
            switch self {
            case .argumentInvalid: 400_004
            case .argumentNull: 400_005
            case .formatError: 400_006
            case .deviceNotFound: 404_001
            case .moduleNotFound: 404_010
            case .deviceAlreadyExists: 409_001
            case .moduleAlreadyExists: 409_301
            case .preconditionFailed: 412_001
            case .tooManyModulesOnDevice: 413_003
            case .quotaExceeded: 403_002
            case .unauthorized: 401_002
            }
        }

        /// The HTTP status the code belongs to.
        public var httpStatus: Int { numericCode / 1000 }
    }

    static func invalid(_ message: String) -> RegistryError { RegistryError(.argumentInvalid, message) }
}
