/// Route sources: Azure's `DeviceLifecycleEvents` (creates and deletes) and
/// `DeviceConnectionStateEvents` (broker-reported connects and disconnects), and our extensions
/// `DeviceIdentityChangeEvents` (creates, updates and deletes) and `CredentialExpiryEvents` (a
/// key or thumbprint entered the last days of its validity window).
public enum RouteSource: String, Sendable, Hashable, CaseIterable {
    case deviceLifecycleEvents = "DeviceLifecycleEvents"
    case deviceIdentityChangeEvents = "DeviceIdentityChangeEvents"
    case deviceConnectionStateEvents = "DeviceConnectionStateEvents"
    case credentialExpiryEvents = "CredentialExpiryEvents"

    /// The `iothub-message-source` value (camelCase, as Azure spells it on messages).
    var messageSource: String {
        switch self {
        case .deviceLifecycleEvents: "deviceLifecycleEvents"
        case .deviceIdentityChangeEvents: "deviceIdentityChangeEvents"
        case .deviceConnectionStateEvents: "deviceConnectionStateEvents"
        case .credentialExpiryEvents: "credentialExpiryEvents"
        }
    }

    var schema: String {
        switch self {
        case .deviceLifecycleEvents: "deviceLifecycleNotification"
        case .deviceIdentityChangeEvents: "deviceIdentityChangeNotification"
        case .deviceConnectionStateEvents: "deviceConnectionStateNotification"
        case .credentialExpiryEvents: "credentialExpiryNotification"
        }
    }

    /// The opType of an event in this source, or `nil` when the source does not carry it.
    func opType(_ type: EventType) -> String? {
        if self == .deviceConnectionStateEvents {
            switch type {
            case .deviceConnected, .moduleConnected: return "deviceConnected"
            case .deviceDisconnected, .moduleDisconnected: return "deviceDisconnected"
            default: return nil
            }
        }
        if self == .credentialExpiryEvents {
            return type == .deviceCredentialExpiring || type == .moduleCredentialExpiring ? "credentialExpiring" : nil
        }
        switch type {
        case .deviceCreated, .moduleCreated: return "createDeviceIdentity"
        case .deviceDeleted, .moduleDeleted: return "deleteDeviceIdentity"
        case .deviceUpdated, .moduleUpdated: return self == .deviceIdentityChangeEvents ? "updateDeviceIdentity" : nil
        case .deviceConnected, .deviceDisconnected, .moduleConnected, .moduleDisconnected, .deviceTwinUpdated, .moduleTwinUpdated,
            .deviceCredentialExpiring, .moduleCredentialExpiring:
            return nil
        }
    }
}

/// One routed message, built from one event: Azure's lifecycle notification (application
/// properties, system properties, a twin-like body that never carries keys), with a stable id
/// `<hub>-<seq>` for deduplication.
public struct RouteMessage: Sendable, Hashable, RouteMessageProperties {
    public var seq: UInt64
    public var id: String
    public var source: RouteSource
    public var applicationProperties: [String: String]
    public var systemProperties: [String: String]
    public var body: JSONValue

    public init(
        seq: UInt64,
        id: String,
        source: RouteSource,
        applicationProperties: [String: String],
        systemProperties: [String: String],
        body: JSONValue
    ) {
        self.seq = seq
        self.id = id
        self.source = source
        self.applicationProperties = applicationProperties
        self.systemProperties = systemProperties
        self.body = body
    }

    /// The message for `record` in `source`, or `nil` when the source does not carry that event.
    public init?(record: EventRecord, source: RouteSource, hubName: String) {
        guard let opType = source.opType(record.type) else { return nil }
        seq = record.seq
        id = "\(hubName)-\(record.seq)"
        self.source = source
        let time = record.time.iso8601
        var application = [
            "hubName": hubName,
            "deviceId": record.deviceId,
            "opType": opType,
            // A connection happened when the broker saw it, which may precede the log append.
            "operationTimestamp": source == .deviceConnectionStateEvents ? record.payload["connectionStateUpdatedTime"]?.stringValue ?? time : time,
            "iothub-message-schema": source.schema,
        ]
        var system = [
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "correlation-id": id,
            "user-id": hubName,
            "iothub-connection-device-id": record.deviceId,
            "iothub-enqueuedtime": time,
            "iothub-message-source": source.messageSource,
        ]
        if let moduleId = record.moduleId {
            application["moduleId"] = moduleId
            system["iothub-connection-module-id"] = moduleId
        }
        applicationProperties = application
        systemProperties = system
        // Connection messages carry only an order key (Azure's shape): the log's sequence number,
        // zero-padded so that string order is numeric order, which increases per identity.
        switch source {
        case .deviceConnectionStateEvents:
            body = Self.connectionBody(seq: record.seq)
        case .credentialExpiryEvents:
            // The twin shape plus the windows (never key material): which credential ends when.
            var twin = TwinDocument.make(record.payload, lastUpdated: time)
            if case .object(var members) = twin {
                members["credentialValidity"] = record.payload["authentication"]?["validity"] ?? .object([:])
                twin = .object(members)
            }
            body = twin
        default:
            body = TwinDocument.make(record.payload, lastUpdated: time)
        }
    }

    static func connectionBody(seq: UInt64) -> JSONValue {
        let digits = String(seq)
        return .object(["sequenceNumber": .string(String(repeating: "0", count: max(0, 20 - digits.count)) + digits)])
    }

    /// The documented wire form (file lines and webhook bodies), canonical JSON.
    public var json: JSONValue {
        .object([
            "id": .string(id),
            "seq": .int(Int64(seq)),
            "source": .string(source.rawValue),
            "applicationProperties": .object(applicationProperties.mapValues(JSONValue.string)),
            "systemProperties": .object(systemProperties.mapValues(JSONValue.string)),
            "body": body,
        ])
    }

    public var encoded: [UInt8] { CanonicalJSON.encode(json) }

    // MARK: RouteMessageProperties

    public func applicationProperty(_ name: String) -> String? {
        if let v = applicationProperties[name] { return v }
        let lower = name.lowercased()
        return applicationProperties.first { $0.key.lowercased() == lower }?.value
    }

    static let systemNames: [String: String] = [
        "contenttype": "content-type", "contentencoding": "content-encoding", "correlationid": "correlation-id", "userid": "user-id",
        "connectiondeviceid": "iothub-connection-device-id", "connectionmoduleid": "iothub-connection-module-id",
        "enqueuedtime": "iothub-enqueuedtime", "messagesource": "iothub-message-source",
    ]

    public func systemProperty(_ name: String) -> String? {
        Self.systemNames[name.lowercased()].flatMap { systemProperties[$0] }
    }
}

extension RouteMessage {
    /// Rebuilds a message from its wire form (parked messages are stored that way).
    public init?(json: JSONValue) {
        guard let id = json["id"]?.stringValue, let seq = json["seq"]?.intValue,
            let sourceName = json["source"]?.stringValue, let source = RouteSource(rawValue: sourceName),
            case .object(let application)? = json["applicationProperties"], case .object(let system)? = json["systemProperties"],
            let body = json["body"]
        else { return nil }
        self.init(
            seq: UInt64(seq),
            id: id,
            source: source,
            applicationProperties: application.compactMapValues(\.stringValue),
            systemProperties: system.compactMapValues(\.stringValue),
            body: body
        )
    }
}
