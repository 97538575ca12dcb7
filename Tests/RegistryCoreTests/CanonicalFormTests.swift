import Foundation
import RegistryTesting
import Testing

@testable import RegistryCore

/// `CanonicalForm` must answer exactly what the full decode answers (parse, re-encode, compare):
/// the log verifier's fast path relies on it to refuse what replay refuses and nothing else.
struct CanonicalFormTests {
    /// The full decode's notion: the bytes re-encode to themselves.
    static func reference(_ bytes: [UInt8]) -> Bool {
        guard let value = try? JSONParser.parse(bytes) else { return false }
        return CanonicalJSON.encode(value) == bytes
    }

    static func referenceRecord(_ bytes: [UInt8]) -> Bool {
        guard let record = try? EventRecord.decode(bytes) else { return false }
        return record.encoded == bytes
    }

    static let documents: [String] = [
        #"{"":1,"a":[true,false,null],"b":{"c":"d"},"é":"ü","🚀":-12}"#,
        #"{"a\"b":1,"a#":2}"#,
        #"{"\u0001":"\b\f\n\r\t\u001f\"\\/","x":"a\u0000b"}"#,
        #"[1.5,-0.0,1e5,1E-5,-9223372036854775808,99999999999999999999,0]"#,
        #"{"nested":{"deeper":{"deepest":[[],{}]}}}"#,
        #""just a string""#,
        "-1",
    ]

    static var fuzzer: Fuzzer {
        Fuzzer(
            corpus: documents,
            dictionary: [
                " ", "\n", "\t", "\\u0041", "\\u001f", "\\u001F", "\\u0008", "\\u00e9", "\\/", "\\b", "\\\"", "-0", "0", "1.0", "e", "\"", "{", "}",
                "[", "]",
                ",", ":", "null", "true", "\"a\":1", "\"\":0", "é", "\u{7f}", "\\ud83d\\ude80",
            ],
            nestings: [("[", "]"), ("{\"a\":", "}")]
        )
    }

    @Test func agreesWithTheParserAndEncoder() {
        for document in Self.documents {
            let bytes = Array(document.utf8)
            #expect(CanonicalForm.isCanonical(bytes) == Self.reference(bytes), "\(document)")
        }
        var disagreements: [String] = []
        // Byte mutations: mostly invalid JSON, which both must refuse.
        _ = Self.fuzzer.run(seed: 18) { input in
            if CanonicalForm.isCanonical(input) != Self.reference(input) { disagreements.append(String(decoding: input.prefix(200), as: UTF8.self)) }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }

    /// The parser's nesting bound is the scanner's: one level past it is refused by both.
    @Test func nestingBoundIsTheParsers() {
        for depth in [JSONParser.maximumDepth, JSONParser.maximumDepth + 1] {
            let bytes = Array((String(repeating: "[", count: depth) + String(repeating: "]", count: depth)).utf8)
            #expect(CanonicalForm.isCanonical(bytes) == Self.reference(bytes), "depth \(depth)")
        }
    }

    static func records() throws -> [[UInt8]] {
        let golden = try String(contentsOfFile: fixturesDirectory() + "/events/lifecycle.jsonl", encoding: .utf8).split(separator: "\n").map {
            Array($0.utf8)
        }
        let odd = EventRecord(
            seq: 9_223_372_036_854_775_807,
            time: Timestamp(iso8601: "2024-02-29T23:59:59.9999999Z")!,
            type: .moduleTwinUpdated,
            deviceId: "d",
            moduleId: "m\"1",
            actor: "a\u{1}\"\\é",
            requestId: "",
            payload: .object(["tags": .object(["b": .int(-1), "a": .number("1.5")])]),
            prevHash: [UInt8](repeating: 0xAB, count: 32)
        )
        return golden + [odd.encoded]
    }

    @Test func agreesWithTheFullDecodeOnRecords() throws {
        let records = try Self.records()
        for record in records { #expect(CanonicalForm.isCanonicalRecord(record, 0..<record.count)) }
        let fuzzer = Fuzzer(
            corpus: records.map { String(decoding: $0, as: UTF8.self) },
            dictionary: [
                " ", "\\u0041", "-0", "1.0", ",\"zzz\":0", "\"moduleId\":\"m\",", "A", "F", "Z", ".0000000", "T", "t", "+00:00",
                "0001-01-01T00:00:00",
                "\"seq\":0", "\"schema\":2", "deviceUpdated", "2023-02-29", "24:", "\"type\":\"x\"",
            ],
            nestings: [("[", "]")]
        )
        var disagreements: [String] = []
        _ = fuzzer.run(seed: 4) { input in
            if CanonicalForm.isCanonicalRecord(input, 0..<input.count) != Self.referenceRecord(input) {
                disagreements.append(String(decoding: input.prefix(300), as: UTF8.self))
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }

    /// Valid JSON that departs from canonical form now and then (whitespace, member order, a
    /// duplicate, a needless or long escape, `-0`, upper-case hex): the two must agree on every
    /// document, and both answers must be common.
    @Test func agreesOnValidJSONWrittenLoosely() throws {
        let values = try Self.documents.map { try JSONParser.parse($0) }
        var writer = LooseJSONWriter(seed: 18, perMille: 15)
        var disagreements: [String] = []
        var (canonical, other) = (0, 0)
        for i in 0..<Fuzzer.iterations {
            let bytes = writer.write(values[i % values.count])
            let expected = Self.reference(bytes)
            if CanonicalForm.isCanonical(bytes) != expected { disagreements.append(String(decoding: bytes, as: UTF8.self)) }
            if expected { canonical += 1 } else { other += 1 }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
        #expect(canonical > Fuzzer.iterations / 10 && other > Fuzzer.iterations / 10, "\(canonical) canonical, \(other) not")
    }

    @Test func agreesOnRecordsWrittenLoosely() throws {
        let values = try Self.records().map { try JSONParser.parse($0) }
        var writer = LooseJSONWriter(seed: 4, perMille: 1)
        var disagreements: [String] = []
        var (canonical, other) = (0, 0)
        for i in 0..<Fuzzer.iterations {
            let bytes = writer.write(values[i % values.count])
            let expected = Self.referenceRecord(bytes)
            if CanonicalForm.isCanonicalRecord(bytes, 0..<bytes.count) != expected { disagreements.append(String(decoding: bytes, as: UTF8.self)) }
            if expected { canonical += 1 } else { other += 1 }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
        #expect(canonical > Fuzzer.iterations / 10 && other > Fuzzer.iterations / 10, "\(canonical) canonical, \(other) not")
    }

    /// Inside a larger buffer (a scan batch), only `bytes[range]` counts.
    @Test func readsOnlyItsRange() throws {
        let record = try Self.records()[0]
        let batch = Array("{\"x\":1}".utf8) + record + Array(" trailing".utf8)
        #expect(CanonicalForm.isCanonicalRecord(batch, 7..<(7 + record.count)))
        #expect(!CanonicalForm.isCanonicalRecord(batch, 7..<(8 + record.count)))
    }

    @Test func timesAreCanonicalExactlyWhenTheyReadBackToThemselves() {
        var random = SeededRandom(seed: 28)
        var texts = [
            "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000Z", "0001-01-01T00:00:00.0000001Z", "2024-02-29T00:00:00.0000000Z",
            "2023-02-29T00:00:00.0000000Z",
            "2021-05-12T08:48:08.7205939Z", "2021-05-12T08:48:08.7205939z", "2021-05-12t08:48:08.7205939Z", "2021-05-12T08:48:08.720593Z",
            "9999-12-31T23:59:59.9999999Z",
            "0000-12-31T23:59:59.9999999Z", "2021-04-31T00:00:00.0000000Z", "2021-05-12T24:00:00.0000000Z", "2021-05-12T08:48:08Z",
        ]
        for _ in 0..<5000 {
            // Valid ticks, and random digits in the canonical shape.
            let ticks = Int64(random.next() % 3_155_378_975_999_999_999)
            var text = Timestamp(ticks: ticks).iso8601
            texts.append(text)
            var bytes = Array(text.utf8)
            let at = Int(random.next() % UInt64(bytes.count))
            if bytes[at] >= 48, bytes[at] <= 57 { bytes[at] = 48 + UInt8(random.next() % 10) }
            text = String(decoding: bytes, as: UTF8.self)
            texts.append(text)
        }
        for text in texts {
            let reference = Timestamp(iso8601: text).map { $0.iso8601 == text } ?? false
            let bytes = Array(text.utf8)
            let canonical = bytes.withUnsafeBufferPointer { CanonicalForm.isCanonicalTime($0, 0..<bytes.count) }
            #expect(canonical == reference, "\(text)")
        }
    }
}

/// Writes JSON as a careless or hostile writer might: each choice departs from the canonical one
/// with probability `perMille`/1000, so a document is sometimes canonical and sometimes not.
struct LooseJSONWriter {
    var random: SeededRandom
    let perMille: UInt64

    init(seed: UInt64, perMille: UInt64) {
        random = SeededRandom(seed: seed)
        self.perMille = perMille
    }

    mutating func odd() -> Bool { random.next() % 1000 < perMille }

    mutating func write(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        write(value, into: &out)
        return out
    }

    mutating func space(_ out: inout [UInt8]) {
        if odd() { out.append([32, 10, 9, 13][Int(random.next() % 4)]) }
    }

    mutating func write(_ value: JSONValue, into out: inout [UInt8]) {
        space(&out)
        switch value {
        case .int(0) where odd(): out.append(contentsOf: Array("-0".utf8))
        case .string(let s): string(s, into: &out)
        case .array(let items):
            out.append(91)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(44) }
                write(item, into: &out)
            }
            out.append(93)
        case .object(let members):
            var keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            if keys.count > 1, odd() { keys.swapAt(0, Int(random.next() % UInt64(keys.count - 1)) + 1) }
            if let first = keys.first, odd() { keys.append(first) }  // a duplicate: the parser keeps the last
            out.append(123)
            for (i, key) in keys.enumerated() {
                if i > 0 { out.append(44) }
                space(&out)
                string(key, into: &out)
                space(&out)
                out.append(58)
                write(members[key]!, into: &out)
            }
            out.append(125)
        default: out.append(contentsOf: CanonicalJSON.encode(value))
        }
        space(&out)
    }

    mutating func string(_ s: String, into out: inout [UInt8]) {
        // Lowercase hex (hashes) sometimes in upper case.
        let text = s.utf8.count == 64 && odd() ? s.uppercased() : s
        out.append(34)
        for scalar in text.unicodeScalars {
            guard odd() else {
                out.append(contentsOf: CanonicalJSON.encode(.string(String(scalar))).dropFirst().dropLast())
                continue
            }
            switch scalar.value {
            case 0x2F: out.append(contentsOf: Array("\\/".utf8))
            case 0x10000...:
                let v = scalar.value - 0x10000
                out.append(contentsOf: Array(String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)).utf8))
            default:
                out.append(contentsOf: Array(String(format: random.next() % 2 == 0 ? "\\u%04x" : "\\u%04X", scalar.value).utf8))
            }
        }
        out.append(34)
    }
}
