import RegistryCore
import Synchronization

/// The `eventStreams` settings: how many event streams one policy may hold open, and how long
/// a stream may wait for its client to take data before it is closed.
///
/// ```json
/// {"eventStreams": {"maxPerPolicy": 16, "stallTimeoutSeconds": 30}}
/// ```
public struct EventStreamLimits: Sendable, Hashable {
    public var maxPerPolicy: Int
    /// A write the client does not take within this long closes the stream (it resumes with
    /// `Last-Event-ID`).
    public var stallTimeout: Duration

    public init(maxPerPolicy: Int = 16, stallTimeout: Duration = .seconds(30)) {
        self.maxPerPolicy = maxPerPolicy
        self.stallTimeout = stallTimeout
    }

    public init(json: JSONValue) throws(ConfigurationFieldError) {
        self.init()
        guard case .object(let fields) = json else { throw ConfigurationFieldError("eventStreams", "must be an object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            let field = "eventStreams.\(key)"
            switch key {
            case "maxPerPolicy":
                guard let n = value.intValue, n >= 1, n <= 100_000 else {
                    throw ConfigurationFieldError(field, "must be a whole number from 1 to 100000")
                }
                maxPerPolicy = Int(n)
            case "stallTimeoutSeconds":
                stallTimeout = try value.seconds(field)
            default:
                throw ConfigurationFieldError(field, "unknown key (known: maxPerPolicy, stallTimeoutSeconds)")
            }
        }
    }
}

/// Open event streams per policy, capped.
final class EventStreamSlots: Sendable {
    private let open = Mutex<[String: Int]>([:])
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Takes a slot for `policy`; `false` when it holds `limit` already.
    func acquire(_ policy: String) -> Bool {
        open.withLock { counts in
            guard counts[policy, default: 0] < limit else { return false }
            counts[policy, default: 0] += 1
            return true
        }
    }

    func release(_ policy: String) {
        open.withLock { counts in
            counts[policy, default: 1] -= 1
            if counts[policy] == 0 { counts[policy] = nil }
        }
    }

    func count(_ policy: String) -> Int { open.withLock { $0[policy, default: 0] } }
}
