import Crypto
import Foundation
import NIOSSL
import RegistryCore
import SwiftASN1
import X509

/// TLS material for `serve`: the operator's certificate and key, or, with neither configured, a
/// local CA and a localhost server certificate created on first start under `DATA_DIR/tls/`.
///
/// A CA that signs a separate leaf (rather than a self-signed leaf) is what strict clients such
/// as Python 3.13's ssl module accept; SDKs trust it through `REQUESTS_CA_BUNDLE=DATA_DIR/tls/ca.pem`.
public enum LocalCertificateAuthority {
    public struct Paths: Sendable {
        public var directory: String
        public var caCertificate: String { directory + "/ca.pem" }
        public var caKey: String { directory + "/ca-key.pem" }
        public var serverCertificate: String { directory + "/server.pem" }
        public var serverKey: String { directory + "/server-key.pem" }
        public init(dataDirectory: String) { directory = dataDirectory + "/tls" }
    }

    /// Creates the CA and the server certificate unless they exist. Returns whether it created them.
    @discardableResult
    public static func ensure(_ paths: Paths, now: Date = Date()) throws -> Bool {
        let fm = FileManager.default
        if fm.fileExists(atPath: paths.serverCertificate), fm.fileExists(atPath: paths.serverKey), fm.fileExists(atPath: paths.caCertificate) {
            return false
        }
        try fm.createDirectory(atPath: paths.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("registryd")
            CommonName("registryd local CA")
        }
        let caKeyId = keyIdentifier(caKey.publicKey)
        let ca = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(caKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: caName,
            subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(keyIdentifier: caKeyId)
            },
            issuerPrivateKey: .init(caKey)
        )
        let serverKey = P256.Signing.PrivateKey()
        let server = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(serverKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            // Under 398 days, the limit browsers and some TLS stacks enforce for leaf certificates.
            notValidAfter: now.addingTimeInterval(397 * 86400),
            issuer: caName,
            subject: try DistinguishedName { CommonName("localhost") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(keyIdentifier: keyIdentifier(serverKey.publicKey))
                AuthorityKeyIdentifier(keyIdentifier: caKeyId)
                SubjectAlternativeNames([
                    .dnsName("localhost"),
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                    .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
                ])
            },
            issuerPrivateKey: .init(caKey)
        )
        try write(try ca.serializeAsPEM().pemString + "\n", to: paths.caCertificate, mode: 0o644)
        // The keys are owner-only from their first byte (see `PrivateFile`); the certificates are public.
        try PrivateFile.write(Array((caKey.pemRepresentation + "\n").utf8), to: paths.caKey, existing: .replace)
        try write(try server.serializeAsPEM().pemString + "\n" + (try ca.serializeAsPEM().pemString) + "\n", to: paths.serverCertificate, mode: 0o644)
        try PrivateFile.write(Array((serverKey.pemRepresentation + "\n").utf8), to: paths.serverKey, existing: .replace)
        return true
    }

    /// A TLS 1.2+ server configuration from PEM files.
    public static func serverConfiguration(certificatePath: String, keyPath: String) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }

    /// When the first certificate of a PEM chain expires (`nil` if it cannot be read).
    public static func expiry(ofCertificateAt path: String) -> Date? {
        guard let pem = try? String(contentsOfFile: path, encoding: .utf8),
            let document = try? PEMDocument(pemString: pem),
            let certificate = try? Certificate(pemDocument: document)
        else { return nil }
        return certificate.notValidAfter
    }

    static func keyIdentifier(_ key: P256.Signing.PublicKey) -> ArraySlice<UInt8> {
        ArraySlice(Insecure.SHA1.hash(data: key.x963Representation))
    }

    /// Writes a public file (a certificate); keys go through `PrivateFile`.
    static func write(_ text: String, to path: String, mode: Int) throws {
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
