import Foundation
import RegistryCore
import Testing

/// The topic table, row by row: each row's own topic allowed, the same topic for another
/// identity denied, and the ways a client might reach beyond its topics (wildcards, prefixes,
/// encodings, look-alikes) denied.
@Suite struct TopicAuthorizationTests {
    typealias T = TopicAuthorization

    static func decide(_ device: String, _ module: String? = nil, _ action: T.Action, _ topic: String, session: Bool = false) -> T.Denial? {
        T.decide(deviceId: device, moduleId: module, action: action, topic: topic, sessionTopics: session)
    }

    /// A concrete topic for each row, as Microsoft's device SDK writes them.
    static let examples: [String: String] = [
        "devices/{deviceId}/messages/events/…": "devices/{d}/messages/events/%24.ct=application%2Fjson&alert=1",
        "devices/{deviceId}/messages/devicebound/…": "devices/{d}/messages/devicebound/#",
        "devices/{deviceId}/modules/{moduleId}/messages/events/…": "devices/{d}/modules/{m}/messages/events/",
        "devices/{deviceId}/modules/{moduleId}/messages/devicebound/…": "devices/{d}/modules/{m}/messages/devicebound/#",
        "devices/{deviceId}/modules/{moduleId}/inputs/…": "devices/{d}/modules/{m}/inputs/#",
        "$iothub/twin/res/…": "$iothub/twin/res/#",
        "$iothub/twin/GET/…": "$iothub/twin/GET/?$rid=1",
        "$iothub/twin/PATCH/properties/reported/…": "$iothub/twin/PATCH/properties/reported/?$rid=2",
        "$iothub/twin/PATCH/properties/desired/…": "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/methods/POST/…": "$iothub/methods/POST/#",
        "$iothub/methods/res/…": "$iothub/methods/res/200/?$rid=3",
    ]

    static func example(_ rule: T.Rule, device: String, module: String) -> String {
        Self.examples["\(rule)"]!.replacingOccurrences(of: "{d}", with: device).replacingOccurrences(of: "{m}", with: module)
    }

    @Test(arguments: T.rules) func eachRowAllowsItsOwnTopicAndOnlyItsOwn(_ rule: T.Rule) {
        #expect(Self.examples["\(rule)"] != nil, "every row has an example")
        let module: String? = rule.holder == .module ? "m1" : nil
        let own = Self.example(rule, device: "dev1", module: "m1")
        #expect(Self.decide("dev1", module, rule.action, own, session: true) == nil, "\(own)")
        // The other action on the same topic: denied unless a row of that action allows it.
        let other: T.Action = rule.action == .publish ? .subscribe : .publish
        let otherAllowed = T.rules.contains { $0.holder == rule.holder && $0.action == other && "\($0)" == "\(rule)" }
        if !otherAllowed { #expect(Self.decide("dev1", module, other, own, session: true) != nil, "\(other) \(own)") }
        if rule.sessionTopic {
            // Shared by every client on a broker that does not keep them per client.
            #expect(Self.decide("dev1", module, rule.action, own) == .sharedSessionTopic)
        } else {
            // Another device's (or module's) topic of the same shape.
            #expect(Self.decide("dev2", module, rule.action, own) == .notItsTopic, "\(own) as dev2")
            if module != nil {
                #expect(Self.decide("dev1", "m2", rule.action, own) == .notItsTopic, "\(own) as dev1/m2")
                // A device is not its modules.
                #expect(Self.decide("dev1", nil, rule.action, own) == .notItsTopic)
            }
        }
    }

    @Test func aDeviceIdThatIsAPrefixOfAnotherReachesOnlyItsOwn() {
        #expect(Self.decide("dev", nil, .publish, "devices/dev1/messages/events/") == .notItsTopic)
        #expect(Self.decide("dev1", nil, .publish, "devices/dev/messages/events/") == .notItsTopic)
        #expect(Self.decide("dev", nil, .subscribe, "devices/dev1/messages/devicebound/#") == .notItsTopic)
        #expect(Self.decide("dev", nil, .publish, "devices/dev/messages/eventsX/") == .notItsTopic)
        #expect(Self.decide("dev", nil, .publish, "devices/dev/messages/events/") == nil)
    }

    @Test func wildcardsOnlyInsideTheIdentitysOwnTopics() {
        #expect(Self.decide("d", nil, .subscribe, "#") == .wildcard)
        #expect(Self.decide("d", nil, .subscribe, "devices/#") == .wildcard)
        #expect(Self.decide("d", nil, .subscribe, "devices/+/messages/devicebound/#") == .wildcard)
        #expect(Self.decide("d", nil, .subscribe, "devices/d/+/devicebound/#") == .wildcard)
        #expect(Self.decide("d", nil, .subscribe, "devices/d/messages/+") == .wildcard)
        #expect(Self.decide("d", nil, .subscribe, "+/d/messages/devicebound/#") == .wildcard)
        #expect(Self.decide("d", nil, .subscribe, "devices/d/messages/devicebound/+/x") == nil)
        #expect(Self.decide("d", "m", .subscribe, "devices/d/modules/+/messages/devicebound/#") == .wildcard)
        // Never in a published topic (MQTT forbids them there; a broker that let one through
        // must not find registryd agreeing).
        #expect(Self.decide("d", nil, .publish, "devices/d/messages/events/#") == .wildcard)
        #expect(Self.decide("d", nil, .publish, "devices/d/messages/events/a+b") == .wildcard)
        #expect(Self.decide("d", nil, .subscribe, "$iothub/#", session: true) == .wildcard)
    }

    @Test func anIdHoldingAWildcardCharacterCannotSubscribe() {
        // Azure allows `#` and `+` in ids; written into a filter they would match every device.
        #expect(Self.decide("+", nil, .subscribe, "devices/+/messages/devicebound/#") == .wildcard)
        #expect(Self.decide("a#", nil, .subscribe, "devices/a#/messages/devicebound/#") == .wildcard)
        #expect(Self.decide("+", nil, .publish, "devices/+/messages/events/") == .wildcard)
    }

    @Test func encodedAndLookAlikeIdsAreOtherIds() {
        #expect(Self.decide("d1", nil, .publish, "devices/d%31/messages/events/") == .notItsTopic)
        #expect(Self.decide("d%31", nil, .publish, "devices/d1/messages/events/") == .notItsTopic)
        // Cyrillic а (U+0430) for Latin a; fullwidth ｄ; a trailing space; a different case.
        #expect(Self.decide("alpha", nil, .publish, "devices/\u{430}lpha/messages/events/") == .notItsTopic)
        #expect(Self.decide("d1", nil, .publish, "devices/\u{FF44}1/messages/events/") == .notItsTopic)
        #expect(Self.decide("d1", nil, .publish, "devices/d1 /messages/events/") == .notItsTopic)
        #expect(Self.decide("d1", nil, .publish, "devices/D1/messages/events/") == .notItsTopic)
        #expect(Self.decide("d1", nil, .publish, "Devices/d1/messages/events/") == .notItsTopic)
        // Extra or missing levels.
        #expect(Self.decide("d1", nil, .publish, "/devices/d1/messages/events/") == .notItsTopic)
        #expect(Self.decide("d1", nil, .publish, "devices//d1/messages/events/") == .notItsTopic)
        #expect(Self.decide("d1", nil, .publish, "devices/d1/messages") == .notItsTopic)
    }

    @Test func malformedTopicsAreDenied() {
        #expect(Self.decide("d1", nil, .publish, "") == .malformed)
        #expect(Self.decide("d1", nil, .publish, "devices/d1/messages/events/\u{0}") == .malformed)
        let long = "devices/d1/messages/events/" + String(repeating: "a", count: T.maxTopicBytes)
        #expect(Self.decide("d1", nil, .publish, long) == .malformed)
    }
}
