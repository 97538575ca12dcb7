/// What a sealed key is the key of: the additional authenticated data it is sealed under, so a
/// sealed value moved to another identity, another slot or another kind of record does not open.
///
/// Version 2 (`bytes`, used for everything sealed now) is typed and length-prefixed:
/// `00 02 <kind>` then each field as a 4-byte big-endian length and its UTF-8 bytes. The leading
/// NUL never starts a version 1 context (ids and policy names cannot contain it), so the two
/// versions never share a context either.
///
/// Version 1 (`legacyBytes`, how values sealed before it are opened) concatenated the fields with
/// `/`: `device//slot`, `device/module/slot`, `policy/name/slot`. Ids cannot contain `/`, so it was
/// unambiguous among identities, but a module of a device named `policy` had exactly the context
/// of the policy of the module's name (device `policy`, module `iothubowner`, and the owner
/// policy's keys): a sealed value copied between the two opened in both places.
public enum SealingContext: Sendable, Hashable {
    case deviceKey(deviceId: String, slot: String)
    case moduleKey(deviceId: String, moduleId: String, slot: String)
    case policyKey(name: String, slot: String)

    private static let version: UInt8 = 2

    /// The version 2 context: what `KeySealer` seals under.
    public var bytes: [UInt8] {
        var out: [UInt8] = [0, Self.version]
        switch self {
        case .deviceKey(let deviceId, let slot):
            out.reserveCapacity(3 + 8 + deviceId.utf8.count + slot.utf8.count)
            out.append(UInt8(ascii: "D"))
            Self.field(deviceId, into: &out)
            Self.field(slot, into: &out)
        case .moduleKey(let deviceId, let moduleId, let slot):
            out.reserveCapacity(3 + 12 + deviceId.utf8.count + moduleId.utf8.count + slot.utf8.count)
            out.append(UInt8(ascii: "M"))
            Self.field(deviceId, into: &out)
            Self.field(moduleId, into: &out)
            Self.field(slot, into: &out)
        case .policyKey(let name, let slot):
            out.reserveCapacity(3 + 8 + name.utf8.count + slot.utf8.count)
            out.append(UInt8(ascii: "P"))
            Self.field(name, into: &out)
            Self.field(slot, into: &out)
        }
        return out
    }

    private static func field(_ text: String, into out: inout [UInt8]) {
        let count = UInt32(text.utf8.count)
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: count >> UInt32(shift))) }
        out.append(contentsOf: text.utf8)
    }

    /// The version 1 context the same value was sealed under before version 2.
    public var legacyBytes: [UInt8] {
        switch self {
        case .deviceKey(let deviceId, let slot): Array("\(deviceId)//\(slot)".utf8)
        case .moduleKey(let deviceId, let moduleId, let slot): Array("\(deviceId)/\(moduleId)/\(slot)".utf8)
        case .policyKey(let name, let slot): Array("policy/\(name)/\(slot)".utf8)
        }
    }
}
