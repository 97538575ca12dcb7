import Foundation
import Synchronization

/// Collects what an export writes (its writer runs on the backend's thread, so a plain captured
/// variable will not do).
public final class ByteCollector: Sendable {
    private let bytes = Mutex<[UInt8]>([])

    public init() {}

    public func append(_ data: Data) { bytes.withLock { $0 += Array(data) } }

    public var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
}
