import Foundation
import RegistryCore
import RegistryTesting
import Testing

@testable import RegistryAPI
@testable import RegistryTransfer

/// Issue 17 items 2 and 6 for imports: the line decoder survives any line (fuzzed against the
/// tree path it must agree with), and the line reader keeps a line without end out of memory.
struct ImportHardeningTests {
    @Test func fuzzTheImportLineDecoderAgainstTheTreePath() {
        let fuzzer = Fuzzer(
            corpus: [
                #"{"authentication":{"symmetricKey":{"primaryKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","secondaryKey":null},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"deviceScope":null,"eTag":"MQ==","id":"dev-0000000","parentScopes":[],"status":"disabled","statusReason":null,"twinETag":"AAAAAAAAAAE="}"#,
                #"{"id":"a","importMode":"deleteIfMatchETag","eTag":"Mw=="}"#,
                #"{ "id" : "cam-7", "importMode" : "CreateOrUpdateIfMatchETag", "authentication" : { "type" : "selfSigned", "x509Thumbprint" : { "primaryThumbprint" : "1111111111111111111111111111111111111111" } } }"#,
                #"{"id":"m","moduleId":"mod","importMode":"create","tags":{"a":[1,{"b":null}]}}"#,
            ],
            dictionary: ["{", "}", "\"", ":", ",", "\\u0000", "\\", "null", "\"importMode\":", "\"id\":", "\"eTag\":", "\"status\":\"enabled\""],
            nestings: [("[", "]"), ("{\"tags\":", "}")]
        )
        var taken = 0
        let slow = fuzzer.run(seed: 5) { line in
            let fast = ImportLineDecoder.command(line)
            let tree = (try? JSONParser.parse(line)).flatMap { try? ImportMode.command(for: $0) }
            if let fast {
                taken += 1
                #expect(
                    tree?.0 == fast.0 && tree?.1 == fast.1,
                    "the decoder and the tree path disagree on \(String(decoding: line.prefix(300), as: UTF8.self))"
                )
            }
        }
        #expect(slow.isEmpty, "inputs over the time bound: \(slow)")
        #expect(taken > 0)
    }

    @Test func aLineOverTheBoundIsReportedAndSkippedWithoutBeingKept() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/import.jsonl"
            var text = #"{"id":"first"}"# + "\n"
            text += String(repeating: "x", count: 3000) + "\n"  // over a 1,000-byte bound
            text += #"{"id":"second"}"# + "\n"
            text += String(repeating: "y", count: 5000)  // over the bound, and no final newline
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            let reader = try #require(LineReader(path: path, maximumLineBytes: 1000))
            var lines: [String] = []
            while let next = reader.next() {
                switch next {
                case .line(let bytes): lines.append(String(decoding: bytes, as: UTF8.self))
                case .tooLong(let length): lines.append("tooLong(\(length))")
                }
            }
            #expect(lines == [#"{"id":"first"}"#, "tooLong(3000)", #"{"id":"second"}"#, "tooLong(5000)"])
            #expect(reader.position == text.utf8.count)
        }
    }

    @Test func aFileWithoutNewlinesIsReadInBoundedChunks() throws {
        try withTemporaryDirectory { dir in
            // 5 MiB with no newline: read through 1 MiB chunks, reported as one line too long.
            let path = dir + "/one-line.jsonl"
            _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: UInt8(ascii: "{"), count: 5 << 20))
            let reader = try #require(LineReader(path: path))
            guard case .tooLong(let length)? = reader.next() else {
                Issue.record("expected a line too long")
                return
            }
            #expect(length == 5 << 20)
            #expect(reader.next() == nil)
        }
    }
}
