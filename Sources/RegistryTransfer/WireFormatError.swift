/// A Device, Module or ExportImportDevice body that cannot be read: Azure's error code and
/// message. The API answers it 400; an import or bulk call reports it for the one entry.
public struct WireFormatError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Azure's error code name (`ArgumentInvalid`, `ArgumentNull`, `IotHubFormatError`).
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public static func invalid(_ message: String) -> WireFormatError { WireFormatError(code: "ArgumentInvalid", message: message) }

    public static func format(_ message: String) -> WireFormatError { WireFormatError(code: "IotHubFormatError", message: message) }

    public var description: String { "\(code): \(message)" }
}
