extension IdentityCodec {
    /// `CanonicalJSON.encode(encode(identity, key:))`, written member by member in canonical
    /// (sorted) order without building the JSON tree and sorting its keys: the writer's hot
    /// path, where the tree and the sort were half of preparing an event. Keys are sealed in the
    /// codec's order (primary, then secondary). A test pins the equality over varied identities.
    public static func canonicalBytes(_ identity: Identity, key: (String, KeySlot) -> String) -> [UInt8] {
        canonicalBytes(identity) { plain, slot, out in CanonicalJSON.writeString(key(plain, slot), into: &out) }
    }

    /// The same, with each key's stored form appended by `sealedKey` as a whole JSON string
    /// value, quotes included (the writer seals straight into the document's bytes).
    public static func canonicalBytes(_ identity: Identity, sealedKey: (String, KeySlot, inout [UInt8]) -> Void) -> [UInt8] {
        var out = CanonicalWriter()
        let key = sealedKey
        switch identity {
        case .device(let d):
            out.open()
            out.member("authentication")
            out.authentication(d.authentication, deviceId: d.deviceId, moduleId: nil, key: key)
            out.member("capabilities")
            out.open()
            out.member("iotEdge")
            out.bool(d.capabilities.iotEdge)
            out.close()
            out.member("cloudToDeviceMessageCount")
            out.int(d.cloudToDeviceMessageCount)
            out.member("connectionState", d.connectionState.rawValue)
            out.member("connectionStateUpdatedTime", time: d.connectionStateUpdatedTime)
            out.member("deviceId", d.deviceId)
            out.member("deviceScope", d.deviceScope)
            out.member("etag", d.etag)
            out.member("generationId", d.generationId)
            out.member("lastActivityTime", time: d.lastActivityTime)
            out.member("parentScopes")
            out.strings(d.parentScopes)
            out.member("status", d.status.rawValue)
            out.member("statusReason", d.statusReason)
            out.member("statusUpdatedTime", time: d.statusUpdatedTime)
            out.twin(d.twin)
            out.close()
        case .module(let m):
            out.open()
            out.member("authentication")
            out.authentication(m.authentication, deviceId: m.deviceId, moduleId: m.moduleId, key: key)
            out.member("cloudToDeviceMessageCount")
            out.int(m.cloudToDeviceMessageCount)
            out.member("connectionState", m.connectionState.rawValue)
            out.member("connectionStateUpdatedTime", time: m.connectionStateUpdatedTime)
            out.member("deviceId", m.deviceId)
            out.member("etag", m.etag)
            out.member("generationId", m.generationId)
            out.member("lastActivityTime", time: m.lastActivityTime)
            out.member("managedBy", m.managedBy)
            out.member("moduleId", m.moduleId)
            out.twin(m.twin)
            out.close()
        }
        return out.bytes
    }
}

/// Canonical JSON written in order: the caller gives members already sorted.
private struct CanonicalWriter {
    var bytes: [UInt8] = []
    /// Whether the innermost open object has no member yet.
    private var empty = true

    init() { bytes.reserveCapacity(1024) }

    mutating func open() {
        bytes.append(123)
        empty = true
    }

    mutating func close() {
        bytes.append(125)
        empty = false
    }

    /// `"name":`, after a comma unless it is the object's first member. Names are plain ASCII.
    mutating func member(_ name: String) {
        if !empty { bytes.append(44) }
        bytes.append(34)
        bytes.append(contentsOf: name.utf8)
        bytes.append(contentsOf: [34, 58])
        empty = true  // until its value is written
    }

    /// A string (or null) member: `"name":"value"`.
    mutating func member(_ name: String, _ value: String?) {
        member(name)
        string(value)
    }

    /// A time member: `"name":"2021-05-12T08:48:08.7205939Z"`.
    mutating func member(_ name: String, time: Timestamp) {
        member(name)
        bytes.append(34)
        time.appendISO8601(to: &bytes)
        bytes.append(34)
        empty = false
    }

    mutating func string(_ value: String?) {
        if let value { CanonicalJSON.writeString(value, into: &bytes) } else { bytes.append(contentsOf: [110, 117, 108, 108]) }
        empty = false
    }

    mutating func int(_ value: Int64) {
        bytes.append(contentsOf: String(value).utf8)
        empty = false
    }

    mutating func bool(_ value: Bool) {
        bytes.append(contentsOf: value ? [116, 114, 117, 101] : [102, 97, 108, 115, 101])
        empty = false
    }

    mutating func strings(_ values: [String]) {
        bytes.append(91)
        for (i, value) in values.enumerated() {
            if i > 0 { bytes.append(44) }
            CanonicalJSON.writeString(value, into: &bytes)
        }
        bytes.append(93)
        empty = false
    }

    mutating func authentication(_ a: Authentication, deviceId: String, moduleId: String?, key: (String, IdentityCodec.KeySlot, inout [UInt8]) -> Void) {
        open()
        member("symmetricKey")
        open()
        keyMember("primaryKey", a.symmetricKey.primaryKey, slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: "primaryKey"), key: key)
        keyMember("secondaryKey", a.symmetricKey.secondaryKey, slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: "secondaryKey"), key: key)
        close()
        member("type", a.type.rawValue)
        member("x509Thumbprint")
        open()
        member("primaryThumbprint", a.x509Thumbprint.primaryThumbprint)
        member("secondaryThumbprint", a.x509Thumbprint.secondaryThumbprint)
        close()
        close()
    }

    /// A key member: its stored form written by `key`, or null.
    mutating func keyMember(_ name: String, _ value: String?, slot: IdentityCodec.KeySlot, key: (String, IdentityCodec.KeySlot, inout [UInt8]) -> Void) {
        member(name)
        if let value { key(value, slot, &bytes) } else { bytes.append(contentsOf: [110, 117, 108, 108]) }
        empty = false
    }

    /// The last member when present: `"twin":{"etag":…,"tags":{…},"version":…}`.
    mutating func twin(_ twin: TwinState?) {
        guard let twin else { return }
        member("twin")
        open()
        member("etag", twin.etag)
        member("tags")
        CanonicalJSON.write(.object(twin.tags), into: &bytes)
        empty = false
        member("version")
        int(twin.version)
        close()
    }
}
