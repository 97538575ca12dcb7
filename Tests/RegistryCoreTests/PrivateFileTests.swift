import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// The one way secret files are written (`PrivateFile`): exclusive creation, no links followed.
struct PrivateFileTests {
    @Test func refusingLeavesAnExistingFileAsItWas() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/secret"
            try PrivateFile.write(Array("first".utf8), to: path, existing: .refuse)
            #expect(throws: StoreError.self) { try PrivateFile.write(Array("second".utf8), to: path, existing: .refuse) }
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "first")
            // No temporary file is left behind by the refusal.
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["secret"])
        }
    }

    @Test func aSymbolicLinkAtTheDestinationIsReplacedNotFollowed() throws {
        try withTemporaryDirectory { dir in
            let elsewhere = dir + "/elsewhere"
            try "untouched".write(toFile: elsewhere, atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: dir + "/secret", withDestinationPath: elsewhere)
            try PrivateFile.write(Array("key".utf8), to: dir + "/secret", existing: .replace)
            #expect(try String(contentsOfFile: elsewhere, encoding: .utf8) == "untouched")
            #expect(try FileManager.default.attributesOfItem(atPath: dir + "/secret")[.type] as? FileAttributeType == .typeRegular)
            #expect(try String(contentsOfFile: dir + "/secret", encoding: .utf8) == "key")
        }
    }

    @Test func copiesAreOwnerOnlyAndWhole() throws {
        try withTemporaryDirectory { dir in
            let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/source"))
            try withUmask(0) { try PrivateFile.copy(from: dir + "/source", to: dir + "/copy", existing: .refuse) }
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: dir + "/copy"))) == bytes)
            #expect(try FileManager.default.attributesOfItem(atPath: dir + "/copy")[.posixPermissions] as? Int == 0o600)
        }
    }
}
