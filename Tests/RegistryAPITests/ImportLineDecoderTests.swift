import RegistryCore
import RegistryTesting
import Testing

@testable import RegistryAPI
@testable import RegistryTransfer

/// The byte decoder of plain import lines against the definition (JSON tree, then
/// `ImportMode.command(for:)`): for every line it takes, the same command and operation; the
/// lines it must leave to the tree path, left.
struct ImportLineDecoderTests {
    /// What the tree path makes of a line: the command and operation, or nil for an error.
    func tree(_ line: String) -> (Command, String)? {
        guard let json = try? JSONParser.parse(line) else { return nil }
        return try? ImportMode.command(for: json)
    }

    func fast(_ line: String) -> (Command, String)? { ImportLineDecoder.command(Array(line.utf8)) }

    /// The decoder's promise for one line: nothing, or exactly the tree path's answer.
    func check(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let fast = fast(line) else { return }
        let tree = tree(line)
        #expect(tree != nil, "taken by the decoder, refused by the tree path: \(line)", sourceLocation: sourceLocation)
        #expect(tree?.0 == fast.0 && tree?.1 == fast.1, "different commands for \(line)", sourceLocation: sourceLocation)
    }

    @Test func exportedLinesAreTakenAndMeanWhatTheTreeSays() throws {
        let lines = [
            // `registryd export` as it writes a device (keys, nulls, empty scopes, etags).
            #"{"authentication":{"symmetricKey":{"primaryKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","secondaryKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"deviceScope":null,"eTag":"MQ==","id":"dev-0000000","parentScopes":[],"status":"disabled","statusReason":null,"twinETag":"AAAAAAAAAAE="}"#,
            // Keys excluded, an edge device with scopes, a reason.
            #"{"authentication":{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"type":"sas"},"capabilities":{"iotEdge":true},"deviceScope":"ms-azure-iot-edge://edge-1-637","eTag":"Mg==","id":"edge-1","parentScopes":["ms-azure-iot-edge://p-1", null],"status":"enabled","statusReason":"maintenance window","twinETag":"AAAAAAAAAAE="}"#,
            // X.509 thumbprints, Azure's own spacing and import modes in other cases.
            #"  { "id" : "cam-7", "importMode" : "CreateOrUpdateIfMatchETag", "eTag" : "AAAAAAAAAAM=", "authentication" : { "type" : "selfSigned", "x509Thumbprint" : { "primaryThumbprint" : "1111111111111111111111111111111111111111", "secondaryThumbprint" : "2222222222222222222222222222222222222222" } } }  "#,
            #"{"id":"a","importMode":"create","status":"ENABLED"}"#,
            #"{"id":"a","importMode":"update"}"#,
            #"{"id":"a","importMode":"updateIfMatchETag","eTag":"*"}"#,
            #"{"id":"a","importMode":"updateIfMatchETag"}"#,
            #"{"id":"a","importMode":"delete","deviceId":"ignored"}"#,
            #"{"id":"a","importMode":"deleteIfMatchETag","eTag":"Mw=="}"#,
            #"{"id":"a","importMode":null,"moduleId":null,"tags":null,"properties":null,"authentication":null,"capabilities":null,"parentScopes":null}"#,
            #"{"id":"a","authentication":{},"capabilities":{}}"#,
            #"{"id":"a","authentication":{"symmetricKey":null,"x509Thumbprint":{}},"capabilities":{"iotEdge":null}}"#,
            #"{"id":"a","authentication":{"type":"certificateAuthority"}}"#,
            // The tree path refuses these later (bad id, bad key): the same command goes to the rules.
            #"{"id":"","importMode":"create"}"#,
            #"{"id":"has space","authentication":{"symmetricKey":{"primaryKey":"not base64"}}}"#,
            "{\"id\":\"tabs\"\t,\r\n\"status\":\"disabled\"}\r",
        ]
        for line in lines {
            #expect(fast(line) != nil, "the decoder should take \(line)")
            check(line)
        }
    }

    @Test func unusualLinesAreLeftToTheTreePath() {
        let lines = [
            // Member names in another case, or unknown, or twice (the tree's last one wins).
            #"{"Id":"a"}"#,
            #"{"id":"a","Status":"disabled"}"#,
            #"{"id":"a","managedBy":"x"}"#,
            #"{"id":"a","id":"b"}"#,
            #"{"id":"a","status":"enabled","status":"disabled"}"#,
            #"{"id":"a","authentication":{"type":"sas","type":"none"}}"#,
            #"{"id":"a","authentication":{"symmetricKey":{"primaryKey":"x","PrimaryKey":"y"}}}"#,
            // Escapes and non-ASCII text.
            #"{"id":"a\u0062"}"#,
            #"{"id":"a","statusReason":"caf\u00e9"}"#,
            "{\"id\":\"a\",\"statusReason\":\"café\"}",
            // Modules, tags, properties, twin modes.
            #"{"id":"a","moduleId":"m"}"#,
            #"{"id":"a","tags":{"site":"x"}}"#,
            #"{"id":"a","properties":{}}"#,
            #"{"id":"a","importMode":"updateTwin","tags":{}}"#,
            #"{"id":"a","importMode":"updateTwin"}"#,
            #"{"id":"a","importMode":"UpdateTwinIfMatchETag","twinETag":"AAAAAAAAAAE="}"#,
            // Errors, which the tree path reports.
            #"{"id":"a","importMode":"upsert"}"#,
            #"{"id":"a","status":"sleeping"}"#,
            #"{"id":"a","status":1}"#,
            #"{"id":7}"#,
            #"{"id":null}"#,
            #"{"status":"enabled"}"#,
            #"{"id":"a","capabilities":{"iotEdge":"yes"}}"#,
            #"{"id":"a","parentScopes":"x"}"#,
            #"{"id":"a","parentScopes":[1]}"#,
            #"{"id":"a"} trailing"#,
            #"{"id":"a""#,
            #"{"id":"a",}"#,
            #"["id"]"#,
            "",
        ]
        for line in lines {
            #expect(fast(line) == nil, "the decoder should leave \(line)")
        }
    }

    /// Seeded lines built from plain and unusual pieces: whatever the decoder takes means what
    /// the tree path says, and it takes a good share of them (so this test can fail).
    @Test func generatedLinesNeverDisagree() {
        var random = SeededRandom(seed: 11)
        let pieces: [[String]] = [
            [#""id":"dev-1""#, #""id":"x.y:z""#, #""id":"""#, #""ID":"dev-1""#, #""id":1"#],
            [
                #""importMode":"create""#, #""importMode":"CREATEORUPDATE""#, #""importMode":"delete""#, #""importMode":"updateIfMatchETag""#,
                #""importMode":"updateTwin""#, #""importMode":"nope""#, #""importMode":null"#,
            ],
            [#""status":"enabled""#, #""status":"Disabled""#, #""status":null"#, #""status":"off""#, #""status":true"#],
            [#""eTag":"MQ==""#, #""eTag":"*""#, #""eTag":"\"MQ==\"""#, #""eTag":null"#, #""eTag":" ""#],
            [
                #""authentication":{"type":"sas","symmetricKey":{"primaryKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","secondaryKey":null}}"#,
                #""authentication":{"type":"none"}"#, #""authentication":{"type":"SelfSigned","x509Thumbprint":{"primaryThumbprint":"ab"}}"#,
                #""authentication":null"#, #""authentication":{"Type":"sas"}"#, #""authentication":[]"#,
            ],
            [
                #""capabilities":{"iotEdge":true}"#, #""capabilities":{"iotEdge":false}"#, #""capabilities":null"#,
                #""capabilities":{"iotedge":true}"#,
            ],
            [#""parentScopes":[]"#, #""parentScopes":["s1","s2"]"#, #""parentScopes":[null]"#, #""parentScopes":null"#, #""parentScopes":[{}]"#],
            [
                #""deviceScope":"scope""#, #""deviceScope":null"#, #""statusReason":"why not""#, #""twinETag":"AAAAAAAAAAE=""#, #""tags":null"#,
                #""tags":{"a":1}"#, #""moduleId":null"#, #""moduleId":"m1""#, #""properties":null"#, #""unknown":0"#,
            ],
        ]
        let spaces = ["", " ", "\t", "\n ", "\r\n"]
        var taken = 0
        let count = 3_000
        for _ in 0..<count {
            var members: [String] = []
            for group in pieces where Int.random(in: 0..<4, using: &random) > 0 {
                members.append(group[Int.random(in: 0..<group.count, using: &random)])
            }
            // An occasional duplicate member.
            if let first = members.first, Int.random(in: 0..<10, using: &random) == 0 { members.append(first) }
            members.shuffle(using: &random)
            let gap = { (r: inout SeededRandom) in spaces[Int.random(in: 0..<spaces.count, using: &r)] }
            let line = gap(&random) + "{" + members.map { gap(&random) + $0 + gap(&random) }.joined(separator: ",") + "}" + gap(&random)
            if fast(line) != nil { taken += 1 }
            check(line)
        }
        #expect(taken > count / 50, "the decoder took only \(taken) of \(count) lines")
    }
}
