import Foundation
import RegistryCore
import RegistryDelivery
import Testing

struct DeliveryConfigurationTests {
    func parse(_ text: String) throws -> DeliveryConfiguration {
        guard case .object(let members) = try JSONParser.parse(text) else { throw DeliveryTestError("not an object") }
        return try DeliveryConfiguration(configuration: members)
    }

    @Test func theDocumentedShapeWorks() throws {
        let secret = "whsec_" + Data(repeating: 7, count: 24).base64EncodedString()
        let configuration = try parse(
            """
            {"endpoints": [
               {"name": "audit", "type": "file", "path": "/var/lib/registryd/lifecycle.jsonl"},
               {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9000/events", "secret": "\(secret)"}],
             "routes": [
               {"name": "all", "source": "DeviceLifecycleEvents", "condition": "true", "endpointNames": ["audit"], "isEnabled": true},
               {"name": "hooked.v1", "source": "DeviceIdentityChangeEvents", "condition": "opType = 'updateDeviceIdentity'", "endpointNames": ["hook"], "isEnabled": false}],
             "delivery": {"initialBackoffMs": 10, "maxBackoffMs": 100, "retryWindowSeconds": 0.5}}
            """
        )
        #expect(configuration.endpoints.map(\.name) == ["audit", "hook"])
        #expect(configuration.routes.map(\.name) == ["all", "hooked.v1"])
        #expect(configuration.routes[1].isEnabled == false)
        #expect(configuration.routes[1].source == .deviceIdentityChangeEvents)
        #expect(configuration.retry.retryWindowSeconds == 0.5)
        if case .webhook(_, let key, _, _) = configuration.endpoints[1].kind { #expect(key == [UInt8](repeating: 7, count: 24)) }
    }

    @Test func badConfigurationsNameTheField() {
        let cases: [(String, String)] = [
            (#"{"endpoints": [{"name": "bad name", "type": "file", "path": "/x"}]}"#, "endpoints[0].name"),
            (#"{"endpoints": [{"name": "a", "type": "queue"}]}"#, "endpoints[0].type"),
            (#"{"endpoints": [{"name": "a", "type": "file", "path": "relative"}]}"#, "endpoints[0].path"),
            (
                #"{"endpoints": [{"name": "a", "type": "webhook", "url": "ftp://x/y", "secret": "whsec_AAAAAAAAAAAAAAAAAAAAAA=="}]}"#,
                "endpoints[0].url"
            ),
            (#"{"endpoints": [{"name": "a", "type": "webhook", "url": "http://x/y"}]}"#, "endpoints[0].secret"),
            (#"{"endpoints": [{"name": "a", "type": "file", "path": "/x", "colour": 1}]}"#, "endpoints[0].colour"),
            (
                #"{"endpoints": [{"name": "a", "type": "file", "path": "/x"}], "routes": [{"name": "r", "source": "DeviceMessages", "endpointNames": ["a"]}]}"#,
                "routes[0].source"
            ),
            (
                #"{"endpoints": [{"name": "a", "type": "file", "path": "/x"}], "routes": [{"name": "r", "source": "DeviceLifecycleEvents", "endpointNames": ["a", "a"]}]}"#,
                "routes[0].endpointNames"
            ),
            (
                #"{"endpoints": [{"name": "a", "type": "file", "path": "/x"}], "routes": [{"name": "r", "source": "DeviceLifecycleEvents", "endpointNames": ["b"]}]}"#,
                "routes[0].endpointNames"
            ),
            (
                #"{"endpoints": [{"name": "a", "type": "file", "path": "/x"}], "routes": [{"name": "r", "source": "DeviceLifecycleEvents", "condition": "opType =", "endpointNames": ["a"]}]}"#,
                "routes[0].condition"
            ),
            (#"{"delivery": {"retryWindowSeconds": -1}}"#, "delivery.retryWindowSeconds"),
        ]
        for (text, field) in cases {
            #expect("\(text)", performing: { try parse(text) }, throws: { "\($0)".hasPrefix(field) })
        }
    }
}

struct DeliveryTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
