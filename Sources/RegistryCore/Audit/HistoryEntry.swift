/// One change to one identity, as an auditor reads it.
public struct HistoryEntry: Sendable, Hashable {
    public var seq: UInt64
    public var time: Timestamp
    public var type: EventType
    public var deviceId: String
    public var moduleId: String?
    public var actor: String
    public var requestId: String
    /// Fields that changed, by dotted path (`authentication.type`), never with key material.
    public var changes: [FieldChange]

    public init(
        seq: UInt64,
        time: Timestamp,
        type: EventType,
        deviceId: String,
        moduleId: String?,
        actor: String,
        requestId: String,
        changes: [FieldChange]
    ) {
        self.seq = seq
        self.time = time
        self.type = type
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.actor = actor
        self.requestId = requestId
        self.changes = changes
    }
}

public struct FieldChange: Sendable, Hashable {
    public var path: String
    public var old: JSONValue?
    public var new: JSONValue?

    public init(path: String, old: JSONValue?, new: JSONValue?) {
        self.path = path
        self.old = old
        self.new = new
    }
}
