import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// No reader of stored documents may be fooled by what users write into them. Seeded identities
/// carry every member pattern the readers ever looked for (and near misses: escaped quotes,
/// backslashes, nested objects named like members, the Kelvin sign) in their tags, status
/// reasons, scopes and `managedBy`; they are stored through the real store, and then every
/// answer of `StoredIdentityLayout` and of the real readers (the identity GET document, device
/// authentication's credentials, the query prefilter, the projection's counters, replay's
/// verification) must equal what a full JSON parse of the stored document says.
///
/// CI runs a fixed number of identities per seed (100); `REGISTRYD_FUZZ_ITERATIONS` raises it
/// (one identity per 30 iterations of the other fuzz suites' inputs).
@Suite struct StoredIdentityLayoutPropertyTests {
    typealias Field = StoredIdentityLayout.Field

    /// Member patterns and fragments of them, as the byte-searching readers used them.
    static let plants: [String] = [
        #""status":"disabled""#, #","status":"disabled"}"#, #""connectionState":"Connected""#, #""primaryKey":"aes256gcm:AAAA""#,
        #""secondaryKey":"aes256gcm:AAAA""#, #""primaryThumbprint":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd""#, #""type":"sas""#,
        #","twin":{"#, #""twin":{"etag":"x","tags":{},"version":1}"#, #""etag":"evil""#, #","cloudToDeviceMessageCount":"#,
        #""authentication":{"symmetricKey":{"primaryKey":"aes256gcm:AAAA"},"type":"sas"}"#, #""moduleId":"m""#, #""iotEdge":true"#,
        "}", "{", "]", "\"", "\\", "\\\"", "\"}", "\",\"", "\":", ",", ":",
        // Near misses.
        #""status" : "disabled""#, #""Status":"disabled""#, #""status":"disabled"#, #"\"status\":\"disabled\""#, #"\\"status\\":"#,
        "\u{212A}", "K", "é", "e\u{301}", "\n", "\u{1}", "", "disabled", "Connected", "sas", "aes256gcm:AAAA", "null", "true",
    ]

    static var identitiesPerSeed: Int { max(40, Fuzzer.iterations / 30) }

    @Test(arguments: [UInt64(1), 2, 3]) func noReaderIsFooledByPlantedText(seed: UInt64) async throws {
        try await withTemporaryDirectory { dir in
            var random = SeededRandom(seed: seed)
            let store = try makeStore(dir + "/data", seed: seed)
            var keys: [String: (String?, String?)] = [:]
            var commands: [Command] = []
            var texts: [String] = []
            for i in 0..<Self.identitiesPerSeed {
                let deviceId = Self.id(i, &random)
                let auth = Self.authentication(&random)
                keys[deviceId] = (auth.primaryKey, auth.secondaryKey)
                // The first one's reason equals `K` as a Swift string (the Kelvin sign): a query
                // for `K` must find it though its bytes differ.
                let reason = i == 0 ? "\u{212A}" : Self.planted(&random, maxBytes: 128)
                let scope = Self.planted(&random, maxBytes: 256)
                texts += [reason, scope]
                commands.append(
                    .createDevice(
                        DeviceSpec(
                            deviceId: deviceId,
                            status: random.next() % 2 == 0 ? .disabled : .enabled,
                            statusReason: reason,
                            authentication: auth,
                            capabilities: DeviceCapabilities(iotEdge: random.next() % 2 == 0),
                            deviceScope: scope,
                            parentScopes: [Self.planted(&random, maxBytes: 256)],
                            tags: random.next() % 4 == 0 ? nil : Self.tags(&random, depth: 0)
                        )
                    )
                )
                if random.next() % 3 == 0 {
                    let moduleAuth = Self.authentication(&random)
                    let managedBy = Self.planted(&random, maxBytes: 256)
                    texts.append(managedBy)
                    keys["\(deviceId)/m\(i)"] = (moduleAuth.primaryKey, moduleAuth.secondaryKey)
                    commands.append(
                        .createModule(ModuleSpec(deviceId: deviceId, moduleId: "m\(i)", managedBy: managedBy, authentication: moduleAuth))
                    )
                    if random.next() % 2 == 0 {
                        commands.append(.updateTwin(TwinUpdate(deviceId: deviceId, moduleId: "m\(i)", tags: Self.tags(&random, depth: 0))))
                    }
                    if random.next() % 2 == 0 {
                        commands.append(.reportConnection(ConnectionReport(deviceId: deviceId, moduleId: "m\(i)", connected: true)))
                    }
                }
                if random.next() % 2 == 0 { commands.append(.updateTwin(TwinUpdate(deviceId: deviceId, tags: Self.tags(&random, depth: 0)))) }
                if random.next() % 2 == 0 { commands.append(.reportConnection(ConnectionReport(deviceId: deviceId, connected: true))) }
            }
            for (index, result) in try await store.execute(commands, actor: "t", requestId: "r").enumerated() {
                if case .failure(let error) = result { Issue.record("command \(index) was refused: \(error)") }
            }

            var stored: [(document: [UInt8], isModule: Bool)] = []
            try store.storage.scanIdentities(openKeys: false) { document, isModule in stored.append((document.json, isModule)) }
            var devices: [String: JSONValue] = [:]
            for (document, isModule) in stored where !isModule {
                let tree = try JSONParser.parse(document)
                devices[try #require(tree["deviceId"]?.stringValue)] = tree
            }
            for (document, isModule) in stored {
                let tree = try JSONParser.parse(document)
                try Self.checkLayout(document, tree)
                #expect(isModule == (tree["moduleId"] != nil))
                let deviceId = try #require(tree["deviceId"]?.stringValue)
                let moduleId = tree["moduleId"]?.stringValue
                let plain = try #require(keys[moduleId.map { "\(deviceId)/\($0)" } ?? deviceId])
                try Self.checkDocument(store.storage, deviceId, moduleId, tree, plain)
                try Self.checkCredentials(store.storage, deviceId, moduleId, tree, device: try #require(devices[deviceId]), plain)
            }

            // The projection's counters, and replay's verification of them (the log verifier
            // reads the same facts of every document in its scan batches).
            let statistics = try store.storage.statistics()
            #expect(statistics.disabledDeviceCount == devices.values.filter { $0["status"] == .string("disabled") }.count)
            #expect(statistics.connectedDeviceCount == devices.values.filter { $0["connectionState"] == .string("Connected") }.count)
            try Self.checkQueries(store.storage, stored.map(\.document), texts: texts)
            store.close()
            #expect(try verifyReplay(dir + "/data").outcome == .clean)
        }
    }

    // MARK: Checks against the full parse

    /// Every answer of the layout, for a full walk and for walks that stop early.
    static func checkLayout(_ bytes: [UInt8], _ tree: JSONValue) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        let full = try #require(StoredIdentityLayout(bytes), "\(text)")
        var walks: [(StoredIdentityLayout, [Field])] = [(full, Field.allCases)]
        for field in Field.allCases { walks.append((try #require(StoredIdentityLayout(bytes, reading: .init(field))), [field])) }
        walks.append(
            (
                try #require(StoredIdentityLayout(bytes, reading: .credentials)),
                [.authenticationType, .primaryKey, .secondaryKey, .primaryThumbprint, .secondaryThumbprint]
            )
        )
        walks.append((try #require(StoredIdentityLayout(bytes, reading: .counters)), [.status, .connectionState]))
        walks.append((try #require(StoredIdentityLayout(bytes, reading: .document)), [.etag, .primaryKey, .secondaryKey, .twin]))
        for (layout, fields) in walks {
            for field in fields {
                let expected = value(of: field, in: tree)
                let token = layout.value(field).map { try? JSONParser.parse(Array(bytes[$0])) }
                #expect(token == expected.map { .some($0) }, "\(field) in \(text)")
                #expect(layout.string(field, in: bytes) == expected?.stringValue, "\(field) in \(text)")
                if let plain = layout.plainString(field, in: bytes) {
                    #expect(String(decoding: bytes[plain], as: UTF8.self) == expected?.stringValue, "\(field) in \(text)")
                }
            }
        }
        #expect(full.isModule == (tree["moduleId"]?.stringValue != nil))
        #expect(full.isDisabled(bytes) == (tree["status"] == .string("disabled")), "\(text)")
        #expect(full.isConnected(bytes) == (tree["connectionState"] == .string("Connected")), "\(text)")
        #expect(full.identityJSON(bytes) == CanonicalJSON.encode(removingTwin(tree)), "\(text)")
        // The same answers for the document inside a larger buffer (a scan batch).
        let batch = Array("xx{\"a\":1}".utf8) + bytes + Array("{\"status\":\"disabled\"}".utf8)
        let inBatch = try #require(StoredIdentityLayout(batch, 9..<(9 + bytes.count), reading: .counters))
        #expect(inBatch.isDisabled(batch) == full.isDisabled(bytes) && inBatch.isConnected(batch) == full.isConnected(bytes))
    }

    /// The identity GET's document: the stored JSON without its twin, keys opened in place.
    static func checkDocument(_ storage: RegistryStorage, _ deviceId: String, _ moduleId: String?, _ tree: JSONValue, _ plain: (String?, String?))
        throws
    {
        let document = try #require(try moduleId.map { try storage.moduleDocument(deviceId, $0) } ?? storage.deviceDocument(deviceId))
        let opened = withKeys(tree, plain)
        #expect(document.json == CanonicalJSON.encode(opened))
        #expect(document.identityJSON == CanonicalJSON.encode(removingTwin(opened)), "\(String(decoding: document.json, as: UTF8.self))")
        #expect(document.etag == tree["etag"]?.stringValue)
    }

    /// What device authentication reads.
    static func checkCredentials(
        _ storage: RegistryStorage,
        _ deviceId: String,
        _ moduleId: String?,
        _ tree: JSONValue,
        device: JSONValue,
        _ plain: (String?, String?)
    ) throws {
        let record = try #require(try storage.credentials(deviceId: deviceId, moduleId: moduleId))
        let auth = tree["authentication"]
        #expect(record.type.rawValue == auth?["type"]?.stringValue)
        #expect(record.deviceDisabled == (device["status"] == .string("disabled")))
        let thumbprints = ["primaryThumbprint", "secondaryThumbprint"].compactMap { auth?["x509Thumbprint"]?[$0]?.stringValue?.lowercased() }
        #expect(record.thumbprints == thumbprints)
        let stored = ["primaryKey", "secondaryKey"].compactMap { auth?["symmetricKey"]?[$0]?.stringValue }
        let expected = [plain.0, plain.1].compactMap { $0 }
        #expect(record.keys.count == stored.count && record.keys.count == expected.count)
        for (key, text) in zip(record.keys, expected) {
            let token = try #require(SharedAccessSignature(credential: SharedAccessSignature.make(resource: "r", key: text, keyName: nil, expiry: 1)))
            #expect(token.isSigned(with: key))
        }
    }

    /// Queries whose equality tests the prefilter turns into byte patterns: the pages must hold
    /// exactly the documents whose twins match (by the evaluator, on the full parse).
    static func checkQueries(_ storage: RegistryStorage, _ documents: [[UInt8]], texts: [String]) throws {
        var queries = [
            "SELECT * FROM devices WHERE status = 'disabled'", "SELECT * FROM devices WHERE connectionState = 'Connected'",
            "SELECT * FROM devices WHERE authenticationType = 'sas' AND capabilities.iotEdge = true",
            "SELECT * FROM devices.modules WHERE connectionState = 'Connected' AND authenticationType = 'selfSigned'",
            "SELECT * FROM devices WHERE status = 'disabled' AND connectionState = 'Connected'",
        ]
        // A deterministic sample of the planted texts (each query scans every document).
        let sample = Array(Set(texts)).sorted().filter { !$0.contains("'") && !$0.contains("\\") }.prefix(24)
        for text in sample + ["K"] {
            queries += ["SELECT * FROM devices WHERE statusReason = '\(text)'", "SELECT * FROM devices WHERE deviceScope = '\(text)'"]
            queries.append("SELECT * FROM devices.modules WHERE managedBy = '\(text)'")
        }
        let twins = try documents.map { try JSONParser.parse($0) }
        for text in queries {
            let query = try QueryParser.parse(text)
            let expected = twins.filter { ($0["moduleId"] != nil) == (query.source == .modules) }
                .map { TwinDocument.make($0, lastUpdated: Timestamp.unset.iso8601, includeTags: true) }
                .filter { QueryEvaluator.matches(query.filter, $0) }
            var found: [JSONValue] = []
            var cursor: QueryCursor?
            repeat {
                let page = try storage.queryPage(query, cursor: cursor, pageSize: 1000)
                found += page.items
                cursor = page.next
            } while cursor != nil
            #expect(found.map(identityKey) == expected.map(identityKey), "\(text)")
        }
    }

    // MARK: The full parse's answers

    static func value(of field: Field, in tree: JSONValue) -> JSONValue? {
        var path = [field]
        while let parent = path[0].parent { path.insert(parent, at: 0) }
        var value: JSONValue? = tree
        for member in path {
            guard case .object(let members)? = value else { return nil }
            value = members[member.name]
        }
        return value
    }

    static func removingTwin(_ tree: JSONValue) -> JSONValue {
        guard case .object(var members) = tree else { return tree }
        members["twin"] = nil
        return .object(members)
    }

    static func withKeys(_ tree: JSONValue, _ plain: (String?, String?)) -> JSONValue {
        guard case .object(var members) = tree, case .object(var auth)? = members["authentication"], case .object(var keys)? = auth["symmetricKey"]
        else { return tree }
        for (name, key) in [("primaryKey", plain.0), ("secondaryKey", plain.1)] where keys[name] != .null {
            keys[name] = key.map(JSONValue.string) ?? .null
        }
        auth["symmetricKey"] = .object(keys)
        members["authentication"] = .object(auth)
        return .object(members)
    }

    static func identityKey(_ twin: JSONValue) -> String {
        "\(twin["deviceId"]?.stringValue ?? "?")/\(twin["moduleId"]?.stringValue ?? "")"
    }

    // MARK: Generation

    /// A planted string: one to three plants, at most `maxBytes` long.
    static func planted(_ random: inout SeededRandom, maxBytes: Int) -> String {
        var text = ""
        for _ in 0..<(1 + Int(random.next() % 3)) { text += plants[Int(random.next() % UInt64(plants.count))] }
        while text.utf8.count > maxBytes || text.count > maxBytes { text.removeLast() }
        return text
    }

    /// Tags built from member names and plants: nested objects named like the identity's own
    /// members, with planted keys and values.
    static func tags(_ random: inout SeededRandom, depth: Int) -> [String: JSONValue] {
        var tags: [String: JSONValue] = [:]
        let names =
            Field.allCases.map(\.name)
            + plants.map { $0.filter { !".$ ".contains($0) && !($0.asciiValue.map { $0 < 0x20 } ?? false) } }.filter { !$0.isEmpty }
        for _ in 0..<(1 + Int(random.next() % 5)) {
            let name = names[Int(random.next() % UInt64(names.count))]
            switch random.next() % 6 {
            case 0 where depth < 3: tags[name] = .object(Self.tags(&random, depth: depth + 1))
            case 1: tags[name] = .bool(random.next() % 2 == 0)
            case 2: tags[name] = .int(Int64(random.next() % 100))
            case 3: tags[name] = .null
            default: tags[name] = .string(planted(&random, maxBytes: 4096))
            }
        }
        if depth == 0, random.next() % 2 == 0 {
            tags["authentication"] = .object([
                "symmetricKey": .object(["primaryKey": .string("aes256gcm:AAAA"), "secondaryKey": .string("AAAA")]), "type": .string("sas"),
                "x509Thumbprint": .object(["primaryThumbprint": .string(String(repeating: "cd", count: 20))]),
            ])
            tags["status"] = .string("disabled")
            tags["connectionState"] = .string("Connected")
        }
        return tags
    }

    /// A device id from the allowed characters, with punctuation JSON cares about (`,` `:`).
    static func id(_ i: Int, _ random: inout SeededRandom) -> String {
        let punctuation = Array("-.%_*?!(),:=@$'")
        return "d\(i)" + String((0..<Int(random.next() % 4)).map { _ in punctuation[Int(random.next() % UInt64(punctuation.count))] })
    }

    static func authentication(_ random: inout SeededRandom) -> AuthenticationSpec {
        func key() -> String { Data((0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }).base64EncodedString() }
        func thumbprint() -> String { String((0..<40).map { _ in Array("0123456789abcdefABCDEF")[Int(random.next() % 22)] }) }
        switch random.next() % 4 {
        case 0: return AuthenticationSpec(type: .sas, primaryKey: key(), secondaryKey: key())
        case 1:
            return AuthenticationSpec(
                type: .selfSigned,
                primaryThumbprint: thumbprint(),
                secondaryThumbprint: random.next() % 2 == 0 ? thumbprint() : nil
            )
        case 2: return AuthenticationSpec(type: .certificateAuthority)
        default: return AuthenticationSpec(type: .sas, primaryKey: key(), secondaryKey: key())
        }
    }
}
