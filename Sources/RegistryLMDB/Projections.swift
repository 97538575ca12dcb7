import LMDB
import RegistryCore

/// The current-state projections, kept in the same write transaction as the log append, so they
/// never lag and a crash can never leave them disagreeing with the log.
///
/// `apply` is the persistent form of the domain's `evolve`: the writer calls it for each new
/// event and replay calls it for each stored one, so both run exactly the same code.
extension Projections {
    public static func apply(_ record: EventRecord, txn: borrowing WriteTransaction, databases db: RegistryDatabases) throws {
        try apply(
            VerifiedEvent(
                seq: record.seq,
                type: record.type,
                deviceId: record.deviceId,
                moduleId: record.moduleId,
                payloadBytes: record.payloadBytes,
                hash: record.hash,
                disabled: isDisabled(record.payload),
                connected: record.type.isDevice && isConnected(record.payloadBytes)
            ),
            txn: txn,
            databases: db
        )
    }

    /// The fold itself, on the facts of one event (the writer and replay both end here).
    public static func apply(_ event: VerifiedEvent, txn: borrowing WriteTransaction, databases db: RegistryDatabases) throws {
        try txn.put(db.history, StorageKey.history(event.deviceId, event.seq), [])
        switch event.type {
        case .deviceCreated, .deviceUpdated, .deviceConnected, .deviceDisconnected, .deviceTwinUpdated, .deviceCredentialExpiring:
            let key = StorageKey.device(event.deviceId)
            // A created device has no document before it (the rules refuse a create of an
            // existing one, and a valid log holds none): no lookup, which was one B-tree search
            // per device on the writer's thread during an import.
            let old = event.type == .deviceCreated ? nil : try txn.get(db.devices, key)
            // Both markers of the replaced document, its identity part found once.
            let was = old.map { marks($0, 0..<$0.count) } ?? (disabled: false, connected: false)
            let (wasDisabled, wasConnected) = (was.disabled, was.connected)
            try txn.put(db.devices, key, event.payloadBytes)
            try adjust(MetaKey.disabledDevices, by: (event.disabled ? 1 : 0) - (wasDisabled ? 1 : 0), txn: txn, db)
            try adjust(MetaKey.connectedDevices, by: (event.connected ? 1 : 0) - (wasConnected ? 1 : 0), txn: txn, db)
        case .deviceDeleted:
            let key = StorageKey.device(event.deviceId)
            if let old = try txn.get(db.devices, key) {
                try txn.delete(db.devices, key)
                if isDisabled(old) { try adjust(MetaKey.disabledDevices, by: -1, txn: txn, db) }
                if isConnected(old) { try adjust(MetaKey.connectedDevices, by: -1, txn: txn, db) }
            }
        case .moduleCreated, .moduleUpdated, .moduleConnected, .moduleDisconnected, .moduleTwinUpdated, .moduleCredentialExpiring:
            try txn.put(db.modules, StorageKey.module(event.deviceId, event.moduleId ?? ""), event.payloadBytes)
        case .moduleDeleted:
            try txn.delete(db.modules, StorageKey.module(event.deviceId, event.moduleId ?? ""))
        }
    }

    static func adjust(_ counter: [UInt8], by delta: Int, txn: borrowing WriteTransaction, _ db: RegistryDatabases) throws {
        guard delta != 0 else { return }
        let current = try txn.get(db.meta, counter).flatMap(StorageKey.sequence(from:)) ?? 0
        let next = UInt64(max(0, Int64(current) + Int64(delta)))
        try txn.put(db.meta, counter, StorageKey.sequence(next))
    }
}
