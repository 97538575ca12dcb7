import Foundation
import RegistryCore
import RegistryLMDB

/// Opens a store in `directory` with a manual clock and seeded randomness (deterministic runs).
public func makeStore(
    _ directory: String,
    clock: ManualClock = ManualClock(),
    seed: UInt64 = 1,
    maxBatchCommands: Int = 1024,
    limits: RegistryLimits = .init(),
    mapSize: Int = 64 << 20
) throws -> RegistryStore {
    try RegistryStore(
        configuration: .init(
            dataDirectory: DataDirectory(path: directory),
            maxBatchCommands: maxBatchCommands,
            limits: limits,
            clock: clock,
            mapSize: mapSize
        ),
        random: SeededRandom(seed: seed)
    )
}

/// Replays `directory`'s log into a scratch directory and returns the verification report.
public func verifyReplay(_ directory: String) throws -> Replayer.Report {
    let storage = try RegistryStorage(directory: DataDirectory(path: directory), create: false, needsKeys: false)
    return try Replayer.verify(source: storage)
}
