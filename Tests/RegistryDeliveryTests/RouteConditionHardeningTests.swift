import RegistryCore
import RegistryTesting
import Testing

@testable import RegistryDelivery

/// Issue 17 item 2: route conditions arrive in the event stream's query string from any
/// ServiceConnect caller. Deep nesting used to overflow the stack; now it is refused with an
/// error naming the limit, and a fuzz run finds no crash and no input over the time bound.
struct RouteConditionHardeningTests {
    @Test func deepConditionsAreRefusedNamingTheLimit() async {
        await #expect(processExitsWith: .success) {
            let cases = [
                String(repeating: "(", count: 100_000) + "true" + String(repeating: ")", count: 100_000),
                String(repeating: "not ", count: 100_000) + "true",
                Array(repeating: "$body.a = 1", count: 50_000).joined(separator: " and "),
                Array(repeating: "x = 'y'", count: 50_000).joined(separator: " or "),
                String(repeating: "lower(", count: 50_000) + "'a'" + String(repeating: ")", count: 50_000) + " = 'a'",
            ]
            for text in cases {
                do {
                    _ = try RouteCondition(text)
                    preconditionFailure("parsed")
                } catch let error as ConditionError {
                    precondition(error.description.contains("deeper than \(RouteCondition.maximumDepth)"), error.description)
                } catch {
                    preconditionFailure("\(error)")
                }
            }
        }
    }

    @Test func conditionsUsersWriteStillParse() throws {
        let chain = Array(repeating: "$body.deviceId = 'sensor-42'", count: 100).joined(separator: " AND ")
        #expect(try RouteCondition(chain).evaluate(FakeMessage()) == true)
        let nested = String(repeating: "(", count: 60) + "opType = 'createDeviceIdentity'" + String(repeating: ")", count: 60)
        #expect(try RouteCondition(nested).evaluate(FakeMessage()) == true)
    }

    @Test func fuzzTheConditionParserAndEvaluator() {
        let fuzzer = Fuzzer(
            corpus: [
                "opType = 'createDeviceIdentity' AND $body.tags[0].x >= 7",
                "NOT (starts_with($connectionDeviceId, 'sensor') OR is_defined($body.flag)) AND lower(deviceId) <> \"x\"",
                "true", "$body.version < 3.5e2",
            ],
            dictionary: [" AND ", " OR ", "NOT ", "(", ")", "'", "\"", "$body", "[0]", ".", ",", "<>", "=", "''", "is_defined("],
            nestings: [("(", ")"), ("NOT ", ""), ("upper(", ")")]
        )
        var parsed = 0
        let slow = fuzzer.run(seed: 4) { input in
            guard let condition = try? RouteCondition(String(decoding: input, as: UTF8.self)) else { return }
            parsed += 1
            _ = condition.evaluate(FakeMessage())
        }
        #expect(slow.isEmpty, "inputs over the time bound: \(slow)")
        #expect(parsed > 0)
    }
}
