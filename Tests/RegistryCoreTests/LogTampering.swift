import Foundation
import LMDB
import RegistryCore
import RegistryLMDB

/// Rewrites of a stored log, as an attacker with write access to the data directory (or a bad
/// disk) would make them. Each works on the whole log as a list of stored records (seq `i + 1`
/// at index `i`) and returns the list to store instead, with the key to store each under.
enum LogTampering {
    typealias Log = [(seq: UInt64, bytes: [UInt8])]

    /// How a rewritten record's `hash` member is filled in.
    enum HashStyle: CaseIterable {
        /// Over the stored bytes, as the fast path hashes them (and the rest of the log
        /// re-chained): the chain holds for a reader that does not check canonical form.
        case storedBytes
        /// Left as it was: the hash of the canonical content, which the rewrite did not change
        /// (the full decode's hash check passes, its canonical check does not).
        case canonical
    }

    /// A valid JSON rewrite of a canonical record that is not canonical.
    enum NonCanonical: CaseIterable {
        case spaceBeforePayload
        case payloadMembersReversed
        case needlessEscape
        case negativeZero
        case spaceInEnvelope
        case unknownMember
        case upperCaseHash
    }

    static func read(_ dir: String) throws -> Log {
        let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
        return try storage.read { txn, db in
            var log: Log = []
            try txn.scan(db.events) { key, value in
                log.append((StorageKey.sequence(from: key) ?? 0, value))
                return true
            }
            return log
        }
    }

    static func write(_ log: Log, to dir: String) throws {
        let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
        try storage.environment.write { txn in
            try txn.clear(storage.databases.events)
            for (seq, bytes) in log { try txn.put(storage.databases.events, StorageKey.sequence(seq), bytes) }
        }
    }

    /// A copy of the data directory `dir` (closed) at `copy`.
    static func copy(_ dir: String, to copy: String) throws {
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: dir, toPath: copy)
    }

    // MARK: the parts of a canonical record

    static func find(_ pattern: String, in bytes: [UInt8], last: Bool = false) -> Int? {
        let p = Array(pattern.utf8)
        guard bytes.count >= p.count else { return nil }
        let starts = Array(0...(bytes.count - p.count))
        return (last ? starts.reversed() : starts).first { bytes[$0..<($0 + p.count)].elementsEqual(p) }
    }

    /// Where the payload value sits (canonical order: after `"payload":`, before `,"prevHash":`).
    static func payloadRange(_ record: [UInt8]) -> Range<Int> {
        let start = find(",\"payload\":", in: record)! + 11
        return start..<find(",\"prevHash\":\"", in: record, last: true)!
    }

    /// The `,"hash":"…"` member (the first: actor and deviceId cannot hold it unescaped).
    static func hashMember(_ record: [UInt8]) -> Range<Int> {
        let start = find(",\"hash\":\"", in: record)!
        return start..<(start + 9 + 64 + 1)
    }

    static func storedPrevHash(_ record: [UInt8]) -> [UInt8] {
        let at = find(",\"prevHash\":\"", in: record, last: true)! + 13
        return Hex.decode(bytes: record[at..<(at + 64)])!
    }

    static func storedHash(_ record: [UInt8]) -> [UInt8] {
        let member = hashMember(record)
        return Hex.decode(bytes: record[(member.lowerBound + 9)..<(member.upperBound - 1)])!
    }

    /// `record` with its hash member recomputed over its stored bytes (the fast path's view).
    static func rehashedOverStoredBytes(_ record: [UInt8]) -> [UInt8] {
        let member = hashMember(record)
        let body = Array(record[..<member.lowerBound] + record[member.upperBound...])
        var out = record
        out.replaceSubrange(
            (member.lowerBound + 9)..<(member.upperBound - 1),
            with: Array(Hex.encode(EventRecord.chainHash(prevHash: storedPrevHash(record), body: body)).utf8)
        )
        return out
    }

    /// Every record after index `from` rebuilt on the (possibly new) hash of the one before it.
    static func rechain(_ log: Log, from: Int) throws -> Log {
        var out = log
        for i in (from + 1)..<out.count {
            let r = try EventRecord.decode(out[i].bytes)
            out[i].bytes =
                EventRecord(
                    seq: r.seq,
                    time: r.time,
                    type: r.type,
                    deviceId: r.deviceId,
                    moduleId: r.moduleId,
                    actor: r.actor,
                    requestId: r.requestId,
                    payload: r.payload,
                    prevHash: storedHash(out[i - 1].bytes),
                    schema: r.schema
                ).encoded
        }
        return out
    }

    // MARK: tampering

    /// One bit of a payload flipped, nothing re-hashed.
    static func flipBit(_ log: Log, at index: Int, offset: Int, bit: Int) -> Log {
        var out = log
        let payload = payloadRange(out[index].bytes)
        out[index].bytes[payload.lowerBound + offset % payload.count] ^= UInt8(1 << (bit % 8))
        return out
    }

    /// Two records' places exchanged.
    static func swap(_ log: Log, _ i: Int, _ j: Int) -> Log {
        var out = log
        (out[i].bytes, out[j].bytes) = (out[j].bytes, out[i].bytes)
        return out
    }

    static func drop(_ log: Log, at index: Int) -> Log {
        var out = log
        out.remove(at: index)
        return out
    }

    /// The payload of the record at `index` changed (a device's status reason, a module's
    /// `managedBy`), the record re-hashed in canonical form and the rest of the log re-chained:
    /// a consistent log that no longer says what the projections hold (when it is that
    /// identity's last event).
    static func rewritePayload(_ log: Log, at index: Int) throws -> Log {
        let r = try EventRecord.decode(log[index].bytes)
        guard case .object(var members) = r.payload else { throw EventTamperingError("payload is not an object") }
        members[r.moduleId == nil ? "statusReason" : "managedBy"] = .string("tampered")
        var out = log
        out[index].bytes =
            EventRecord(
                seq: r.seq,
                time: r.time,
                type: r.type,
                deviceId: r.deviceId,
                moduleId: r.moduleId,
                actor: r.actor,
                requestId: r.requestId,
                payload: .object(members),
                prevHash: r.prevHash,
                schema: r.schema
            ).encoded
        return try rechain(out, from: index)
    }

    /// The record at `index` rewritten as valid JSON that says the same but is not canonical.
    static func nonCanonical(_ log: Log, at index: Int, _ kind: NonCanonical, hash style: HashStyle) throws -> Log {
        var bytes = log[index].bytes
        let payload = payloadRange(bytes)
        func replace(_ pattern: String, with replacement: String, within range: Range<Int>) throws {
            guard let at = find(pattern, in: Array(bytes[range])).map({ $0 + range.lowerBound }) else { throw EventTamperingError("no \(pattern)") }
            bytes.replaceSubrange(at..<(at + pattern.utf8.count), with: Array(replacement.utf8))
        }
        switch kind {
        case .spaceBeforePayload:
            bytes.insert(32, at: payload.lowerBound)
        case .payloadMembersReversed:
            guard case .object(let members) = try JSONParser.parse(Array(bytes[payload])) else {
                throw EventTamperingError("payload is not an object")
            }
            let reversed = members.keys.sorted { $1.utf8.lexicographicallyPrecedes($0.utf8) }
                .map { CanonicalJSON.encode(.string($0)) + [58] + CanonicalJSON.encode(members[$0]!) }
            bytes.replaceSubrange(payload, with: [123] + Array(reversed.joined(separator: [44])) + [125])
        case .needlessEscape:
            // The identity's etag (base64: never escaped) with its first character as `\u00xx`.
            let at = try requireFound(find("\"etag\":\"", in: Array(bytes[payload]))) + payload.lowerBound + 8
            bytes.replaceSubrange(at..<(at + 1), with: Array(("\\u00" + Hex.encode([bytes[at]])).utf8))
        case .negativeZero:
            try replace("\"cloudToDeviceMessageCount\":0", with: "\"cloudToDeviceMessageCount\":-0", within: payload)
        case .spaceInEnvelope:
            try replace(",\"requestId\":\"", with: ",\"requestId\": \"", within: payload.upperBound..<bytes.count)
        case .unknownMember:
            bytes.insert(contentsOf: Array(",\"zzz\":0".utf8), at: bytes.count - 1)
        case .upperCaseHash:
            let member = hashMember(bytes)
            for i in (member.lowerBound + 9)..<(member.upperBound - 1) where bytes[i] >= 97 { bytes[i] -= 32 }
        }
        var out = log
        switch style {
        case .canonical:
            out[index].bytes = bytes
            return out
        case .storedBytes:
            out[index].bytes = rehashedOverStoredBytes(bytes)
            return try rechain(out, from: index)
        }
    }

    static func requireFound(_ value: Int?) throws -> Int {
        guard let value else { throw EventTamperingError("pattern not found") }
        return value
    }
}

struct EventTamperingError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
