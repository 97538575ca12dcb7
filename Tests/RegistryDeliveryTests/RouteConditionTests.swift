import RegistryCore
import Testing

@testable import RegistryDelivery

/// A message for conditions to look at.
struct FakeMessage: RouteMessageProperties {
    var application: [String: String] = ["opType": "createDeviceIdentity", "deviceId": "sensor-42", "hubName": "hub"]
    var system: [String: String] = ["connectiondeviceid": "sensor-42", "contenttype": "application/json"]
    var body: JSONValue = .object([
        "deviceId": .string("sensor-42"), "version": .int(2), "tags": .array([.object(["x": .int(7)])]), "flag": .bool(true),
    ])

    func applicationProperty(_ name: String) -> String? { application.first { $0.key.lowercased() == name.lowercased() }?.value }
    func systemProperty(_ name: String) -> String? { system[name.lowercased()] }
}

struct RouteConditionTests {
    func eval(_ text: String, _ message: FakeMessage = FakeMessage()) throws -> Bool? { try RouteCondition(text).evaluate(message) }

    @Test func comparisonsAndLogic() throws {
        #expect(try eval("true") == true)
        #expect(try eval("opType = 'createDeviceIdentity'") == true)
        #expect(try eval("OPTYPE = \"createDeviceIdentity\"") == true)  // names case-insensitive, double quotes too
        #expect(try eval("opType != 'createDeviceIdentity'") == false)
        #expect(try eval("opType <> 'deleteDeviceIdentity'") == true)
        #expect(try eval("opType = 'deleteDeviceIdentity' OR deviceId = 'sensor-42'") == true)
        #expect(try eval("opType = 'deleteDeviceIdentity' and deviceId = 'sensor-42'") == false)
        #expect(try eval("NOT (opType = 'deleteDeviceIdentity')") == true)
        #expect(try eval("$body.version >= 2 AND $body.version < 3") == true)
        #expect(try eval("$body.version > 2") == false)
        #expect(try eval("$body.tags[0].x = 7") == true)
        #expect(try eval("$body.flag = true") == true)
        #expect(try eval("'b' > 'a'") == true)
        #expect(try eval("1 = '1'") == false)  // types differ: never equal
        #expect(try eval("'it''s' = 'it''s'") == true)
    }

    @Test func systemPropertiesAndFunctions() throws {
        #expect(try eval("$connectionDeviceId = 'sensor-42'") == true)
        #expect(try eval("$contentType = 'application/json'") == true)
        #expect(try eval("starts_with(deviceId, 'sensor-')") == true)
        #expect(try eval("ends_with(deviceId, '42')") == true)
        #expect(try eval("contains(deviceId, 'sor')") == true)
        #expect(try eval("lower(upper(deviceId)) = 'sensor-42'") == true)
        #expect(try eval("is_defined(moduleId)") == false)
        #expect(try eval("is_defined($body.deviceId)") == true)
    }

    @Test func undefinedCountsAsFalseButIsReported() throws {
        #expect(try eval("moduleId = 'm'") == nil)  // undefined
        #expect(try eval("NOT (moduleId = 'm')") == nil)
        #expect(try eval("moduleId = 'm' AND false") == false)
        #expect(try eval("moduleId = 'm' OR true") == true)
        #expect(try eval("starts_with($body.version, 'x')") == nil)
        #expect(try eval("$body.missing.deep = 1") == nil)
    }

    @Test func badConditionsAreRefused() {
        for bad in [
            "", "opType =", "(true", "true)", "opType = 'x", "nosuchfn(1)", "starts_with(deviceId)", "$body = 1", "a == b", "opType = 'x' AND", "#",
        ] {
            #expect(throws: ConditionError.self, "\(bad)") { try RouteCondition(bad) }
        }
    }
}
