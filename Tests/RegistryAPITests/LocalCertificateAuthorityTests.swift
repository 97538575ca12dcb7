import Foundation
import RegistryAPI
import RegistryTesting
import Testing

/// Item 8 of the hardening issue: the generated TLS keys are owner-only from their first byte,
/// under the most permissive umask (never written with the default mode and chmod'ed after).
#if os(Linux)
    struct LocalCertificateAuthorityTests {
        @Test func generatedKeysAreOwnerOnlyFromTheirFirstByte() throws {
            try withTemporaryDirectory { dir in
                let paths = LocalCertificateAuthority.Paths(dataDirectory: dir)
                try FileManager.default.createDirectory(atPath: paths.directory, withIntermediateDirectories: true)
                let watch = try DirectoryWatch(paths.directory)
                #expect(try withUmask(0) { try LocalCertificateAuthority.ensure(paths) } == .issued(reason: "created"))
                let events = watch.events()
                for key in [paths.caKey, paths.serverKey] {
                    let name = URL(fileURLWithPath: key).lastPathComponent
                    let own = events.filter { $0.name == name }
                    #expect(!own.isEmpty, "the watch saw \(name) appear: \(events)")
                    #expect(own.filter(\.isAttributeChange).isEmpty, "\(name) was chmod'ed after it appeared: \(own)")
                    #expect(try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? Int == 0o600)
                }
                // The keys still load as the server's.
                _ = try LocalCertificateAuthority.serverConfiguration(certificatePath: paths.serverCertificate, keyPath: paths.serverKey)
            }
        }
    }
#endif
