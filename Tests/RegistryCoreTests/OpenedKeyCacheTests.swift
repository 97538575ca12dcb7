import RegistryCore
import Testing

/// The memo of opened keys answers only for the very bytes and slot it opened.
struct OpenedKeyCacheTests {
    @Test func answersOnlyForTheSameSealedBytesAndSlot() {
        let cache = OpenedKeyCache<String>(capacity: 3)
        let document = Array(#"{"primaryKey":"aes256gcm:AAAAAAAAAAAAAAAAAAAAAAAA","secondaryKey":"aes256gcm:BBBBBBBBBBBBBBBBBBBBBBBB"}"#.utf8)
        let primary = 15..<49
        let secondary = 67..<101
        let slot = IdentityCodec.KeySlot(deviceId: "d1", moduleId: nil, name: "primaryKey")
        cache.insert(document, primary, slot: slot, "opened")
        #expect(cache.lookup(document, primary, slot: slot) == "opened")
        // The same bytes in another buffer at another offset: the same entry.
        let moved = Array("xyz".utf8) + Array(document[primary])
        #expect(cache.lookup(moved, 3..<moved.count, slot: slot) == "opened")
        // Other sealed bytes, or the same bytes bound to another identity or slot: not remembered.
        #expect(cache.lookup(document, secondary, slot: slot) == nil)
        #expect(cache.lookup(document, primary, slot: .init(deviceId: "d2", moduleId: nil, name: "primaryKey")) == nil)
        #expect(cache.lookup(document, primary, slot: .init(deviceId: "d1", moduleId: "m", name: "primaryKey")) == nil)
        #expect(cache.lookup(document, primary, slot: .init(deviceId: "d1", moduleId: nil, name: "secondaryKey")) == nil)
        #expect(cache.lookup(document, primary.dropLast(), slot: slot) == nil)
        // Bounded: full means cleared, then filled again.
        cache.insert(document, secondary, slot: slot, "b")
        cache.insert(moved, 4..<moved.count, slot: slot, "c")
        cache.insert(moved, 5..<moved.count, slot: slot, "d")
        #expect(cache.lookup(document, primary, slot: slot) == nil)
        #expect(cache.lookup(moved, 5..<moved.count, slot: slot) == "d")
    }
}
