import Foundation
import RegistryAPI
import RegistryCore
import Testing

@testable import registryd

/// Item 15 of the hardening issue: the `tls` key of the configuration file, with unknown keys
/// and names that are not host names refused like every other key.
struct GeneratedCertificateSettingsTests {
    func json(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test func theTLSKeyNamesExtraSubjectAlternativeNames() throws {
        let file = #"{"tls": {"subjectAlternativeNames": ["registry.example.com", "10.0.0.5"]}}"#
        let settings = try RegistryConfiguration(json: try json(file), source: "test")
        #expect(settings.tls.subjectAlternativeNames == ["registry.example.com", "10.0.0.5"])
        #expect(try RegistryConfiguration(json: try json("{}"), source: "test").tls.subjectAlternativeNames.isEmpty)
        for bad in [#"{"tls": {"names": []}}"#, #"{"tls": {"subjectAlternativeNames": ["not a name"]}}"#, #"{"tls": []}"#] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try RegistryConfiguration(json: try json(bad), source: "test") }
        }
    }
}
