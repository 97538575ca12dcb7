/// A UTC instant with 100 ns precision, counted in .NET ticks (100 ns since 0001-01-01T00:00:00Z).
///
/// Ticks because Azure's API speaks them: timestamps carry 7 fractional digits, unset times
/// are `0001-01-01T00:00:00Z` (tick 0), and generationIds are observed to be creation ticks.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var ticks: Int64

    public init(ticks: Int64) { self.ticks = ticks }

    /// The "never happened" value Azure emits as `0001-01-01T00:00:00Z`.
    public static let unset = Timestamp(ticks: 0)

    /// Ticks between 0001-01-01 and 1970-01-01.
    static let unixEpochTicks: Int64 = 621_355_968_000_000_000

    public init(unixNanoseconds: Int64) {
        self.ticks = Self.unixEpochTicks + unixNanoseconds / 100
    }

    public init(unixSeconds: Int64) {
        self.ticks = Self.unixEpochTicks + unixSeconds * 10_000_000
    }

    public var unixSeconds: Int64 { (ticks - Self.unixEpochTicks) / 10_000_000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.ticks < rhs.ticks }

    /// The next representable instant.
    public var successor: Timestamp { Timestamp(ticks: ticks + 1) }

    /// Azure's 2021-04-12 format: `2021-05-12T08:48:08.7205939Z`, or `0001-01-01T00:00:00Z` when unset.
    public var description: String { iso8601 }

    public var iso8601: String {
        if ticks == 0 { return "0001-01-01T00:00:00Z" }
        var out: [UInt8] = []
        appendISO8601(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `iso8601`'s bytes appended to `out` (plain ASCII: JSON needs no escaping of it). The
    /// write path puts three or four timestamps in every event; a String per number and the
    /// joins were 6% of preparing one.
    public func appendISO8601(to out: inout [UInt8]) {
        if ticks == 0 {
            out.append(contentsOf: Self.unsetBytes)
            return
        }
        let days = ticks / 864_000_000_000
        let rest = ticks % 864_000_000_000
        let (y, m, d) = Self.civil(fromDaysSinceYear1: days)
        let secondsOfDay = rest / 10_000_000
        let fraction = rest % 10_000_000
        appendPadded(y, 4, to: &out)
        out.append(45)
        appendPadded(m, 2, to: &out)
        out.append(45)
        appendPadded(d, 2, to: &out)
        out.append(84)
        appendPadded(secondsOfDay / 3600, 2, to: &out)
        out.append(58)
        appendPadded(secondsOfDay / 60 % 60, 2, to: &out)
        out.append(58)
        appendPadded(secondsOfDay % 60, 2, to: &out)
        out.append(46)
        appendPadded(fraction, 7, to: &out)
        out.append(90)
    }

    private static let unsetBytes = Array("0001-01-01T00:00:00Z".utf8)

    /// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,7}][Z|+00:00]` (older API versions omit the `Z`; input
    /// without a zone is taken as UTC). Returns `nil` for anything else.
    public init?(iso8601 text: String) {
        let b = Array(text.utf8)
        func number(_ start: Int, _ count: Int) -> Int64? {
            guard start + count <= b.count else { return nil }
            var v: Int64 = 0
            for i in start..<(start + count) {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                v = v * 10 + Int64(b[i] - 48)
            }
            return v
        }
        guard b.count >= 19, b[4] == 45, b[7] == 45, b[10] == 84 || b[10] == 116 || b[10] == 32, b[13] == 58, b[16] == 58,
            let y = number(0, 4), let mo = number(5, 2), let d = number(8, 2),
            let h = number(11, 2), let mi = number(14, 2), let s = number(17, 2),
            (1...9999).contains(y), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 60
        else { return nil }
        var index = 19
        var fraction: Int64 = 0
        if index < b.count, b[index] == 46 {
            index += 1
            var digits = 0
            while index < b.count, b[index] >= 48, b[index] <= 57 {
                if digits < 7 { fraction = fraction * 10 + Int64(b[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in 0..<max(0, 7 - digits) { fraction *= 10 }
        }
        let zone = Array(b[index...])
        guard zone.isEmpty || zone == [90] || zone == [122] || zone == Array("+00:00".utf8) else { return nil }
        let days = Self.days(year: y, month: mo, day: d)
        self.ticks = days * 864_000_000_000 + (h * 3600 + mi * 60 + s) * 10_000_000 + fraction
    }

    /// Days since 0001-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm,
    /// shifted from the Unix epoch).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let unixDays = era * 146_097 + doe - 719_468
        return unixDays + 719_162
    }

    static func civil(fromDaysSinceYear1 days: Int64) -> (Int64, Int64, Int64) {
        let z = days - 719_162 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// The decimal digits of `value` (not negative: times start at year 1), zero-padded to `width`.
private func appendPadded(_ value: Int64, _ width: Int, to out: inout [UInt8]) {
    var digits = 1
    var limit: Int64 = 10
    while value >= limit, digits < 19 {
        digits += 1
        limit = limit &* 10
    }
    let count = max(width, digits)
    let start = out.count
    out.append(contentsOf: repeatElement(48, count: count))
    var rest = value
    var i = start + count - 1
    while rest > 0 {
        out[i] = 48 + UInt8(rest % 10)
        rest /= 10
        i -= 1
    }
}

/// The source of "now" for the writer: injected so tests and replays are deterministic.
public protocol RegistryClock: Sendable {
    func now() -> Timestamp
}
