import Foundation
import LMDB
import RegistryLMDB
import RegistryTesting
import Testing

@testable import RegistryCore

/// `audit verify` tied back to replay (issue 18): `LogVerifier`'s fast algorithm (byte-level
/// layout, parallel hashing, a key-order merge with the projections) must reach the verdict a
/// plain replay reaches (`PlainReplay`: the full decode of every record, `evolve` into
/// dictionaries, a value-by-value comparison with the projections). Seeded command histories
/// run through the real store; then the log is tampered with in copies of the data directory
/// and both verifiers must refuse each copy, at the same record for the same reason.
///
/// The seeds are fixed so CI is deterministic; `REGISTRYD_AUDIT_HISTORIES=N` runs N histories
/// (and `REGISTRYD_AUDIT_COMMANDS` their length) by hand.
struct AuditDifferentialTests {
    static let seeds: [UInt64] = (1...environment("REGISTRYD_AUDIT_HISTORIES", default: 20)).map(UInt64.init)
    static let commandsPerHistory = environment("REGISTRYD_AUDIT_COMMANDS", default: 200)

    static func environment(_ name: String, default value: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } ?? value
    }

    @Test(arguments: seeds) func theVerifierAgreesWithAPlainReplay(seed: UInt64) async throws {
        try await withTemporaryDirectory { root in
            let live = root + "/live"
            try await runHistory(seed: seed, into: live)
            // Small scan batches too, so that batch boundaries fall everywhere.
            let batchSize = [3, 16, Replayer.chunk][Int(seed % 3)]

            let clean = try verdicts(live, batchSize: batchSize)
            #expect(clean.fast == .clean, "seed \(seed)")
            #expect(clean.plain.verdict == .clean, "seed \(seed)")
            #expect(clean.report.events == clean.plain.events)
            #expect(clean.report.devices == clean.plain.state.devices.count && clean.report.modules == clean.plain.state.modules.count)

            // The fast path (not its fall-back, the full decode) read every record of the log:
            // otherwise this test would hold the full decode to itself.
            let log = try LogTampering.read(live)
            try #require(log.count >= 2)
            var scratch = [UInt8](repeating: 0, count: 32)
            for (seq, bytes) in log {
                #expect(EventRecord.selfCheck(bytes, 0..<bytes.count, scratch: &scratch) != nil, "seed \(seed): record \(seq) took the slow path")
            }

            for tampering in try tamperings(of: log, seed: seed, lastEvents: clean.plain.lastEvents) {
                let copy = root + "/copy"
                try LogTampering.copy(live, to: copy)
                try LogTampering.write(tampering.log, to: copy)
                let found = try verdicts(copy, batchSize: batchSize)
                #expect(found.fast == found.plain.verdict, "seed \(seed), \(tampering.name): verifier \(found.fast), replay \(found.plain.verdict)")
                if let seq = tampering.corruptAt {
                    #expect(found.plain.verdict.corruptSeq == seq, "seed \(seed), \(tampering.name): \(found.plain.verdict)")
                } else if tampering.mustBeRefused {
                    #expect(found.plain.verdict != .clean, "seed \(seed), \(tampering.name)")
                }
            }
        }
    }

    /// The fixed histories, decided and folded by the pure domain (the writer runs the same
    /// `decide`), make every kind of event between them: the comparison covers them all.
    @Test func theFixedHistoriesMakeEveryKindOfEvent() {
        var types: Set<EventType> = []
        for seed in 1...UInt64(20) {
            var history = CommandHistory(seed: seed)
            var random = SeededRandom(seed: seed)
            var state = RegistrySnapshot()
            var sequence: UInt64 = 1
            var executed = 0
            while executed < 200 {
                for command in history.batch() {
                    executed += 1
                    let context = DecisionContext(now: Timestamp(unixSeconds: 1_800_000_000), sequence: sequence)
                    guard let events = try? decide(command, state: state.commandState(for: command), context: context, random: &random) else {
                        continue
                    }
                    for event in events {
                        state = evolve(state, event)
                        types.insert(event.type)
                    }
                    sequence += UInt64(events.count)
                }
                _ = history.number(3)  // the clock step of `runHistory`
            }
        }
        #expect(types == Set(EventType.allCases), "missing: \(Set(EventType.allCases).subtracting(types))")
    }

    /// Runs the seed's history through a store in `dir` (closed afterwards).
    func runHistory(seed: UInt64, into dir: String) async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let clock = ManualClock()
        let store = try makeStore(dir, clock: clock, seed: seed)
        var history = CommandHistory(seed: seed)
        var executed = 0
        var accepted = 0
        while executed < Self.commandsPerHistory {
            let batch = history.batch()
            // Some request ids need escaping in the envelope.
            let requestId = executed % 7 == 0 ? "req \"\(executed)\"\n" : "r\(executed)"
            let results = try await store.execute(batch, actor: executed % 5 == 0 ? "job-\(seed)" : "iothubowner", requestId: requestId)
            accepted += results.count(where: { (try? $0.get()) != nil })
            executed += batch.count
            clock.advance(seconds: Int64(history.number(3)))
        }
        store.close()
        #expect(accepted > executed / 4, "seed \(seed): only \(accepted) of \(executed) commands were accepted")
    }

    func verdicts(_ dir: String, batchSize: Int) throws -> (fast: PlainReplay.Verdict, report: Replayer.Report, plain: PlainReplay.Result) {
        let storage = try RegistryStorage(directory: DataDirectory(path: dir), create: false, needsKeys: false)
        let report = try Replayer.verify(source: storage, batchSize: batchSize)
        return (PlainReplay.Verdict(report.outcome), report, try PlainReplay.run(storage))
    }

    struct Tampering {
        var name: String
        var log: LogTampering.Log
        /// The record both must refuse, when the tampering makes one bad.
        var corruptAt: UInt64?
        var mustBeRefused = true
    }

    func tamperings(of log: LogTampering.Log, seed: UInt64, lastEvents: [[UInt8]: UInt64]) throws -> [Tampering] {
        var random = SeededRandom(seed: seed &* 0x9E37_79B9_7F4A_7C15)
        func index() -> Int { Int(random.next() % UInt64(log.count)) }
        var cases: [Tampering] = []

        let flipped = index()
        cases.append(
            Tampering(
                name: "bit flipped in payload \(flipped + 1)",
                log: LogTampering.flipBit(log, at: flipped, offset: index(), bit: index()),
                corruptAt: UInt64(flipped + 1)
            )
        )

        let i = index()
        let j = (i + 1 + Int(random.next() % UInt64(log.count - 1))) % log.count
        cases.append(Tampering(name: "records \(i + 1) and \(j + 1) swapped", log: LogTampering.swap(log, i, j), corruptAt: UInt64(min(i, j) + 1)))

        // The last record dropped leaves a valid log that the projections no longer match.
        let dropped = random.next() % 4 == 0 ? log.count - 1 : index()
        cases.append(
            Tampering(
                name: "record \(dropped + 1) dropped",
                log: LogTampering.drop(log, at: dropped),
                corruptAt: dropped == log.count - 1 ? nil : UInt64(dropped + 2)
            )
        )

        // Re-hashed and re-chained: the log is consistent, only the projections can tell.
        let lasts = lastEvents.values.sorted()
        if !lasts.isEmpty {
            let last = Int(lasts[Int(random.next() % UInt64(lasts.count))]) - 1
            cases.append(
                Tampering(name: "last event \(last + 1) of an identity rewritten and re-hashed", log: try LogTampering.rewritePayload(log, at: last))
            )
        }
        // Anywhere: refused only when no later event overwrites the change, but always the same verdict.
        let anywhere = index()
        cases.append(
            Tampering(
                name: "event \(anywhere + 1) rewritten and re-hashed",
                log: try LogTampering.rewritePayload(log, at: anywhere),
                mustBeRefused: false
            )
        )

        for kind in LogTampering.NonCanonical.allCases {
            for style in LogTampering.HashStyle.allCases where kind != .upperCaseHash || style == .canonical {
                let at = index()
                cases.append(
                    Tampering(
                        name: "record \(at + 1) not canonical (\(kind), hash over \(style))",
                        log: try LogTampering.nonCanonical(log, at: at, kind, hash: style),
                        corruptAt: UInt64(at + 1)
                    )
                )
            }
        }
        return cases
    }
}

extension PlainReplay.Verdict {
    var corruptSeq: UInt64? {
        if case .logCorrupt(let seq, _) = self { return seq }
        return nil
    }
}
