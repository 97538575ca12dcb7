/// Which MQTT topics an authenticated device or module may publish to and subscribe on: only
/// its own Azure IoT Hub topics (Azure's MQTT support, "Sending device-to-cloud messages",
/// "Receiving cloud-to-device messages", twin and direct-method topics). Everything else is
/// denied. Brokers ask through `/registry/auth/emqx/authorize` and `/registry/auth/rabbitmq/topic`.
///
/// The rules are the table `TopicAuthorization.rules`, one row per topic shape; the README
/// prints the same table. A row matches a topic level by level: literal levels exactly (bytes,
/// no decoding or normalisation, so a percent-encoded or look-alike id never equals the real
/// one, and `dev` is not a prefix of `dev1`), `{deviceId}` / `{moduleId}` exactly the
/// authenticated identity's ids, `…` any remaining levels (none included).
///
/// Wildcards: a topic a client publishes to may hold none (MQTT forbids them in topic names). A
/// subscription filter may use `+` and `#` only inside a row's `…` part, never where a row has
/// a literal level or an id: `devices/+/messages/devicebound/#` would receive every device's
/// messages. A device whose own id is `+` or `#`, or holds them, cannot subscribe at all: its id
/// written into a filter would be a wildcard to the broker.
///
/// `$iothub/…` (twin and direct methods) names no device: on a broker those topics are shared
/// by every client, so a device could read another's twin responses or method calls. They are
/// allowed only when the broker keeps them per client (`sessionTopics`, e.g. EMQX with a
/// per-client mountpoint); otherwise denied.
public enum TopicAuthorization {
    public enum Action: String, Sendable, Hashable, CaseIterable {
        case publish, subscribe
    }

    /// Who a row is for.
    public enum Holder: String, Sendable, Hashable {
        case device, module
    }

    /// One level of a row's shape.
    public enum Level: Sendable, Hashable, CustomStringConvertible {
        case literal(String)
        case deviceId
        case moduleId
        /// Any remaining levels, none included (the row's last level).
        case rest

        public var description: String {
            switch self {
            case .literal(let text): text
            case .deviceId: "{deviceId}"
            case .moduleId: "{moduleId}"
            case .rest: "…"
            }
        }
    }

    public struct Rule: Sendable, Hashable, CustomStringConvertible {
        public var holder: Holder
        public var action: Action
        public var levels: [Level]
        /// A `$iothub/…` row: allowed only where the broker keeps the topics per client.
        public var sessionTopic: Bool
        /// What the row is for (the README's table).
        public var purpose: String

        public var description: String { levels.map(\.description).joined(separator: "/") }
    }

    private static func rule(_ holder: Holder, _ action: Action, _ shape: String, _ purpose: String) -> Rule {
        let levels: [Level] = shape.split(separator: "/", omittingEmptySubsequences: false).map { level in
            switch level {
            case "{deviceId}": .deviceId
            case "{moduleId}": .moduleId
            case "…": .rest
            default: .literal(String(level))
            }
        }
        return Rule(holder: holder, action: action, levels: levels, sessionTopic: shape.hasPrefix("$iothub/"), purpose: purpose)
    }

    /// The whole policy. A topic not matched by a row for the client's kind and action is denied.
    public static let rules: [Rule] = [
        rule(.device, .publish, "devices/{deviceId}/messages/events/…", "telemetry (device-to-cloud), with its property bag"),
        rule(.device, .subscribe, "devices/{deviceId}/messages/devicebound/…", "cloud-to-device messages"),
        rule(.module, .publish, "devices/{deviceId}/modules/{moduleId}/messages/events/…", "a module's telemetry"),
        rule(.module, .subscribe, "devices/{deviceId}/modules/{moduleId}/messages/devicebound/…", "messages to the module"),
        rule(.module, .subscribe, "devices/{deviceId}/modules/{moduleId}/inputs/…", "a module's inputs (IoT Edge routing)"),
        rule(.device, .subscribe, "$iothub/twin/res/…", "twin responses"),
        rule(.device, .publish, "$iothub/twin/GET/…", "twin read"),
        rule(.device, .publish, "$iothub/twin/PATCH/properties/reported/…", "reported properties"),
        rule(.device, .subscribe, "$iothub/twin/PATCH/properties/desired/…", "desired property changes"),
        rule(.device, .subscribe, "$iothub/methods/POST/…", "direct method calls"),
        rule(.device, .publish, "$iothub/methods/res/…", "direct method responses"),
        rule(.module, .subscribe, "$iothub/twin/res/…", "module twin responses"),
        rule(.module, .publish, "$iothub/twin/GET/…", "module twin read"),
        rule(.module, .publish, "$iothub/twin/PATCH/properties/reported/…", "module reported properties"),
        rule(.module, .subscribe, "$iothub/twin/PATCH/properties/desired/…", "module desired property changes"),
        rule(.module, .subscribe, "$iothub/methods/POST/…", "module direct method calls"),
        rule(.module, .publish, "$iothub/methods/res/…", "module direct method responses"),
    ]

    /// Why a topic was refused (the decision counters' detail), or nil when allowed.
    public enum Denial: String, Sendable, Hashable, CaseIterable {
        /// No row of the client's kind and action matches.
        case notItsTopic
        /// A wildcard in a published topic, or outside a row's `…` part of a filter.
        case wildcard
        /// A `$iothub/…` topic on a broker that does not keep them per client.
        case sharedSessionTopic
        /// Empty, over-long or not valid MQTT (a NUL character).
        case malformed
    }

    /// MQTT's limit on a topic's length in bytes.
    public static let maxTopicBytes = 65_535

    /// Whether `deviceId` (with `moduleId`, for a module) may `action` `topic`.
    /// - Parameter sessionTopics: the broker keeps `$iothub/…` per client.
    public static func decide(
        deviceId: String,
        moduleId: String?,
        action: Action,
        topic: String,
        sessionTopics: Bool
    ) -> Denial? {
        let bytes = Array(topic.utf8)
        guard !bytes.isEmpty, bytes.count <= maxTopicBytes, !bytes.contains(0) else { return .malformed }
        // Bytes, not Characters: exact comparison is what is wanted, and it runs on every
        // broker question.
        let levels = bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        if action == .publish && levels.contains(where: Self.holdsWildcard) { return .wildcard }
        let holder: Holder = moduleId == nil ? .device : .module
        var denial = Denial.notItsTopic
        for rule in rules where rule.holder == holder && rule.action == action {
            switch match(rule, levels, deviceId: deviceId, moduleId: moduleId, action: action) {
            case .matches:
                if rule.sessionTopic && !sessionTopics {
                    denial = .sharedSessionTopic
                    continue
                }
                return nil
            case .wildcardOutsideRest:
                denial = .wildcard
            case .differs:
                continue
            }
        }
        return denial
    }

    static func holdsWildcard(_ level: ArraySlice<UInt8>) -> Bool {
        level.contains(UInt8(ascii: "+")) || level.contains(UInt8(ascii: "#"))
    }

    private enum Match { case matches, wildcardOutsideRest, differs }

    private static func match(_ rule: Rule, _ levels: [ArraySlice<UInt8>], deviceId: String, moduleId: String?, action: Action) -> Match {
        var index = 0
        for level in rule.levels {
            if case .rest = level {
                // Anything below, wildcards included (they stay inside the identity's topics);
                // in a filter, `#` must be the last level, which the broker checks.
                return .matches
            }
            guard index < levels.count else { return .differs }
            let given = levels[index]
            let equal: Bool
            switch level {
            case .literal(let text): equal = given.elementsEqual(text.utf8)
            case .deviceId: equal = given.elementsEqual(deviceId.utf8)
            case .moduleId: equal = given.elementsEqual((moduleId ?? "").utf8)
            case .rest: return .matches
            }
            // A wildcard where the row names a level or an id is denied as such, and so is an id
            // that holds a wildcard character (in a filter it would read as one).
            if !equal { return holdsWildcard(given) ? .wildcardOutsideRest : .differs }
            if action == .subscribe && holdsWildcard(given) { return .wildcardOutsideRest }
            index += 1
        }
        return index == levels.count ? .matches : .differs
    }
}
