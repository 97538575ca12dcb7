import Foundation
import RegistryTesting
import Testing

@testable import RegistryCore

struct TimestampTests {
    @Test func formatsWithSevenDigitsAndZ() {
        #expect(Timestamp.unset.iso8601 == "0001-01-01T00:00:00Z")
        let t = Timestamp(iso8601: "2021-05-12T08:48:08.7205939Z")!
        #expect(t.iso8601 == "2021-05-12T08:48:08.7205939Z")
        #expect(Timestamp(unixSeconds: 0).iso8601 == "1970-01-01T00:00:00.0000000Z")
        #expect(Timestamp(iso8601: "2024-02-29T23:59:59Z")!.iso8601 == "2024-02-29T23:59:59.0000000Z")
        #expect(Timestamp(iso8601: "0042-03-04T05:06:07.0000089Z")!.iso8601 == "0042-03-04T05:06:07.0000089Z")
        #expect(Timestamp(iso8601: "9999-12-31T23:59:59.9999999Z")!.iso8601 == "9999-12-31T23:59:59.9999999Z")
        #expect(Timestamp(ticks: 1).iso8601 == "0001-01-01T00:00:00.0000001Z")
    }

    /// Formatting and parsing are separate code: every formatted time parses back to itself, and
    /// the bytes appended are the String's.
    @Test func formattedTimesParseBack() {
        var random = SeededRandom(seed: 3)
        let last = Timestamp(iso8601: "9999-12-31T23:59:59.9999999Z")!.ticks
        for _ in 0..<2_000 {
            let t = Timestamp(ticks: Int64.random(in: 1...last, using: &random))
            #expect(Timestamp(iso8601: t.iso8601) == t, "\(t.ticks)")
            var out: [UInt8] = [7]
            t.appendISO8601(to: &out)
            #expect(out == [7] + Array(t.iso8601.utf8))
        }
    }

    @Test func parsesOlderAndShorterForms() {
        #expect(Timestamp(iso8601: "0001-01-01T00:00:00") == .unset)
        #expect(Timestamp(iso8601: "0001-01-01T00:00:00Z") == .unset)
        #expect(Timestamp(iso8601: "2021-05-12T08:48:08.5Z")!.iso8601 == "2021-05-12T08:48:08.5000000Z")
        #expect(Timestamp(iso8601: "2021-05-12T08:48:08.123456789Z")!.iso8601 == "2021-05-12T08:48:08.1234567Z")
        #expect(Timestamp(iso8601: "2021-13-12T08:48:08Z") == nil)
        #expect(Timestamp(iso8601: "yesterday") == nil)
        #expect(Timestamp(iso8601: "2021-05-12T08:48:08+02:00") == nil)
    }

    @Test func unixConversionsAgree() {
        let t = Timestamp(unixSeconds: 1_700_000_000)
        #expect(t.unixSeconds == 1_700_000_000)
        #expect(Timestamp(iso8601: t.iso8601) == t)
    }
}

struct JSONTests {
    @Test func canonicalFormSortsKeysAndEscapesLikePython() throws {
        let value = try JSONParser.parse(#"{ "b": [1, true, null], "a": "x\"y\\z\n\u0001é/€", "A": -5 }"#)
        // json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        #expect(String(decoding: CanonicalJSON.encode(value), as: UTF8.self) == #"{"A":-5,"a":"x\"y\\z\n\u0001é/€","b":[1,true,null]}"#)
    }

    @Test func parseThenEncodeIsStable() throws {
        let text = #"{"deviceId":"d","nested":{"z":[],"y":{}},"n":12345678901,"s":"\t\b\f\r"}"#
        let once = CanonicalJSON.encode(try JSONParser.parse(text))
        #expect(CanonicalJSON.encode(try JSONParser.parse(once)) == once)
    }

    @Test func rejectsMalformedInput() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"unterminated", "01", "{\"a\":1}x", "\"\u{01}\"", "\"\\ud800\""] {
            #expect(throws: JSONParser.Error.self, "\(bad)") { try JSONParser.parse(bad) }
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(deep) }
    }

    @Test func surrogatePairsDecode() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    /// Our base64 writer against Foundation's, every length from 0 to 70 and every byte value.
    @Test func base64MatchesFoundation() {
        var generator = SeededRandom(seed: 7)
        for length in 0...70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(Base64.encode(bytes) == Data(bytes).base64EncodedString(), "length \(length)")
            var out: [UInt8] = [1, 2]
            Base64.append(bytes, to: &out)
            #expect(out.count == 2 + Base64.encodedCount(length))
        }
        let all = (0...255).map { UInt8($0) }
        #expect(Base64.encode(all) == Data(all).base64EncodedString())
        #expect(etag(forSequence: 1) == "MQ==")
        #expect(twinEtag(forSequence: 1) == "AAAAAAAAAAE=")
    }

    /// Key validation: the decoded length of canonical base64, nil for anything else.
    @Test func base64KeyLengths() {
        let key = Base64.encode([UInt8](repeating: 9, count: 32))
        let cases: [(String, Int?)] = [
            ("", nil), ("QQ==", 1), ("QUI=", 2), ("QUJD", 3), ("QUJDRA==", 4), (key, 32), ("Q===", nil), ("QQ=A", nil),
            ("QQ*=", nil), ("QUJ", nil), ("QU\u{E9}=", nil), ("QU-_", nil), ("QUJD\n", nil),
        ]
        for (text, expected) in cases { #expect(Validation.base64DecodedCount(text) == expected, "\(text)") }
    }

    /// Objects are built at their end from a shared member stack: nested objects between a
    /// parent's members keep both apart, and the last duplicate wins.
    @Test func nestedObjectsAndDuplicateMembers() throws {
        let value = try JSONParser.parse(#"{"a":1,"o":{"x":{"y":[{"z":1},{}]},"b":2,"x":3},"a":4,"e":{},"l":[1,{"k":"v"}]}"#)
        #expect(
            value
                == .object([
                    "a": .int(4), "o": .object(["x": .int(3), "b": .int(2)]), "e": .object([:]),
                    "l": .array([.int(1), .object(["k": .string("v")])]),
                ])
        )
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(#"{"a":1,"b":{"c":2}"#) }
    }

    /// Strings without escapes take an ASCII fast path; anything else is still validated.
    @Test func unescapedStringsAreValidatedUTF8() throws {
        #expect(try JSONParser.parse(Array(#"{"a":"plain","b":"été 😀"}"#.utf8)) == .object(["a": .string("plain"), "b": .string("été 😀")]))
        for invalid: [UInt8] in [[34, 0xC3, 34], [34, 0x61, 0xFF, 34], [34, 0xED, 0xA0, 0x80, 34], [34, 0x61, 0xC3, 0x28, 34]] {
            #expect(throws: JSONParser.Error.self) { try JSONParser.parse(invalid) }
        }
    }

    @Test func caseInsensitiveMemberLookup() throws {
        let value = try JSONParser.parse(#"{"DeviceID":"x"}"#)
        #expect(value.member(caseInsensitive: "deviceId") == .string("x"))
        #expect(value["deviceId"] == nil)
        #expect(value.member(caseInsensitive: "deviceIdx") == nil)
        #expect(value.member(caseInsensitive: "device") == nil)
        // An exact name wins over one that only folds to it, in small and large objects.
        let both = try JSONParser.parse(#"{"STATUS":"a","status":"b","Status":"c"}"#)
        #expect(both.member(caseInsensitive: "status") == .string("b"))
        #expect(both.member(caseInsensitive: "sTaTuS") != nil)
        var many: [String: JSONValue] = ["STATUS": .string("a"), "status": .string("b")]
        for i in 0..<40 { many["field\(i)"] = .int(Int64(i)) }
        let large = JSONValue.object(many)
        #expect(large.member(caseInsensitive: "status") == .string("b"))
        #expect(large.member(caseInsensitive: "FIELD7") == .int(7))
        #expect(large.member(caseInsensitive: "field40") == nil)
    }
}

struct EventRecordTests {
    /// The writer's chaining (assembled once, hash written in place) against the plain
    /// definition: hash = SHA-256(prevHash ++ body without hash), stored = body with the hash.
    @Test func chainingInPlaceMatchesTheDefinition() throws {
        var prev = [UInt8](repeating: 0, count: 32)
        for seq in 1...20 as ClosedRange<UInt64> {
            let parts = EventRecord.Parts(
                seq: seq,
                time: Timestamp(ticks: Int64(seq) * 12_345),
                type: seq % 3 == 0 ? .moduleCreated : .deviceCreated,
                deviceId: "dev-\(seq)",
                moduleId: seq % 3 == 0 ? "m\"\(seq)" : nil,
                actor: "a",
                requestId: "r-\(seq)",
                payloadBytes: Array(#"{"deviceId":"x"}"#.utf8)
            )
            let (hash, encoded) = parts.chained(to: prev)
            #expect(hash == EventRecord.chainHash(prevHash: prev, body: parts.bytes(prevHash: prev, hash: nil)))
            #expect(encoded == parts.bytes(prevHash: prev, hash: hash))
            #expect(try EventRecord.decode(encoded).hash == hash)
            prev = hash
        }
    }

    func record(_ seq: UInt64, prev: [UInt8]) -> EventRecord {
        EventRecord(
            seq: seq,
            time: Timestamp(unixSeconds: 1_700_000_000 + Int64(seq)),
            type: .deviceCreated,
            deviceId: "dev-\(seq)",
            moduleId: nil,
            actor: "iothubowner",
            requestId: "req-\(seq)",
            payload: .object(["deviceId": .string("dev-\(seq)")]),
            prevHash: prev
        )
    }

    @Test func chainVerifiesAndDetectsTampering() throws {
        let first = record(1, prev: EventRecord.genesisHash)
        let second = record(2, prev: first.hash)
        #expect(try EventRecord.verified(first.encoded, expectedSeq: 1, prevHash: EventRecord.genesisHash).get() == first)
        #expect(try EventRecord.verified(second.encoded, expectedSeq: 2, prevHash: first.hash).get() == second)
        // Wrong position, wrong predecessor.
        #expect(throws: EventDecodingError.self) { try EventRecord.verified(second.encoded, expectedSeq: 3, prevHash: first.hash).get() }
        #expect(throws: EventDecodingError.self) { try EventRecord.verified(second.encoded, expectedSeq: 2, prevHash: EventRecord.genesisHash).get() }
        // One byte of content changed.
        var tampered = second.encoded
        let index = tampered.firstIndex(of: UInt8(ascii: "q"))!  // inside "req-2"
        tampered[index] = UInt8(ascii: "Q")
        #expect(throws: EventDecodingError.self) { try EventRecord.verified(tampered, expectedSeq: 2, prevHash: first.hash).get() }
        // Same content, not canonical (extra space).
        let spaced = Array(String(decoding: second.encoded, as: UTF8.self).replacingOccurrences(of: ",\"seq\"", with: ", \"seq\"").utf8)
        #expect(throws: EventDecodingError.self) { try EventRecord.verified(spaced, expectedSeq: 2, prevHash: first.hash).get() }
    }

    @Test func hashIsSHA256OfPrevHashAndCanonicalBodyWithoutHash() throws {
        let r = record(1, prev: EventRecord.genesisHash)
        var json = try JSONParser.parse(r.encoded)
        guard case .object(var members) = json else { Issue.record("not an object"); return }
        #expect(members.removeValue(forKey: "hash") == .string(Hex.encode(r.hash)))
        json = .object(members)
        #expect(EventRecord.chainHash(prevHash: EventRecord.genesisHash, body: CanonicalJSON.encode(json)) == r.hash)
        #expect(r.hash.count == 32)
        // The hand-written envelope encoder equals the generic canonical encoder.
        #expect(r.encoded == CanonicalJSON.encode(r.json(includingHash: true)))
        let module = EventRecord(
            seq: 9,
            time: .unset,
            type: .moduleDeleted,
            deviceId: "d\"q",
            moduleId: "m",
            actor: "a\n",
            requestId: "",
            payload: .array([]),
            prevHash: r.hash
        )
        #expect(module.encoded == CanonicalJSON.encode(module.json(includingHash: true)))
    }

    @Test func newerSchemaIsRefused() {
        let text = String(decoding: record(1, prev: EventRecord.genesisHash).encoded, as: UTF8.self).replacingOccurrences(
            of: "\"schema\":1",
            with: "\"schema\":99"
        )
        #expect(throws: EventDecodingError.self) { try EventRecord.decode(Array(text.utf8)) }
    }
}

struct KeySealerTests {
    @Test func sealsAndOpensBoundToItsContext() throws {
        let sealer = try KeySealer(keyBytes: [UInt8](repeating: 5, count: 32))
        var random = SeededRandom(seed: 1)
        let sealed = sealer.seal("secret-key", context: "d//primaryKey", random: &random)
        #expect(sealed.hasPrefix(KeySealer.prefix))
        #expect(!sealed.contains("secret"))
        #expect(try sealer.open(sealed, context: "d//primaryKey") == "secret-key")
        #expect(throws: SealError.self) { try sealer.open(sealed, context: "other//primaryKey") }
        let otherKey = try KeySealer(keyBytes: [UInt8](repeating: 6, count: 32))
        #expect(throws: SealError.self) { try otherKey.open(sealed, context: "d//primaryKey") }
        #expect(throws: SealError.self) { try KeySealer(keyBytes: [1, 2, 3]) }
    }

    /// The writer's path (sealed straight into the document's bytes, the context built as bytes)
    /// seals under the slot's version 2 context, and the readers' path opens it.
    @Test func sealingIntoBytesOpensUnderTheSlotsContext() throws {
        let sealer = try KeySealer(keyBytes: [UInt8](repeating: 5, count: 32))
        for slot in [
            IdentityCodec.KeySlot(deviceId: "dev-1", moduleId: nil, name: "primaryKey"),
            IdentityCodec.KeySlot(deviceId: "d", moduleId: "é m", name: "secondaryKey"),
        ] {
            #expect(slot.contextBytes == slot.sealingContext.bytes)
            let nonce = (0..<KeySealer.nonceSize).map { UInt8($0 * 7) }
            var out: [UInt8] = [0x22]
            sealer.seal("a-key", context: slot.contextBytes, nonce: nonce[...], into: &out)
            let text = String(decoding: out.dropFirst(), as: UTF8.self)
            #expect(text.hasPrefix(KeySealer.prefix))
            #expect(try sealer.open(text, for: slot.sealingContext) == "a-key")
            #expect(sealer.isSealedWithCurrentContext(text, for: slot.sealingContext))
        }
    }

    @Test func identityCodecRoundTrips() throws {
        let device = Device(
            deviceId: "d",
            generationId: "638000000000000000",
            etag: "MQ==",
            status: .disabled,
            statusReason: "why",
            statusUpdatedTime: Timestamp(unixSeconds: 5),
            authentication: Authentication(type: .sas, symmetricKey: SymmetricKey(primaryKey: "p", secondaryKey: "s")),
            capabilities: DeviceCapabilities(iotEdge: true),
            deviceScope: "scope",
            parentScopes: ["parent"]
        )
        let json = IdentityCodec.encode(.device(device)) { key, slot in "sealed(\(key),\(slot.deviceId)/\(slot.moduleId ?? "")/\(slot.name))" }
        #expect(json["authentication"]?["symmetricKey"]?["primaryKey"] == .string("sealed(p,d//primaryKey)"))
        #expect(json["statusUpdatedTime"] == .string("1970-01-01T00:00:05.0000000Z"))
        #expect(json["lastActivityTime"] == .string("0001-01-01T00:00:00Z"))
        let back = try IdentityCodec.decode(json) { sealed, _ in String(sealed.dropFirst(7).prefix(1)) }
        #expect(back == .device(device))
        let module = Module(
            deviceId: "d",
            moduleId: "m",
            managedBy: "IotEdge",
            generationId: "1",
            etag: "Mg==",
            authentication: Authentication(type: .certificateAuthority)
        )
        #expect(try IdentityCodec.decode(IdentityCodec.encode(.module(module)) { k, _ in k }) { k, _ in k } == .module(module))
    }
}

struct FastVerifyTests {
    @Test func fastPathAgreesWithTheFullDecodeOnTheGoldenStream() throws {
        let lines = try String(contentsOfFile: fixturesDirectory() + "/events/lifecycle.jsonl", encoding: .utf8).split(separator: "\n").map {
            Array($0.utf8)
        }
        var prev = EventRecord.genesisHash
        for (i, line) in lines.enumerated() {
            #expect(EventRecord.layout(line, 0..<line.count) != nil, "line \(i + 1) took the slow path")
            let fast = try EventRecord.fastVerified(line, expectedSeq: UInt64(i + 1), prevHash: prev).get()
            let full = try EventRecord.verified(line, expectedSeq: UInt64(i + 1), prevHash: prev).get()
            #expect(fast.seq == full.seq && fast.type == full.type && fast.deviceId == full.deviceId && fast.moduleId == full.moduleId)
            #expect(fast.payloadBytes == full.payloadBytes)
            #expect(fast.hash == full.hash)
            #expect(fast.disabled == (full.payload["status"] == .string("disabled")))
            // Any single flipped byte is caught (hash, sequence or chain) by the fast path.
            for position in stride(from: 0, to: line.count, by: 37) {
                var bad = line
                bad[position] ^= 0x01
                #expect(
                    (try? EventRecord.fastVerified(bad, expectedSeq: UInt64(i + 1), prevHash: prev).get()) == nil,
                    "flip at \(position) of line \(i + 1)"
                )
            }
            prev = full.hash
        }
    }

    @Test func unusualRecordsFallBackToTheFullDecode() throws {
        let record = EventRecord(
            seq: 1,
            time: .unset,
            type: .deviceCreated,
            deviceId: "d",
            moduleId: nil,
            actor: #"a","deviceId":"evil"#,
            requestId: "r",
            payload: .object(["status": .string("disabled")]),
            prevHash: EventRecord.genesisHash
        )
        let fast = try EventRecord.fastVerified(record.encoded, expectedSeq: 1, prevHash: EventRecord.genesisHash).get()
        #expect(fast.deviceId == "d")
        #expect(fast.disabled)
    }
}

/// The writer's direct canonical encoding of identities must be byte for byte the canonical JSON
/// of the codec's tree (the form replay, audit and third-party verifiers rebuild).
struct CanonicalIdentityTests {
    func strings(_ random: inout SeededRandom) -> String? {
        let pool = ["", "plain", "quote\"d", "back\\slash", "tab\there", "line\nbreak", "ctl\u{1}", "ünïcödé", "emoji 🚀", "a/b:c"]
        let pick = Int(random.next() % UInt64(pool.count + 1))
        return pick == pool.count ? nil : pool[pick]
    }

    func tags(_ random: inout SeededRandom) -> [String: JSONValue] {
        [
            "b": .string(strings(&random) ?? "x"), "a": .int(Int64(random.next() % 1000)), "Z": .bool(random.next() % 2 == 0), "nil": .null,
            "nested": .object(["z": .array([.int(1), .number("2.5"), .string("q\"")]), "é": .object([:])]), "": .string(""),
        ]
    }

    @Test func directEncodingEqualsTheTreeEncoding() {
        var random = SeededRandom(seed: 7)
        let sealed: (String, IdentityCodec.KeySlot) -> String = { key, slot in "sealed(\(key)|\(slot.deviceId)/\(slot.moduleId ?? "")/\(slot.name))" }
        for i in 0..<300 {
            let symmetric = SymmetricKey(primaryKey: i % 3 == 0 ? nil : "p\(i)", secondaryKey: i % 5 == 0 ? nil : "s\(i)")
            let thumbs = X509Thumbprint(primaryThumbprint: strings(&random), secondaryThumbprint: strings(&random))
            let types: [AuthenticationType] = [.sas, .selfSigned, .certificateAuthority, .none]
            var validity = CredentialValidity()
            if i % 3 == 1 { validity.primary = .init(notBefore: Timestamp(ticks: Int64(i)), notAfter: Timestamp(ticks: Int64(i) * 1_000 + 1)) }
            if i % 4 == 1 { validity.secondary = .init(notAfter: Timestamp(ticks: 639_028_224_000_000_000), expiryNoticed: i % 8 == 1) }
            let auth = Authentication(type: types[i % 4], symmetricKey: symmetric, x509Thumbprint: thumbs, validity: validity)
            let twin = i % 4 == 0 ? nil : TwinState(tags: i % 8 == 1 ? [:] : tags(&random), version: Int64(i), etag: "AAAAAAAAAAE=")
            let device = Device(
                deviceId: "dev-\(i)",
                generationId: "\(i)",
                etag: "MQ==",
                connectionState: i % 2 == 0 ? .connected : .disconnected,
                status: i % 3 == 0 ? .disabled : .enabled,
                statusReason: strings(&random),
                connectionStateUpdatedTime: Timestamp(ticks: Int64(i) * 12_345),
                statusUpdatedTime: .unset,
                lastActivityTime: Timestamp(ticks: 639_028_224_000_000_000 + Int64(i)),
                cloudToDeviceMessageCount: Int64(i),
                authentication: auth,
                capabilities: DeviceCapabilities(iotEdge: i % 2 == 1),
                deviceScope: strings(&random),
                parentScopes: i % 3 == 0 ? [] : ["ms-azure-iot-edge://p-\(i)", "x\"y"],
                twin: twin,
                restoredFrom: i % 7 == 0 ? UInt64(i) + 1 : nil
            )
            let module = Module(
                deviceId: "dev-\(i)",
                moduleId: "m\(i)",
                managedBy: strings(&random),
                generationId: "\(i)",
                etag: "Mg==",
                connectionState: .connected,
                lastActivityTime: Timestamp(ticks: Int64(i)),
                cloudToDeviceMessageCount: 3,
                authentication: auth,
                twin: twin,
                restoredFrom: i % 6 == 0 ? UInt64(Int64.max) - UInt64(i) : nil
            )
            for identity in [Identity.device(device), .module(module)] {
                let direct = IdentityCodec.canonicalBytes(identity, key: sealed)
                let tree = CanonicalJSON.encode(IdentityCodec.encode(identity, key: sealed))
                #expect(direct == tree, "\(String(decoding: direct, as: UTF8.self))\n\(String(decoding: tree, as: UTF8.self))")
            }
        }
    }
}
