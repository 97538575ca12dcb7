extension IdentityCodec {
    /// `CanonicalJSON.encode(encode(identity, key:))`, written member by member in canonical
    /// order (`StoredIdentityLayout`'s, the one its readers expect) without building the JSON
    /// tree and sorting its keys: the writer's hot path, where the tree and the sort were half of
    /// preparing an event. Keys are sealed in the codec's order (primary, then secondary). A test
    /// pins the equality over varied identities.
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
            for field in StoredIdentityLayout.deviceMembers {
                switch field {
                case .authentication:
                    out.member(field.name)
                    out.authentication(d.authentication, deviceId: d.deviceId, moduleId: nil, key: key)
                case .capabilities:
                    out.member(field.name)
                    out.open()
                    out.member(StoredIdentityLayout.Field.iotEdge.name)
                    out.bool(d.capabilities.iotEdge)
                    out.close()
                case .cloudToDeviceMessageCount:
                    out.member(field.name)
                    out.int(d.cloudToDeviceMessageCount)
                case .connectionState: out.member(field.name, d.connectionState.rawValue)
                case .connectionStateUpdatedTime: out.member(field.name, time: d.connectionStateUpdatedTime)
                case .deviceId: out.member(field.name, d.deviceId)
                case .deviceScope: out.member(field.name, d.deviceScope)
                case .etag: out.member(field.name, d.etag)
                case .generationId: out.member(field.name, d.generationId)
                case .lastActivityTime: out.member(field.name, time: d.lastActivityTime)
                case .parentScopes:
                    out.member(field.name)
                    out.strings(d.parentScopes)
                case .restoredFrom: out.restoredFrom(d.restoredFrom)
                case .status: out.member(field.name, d.status.rawValue)
                case .statusReason: out.member(field.name, d.statusReason)
                case .statusUpdatedTime: out.member(field.name, time: d.statusUpdatedTime)
                case .twin: out.twin(d.twin)
                default: preconditionFailure("\(field) is not a Device member")
                }
            }
            out.close()
        case .module(let m):
            out.open()
            for field in StoredIdentityLayout.moduleMembers {
                switch field {
                case .authentication:
                    out.member(field.name)
                    out.authentication(m.authentication, deviceId: m.deviceId, moduleId: m.moduleId, key: key)
                case .cloudToDeviceMessageCount:
                    out.member(field.name)
                    out.int(m.cloudToDeviceMessageCount)
                case .connectionState: out.member(field.name, m.connectionState.rawValue)
                case .connectionStateUpdatedTime: out.member(field.name, time: m.connectionStateUpdatedTime)
                case .deviceId: out.member(field.name, m.deviceId)
                case .etag: out.member(field.name, m.etag)
                case .generationId: out.member(field.name, m.generationId)
                case .lastActivityTime: out.member(field.name, time: m.lastActivityTime)
                case .managedBy: out.member(field.name, m.managedBy)
                case .moduleId: out.member(field.name, m.moduleId)
                case .restoredFrom: out.restoredFrom(m.restoredFrom)
                case .twin: out.twin(m.twin)
                default: preconditionFailure("\(field) is not a Module member")
                }
            }
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

    mutating func authentication(
        _ a: Authentication,
        deviceId: String,
        moduleId: String?,
        key: (String, IdentityCodec.KeySlot, inout [UInt8]) -> Void
    ) {
        open()
        for field in StoredIdentityLayout.Field.authentication.members {
            if field == .validity {
                // Only when a window is set (see `IdentityCodec.encode`).
                if !a.validity.isEmpty {
                    member(field.name)
                    CanonicalJSON.write(a.validity.json, into: &bytes)
                    empty = false
                }
                continue
            }
            member(field.name)
            switch field {
            case .symmetricKey:
                open()
                for slot in field.members {
                    let value = slot == .primaryKey ? a.symmetricKey.primaryKey : a.symmetricKey.secondaryKey
                    keyMember(slot.name, value, slot: IdentityCodec.KeySlot(deviceId: deviceId, moduleId: moduleId, name: slot.name), key: key)
                }
                close()
            case .authenticationType: string(a.type.rawValue)
            case .x509Thumbprint:
                open()
                for slot in field.members {
                    member(slot.name, slot == .primaryThumbprint ? a.x509Thumbprint.primaryThumbprint : a.x509Thumbprint.secondaryThumbprint)
                }
                close()
            default: preconditionFailure("\(field) is not an authentication member")
            }
        }
        close()
    }

    /// A key member: its stored form written by `key`, or null.
    mutating func keyMember(
        _ name: String,
        _ value: String?,
        slot: IdentityCodec.KeySlot,
        key: (String, IdentityCodec.KeySlot, inout [UInt8]) -> Void
    ) {
        member(name)
        if let value { key(value, slot, &bytes) } else { bytes.append(contentsOf: [110, 117, 108, 108]) }
        empty = false
    }

    /// Present only on a restored identity.
    mutating func restoredFrom(_ seq: UInt64?) {
        guard let seq else { return }
        member(StoredIdentityLayout.Field.restoredFrom.name)
        int(Int64(truncatingIfNeeded: seq))
    }

    /// The last member when present: `"twin":{"etag":…,"tags":{…},"version":…}`.
    mutating func twin(_ twin: TwinState?) {
        guard let twin else { return }
        member(StoredIdentityLayout.Field.twin.name)
        open()
        for field in StoredIdentityLayout.Field.twin.members {
            member(field.name)
            switch field {
            case .twinEtag: string(twin.etag)
            case .tags:
                CanonicalJSON.write(.object(twin.tags), into: &bytes)
                empty = false
            case .twinVersion: int(twin.version)
            default: preconditionFailure("\(field) is not a twin member")
            }
        }
        close()
    }
}
