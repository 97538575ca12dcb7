import LMDB
import RegistryCore

/// The named databases of a registry environment (DESIGN §3), opened once at startup.
public struct RegistryDatabases: Sendable {
    /// seq (UInt64 big-endian, gapless from 1) → event record. The source of truth.
    public var events: Database
    /// deviceId → device snapshot (storage JSON, keys sealed).
    public var devices: Database
    /// deviceId 0x00 moduleId → module snapshot.
    public var modules: Database
    /// deviceId 0x00 seq → empty: every event of a device and its modules, for audits.
    public var history: Database
    /// name → value: format version, counters.
    public var meta: Database
    /// Later issues: delivery cursors, jobs, policies, parked messages (outside the hash chain).
    public var cursors: Database
    public var jobs: Database
    public var policies: Database
    public var parked: Database

    /// The projection databases that replay rebuilds and audit compares.
    public var projections: [Database] { [devices, modules, history] }

    public static func open(in txn: borrowing WriteTransaction) throws -> RegistryDatabases {
        RegistryDatabases(
            events: try txn.openDatabase("events"),
            devices: try txn.openDatabase("devices"),
            modules: try txn.openDatabase("modules"),
            history: try txn.openDatabase("history"),
            meta: try txn.openDatabase("meta"),
            cursors: try txn.openDatabase("cursors"),
            jobs: try txn.openDatabase("jobs"),
            policies: try txn.openDatabase("policies"),
            parked: try txn.openDatabase("parked")
        )
    }
}

/// Key encodings. Ids never contain 0x00 (the id rules allow printable ASCII only), so
/// `deviceId 0x00` is an unambiguous prefix.
public enum StorageKey {
    public static func sequence(_ seq: UInt64) -> [UInt8] {
        withUnsafeBytes(of: seq.bigEndian) { Array($0) }
    }

    public static func sequence(from bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    public static func device(_ deviceId: String) -> [UInt8] { Array(deviceId.utf8) }

    public static func modulePrefix(_ deviceId: String) -> [UInt8] { Array(deviceId.utf8) + [0] }

    public static func module(_ deviceId: String, _ moduleId: String) -> [UInt8] { modulePrefix(deviceId) + Array(moduleId.utf8) }

    public static func history(_ deviceId: String, _ seq: UInt64) -> [UInt8] { modulePrefix(deviceId) + sequence(seq) }

    public static func hasPrefix(_ key: [UInt8], _ prefix: [UInt8]) -> Bool {
        key.count >= prefix.count && key[0..<prefix.count].elementsEqual(prefix)
    }
}

/// Keys of the `meta` database.
extension MetaKey {
    /// The data-format version of the environment (decimal text).
    public static let format = Array("format".utf8)
    /// Disabled devices (UInt64 big-endian); totals come from the databases' entry counts.
    public static let disabledDevices = Array("stats.disabledDevices".utf8)
    /// Devices whose connectionState is Connected (UInt64 big-endian).
    public static let connectedDevices = Array("stats.connectedDevices".utf8)
}
