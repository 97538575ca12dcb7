import RegistryCore
import RegistryLMDB
import RegistryTesting

/// Seeded random command histories over a small set of ids, so that commands meet each other:
/// creates, replaces (status, reason, new keys, thumbprints, edge capability, tags), deletes with
/// cascades, modules, twin merges and replacements, connection reports, under every kind of
/// `If-Match`. Some commands are refused (a conflict, a stale etag): those write nothing, which
/// is part of what the log must show.
struct CommandHistory {
    var random: SeededRandom

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

    /// Ids that prefix each other and use the punctuation ids may hold: the projections' key
    /// order (and the verifier's merge over it) differs from a naive string order here.
    static let deviceIds = ["a", "a-", "a0", "ab", "a.b", "b", "dev(1)", "x@y:z", "q'r", "%_*?!$=,"]
    static let moduleIds = ["m", "m1", "M", "m-"]

    /// Strings that need escaping in canonical JSON, or are not ASCII.
    static let texts = ["", "plain", "quote\"d", "back\\slash", "tab\there", "line\nbreak", "ctl\u{1}\u{1f}", "ünïcödé", "emoji 🚀", "a/b", "\u{7f}"]

    mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
    mutating func number(_ below: Int) -> Int { Int(random.next() % UInt64(below)) }

    /// The next batch: 1 to 6 commands (a batch shares one transaction, as bulk requests do).
    mutating func batch() -> [Command] { (0...number(6)).map { _ in command() } }

    mutating func command() -> Command {
        // Modules live on a few devices only, so that module commands often find theirs.
        let onModule = chance(50)
        let device = onModule ? pick(Array(Self.deviceIds.prefix(4))) : pick(Self.deviceIds)
        let module = pick(Self.moduleIds)
        switch number(100) {
        case 0..<14: return .createDevice(deviceSpec(device))
        case 14..<24: return .replaceDevice(deviceSpec(device), ifMatch: ifMatch())
        case 24..<28: return .createOrReplaceDevice(deviceSpec(device), ifMatch: ifMatch())
        case 28..<31: return .deleteDevice(deviceId: device, ifMatch: ifMatch())
        case 31..<43: return .createModule(moduleSpec(device, module))
        case 43..<48: return .replaceModule(moduleSpec(device, module), ifMatch: ifMatch())
        case 48..<51: return .createOrReplaceModule(moduleSpec(device, module), ifMatch: ifMatch())
        case 51..<54: return .deleteModule(deviceId: device, moduleId: module, ifMatch: ifMatch())
        case 54..<80:
            return .reportConnection(
                ConnectionReport(
                    deviceId: device,
                    moduleId: onModule ? module : nil,
                    connected: chance(50),
                    time: chance(50) ? nil : Timestamp(unixSeconds: 1_700_000_000 + Int64(number(1_000_000)))
                )
            )
        case 95..<100:
            // Matches a window only when the identity has one ending then (else no event).
            return .noticeCredentialExpiry(
                CredentialExpiryNotice(
                    deviceId: device,
                    moduleId: onModule ? module : nil,
                    slot: pick(CredentialValidity.Slot.allCases),
                    notAfter: pick(Self.windowEnds)
                )
            )
        default:
            return .updateTwin(
                TwinUpdate(
                    deviceId: device,
                    moduleId: onModule ? module : nil,
                    tags: tags(),
                    replace: chance(30),
                    ifMatch: chance(80) ? .absent : .any
                )
            )
        }
    }

    /// Mostly unconditional or `*`; sometimes an etag that matches only by chance.
    mutating func ifMatch() -> ETagCondition {
        switch number(10) {
        case 0..<5: .absent
        case 5..<8: .any
        default: .exact(etag(forSequence: UInt64(1 + number(40))))
        }
    }

    mutating func key() -> String { Base64.encode(randomBytes(32, using: &random)) }

    mutating func thumbprint() -> String {
        String(decoding: randomBytes(20, using: &random).flatMap { Array(Hex.encode([$0]).uppercased().utf8) }, as: UTF8.self)
    }

    /// Generated keys, given keys (a regeneration), thumbprints, or a CA.
    mutating func authentication() -> AuthenticationSpec? {
        switch number(8) {
        case 0..<4: return nil
        case 4, 5: return AuthenticationSpec(type: .sas, primaryKey: key(), secondaryKey: key(), validity: chance(50) ? validity() : nil)
        case 6:
            return AuthenticationSpec(
                type: .selfSigned,
                primaryThumbprint: thumbprint(),
                secondaryThumbprint: thumbprint(),
                validity: chance(50) ? validity() : nil
            )
        default: return AuthenticationSpec(type: .certificateAuthority)
        }
    }

    /// The ends of the windows histories set, so that expiry notices often find theirs.
    static let windowEnds = [Timestamp(unixSeconds: 1_800_000_000), Timestamp(unixSeconds: 1_900_000_000)]

    mutating func validity() -> CredentialValidity {
        var validity = CredentialValidity()
        for slot in CredentialValidity.Slot.allCases where chance(60) {
            validity[slot] = .init(notBefore: chance(30) ? Timestamp(unixSeconds: 1_600_000_000) : nil, notAfter: pick(Self.windowEnds))
        }
        return validity
    }

    mutating func deviceSpec(_ id: String) -> DeviceSpec {
        DeviceSpec(
            deviceId: id,
            status: chance(50) ? nil : pick(DeviceStatus.allCases),
            statusReason: chance(50) ? nil : pick(Self.texts),
            authentication: authentication(),
            capabilities: DeviceCapabilities(iotEdge: chance(20)),
            tags: chance(25) ? tags() : nil
        )
    }

    mutating func moduleSpec(_ device: String, _ module: String) -> ModuleSpec {
        ModuleSpec(
            deviceId: device,
            moduleId: module,
            managedBy: chance(40) ? pick(Self.texts) : nil,
            authentication: authentication(),
            tags: chance(25) ? tags() : nil
        )
    }

    /// Tags as Azure allows them (no arrays, names without `.`, `$`, spaces or controls), with
    /// values of every other kind; `null` removes a key in a merge.
    mutating func tags(depth: Int = 1) -> [String: JSONValue] {
        var tags: [String: JSONValue] = [:]
        for _ in 0..<number(4) {
            let name = pick(["env", "Env", "région", "a\"b", "back\\s", "z", "status", "twin", "deviceId", "0"])
            switch number(7) {
            case 0: tags[name] = .string(pick(Self.texts))
            case 1: tags[name] = .int(Int64(number(2000)) - 1000)
            case 2: tags[name] = .bool(chance(50))
            case 3: tags[name] = .null
            // Markers of the stored layout planted in a tag must not fool the byte-level readers.
            case 4: tags[name] = .string(pick(["\"status\":\"disabled\"", ",\"twin\":{", "\"connectionState\":\"Connected\"", ",\"payload\":{"]))
            default: tags[name] = depth < 3 ? .object(self.tags(depth: depth + 1)) : .string("leaf")
            }
        }
        return tags
    }
}
