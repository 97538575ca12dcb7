import Foundation
import LMDB
import RegistryTesting
import Synchronization
import SystemBytes
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The batch scans the log verifier is built on: every entry once, in key order, whatever the
/// batch size and the number of shares; early stops; in-place comparison.
struct BatchScanTests {
    /// A database of `count` entries with values of varying length (some empty).
    func filled(_ dir: String, count: Int) throws -> (Environment, Database, [([UInt8], [UInt8])]) {
        let env = try Environment(configuration: .init(path: dir))
        let db = try env.openDatabase("kv")
        var entries: [([UInt8], [UInt8])] = []
        for i in 0..<count {
            entries.append((bytes(String(format: "k%05d", i)), Array(repeating: UInt8(i % 251), count: (i * 37) % 300)))
        }
        try env.write { txn in
            for (k, v) in entries { try txn.put(db, k, v) }
        }
        return (env, db, entries)
    }

    @Test(arguments: [1, 7, 64, 1000])
    func batchesHandEveryEntryOnceInOrder(entries: Int) throws {
        try withTemporaryDirectory { dir in
            let (env, db, expected) = try filled(dir, count: 500)
            var seen: [([UInt8], [UInt8])] = []
            try env.read { txn in
                try txn.scanBatches(db, entries: entries) { batch in
                    #expect(batch.count <= entries)
                    for i in 0..<batch.count { seen.append((batch.key(i), batch.value(i))) }
                    return true
                }
            }
            #expect(seen.map(\.0) == expected.map(\.0))
            #expect(seen.map(\.1) == expected.map(\.1))
        }
    }

    @Test(arguments: [(1, 1), (64, 2), (100, 8), (499, 3), (10_000, 4)])
    func parallelScansKeepOrderAndResults(entries: Int, parts: Int) throws {
        try withTemporaryDirectory { dir in
            let (env, db, expected) = try filled(dir, count: 500)
            var seen: [([UInt8], [UInt8])] = []
            var lengths: [Int] = []
            try env.read { txn in
                try txn.scanParallel(db, entries: entries, parts: parts, transform: { batch in batch.values.map(\.count) }) { shares in
                    #expect(shares.count == parts)
                    for (batch, result) in shares {
                        #expect(result.count == batch.count)
                        for i in 0..<batch.count { seen.append((batch.key(i), batch.value(i))) }
                        lengths += result
                    }
                    return true
                }
            }
            #expect(seen.map(\.0) == expected.map(\.0))
            #expect(seen.map(\.1) == expected.map(\.1))
            #expect(lengths == expected.map(\.1.count))
        }
    }

    @Test func scansStopWhenTheBodySaysSoAndStartWhereAsked() throws {
        try withTemporaryDirectory { dir in
            let (env, db, _) = try filled(dir, count: 300)
            var calls = 0
            var first: [UInt8]?
            try env.read { txn in
                try txn.scanParallel(db, from: bytes("k00100"), entries: 64, parts: 2, transform: { _ in 0 }) { shares in
                    calls += 1
                    if first == nil { first = shares.first { !$0.batch.isEmpty }?.batch.key(0) }
                    return false
                }
            }
            #expect(calls == 1)
            #expect(first == bytes("k00100"))
            calls = 0
            try env.read { txn in
                try txn.scanBatches(db, from: bytes("k00290"), entries: 4) { batch in
                    calls += 1
                    return calls < 2
                }
            }
            #expect(calls == 2)
        }
    }

    @Test func valuesCompareInPlace() throws {
        try withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir))
            let db = try env.openDatabase("kv")
            try env.write { txn in try txn.put(db, bytes("k"), bytes("{\"payload\":{\"a\":1},\"x\":2}")) }
            let other = bytes("..{\"a\":1}..")
            let answers = try env.read { txn in
                [
                    try txn.value(db, bytes("k"), at: 11..<18, equals: other, 2..<9),
                    try txn.value(db, bytes("k"), at: 10..<17, equals: other, 2..<9),
                    try txn.value(db, bytes("k"), at: 11..<19, equals: other, 2..<9),  // lengths differ
                    try txn.value(db, bytes("k"), at: 20..<99, equals: other, 2..<81),  // out of range
                    try txn.value(db, bytes("missing"), at: 0..<1, equals: other, 0..<1),
                ]
            }
            #expect(answers == [true, false, false, false, nil])
        }
    }

    @Test func byteSearchFromTheEndAndKeyOrder() {
        let text = bytes(",\"a\":1,\"seq\":2,\"seq\":3}")
        #expect(ByteScan.lastIndex(of: bytes(",\"seq\":"), in: text) == 14)
        #expect(ByteScan.lastIndex(of: bytes(",\"seq\":"), in: text, to: 20) == 6)
        #expect(ByteScan.lastIndex(of: bytes(",\"seq\":"), in: text, from: 7) == 14)
        #expect(ByteScan.lastIndex(of: bytes(",\"none\":"), in: text) == nil)
        // LMDB's default order: bytes unsigned, then the shorter first.
        let keys = ["a", "a\u{0}m", "a-", "a0", "ab", "b", "\u{7f}"].map(bytes)
        for (i, a) in keys.enumerated() {
            for (j, b) in keys.enumerated() {
                #expect(ByteScan.compare(a, 0..<a.count, b, 0..<b.count) == (i < j ? -1 : i > j ? 1 : 0))
            }
        }
    }

    @Test func fingerprintsDependOnTheBytesOfTheRangeOnly() {
        let a = bytes("xx aes256gcm:QUJDREVGR0hJSktMTU5PUFFSU1RVVldY yy")
        let b = bytes("aes256gcm:QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
        // The same bytes at another offset of another buffer: the same fingerprint.
        #expect(ByteScan.fingerprint(a, 3..<(3 + b.count)) == ByteScan.fingerprint(b, 0..<b.count))
        // One byte changed anywhere (in the 8-byte words or in the tail), or one byte more or
        // less: another fingerprint.
        var seen: Set<UInt64> = [ByteScan.fingerprint(b, 0..<b.count)]
        for i in b.indices {
            var changed = b
            changed[i] ^= 1
            seen.insert(ByteScan.fingerprint(changed, 0..<changed.count))
        }
        seen.insert(ByteScan.fingerprint(b, 0..<(b.count - 1)))
        seen.insert(ByteScan.fingerprint(b, 1..<b.count))
        #expect(seen.count == b.count + 3)
        #expect(ByteScan.fingerprint(b, 5..<5) == ByteScan.fingerprint(a, 0..<0))
    }
}
