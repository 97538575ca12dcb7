import Foundation
import RegistryCore
import RegistryTesting
import Testing

@testable import RegistryDelivery

#if canImport(Glibc)
    import Glibc
#endif

/// Item 8 of the hardening issue: a batch that failed halfway never leaves a torn JSON line
/// in front of the retried batch.
struct FileSinkTornLineTests {
    static func message(_ seq: UInt64) -> RouteMessage {
        RouteMessage(
            seq: seq,
            id: "m\(seq)",
            source: .deviceLifecycleEvents,
            applicationProperties: ["opType": "createDeviceIdentity", "deviceId": "d\(seq)"],
            systemProperties: [:],
            body: .object(["deviceId": .string("d\(seq)")])
        )
    }

    static func line(_ seq: UInt64) -> String { String(decoding: message(seq).encoded, as: UTF8.self) + "\n" }

    static func append(_ text: String, to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }

    /// What a write that failed after part of a line (or a crash in the middle of one) leaves:
    /// the next batch, from a sink that opens the file again as a retry does, starts on a
    /// fresh line.
    @Test func aPartialLineLeftInTheFileIsDroppedBeforeTheNextBatch() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/out.jsonl"
            let first = FileSink(path: path, maxFileBytes: 1 << 20, maxFiles: 2)
            #expect(await first.deliver([Self.message(1)]) == .delivered)
            await first.shutdown()
            try Self.append(String(Self.line(2).prefix(17)), to: path)

            let retry = FileSink(path: path, maxFileBytes: 1 << 20, maxFiles: 2)
            #expect(await retry.deliver([Self.message(2), Self.message(3)]) == .delivered)
            await retry.shutdown()
            let lines = try String(contentsOfFile: path, encoding: .utf8)
            #expect(lines == Self.line(1) + Self.line(2) + Self.line(3))
            for line in lines.split(separator: "\n") { _ = try JSONParser.parse(Array(line.utf8)) }
        }
    }

    @Test func aFileHoldingOnlyAPartialLineStartsEmpty() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/out.jsonl"
            try String(Self.line(1).prefix(40)).write(toFile: path, atomically: false, encoding: .utf8)
            let sink = FileSink(path: path, maxFileBytes: 1 << 20, maxFiles: 2)
            #expect(await sink.deliver([Self.message(1)]) == .delivered)
            await sink.shutdown()
            #expect(try String(contentsOfFile: path, encoding: .utf8) == Self.line(1))
        }
    }

    /// The failure path itself: the bytes of a batch that were written before the failure are
    /// cut off, back to the length the file had before it, whole lines included (the retry
    /// writes them again).
    @Test func aFailedBatchIsCutBackToTheLengthBeforeIt() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/out.jsonl"
            try Self.line(1).write(toFile: path, atomically: false, encoding: .utf8)
            let before = Self.line(1).utf8.count
            let descriptor = open(path, O_RDWR | O_APPEND)
            #expect(descriptor >= 0)
            defer { close(descriptor) }
            let partial = Array((Self.line(2) + String(Self.line(3).prefix(9))).utf8)
            #expect(write(descriptor, partial, partial.count) == partial.count)
            try FileSink.cut(descriptor, to: before, path: path)
            #expect(try String(contentsOfFile: path, encoding: .utf8) == Self.line(1))
            // Appending goes on at the new end.
            let next = Array(Self.line(2).utf8)
            #expect(write(descriptor, next, next.count) == next.count)
            #expect(try String(contentsOfFile: path, encoding: .utf8) == Self.line(1) + Self.line(2))
        }
    }

    @Test func wholeLinesEndAtTheLastNewlineAcrossBlocks() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/out.jsonl"
            // A torn tail longer than the 4 KiB read block, behind one whole line.
            let text = Self.line(1) + String(repeating: "x", count: 10_000)
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            let descriptor = open(path, O_RDONLY)
            defer { close(descriptor) }
            #expect(try FileSink.lengthOfWholeLines(descriptor, size: text.utf8.count, path: path) == Self.line(1).utf8.count)
        }
    }
}
