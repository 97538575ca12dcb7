import Foundation
import LMDB
import RegistryTesting
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
private func seqKey(_ i: UInt64) -> [UInt8] { withUnsafeBytes(of: i.bigEndian) { Array($0) } }

struct TransactionTests {
    @Test func commitMakesWritesVisibleAndAbortDiscardsThem() throws {
        try withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir))
            let db = try env.openDatabase("kv")
            try env.write { txn in try txn.put(db, bytes("a"), bytes("1")) }
            struct Boom: Error {}
            #expect(throws: Boom.self) {
                try env.write { txn in
                    try txn.put(db, bytes("b"), bytes("2"))
                    try txn.put(db, bytes("a"), bytes("changed"))
                    throw Boom()
                }
            }
            try env.read { txn in
                let v1 = try txn.get(db, bytes("a"))
                #expect(v1 == bytes("1"))
                let v2 = try txn.get(db, bytes("b"))
                #expect(v2 == nil)
            }
            // A write transaction sees its own writes before committing.
            try env.write { txn in
                try txn.put(db, bytes("c"), bytes("3"))
                let v3 = try txn.get(db, bytes("c"))
                #expect(v3 == bytes("3"))
                let v4 = try txn.delete(db, bytes("a"))
                #expect(v4)
                let v5 = try txn.delete(db, bytes("missing"))
                #expect(!v5)
            }
            try env.read { txn in
                let v6 = try txn.get(db, bytes("a"))
                #expect(v6 == nil)
                let v7 = try txn.statistics(db).entries
                #expect(v7 == 1)
            }
        }
    }

    @Test func manyReadTransactionsOnOneThread() throws {
        try withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir))
            let db = try env.openDatabase("kv")
            try env.write { txn in try txn.put(db, bytes("k"), bytes("v")) }
            // Sequential: thousands of short read transactions on this thread.
            for _ in 0..<5_000 {
                #expect(try env.read { try $0.get(db, bytes("k")) } == bytes("v"))
            }
            // Nested: with MDB_NOTLS a second read transaction on the same thread is allowed
            // (without it LMDB answers MDB_BAD_RSLOT).
            func nest(_ depth: Int) throws -> Int {
                try env.read { txn in
                    let v8 = try txn.get(db, bytes("k"))
                    #expect(v8 == bytes("v"))
                    return depth == 0 ? 0 : 1 + (try nest(depth - 1))
                }
            }
            #expect(try nest(50) == 50)
        }
    }

    @Test func concurrentReadTasks() async throws {
        try await withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir))
            let db = try env.openDatabase("kv")
            try env.write { txn in
                for i in 0..<100 { try txn.put(db, bytes("k\(i)"), bytes("v\(i)")) }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in 0..<64 {
                    group.addTask {
                        for i in 0..<100 {
                            let value = try env.read { try $0.get(db, bytes("k\((i + t) % 100)")) }
                            #expect(value == bytes("v\((i + t) % 100)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func mapGrowsFromATinyMapTo100kRecords() throws {
        try withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir, mapSize: 64 << 10))
            let initial = env.mapSize
            let db = try env.openDatabase("log")
            let value = [UInt8](repeating: 0xAB, count: 200)
            var seq: UInt64 = 0
            for _ in 0..<100 {
                try env.write { txn in
                    var local = seq
                    for _ in 0..<1_000 {
                        local += 1
                        try txn.put(db, seqKey(local), value, flags: .append)
                    }
                    seq = local
                }
            }
            #expect(env.mapSize > initial * 100)
            try env.read { txn in
                let v9 = try txn.statistics(db).entries
                #expect(v9 == 100_000)
                let v10 = try txn.get(db, seqKey(1))
                #expect(v10 == value)
                let v11 = try txn.get(db, seqKey(100_000))
                #expect(v11 == value)
            }
        }
    }

    @Test func commitFailureLeavesTheEnvironmentUsable() throws {
        try withTemporaryDirectory { dir in
            // Growth off, so MAP_FULL reaches the body; the body swallows it and returns, so the
            // wrapper must not commit a poisoned transaction nor free it twice.
            let env = try Environment(configuration: .init(path: dir, mapSize: 64 << 10, growsAutomatically: false))
            let db = try env.openDatabase("kv")
            try env.write { txn in try txn.put(db, bytes("before"), bytes("1")) }
            var sawMapFull = false
            #expect(throws: LMDBError.mapFull) {
                try env.write { txn in
                    do {
                        for i in 0..<10_000 { try txn.put(db, bytes("k\(i)"), [UInt8](repeating: 1, count: 500)) }
                    } catch let error as LMDBError where error == .mapFull {
                        sawMapFull = true
                    }
                }
            }
            #expect(sawMapFull)
            // That write reached mdb_txn_commit with a poisoned transaction: LMDB refused and freed
            // it. Had the wrapper aborted it again, the environment's write slot would be corrupt.
            try env.write { txn in try txn.put(db, bytes("after"), bytes("2")) }
            try env.read { txn in
                let v12 = try txn.get(db, bytes("before"))
                #expect(v12 == bytes("1"))
                let v13 = try txn.get(db, bytes("after"))
                #expect(v13 == bytes("2"))
                let v14 = try txn.get(db, bytes("k0"))
                #expect(v14 == nil)
            }
            // Growing by hand makes room again.
            try env.grow()
            try env.grow()
            try env.write { txn in
                for i in 0..<100 { try txn.put(db, bytes("k\(i)"), [UInt8](repeating: 1, count: 500)) }
            }
            #expect(try env.read { try $0.statistics(db).entries } == 102)
        }
    }

    @Test func readerKeepsItsSnapshotWhileAWriterCommits() throws {
        try withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir))
            let db = try env.openDatabase("kv")
            try env.write { txn in try txn.put(db, bytes("k"), bytes("old")) }
            try env.read { txn in
                let v15 = try txn.get(db, bytes("k"))
                #expect(v15 == bytes("old"))
                // A writer on another thread commits while this read transaction is open.
                let done = DispatchSemaphore(value: 0)
                let writer = Thread {
                    try! env.write { w in
                        try w.put(db, bytes("k"), bytes("new"))
                        try w.put(db, bytes("k2"), bytes("added"))
                    }
                    done.signal()
                }
                writer.start()
                done.wait()
                let v16 = try txn.get(db, bytes("k"))
                #expect(v16 == bytes("old"))
                let v17 = try txn.get(db, bytes("k2"))
                #expect(v17 == nil)
            }
            try env.read { txn in
                let v18 = try txn.get(db, bytes("k"))
                #expect(v18 == bytes("new"))
                let v19 = try txn.get(db, bytes("k2"))
                #expect(v19 == bytes("added"))
            }
        }
    }

    @Test func appendRefusesOutOfOrderKeys() throws {
        try withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir))
            let db = try env.openDatabase("log")
            try env.write { txn in
                try txn.put(db, seqKey(1), bytes("a"), flags: .append)
                try txn.put(db, seqKey(2), bytes("b"), flags: .append)
            }
            #expect(throws: LMDBError.keyExists) {
                try env.write { txn in try txn.put(db, seqKey(1), bytes("again"), flags: .append) }
            }
            #expect(throws: LMDBError.keyExists) {
                try env.write { txn in try txn.put(db, seqKey(2), bytes("x"), flags: .noOverwrite) }
            }
        }
    }

    @Test func cursorsWalkInKeyOrder() throws {
        try withTemporaryDirectory { dir in
            let env = try Environment(configuration: .init(path: dir))
            let db = try env.openDatabase("kv")
            try env.write { txn in
                for k in ["b", "d", "a", "c"] { try txn.put(db, bytes(k), bytes(k.uppercased())) }
            }
            try env.read { txn in
                try txn.withCursor(db) { cursor in
                    let v20 = try cursor.first()?.key
                    #expect(v20 == bytes("a"))
                    let v21 = try cursor.next()?.value
                    #expect(v21 == bytes("B"))
                    let v22 = try cursor.seek(atLeast: bytes("bb"))?.key
                    #expect(v22 == bytes("c"))
                    let v23 = try cursor.previous()?.key
                    #expect(v23 == bytes("b"))
                    let v24 = try cursor.last()?.key
                    #expect(v24 == bytes("d"))
                    let v25 = try cursor.next()
                    #expect(v25 == nil)
                    let v26 = try cursor.seek(exactly: bytes("zz"))
                    #expect(v26 == nil)
                }
                var seen: [String] = []
                try txn.scan(db, from: bytes("b")) { key, _ in
                    seen.append(String(decoding: key, as: UTF8.self))
                    return seen.count < 2
                }
                #expect(seen == ["b", "c"])
            }
        }
    }

    @Test func filesAreOwnerOnly() throws {
        try withTemporaryDirectory { dir in
            _ = try Environment(configuration: .init(path: dir))
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/data.mdb")
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
        }
    }

    @Test func flagsMapToLMDBConstants() {
        // A wrapper once mapped database flags to environment constants; pin every value.
        #expect(DatabaseFlags.create.rawValue == 0x40000)
        #expect(DatabaseFlags.reverseKey.rawValue == 0x02)
        #expect(DatabaseFlags.duplicateSort.rawValue == 0x04)
        #expect(DatabaseFlags.integerKey.rawValue == 0x08)
        #expect(PutFlags.noOverwrite.rawValue == 0x10)
        #expect(PutFlags.noDuplicateData.rawValue == 0x20)
        #expect(PutFlags.append.rawValue == 0x20000)
        #expect(EnvironmentFlags.noSync.rawValue == 0x10000)
        #expect(EnvironmentFlags.noMetaSync.rawValue == 0x40000)
        #expect(EnvironmentFlags.readOnly.rawValue == 0x20000)
        #expect(LMDBError.mapFull.code == -30792)
        #expect(LMDBError.keyExists.description.contains("MDB_KEYEXIST"))
    }
}
