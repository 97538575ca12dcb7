import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// The stored identity document's layout is a contract: the log's payloads, the projections,
/// backups and third-party verifiers hold these exact bytes. Changing a member's name, its
/// order or what the query prefilter searches for must fail here first (and then needs a format
/// version, not a silent change).
@Suite struct StoredIdentityLayoutContractTests {
    typealias Field = StoredIdentityLayout.Field

    /// `restoredFrom` (issue 22's undelete) is optional like `twin`: written only on a restored
    /// identity, so every document written before it keeps its exact bytes.
    @Test func theCanonicalMemberOrderIsPinned() {
        #expect(
            StoredIdentityLayout.deviceMembers.map(\.name) == [
                "authentication", "capabilities", "cloudToDeviceMessageCount", "connectionState", "connectionStateUpdatedTime", "deviceId",
                "deviceScope", "etag", "generationId", "lastActivityTime", "parentScopes", "restoredFrom", "status", "statusReason",
                "statusUpdatedTime", "twin",
            ]
        )
        #expect(
            StoredIdentityLayout.moduleMembers.map(\.name) == [
                "authentication", "cloudToDeviceMessageCount", "connectionState", "connectionStateUpdatedTime", "deviceId", "etag",
                "generationId", "lastActivityTime", "managedBy", "moduleId", "restoredFrom", "twin",
            ]
        )
        // `validity` (credential lifetimes) is optional too: only with a window.
        #expect(Field.authentication.members.map(\.name) == ["symmetricKey", "type", "validity", "x509Thumbprint"])
        #expect(Field.symmetricKey.members.map(\.name) == ["primaryKey", "secondaryKey"])
        #expect(Field.x509Thumbprint.members.map(\.name) == ["primaryThumbprint", "secondaryThumbprint"])
        #expect(Field.capabilities.members.map(\.name) == ["iotEdge"])
        #expect(Field.twin.members.map(\.name) == ["etag", "tags", "version"])
        // The declared order is canonical JSON's (keys sorted by their UTF-8 bytes), the one a
        // verifier rebuilds with its standard library.
        let lists = [StoredIdentityLayout.deviceMembers, StoredIdentityLayout.moduleMembers] + Field.allCases.map(\.members)
        for names in lists.map({ $0.map(\.name) }) {
            #expect(names == names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        }
    }

    /// A device and a module written by the real store: their stored bytes, member by member,
    /// and where the layout finds each field in them.
    @Test func realStoredDocumentsHaveExactlyThisLayout() async throws {
        try await withTemporaryDirectory { dir in
            let store = try makeStore(dir + "/data")
            let thumbprint = String(repeating: "ab", count: 20)
            let auth = AuthenticationSpec(type: .selfSigned, primaryThumbprint: thumbprint, secondaryThumbprint: String(repeating: "CD", count: 20))
            _ = try await store.execute(
                .createDevice(
                    DeviceSpec(
                        deviceId: "cam",
                        status: .disabled,
                        statusReason: "r",
                        authentication: auth,
                        deviceScope: "s",
                        parentScopes: ["p"],
                        tags: ["t": .string("v")]
                    )
                ),
                actor: "t",
                requestId: "1"
            )
            _ = try await store.execute(
                .createModule(ModuleSpec(deviceId: "cam", moduleId: "m", managedBy: "me", authentication: auth)),
                actor: "t",
                requestId: "2"
            )
            _ = try await store.execute(.reportConnection(ConnectionReport(deviceId: "cam", connected: true)), actor: "t", requestId: "3")
            var stored: [[UInt8]] = []
            try store.storage.scanIdentities(openKeys: false) { document, _ in stored.append(document.json) }
            try #require(stored.count == 2)
            let (device, module) = (stored[0], stored[1])

            #expect(String(decoding: device, as: UTF8.self) == Self.device)
            #expect(String(decoding: module, as: UTF8.self) == Self.module)

            let d = try #require(StoredIdentityLayout(device))
            func token(_ field: Field, _ layout: StoredIdentityLayout, _ bytes: [UInt8]) -> String? {
                layout.value(field).map { String(decoding: bytes[$0], as: UTF8.self) }
            }
            #expect(token(.status, d, device) == #""disabled""#)
            #expect(token(.connectionState, d, device) == #""Connected""#)
            #expect(token(.authenticationType, d, device) == #""selfSigned""#)
            #expect(token(.primaryThumbprint, d, device) == "\"\(thumbprint)\"")
            #expect(token(.primaryKey, d, device) == "null")
            #expect(token(.iotEdge, d, device) == "false")
            #expect(token(.tags, d, device) == #"{"t":"v"}"#)
            #expect(d.isDisabled(device) && d.isConnected(device) && !d.isModule)
            #expect(d.twinMember.map { String(decoding: device[$0], as: UTF8.self) }?.hasPrefix(#","twin":{"etag":"#) == true)
            #expect(String(decoding: d.identityJSON(device), as: UTF8.self) == Self.device.replacingOccurrences(of: Self.deviceTwin, with: ""))

            let m = try #require(StoredIdentityLayout(module))
            #expect(token(.managedBy, m, module) == #""me""#)
            #expect(token(.moduleId, m, module) == #""m""#)
            #expect(m.isModule && !m.isDisabled(module) && !m.isConnected(module) && m.twinMember == nil)
        }
    }

    /// What the query prefilter searches stored documents for (`requiredPatterns`).
    @Test func theQueryPrefilterBytesArePinned() {
        func text(_ field: Field, _ value: JSONValue) -> String? {
            StoredIdentityLayout.memberBytes(field, equalTo: value).map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(text(.status, .string("disabled")) == #""status":"disabled""#)
        #expect(text(.connectionState, .string("Connected")) == #""connectionState":"Connected""#)
        #expect(text(.authenticationType, .string("sas")) == #""type":"sas""#)
        #expect(text(.iotEdge, .bool(true)) == #""iotEdge":true"#)
        #expect(text(.statusReason, .string(#"a"b\c"#)) == #""statusReason":"a\"b\\c""#)
        // No single stored form: another string equals these (Kelvin sign, non-ASCII).
        #expect(text(.deviceId, .string("K1")) == nil)
        #expect(text(.statusReason, .string("é")) == nil)
        #expect(text(.cloudToDeviceMessageCount, .int(1)) == nil)
    }

    /// The stored bytes of the device and module above, one top-level member a line.
    static let device =
        [
            #"{"authentication":{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"abababababababababababababababababababab","secondaryThumbprint":"CDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCD"}}"#,
            #","capabilities":{"iotEdge":false}"#,
            #","cloudToDeviceMessageCount":0"#,
            #","connectionState":"Connected""#,
            #","connectionStateUpdatedTime":"2026-01-01T00:00:00.0000002Z""#,
            #","deviceId":"cam""#,
            #","deviceScope":"s""#,
            #","etag":"MQ==""#,
            #","generationId":"639028224000000000""#,
            #","lastActivityTime":"2026-01-01T00:00:00.0000002Z""#,
            #","parentScopes":["p"]"#,
            #","status":"disabled""#,
            #","statusReason":"r""#,
            #","statusUpdatedTime":"2026-01-01T00:00:00.0000000Z""#,
        ].joined() + deviceTwin + "}"
    static let deviceTwin = #","twin":{"etag":"AAAAAAAAAAE=","tags":{"t":"v"},"version":2}"#
    static let module = [
        #"{"authentication":{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"abababababababababababababababababababab","secondaryThumbprint":"CDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCD"}}"#,
        #","cloudToDeviceMessageCount":0"#,
        #","connectionState":"Disconnected""#,
        #","connectionStateUpdatedTime":"0001-01-01T00:00:00Z""#,
        #","deviceId":"cam""#,
        #","etag":"Mg==""#,
        #","generationId":"639028224000000001""#,
        #","lastActivityTime":"0001-01-01T00:00:00Z""#,
        #","managedBy":"me""#,
        #","moduleId":"m"}"#,
    ].joined()
}
