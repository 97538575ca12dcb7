import Foundation
import RegistryCore
import RegistryLMDB
import RegistryTesting
import Testing

/// Item 8 of the hardening issue: the data key and its point-in-time copy are owner-only from
/// their first byte, under the most permissive umask, and never written over.
#if os(Linux)
    @Suite(.serialized) struct SecretFileTests {
        static func mode(_ path: String) throws -> Int? {
            try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        }

        /// The events on `name`, and whether any changed its mode after it appeared.
        static func expectCreatedPrivate(_ name: String, in directory: String, events: [DirectoryWatch.Event]) throws {
            let own = events.filter { $0.name == name }
            #expect(!own.isEmpty, "the watch saw \(name) appear: \(events)")
            #expect(own.filter(\.isAttributeChange).isEmpty, "\(name) was chmod'ed after it appeared: \(own)")
            #expect(try mode(directory + "/" + name) == 0o600)
        }

        @Test func theDataKeyIsOwnerOnlyFromItsFirstByte() throws {
            try withTemporaryDirectory { dir in
                let directory = DataDirectory(path: dir + "/data")
                try directory.create()
                let watch = try DirectoryWatch(directory.path)
                let key = try withUmask(0) { try directory.loadDataKey(create: true) }
                try Self.expectCreatedPrivate("data.key", in: directory.path, events: watch.events())
                #expect(try directory.loadDataKey(create: false) == key)
            }
        }

        @Test func anUnreadableDataKeyIsNeverReplaced() throws {
            try withTemporaryDirectory { (dir: String) throws in
                let directory = DataDirectory(path: dir)
                // Not UTF-8, so not a key this binary can read: the start must stop, not make a new one.
                let damaged = Data([0xff, 0xfe, 0x00, 0x80])
                #expect(FileManager.default.createFile(atPath: directory.dataKeyPath, contents: damaged))
                #expect(throws: StoreError.self) { try directory.loadDataKey(create: true) }
                #expect(try Data(contentsOf: URL(fileURLWithPath: directory.dataKeyPath)) == damaged)
            }
        }

        @Test func aPointInTimeCopyOfTheDataKeyIsOwnerOnlyFromItsFirstByte() async throws {
            try await withTemporaryDirectory { dir in
                let store = try makeStore(dir + "/live")
                _ = try await store.execute(.createDevice(DeviceSpec(deviceId: "d")), actor: "t", requestId: "1")
                store.close()
                let source = try RegistryStorage(directory: DataDirectory(path: dir + "/live"), create: false, needsKeys: false)
                let target = DataDirectory(path: dir + "/copy")
                try target.create()
                let watch = try DirectoryWatch(target.path)
                _ = try withUmask(0) { try Replayer.materialize(source: source, until: .sequence(1), into: target) }
                try Self.expectCreatedPrivate("data.key", in: target.path, events: watch.events())
                let original = try Data(contentsOf: URL(fileURLWithPath: dir + "/live/data.key"))
                #expect(try Data(contentsOf: URL(fileURLWithPath: target.dataKeyPath)) == original)
            }
        }
    }
#endif
