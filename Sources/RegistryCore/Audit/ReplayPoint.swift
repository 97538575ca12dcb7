/// A point in the log: after a sequence number, or at a time (every event at or before it).
public enum ReplayPoint: Sendable, Hashable {
    case sequence(UInt64)
    case time(Timestamp)

    /// `SEQ` (digits) or an ISO-8601 time.
    public init?(_ text: String) {
        if let seq = UInt64(text) {
            self = .sequence(seq)
        } else if let time = Timestamp(iso8601: text) {
            self = .time(time)
        } else {
            return nil
        }
    }

    public func includes(_ record: EventRecord) -> Bool {
        switch self {
        case .sequence(let seq): record.seq <= seq
        case .time(let time): record.time <= time
        }
    }
}
