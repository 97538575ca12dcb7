import Foundation
import Logging
import RegistryAPI
import RegistryCore
import RegistryTesting
import SwiftASN1
import Testing
import X509

/// Item 15 of the hardening issue: the generated server certificate is issued again by the
/// local CA when it comes due (at start or while running) or stops naming the configured names,
/// and the new one is served; an operator's certificate is never replaced. Time is a parameter.
struct CertificateRenewalTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    static let day: TimeInterval = 86400

    static func certificate(_ path: String) throws -> Certificate { try LocalCertificateAuthority.firstCertificate(atPath: path) }

    static func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    @Test func renewedWhenDueAndNotBefore() throws {
        try withTemporaryDirectory { dir in
            let paths = LocalCertificateAuthority.Paths(dataDirectory: dir)
            #expect(try LocalCertificateAuthority.ensure(paths, now: Self.start) == .issued(reason: "created"))
            let first = try Self.certificate(paths.serverCertificate)
            let ca = try Self.read(paths.caCertificate)
            let serving = try ServingCertificate(certificatePath: paths.serverCertificate, keyPath: paths.serverKey)
            let renewal = try #require(CertificateRenewal(paths: paths, names: ServerNames(), serving: serving, logger: Logger(label: "test")))

            // 397 days of validity, renewed in its last 30.
            #expect(try renewal.renewIfDue(now: Self.start.addingTimeInterval(10 * Self.day)) == nil)
            #expect(try renewal.renewIfDue(now: first.notValidAfter.addingTimeInterval(-31 * Self.day)) == nil)
            #expect(try Self.certificate(paths.serverCertificate) == first, "not due: the certificate stays")
            #expect(serving.certificate == first)

            let due = first.notValidAfter.addingTimeInterval(-29 * Self.day)
            let expiry = try #require(try renewal.renewIfDue(now: due))
            let second = try Self.certificate(paths.serverCertificate)
            #expect(second != first)
            #expect(expiry == second.notValidAfter && second.notValidAfter > first.notValidAfter)
            #expect(serving.certificate == second, "the new certificate is served without a restart")
            #expect(try Self.read(paths.caCertificate) == ca, "the CA clients trust stays")
            #expect(second.issuer == first.issuer)
            #expect(try renewal.renewIfDue(now: due) == nil, "renewed once")
            #expect(try FileManager.default.attributesOfItem(atPath: paths.serverKey)[.posixPermissions] as? Int == 0o600)

            // At start the same check applies: an expired certificate is issued again.
            let expired = second.notValidAfter.addingTimeInterval(Self.day)
            #expect(try LocalCertificateAuthority.ensure(paths, now: expired) == .issued(reason: "renewal due"))
        }
    }

    @Test func theCertificateNamesTheConfiguredHostNames() throws {
        try withTemporaryDirectory { dir in
            let paths = LocalCertificateAuthority.Paths(dataDirectory: dir)
            try LocalCertificateAuthority.ensure(paths, now: Self.start)
            let first = try Self.certificate(paths.serverCertificate)
            let names = try ServerNames(
                hostName: "Registry.Example.com:8443",
                extra: ["broker.example.net", "10.1.2.3", "fd00::7", "*.devices.example.org"]
            )
            // A certificate that does not name them is issued again at start.
            let outcome = try LocalCertificateAuthority.ensure(paths, names: names, now: Self.start)
            #expect(outcome == .issued(reason: "it does not name every configured host name"))
            let second = try Self.certificate(paths.serverCertificate)
            #expect(second.notValidAfter > first.notValidAfter || second.serialNumber != first.serialNumber)
            let alternativeNames = try #require(try second.extensions.subjectAlternativeNames)
            var dns: Set<String> = []
            var addresses: Set<[UInt8]> = []
            for name in alternativeNames {
                if case .dnsName(let host) = name { dns.insert(host) }
                if case .ipAddress(let bytes) = name { addresses.insert(Array(bytes.bytes)) }
            }
            #expect(dns == ["localhost", "registry.example.com", "broker.example.net", "*.devices.example.org"])
            let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
            #expect(addresses == [[127, 0, 0, 1], loopback6, [10, 1, 2, 3], [0xfd] + [UInt8](repeating: 0, count: 14) + [7]])
            // Named already: kept.
            #expect(try LocalCertificateAuthority.ensure(paths, names: names, now: Self.start) == .kept)
            #expect(try LocalCertificateAuthority.ensure(paths, now: Self.start) == .kept, "more names than needed are fine")
            // Names that are neither a DNS name nor an address are refused with their field.
            #expect(throws: ConfigurationFieldError.self) { try ServerNames(hostName: nil, extra: ["bad name"]) }
            #expect(throws: ConfigurationFieldError.self) {
                try GeneratedCertificateConfiguration(json: .object(["subjectAlternativeNames": .array([.string("a/b")])]))
            }
            #expect(throws: ConfigurationFieldError.self) { try GeneratedCertificateConfiguration(json: .object(["names": .array([])])) }
        }
    }

    @Test func anOperatorCertificateIsNeverRenewed() throws {
        try ServingCertificateTests.withTwoPairs { generated, operatorPair in
            let serving = try ServingCertificate(certificatePath: operatorPair.serverCertificate, keyPath: operatorPair.serverKey)
            #expect(CertificateRenewal(paths: generated, names: ServerNames(), serving: serving, logger: Logger(label: "test")) == nil)
        }
    }
}
