import Foundation

/// Runs `body` with a fresh empty directory, removed afterwards. Every test owns its own, so
/// Swift Testing's parallel tests never share an LMDB environment.
public func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async rethrows -> R {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("registryd-test-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Synchronous variant.
public func withTemporaryDirectory<R>(_ body: (String) throws -> R) rethrows -> R {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("registryd-test-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// The repository's `fixtures/` directory (found from this source file's location).
public func fixturesDirectory(filePath: String = #filePath) -> String {
    var url = URL(fileURLWithPath: filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        let candidate = url.appendingPathComponent("fixtures")
        if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("events").path) { return candidate.path }
    }
    fatalError("fixtures/ not found above \(filePath)")
}
