import Synchronization
import SystemBytes

/// Memo of opened key values: a sealed value as stored (with the identity and slot it is bound
/// to) to what opening it gave. A pure function's results, so it can never be stale: a changed
/// key is a different sealed value (fresh nonce). Bounded: cleared when full.
///
/// Looked up straight from the stored document's bytes, with no String built: on GET and on
/// every device check the lookup was most of the cost of reading keys (two concatenated strings
/// per key, each hashed whole). Entries are found by a fingerprint of the sealed bytes and then
/// compared in full (bytes and slot), so a fingerprint collision is only ever a miss.
package final class OpenedKeyCache<Value: Sendable>: Sendable {
    /// A class, so that taking an entry out of the map is one reference count, not one per
    /// field (copying the fields out was a third of a lookup).
    package final class Entry: Sendable {
        let sealed: [UInt8]
        let slot: IdentityCodec.KeySlot
        let value: Value

        init(sealed: [UInt8], slot: IdentityCodec.KeySlot, value: Value) {
            self.sealed = sealed
            self.slot = slot
            self.value = value
        }
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    package let capacity: Int

    package init(capacity: Int = 100_000) { self.capacity = capacity }

    /// The value opened from `document[sealed]` for `slot`, if remembered.
    package func lookup(_ document: [UInt8], _ sealed: Range<Int>, slot: IdentityCodec.KeySlot) -> Value? {
        let fingerprint = ByteScan.fingerprint(document, sealed)
        guard let entry = entries.withLock({ $0[fingerprint] }) else { return nil }
        guard entry.slot == slot, ByteScan.equal(document, sealed, entry.sealed) else { return nil }
        return entry.value
    }

    package func insert(_ document: [UInt8], _ sealed: Range<Int>, slot: IdentityCodec.KeySlot, _ value: Value) {
        let entry = Entry(sealed: Array(document[sealed]), slot: slot, value: value)
        let fingerprint = ByteScan.fingerprint(document, sealed)
        entries.withLock {
            if $0.count >= capacity { $0.removeAll(keepingCapacity: true) }
            $0[fingerprint] = entry
        }
    }
}
