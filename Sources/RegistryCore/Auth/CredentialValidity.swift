/// Validity windows of an identity's two credentials (issue 22, item 2): the key or thumbprint
/// in the primary slot and the one in the secondary slot, each usable only from `notBefore`
/// (inclusive) until `notAfter` (exclusive), as Hono models each secret. Stored inside
/// `authentication` as `validity`, only when a window is set (other documents keep their bytes).
public struct CredentialValidity: Sendable, Hashable {
    public struct Window: Sendable, Hashable {
        public var notBefore: Timestamp?
        public var notAfter: Timestamp?
        /// Set by the expiry notice (`credentialExpiring` event): this window's end was announced.
        public var expiryNoticed: Bool

        public init(notBefore: Timestamp? = nil, notAfter: Timestamp? = nil, expiryNoticed: Bool = false) {
            self.notBefore = notBefore
            self.notAfter = notAfter
            self.expiryNoticed = expiryNoticed
        }

        /// Whether the credential may be used at `now`, and if not, why.
        public func admits(at now: Timestamp) -> DeviceAuthDenial? {
            if let notBefore, now < notBefore { return .notYetValid }
            if let notAfter, now >= notAfter { return .credentialExpired }
            return nil
        }

        var isEmpty: Bool { notBefore == nil && notAfter == nil }
    }

    public enum Slot: String, Sendable, Hashable, CaseIterable {
        case primary, secondary
    }

    public var primary: Window?
    public var secondary: Window?

    public init(primary: Window? = nil, secondary: Window? = nil) {
        self.primary = primary
        self.secondary = secondary
    }

    public subscript(slot: Slot) -> Window? {
        get { slot == .primary ? primary : secondary }
        set { if slot == .primary { primary = newValue } else { secondary = newValue } }
    }

    public var isEmpty: Bool { primary == nil && secondary == nil }

    // MARK: JSON (stored and wire form)

    /// `{"primary": {"notAfter": "…", "notBefore": "…"}, "secondary": {…}}`; empty windows left out.
    public var json: JSONValue {
        var members: [String: JSONValue] = [:]
        for slot in Slot.allCases {
            guard let window = self[slot], !window.isEmpty else { continue }
            var o: [String: JSONValue] = [:]
            if let notBefore = window.notBefore { o["notBefore"] = .string(notBefore.iso8601) }
            if let notAfter = window.notAfter { o["notAfter"] = .string(notAfter.iso8601) }
            if window.expiryNoticed { o["expiryNoticed"] = .bool(true) }
            members[slot.rawValue] = .object(o)
        }
        return .object(members)
    }

    /// Reads the stored form (lenient: what this code wrote).
    public init(stored json: JSONValue) {
        self.init()
        for slot in Slot.allCases {
            guard let window = json[slot.rawValue] else { continue }
            self[slot] = Window(
                notBefore: window["notBefore"]?.stringValue.flatMap(Timestamp.init(iso8601:)),
                notAfter: window["notAfter"]?.stringValue.flatMap(Timestamp.init(iso8601:)),
                expiryNoticed: window["expiryNoticed"]?.boolValue ?? false
            )
        }
    }

    /// Reads a client's `validity` (strict: unknown members, bad times and empty or inverted
    /// windows are refused with the reason).
    public init(request json: JSONValue) throws(RegistryError) {
        self.init()
        guard case .object(let members) = json else { throw .invalid("authentication.validity must be an object with primary and/or secondary.") }
        for (name, value) in members.sorted(by: { $0.key < $1.key }) {
            guard let slot = Slot(rawValue: name) else {
                throw .invalid("authentication.validity.\(name) is not a credential slot (primary, secondary).")
            }
            if value == .null { continue }
            guard case .object(let fields) = value else { throw .invalid("authentication.validity.\(name) must be an object.") }
            var window = Window()
            for (field, text) in fields.sorted(by: { $0.key < $1.key }) {
                // Read-only (set by the expiry notice), as an export carries it: ignored.
                if field == "expiryNoticed" { continue }
                guard field == "notBefore" || field == "notAfter" else {
                    throw .invalid("authentication.validity.\(name).\(field) is not notBefore or notAfter.")
                }
                if text == .null { continue }
                guard let string = text.stringValue, let time = Timestamp(iso8601: string) else {
                    throw .invalid("authentication.validity.\(name).\(field) must be an ISO 8601 UTC time such as 2027-01-01T00:00:00Z.")
                }
                if field == "notBefore" { window.notBefore = time } else { window.notAfter = time }
            }
            if let notBefore = window.notBefore, let notAfter = window.notAfter, notBefore >= notAfter {
                throw .invalid("authentication.validity.\(name): notBefore must be earlier than notAfter.")
            }
            if !window.isEmpty { self[slot] = window }
        }
    }
}

extension Authentication {
    /// The credential in `slot`: the key for `sas`, the thumbprint for `selfSigned`, else none.
    public func credential(_ slot: CredentialValidity.Slot) -> String? {
        switch type {
        case .sas: slot == .primary ? symmetricKey.primaryKey : symmetricKey.secondaryKey
        case .selfSigned: slot == .primary ? x509Thumbprint.primaryThumbprint : x509Thumbprint.secondaryThumbprint
        default: nil
        }
    }
}

/// An ISO 8601 duration of days and time (`P30D`, `P2W`, `PT12H`, `P1DT6H30M`): months and
/// years are refused, their length depends on the calendar. At most `maximumSeconds` (about 100
/// years), so that adding it to any time stays far inside the tick range.
public struct ISODuration: Sendable, Hashable {
    public var seconds: Int64

    public static let maximumSeconds: Int64 = 36_525 * 86_400

    public init(seconds: Int64) { self.seconds = seconds }

    public init?(_ text: String) {
        var bytes = Array(text.utf8)[...]
        guard bytes.first == UInt8(ascii: "P"), bytes.count > 1 else { return nil }
        bytes = bytes.dropFirst()
        var total: Int64 = 0
        var inTime = false
        var number: Int64?
        var sawUnit = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int64(byte - UInt8(ascii: "0"))
                let (times, o1) = (number ?? 0).multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(digit)
                guard !o1, !o2, sum <= 100_000_000 else { return nil }
                number = sum
            case UInt8(ascii: "T"):
                guard !inTime, number == nil else { return nil }
                inTime = true
            default:
                guard let n = number else { return nil }
                let unit: Int64
                switch (byte, inTime) {
                case (UInt8(ascii: "W"), false): unit = 7 * 86_400
                case (UInt8(ascii: "D"), false): unit = 86_400
                case (UInt8(ascii: "H"), true): unit = 3_600
                case (UInt8(ascii: "M"), true): unit = 60
                case (UInt8(ascii: "S"), true): unit = 1
                default: return nil
                }
                total += n * unit
                guard total <= Self.maximumSeconds else { return nil }
                number = nil
                sawUnit = true
            }
        }
        guard sawUnit, number == nil else { return nil }
        seconds = total
    }
}

/// The registry's notice that a credential entered the last days of its window
/// (`Command.noticeCredentialExpiry`, made by `CredentialExpiryNotices`): decided against the
/// window as it is then, so a window changed or already noticed since the scan writes nothing.
public struct CredentialExpiryNotice: Sendable, Hashable {
    public var deviceId: String
    public var moduleId: String?
    public var slot: CredentialValidity.Slot
    /// The end of the window the scan saw.
    public var notAfter: Timestamp

    public init(deviceId: String, moduleId: String? = nil, slot: CredentialValidity.Slot, notAfter: Timestamp) {
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.slot = slot
        self.notAfter = notAfter
    }
}
