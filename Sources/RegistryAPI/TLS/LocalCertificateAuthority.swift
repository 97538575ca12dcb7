import Crypto
import Foundation
import NIOSSL
import RegistryCore
import SwiftASN1
import X509

/// TLS material for `serve`: the operator's certificate and key, or, with neither configured, a
/// local CA and a server certificate created on first start under `DATA_DIR/tls/`, issued again
/// by that CA when it comes due for renewal or no longer names the configured host names.
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

    /// What `ensure` did about the server certificate.
    public enum Outcome: Sendable, Hashable {
        /// The files were there, valid, naming the configured names and not due for renewal.
        case kept
        /// A new server certificate (and key) was written; `reason` says why, for the log.
        case issued(reason: String)
    }

    /// The CA (created unless it exists) and a server certificate that names `names`, is
    /// signed by that CA, matches its key and is not due for renewal at `now`: the one on disk
    /// if it is all that, else a new one. `serve` calls it at start, `CertificateRenewal` then
    /// periodically. The CA is kept whenever it exists with its key (clients trust it by its
    /// file); without its key nothing can be issued, so a new CA is made, as on first start.
    @discardableResult
    public static func ensure(_ paths: Paths, names: ServerNames = ServerNames(), now: Date = Date()) throws -> Outcome {
        let fm = FileManager.default
        let authority: (key: P256.Signing.PrivateKey, certificate: Certificate)
        var reason: String?
        if let existing = try? loadAuthority(paths) {
            authority = existing
        } else {
            try fm.createDirectory(atPath: paths.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            authority = try makeAuthority(now: now)
            try write(try authority.certificate.serializeAsPEM().pemString + "\n", to: paths.caCertificate, mode: 0o644)
            // The keys are owner-only from their first byte (see `PrivateFile`); the certificates are public.
            try PrivateFile.write(Array((authority.key.pemRepresentation + "\n").utf8), to: paths.caKey, existing: .replace)
            reason = "created"
        }
        if reason == nil { reason = serverCertificateProblem(paths, authority: authority.certificate, names: names, now: now) }
        guard let reason else { return .kept }
        let serverKey = P256.Signing.PrivateKey()
        let server = try issueServerCertificate(key: serverKey, authority: authority, names: names, now: now)
        // The key first: a reload between the two writes sees a pair that does not match and
        // is refused (the running pair stays), and a crash between them is repaired at start.
        try PrivateFile.write(Array((serverKey.pemRepresentation + "\n").utf8), to: paths.serverKey, existing: .replace)
        let chain = try server.serializeAsPEM().pemString + "\n" + (try authority.certificate.serializeAsPEM().pemString) + "\n"
        try write(chain, to: paths.serverCertificate, mode: 0o644)
        return .issued(reason: reason)
    }

    /// Why the server certificate on disk must be issued again, or `nil` if it may stay.
    static func serverCertificateProblem(_ paths: Paths, authority: Certificate, names: ServerNames, now: Date) -> String? {
        guard let certificate = try? firstCertificate(atPath: paths.serverCertificate),
            let keyPEM = try? String(contentsOfFile: paths.serverKey, encoding: .utf8),
            let key = try? Certificate.PrivateKey(pemEncoded: keyPEM)
        else { return "missing or unreadable" }
        guard key.publicKey == certificate.publicKey else { return "its key does not match it" }
        guard certificate.issuer == authority.subject, authority.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            return "not issued by the local CA"
        }
        guard self.names(of: certificate).covers(names) else { return "it does not name every configured host name" }
        guard !renewalDue(certificate, now: now) else { return "renewal due" }
        return nil
    }

    /// Whether `certificate` is within its renewal margin of expiry (or past it) at `now`: a
    /// third of its lifetime, at most 30 days (under 398 days, so about 30 days for ours).
    public static func renewalDue(_ certificate: Certificate, now: Date) -> Bool {
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        let margin = min(30 * 86400, lifetime / 3)
        return now >= certificate.notValidAfter.addingTimeInterval(-margin)
    }

    /// The DNS names and IP addresses of a certificate's subject alternative names.
    public static func names(of certificate: Certificate) -> ServerNames {
        var dns: Set<String> = []
        var addresses: Set<[UInt8]> = []
        for name in (try? certificate.extensions.subjectAlternativeNames) ?? SubjectAlternativeNames() {
            switch name {
            case .dnsName(let host): dns.insert(host.lowercased())
            case .ipAddress(let bytes): addresses.insert(Array(bytes.bytes))
            default: continue
            }
        }
        return ServerNames(dnsNames: dns, ipAddresses: addresses)
    }

    static func loadAuthority(_ paths: Paths) throws -> (key: P256.Signing.PrivateKey, certificate: Certificate) {
        let key = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: paths.caKey, encoding: .utf8))
        let certificate = try firstCertificate(atPath: paths.caCertificate)
        guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else { throw CertificateMismatch(path: paths.caKey) }
        return (key, certificate)
    }

    static func makeAuthority(now: Date) throws -> (key: P256.Signing.PrivateKey, certificate: Certificate) {
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("registryd")
            CommonName("registryd local CA")
        }
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
                SubjectKeyIdentifier(keyIdentifier: keyIdentifier(caKey.publicKey))
            },
            issuerPrivateKey: .init(caKey)
        )
        return (caKey, ca)
    }

    static func issueServerCertificate(
        key: P256.Signing.PrivateKey,
        authority: (key: P256.Signing.PrivateKey, certificate: Certificate),
        names: ServerNames,
        now: Date
    ) throws -> Certificate {
        var alternativeNames = names.dnsNames.sorted().map { GeneralName.dnsName($0) }
        let addresses = names.ipAddresses.sorted { $0.lexicographicallyPrecedes($1) }
        alternativeNames += addresses.map { .ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) }
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            // Under 398 days, the limit browsers and some TLS stacks enforce for leaf
            // certificates, and never past the CA's own expiry.
            notValidAfter: min(now.addingTimeInterval(397 * 86400), authority.certificate.notValidAfter),
            issuer: authority.certificate.subject,
            subject: try DistinguishedName { CommonName("localhost") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(keyIdentifier: keyIdentifier(key.publicKey))
                AuthorityKeyIdentifier(keyIdentifier: keyIdentifier(authority.key.publicKey))
                SubjectAlternativeNames(alternativeNames)
            },
            issuerPrivateKey: .init(authority.key)
        )
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
        (try? firstCertificate(atPath: path))?.notValidAfter
    }

    /// The first certificate of a PEM file (the leaf of a chain). `PEMDocument(pemString:)`
    /// alone refuses a file with more than one block, as our chains have.
    public static func firstCertificate(atPath path: String) throws -> Certificate {
        guard let first = try PEMDocument.parseMultiple(pemString: try String(contentsOfFile: path, encoding: .utf8)).first else {
            throw CertificateMismatch(path: path, problem: "holds no PEM block")
        }
        return try Certificate(pemDocument: first)
    }

    static func keyIdentifier(_ key: P256.Signing.PublicKey) -> ArraySlice<UInt8> {
        ArraySlice(Insecure.SHA1.hash(data: key.x963Representation))
    }

    /// Writes a public file (a certificate); keys go through `PrivateFile`. Foundation writes
    /// a temporary file and renames it over the old one: a reader sees one file or the other.
    static func write(_ text: String, to path: String, mode: Int) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}

/// A certificate and a key that do not belong together, or a certificate file without one.
public struct CertificateMismatch: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public init(path: String, problem: String = "does not hold the key of its certificate") {
        self.path = path
        self.problem = problem
    }
    public var description: String { "\(path) \(problem)" }
}
