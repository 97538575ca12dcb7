import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import RegistryAPI
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Credential lifetimes (issue 22, item 2): validity windows on each key and thumbprint, kept
/// across updates that do not change the credential, enforced by device authentication, listed
/// by `/registry/credentials/expiring`, and announced once by `CredentialExpiryNotices`.
@Suite struct CredentialValidityTests {
    typealias R = RegistryRoutesTests
    typealias A = DeviceAuthRouteTests

    static let keyA = Base64.encode((0..<32).map { UInt8($0) })
    static let keyB = Base64.encode((32..<64).map { UInt8($0) })
    static let keyC = Base64.encode((64..<96).map { UInt8($0) })

    static func at(_ seconds: Int64) -> String { Timestamp(unixSeconds: R.now + seconds).iso8601 }

    static func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, RegistryStore) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir)
            let router = buildRouter(store: store, authenticator: ServiceAuthenticator(hostName: R.host, policies: R.policies), now: { R.now })
            try await Application(router: router).test(.router) { client in try await body(client, store) }
            store.close()
        }
    }

    static func sas(_ primary: String, _ secondary: String, validity: String? = nil) -> String {
        let windows = validity.map { ", \"validity\": \($0)" } ?? ""
        return
            "{\"authentication\": {\"type\": \"sas\", \"symmetricKey\": {\"primaryKey\": \"\(primary)\", \"secondaryKey\": \"\(secondary)\"}\(windows)}}"
    }

    static func auth(_ client: any TestClientProtocol, _ device: String, key: String) async throws -> String? {
        let token = A.deviceToken("devices/\(device)", key: key)
        let (status, result, reason) = try await A.check(client, .object(["deviceId": .string(device), "token": .string(token)]))
        #expect(status == .ok)
        return result == "allow" ? "allow" : reason
    }

    static func thumbprintDecision(_ client: any TestClientProtocol, _ device: String, _ thumbprint: String) async throws -> String? {
        let (_, result, reason) = try await A.check(client, .object(["deviceId": .string(device), "thumbprint": .string(thumbprint)]))
        return result == "allow" ? "allow" : reason
    }

    @Test func windowsAreStoredEnforcedAndKeptWhileTheirCredentialStays() async throws {
        try await Self.withAPI { client, _ in
            // Primary ended an hour ago; secondary starts in an hour.
            let windows = "{\"primary\": {\"notAfter\": \"\(Self.at(-3600))\"}, \"secondary\": {\"notBefore\": \"\(Self.at(3600))\"}}"
            let created = try await R.call(client, .put, "/devices/w", body: Self.sas(Self.keyA, Self.keyB, validity: windows))
            #expect(created.status == .ok, "\(String(describing: created.json))")
            let validity = created.json?["authentication"]?["validity"]
            #expect(validity?["primary"]?["notAfter"] == .string(Self.at(-3600)))
            #expect(validity?["secondary"]?["notBefore"] == .string(Self.at(3600)))
            #expect(try await Self.auth(client, "w", key: Self.keyA) == "credentialExpired")
            #expect(try await Self.auth(client, "w", key: Self.keyB) == "notYetValid")
            #expect(try await Self.auth(client, "w", key: Self.keyC) == "badSignature")

            // An update as Azure's SDKs send it (the same keys, no windows): the windows stay.
            let etag = try #require(created.json?["etag"]?.stringValue)
            let updated = try await R.call(client, .put, "/devices/w", body: Self.sas(Self.keyA, Self.keyB), ifMatch: "\"\(etag)\"")
            #expect(updated.json?["authentication"]?["validity"] == validity)
            #expect(try await Self.auth(client, "w", key: Self.keyA) == "credentialExpired")

            // A new primary key starts without a window; the secondary keeps its own.
            let rotated = try await R.call(client, .put, "/devices/w", body: Self.sas(Self.keyC, Self.keyB), ifMatch: "*")
            #expect(rotated.json?["authentication"]?["validity"]?["primary"] == nil)
            #expect(rotated.json?["authentication"]?["validity"]?["secondary"]?["notBefore"] == .string(Self.at(3600)))
            #expect(try await Self.auth(client, "w", key: Self.keyC) == "allow")
            #expect(try await Self.auth(client, "w", key: Self.keyB) == "notYetValid")

            // An empty validity removes every window; the stored document loses the member.
            let cleared = try await R.call(client, .put, "/devices/w", body: Self.sas(Self.keyC, Self.keyB, validity: "{}"), ifMatch: "*")
            #expect(cleared.json?["authentication"]?["validity"] == nil)
            #expect(try await Self.auth(client, "w", key: Self.keyB) == "allow")
        }
    }

    @Test func thumbprintWindowsAreEnforcedForCertificates() async throws {
        try await Self.withAPI { client, _ in
            let (one, two) = (String(repeating: "AB", count: 20), String(repeating: "CD", count: 20))
            let body =
                #"{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"\#(one)","secondaryThumbprint":"\#(two)"},"validity":{"primary":{"notBefore":"\#(Self.at(-7200))","notAfter":"\#(Self.at(-60))"},"secondary":{"notAfter":"\#(Self.at(86_400))"}}}}"#
            let created = try await R.call(client, .put, "/devices/cam", body: body)
            #expect(created.status == .ok)
            #expect(try await Self.thumbprintDecision(client, "cam", one) == "credentialExpired")
            #expect(try await Self.thumbprintDecision(client, "cam", two.lowercased()) == "allow")
        }
    }

    @Test func windowsThatCannotHoldAreRefused() async throws {
        try await Self.withAPI { client, _ in
            let cases = [
                "{\"primary\": {\"notBefore\": \"\(Self.at(10))\", \"notAfter\": \"\(Self.at(10))\"}}",
                "{\"primary\": {\"notAfter\": \"tomorrow\"}}",
                "{\"tertiary\": {\"notAfter\": \"\(Self.at(10))\"}}",
                "{\"primary\": {\"until\": \"\(Self.at(10))\"}}",
                "{\"primary\": \"\(Self.at(10))\"}",
                "[]",
            ]
            for windows in cases {
                let reply = try await R.call(client, .put, "/devices/bad", body: Self.sas(Self.keyA, Self.keyB, validity: windows))
                R.expectAzureError(reply, .badRequest, "ArgumentInvalid")
            }
            // No credential to bound.
            let ca = #"{"authentication":{"type":"certificateAuthority","validity":{"primary":{"notAfter":"\#(Self.at(10))"}}}}"#
            R.expectAzureError(try await R.call(client, .put, "/devices/bad", body: ca), .badRequest, "ArgumentInvalid")
            let one =
                #"{"authentication":{"x509Thumbprint":{"primaryThumbprint":"\#(String(repeating: "AB", count: 20))"},"validity":{"secondary":{"notAfter":"\#(Self.at(10))"}}}}"#
            R.expectAzureError(try await R.call(client, .put, "/devices/bad", body: one), .badRequest, "ArgumentInvalid")
            R.expectAzureError(try await R.call(client, .get, "/devices/bad"), .notFound, "DeviceNotFound")
        }
    }

    @Test func expiringCredentialsAreListedSoonestFirst() async throws {
        try await Self.withAPI { client, _ in
            let soon = "{\"primary\": {\"notAfter\": \"\(Self.at(5 * 86_400))\"}, \"secondary\": {\"notAfter\": \"\(Self.at(40 * 86_400))\"}}"
            _ = try await R.call(client, .put, "/devices/soon", body: Self.sas(Self.keyA, Self.keyB, validity: soon))
            _ = try await R.call(
                client,
                .put,
                "/devices/gone",
                body: Self.sas(Self.keyA, Self.keyB, validity: "{\"secondary\": {\"notAfter\": \"\(Self.at(-1))\"}}")
            )
            _ = try await R.call(client, .put, "/devices/none", body: "{}")
            _ = try await R.call(
                client,
                .put,
                "/devices/soon/modules/m",
                body: Self.sas(Self.keyC, Self.keyB, validity: "{\"primary\": {\"notAfter\": \"\(Self.at(86_400))\"}}")
            )
            let listed = try await R.call(client, .get, "/registry/credentials/expiring?within=P30D", auth: R.token("registryRead"))
            #expect(listed.status == .ok)
            let items = try #require(listed.json?.arrayValue)
            let keys = items.map {
                "\($0["deviceId"]?.stringValue ?? "")/\($0["moduleId"]?.stringValue ?? "")/\($0["credential"]?.stringValue ?? "")"
            }
            #expect(keys == ["gone//secondary", "soon/m/primary", "soon//primary"])
            #expect(items.first?["expired"] == .bool(true))
            #expect(items.last?["expired"] == .bool(false))
            #expect(items.last?["authenticationType"] == .string("sas"))
            #expect(!"\(items)".contains(Self.keyA), "never key material")
            let wider = try await R.call(client, .get, "/registry/credentials/expiring?within=P6W&top=2")
            #expect(wider.json?.arrayValue?.count == 2)
            #expect(try await R.call(client, .get, "/registry/credentials/expiring?within=P7W").json?.arrayValue?.count == 4)
            for bad in ["P1M", "30D", "P", "PT", "P1Y", "P-1D", "P10000000D", "P99999999W", "PT99999999999H"] {
                R.expectAzureError(try await R.call(client, .get, "/registry/credentials/expiring?within=\(bad)"), .badRequest, "ArgumentInvalid")
            }
            #expect(try await R.call(client, .get, "/registry/credentials/expiring", auth: R.token("device")).status == .unauthorized)
        }
    }

    @Test func aWindowEnteringItsLastDaysIsNoticedOnceAndAgainWhenItChanges() async throws {
        try await Self.withAPI { client, store in
            let windows = "{\"primary\": {\"notAfter\": \"\(Self.at(10 * 86_400))\"}}"
            _ = try await R.call(client, .put, "/devices/n", body: Self.sas(Self.keyA, Self.keyB, validity: windows))
            _ = try await R.call(
                client,
                .put,
                "/devices/later",
                body: Self.sas(Self.keyA, Self.keyB, validity: "{\"primary\": {\"notAfter\": \"\(Self.at(90 * 86_400))\"}}")
            )
            let device = try #require(try store.storage.device("n"))
            let notices = CredentialExpiryNotices(
                store: store,
                configuration: CredentialsConfiguration(expiryNoticeDays: 14),
                logger: Logger(label: "test")
            )
            let now = Timestamp(unixSeconds: R.now)
            #expect(try await notices.check(now: now) == 1)
            #expect(try await notices.check(now: now) == 0, "noticed once")
            let noticed = try #require(try store.storage.device("n"))
            #expect(noticed.etag == device.etag, "a notice is not a change to the identity's definition")
            #expect(noticed.authentication.validity.primary?.expiryNoticed == true)
            let records = try store.storage.events(from: 1, limit: 100)
            let notice = try #require(records.last)
            #expect(notice.type == .deviceCredentialExpiring)
            #expect(notice.actor == "registryd")
            // What a route on CredentialExpiryEvents delivers: the windows, never the keys.
            let message = try #require(RouteMessage(record: notice, source: .credentialExpiryEvents, hubName: "hub"))
            #expect(message.applicationProperties["opType"] == "credentialExpiring")
            #expect(message.body["credentialValidity"]?["primary"]?["notAfter"] == .string(Self.at(10 * 86_400)))
            #expect(!"\(message.json)".contains(Self.keyA))
            #expect(RouteMessage(record: notice, source: .deviceLifecycleEvents, hubName: "hub") == nil)
            // The same window sent back (a GET's body PUT again, an import) keeps its mark.
            _ = try await R.call(client, .put, "/devices/n", body: Self.sas(Self.keyA, Self.keyB, validity: windows), ifMatch: "*")
            #expect(try store.storage.device("n")?.authentication.validity.primary?.expiryNoticed == true)
            #expect(try await notices.check(now: now) == 0, "not noticed twice")
            // A renewed window (a new notAfter) is noticed afresh when its time comes.
            let renewed = "{\"primary\": {\"notAfter\": \"\(Self.at(20 * 86_400))\"}}"
            _ = try await R.call(client, .put, "/devices/n", body: Self.sas(Self.keyA, Self.keyB, validity: renewed), ifMatch: "*")
            #expect(try await notices.check(now: now) == 0)
            #expect(try await notices.check(now: Timestamp(unixSeconds: R.now + 7 * 86_400)) == 1)
            // Off: nothing is noticed.
            let off = CredentialExpiryNotices(
                store: store,
                configuration: CredentialsConfiguration(expiryNoticeDays: 0),
                logger: Logger(label: "test")
            )
            #expect(try await off.check(now: Timestamp(unixSeconds: R.now + 89 * 86_400)) == 0)
        }
    }
}
