import Foundation
import RegistryCore
import Synchronization

/// Export and import of `ExportImportDevice` JSON Lines: one implementation for the
/// `registryd export` / `import` tools and for `/jobs` import and export jobs.
public enum ImportExportEngine {
    public struct ExportCounts: Sendable, Hashable {
        public var devices = 0
        public var modules = 0
    }

    public struct ImportCounts: Sendable, Hashable {
        public var imported = 0
        public var failed = 0
        public var lines = 0
        /// Bytes of the file consumed so far (for progress).
        public var bytesRead = 0
    }

    /// Identity order (device id, 0x00, module id: the order stores list identities in, since ids
    /// never hold 0x00): batches are sorted by it before they go to the writer.
    static func identityOrderKey(_ deviceId: String, _ moduleId: String?) -> [UInt8] {
        Array(deviceId.utf8) + [0] + Array((moduleId ?? "").utf8)
    }

    /// Stopped on request (a cancelled job).
    public struct Cancelled: Error {
        public init() {}
    }

    /// Writes every device, each followed by its modules, from one consistent snapshot.
    /// - Parameters:
    ///   - write: receives the output in chunks of about 1 MB.
    ///   - isCancelled: polled between identities.
    public static func export(
        storage: any RegistryReader,
        excludeKeys: Bool,
        isCancelled: @escaping @Sendable () -> Bool = { false },
        write: @escaping @Sendable (Data) throws -> Void
    ) async throws -> ExportCounts {
        // The backend calls the visitor in order, one call at a time, on a thread of its choice
        // (see `RegistryReader.forEachIdentity`); the lock only makes that hand-off explicit.
        let output = ExportOutput()
        try await storage.forEachIdentity(openKeys: !excludeKeys) { document, isModule in
            if isCancelled() { throw Cancelled() }
            let json = try JSONParser.parse(document.json)
            try output.state.withLock { state in
                state.buffer += CanonicalJSON.encode(ExportImportDevice.line(from: json, excludeKeys: excludeKeys))
                state.buffer.append(10)
                if isModule { state.counts.modules += 1 } else { state.counts.devices += 1 }
                if state.buffer.count > 1 << 20 {
                    try write(Data(state.buffer))
                    state.buffer.removeAll(keepingCapacity: true)
                }
            }
        }
        return try output.state.withLock { state in
            try write(Data(state.buffer))
            return state.counts
        }
    }

    /// Applies a JSON Lines file through the writer in key-sorted batches (an exported file is
    /// already in key order; random-order inserts cost several times more in LMDB). A line that
    /// cannot be read or applied goes to `errors` as a JSON object and the import goes on.
    /// A first line not starting with `{` (a comment some tools put first) is skipped.
    public static func importFile(
        store: any RegistryBackend,
        path: String,
        batch: Int,
        actor: String,
        requestId: String,
        errors: (JSONValue) -> Void,
        isCancelled: () -> Bool = { false },
        progress: (ImportCounts) async -> Void = { _ in }
    ) async throws -> ImportCounts {
        guard let reader = LineReader(path: path) else { throw ImportExportError("cannot read \(path)") }
        return try await importFile(
            store: store,
            reader: reader,
            batch: batch,
            actor: actor,
            requestId: requestId,
            errors: errors,
            isCancelled: isCancelled,
            progress: progress
        )
    }

    /// `importFile(path:)` from a reader over a file the caller opened (a job opens its input
    /// relative to its container, see `JobDirectory`).
    public static func importFile(
        store: any RegistryBackend,
        reader: LineReader,
        batch: Int,
        actor: String,
        requestId: String,
        errors: (JSONValue) -> Void,
        isCancelled: () -> Bool = { false },
        progress: (ImportCounts) async -> Void = { _ in }
    ) async throws -> ImportCounts {
        var counts = ImportCounts()
        var pending: [(line: Int, key: [UInt8], command: Command, operation: String)] = []
        pending.reserveCapacity(batch)

        func logError(_ line: Int, _ deviceId: String, _ moduleId: String?, _ code: String, _ message: String, _ operation: String) {
            errors(
                .object([
                    "line": .int(Int64(line)), "deviceId": .string(deviceId), "moduleId": JSONValue(moduleId),
                    "errorCode": .string(code), "errorStatus": .string(message), "operation": .string(operation),
                ])
            )
            counts.failed += 1
        }

        typealias Entry = (line: Int, key: [UInt8], command: Command, operation: String)
        // A batch is applied by the writer while the next one is read and parsed: the two halves
        // of an import overlap (they were 50% and 30% of it, one after the other). More batches
        // queued with the writer were measured (300,000 lines, 5 alternating runs: 3.21 s with
        // one, 3.39 s with two, 3.44 s with three; a million lines: no difference) and only add
        // memory and the wait of API writes queued behind them during an import job.
        var inFlight: (entries: [Entry], results: PendingCommands)?

        /// Settles the batch with the writer, if any.
        func settle() async throws {
            guard let (entries, submitted) = inFlight else { return }
            inFlight = nil
            let results = try await submitted.value()
            for (result, entry) in zip(results, entries) {
                switch result {
                case .success: counts.imported += 1
                case .failure(let error):
                    logError(entry.line, entry.command.deviceId, entry.command.moduleId, error.code.name, error.message, entry.operation)
                }
            }
            await progress(counts)
        }

        func flush() async throws {
            pending.sort { $0.key.lexicographicallyPrecedes($1.key) }
            try await settle()
            let entries = pending
            let commands = entries.map(\.command)
            inFlight = (entries, store.submit(commands, actor: actor, requestId: requestId))
            pending.removeAll(keepingCapacity: true)
            counts.bytesRead = reader.position
        }

        while let next = reader.next() {
            counts.lines += 1
            guard case .line(let line) = next else {
                if case .tooLong(let length) = next {
                    logError(
                        counts.lines,
                        "",
                        nil,
                        "LineTooLong",
                        "the line is \(length) bytes; an import line may be at most \(LineReader.defaultMaximumLineBytes)",
                        "unknown"
                    )
                }
                continue
            }
            guard let first = line.first(where: { $0 != 32 && $0 != 9 && $0 != 13 }) else { continue }
            if first != UInt8(ascii: "{") && counts.lines == 1 { continue }
            do {
                // The plain shape of a device line straight from its bytes; anything else (and
                // every error) through the JSON tree.
                let (command, operation) = try ImportLineDecoder.command(line) ?? ImportMode.command(for: JSONParser.parse(line))
                pending.append((counts.lines, Self.identityOrderKey(command.deviceId, command.moduleId), command, operation))
            } catch let error as ImportEntryError {
                logError(counts.lines, error.deviceId, error.moduleId, error.code, error.message, error.operation)
            } catch {
                logError(counts.lines, "", nil, "DeserializationError", "\(error)", "unknown")
            }
            if pending.count >= batch {
                if isCancelled() {
                    try await settle()  // the batch already with the writer is applied and counted
                    throw Cancelled()
                }
                try await flush()
            }
        }
        if !pending.isEmpty {
            if isCancelled() {
                try await settle()
                throw Cancelled()
            }
            try await flush()
        }
        try await settle()
        return counts
    }
}

public struct ImportExportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Reads a file line by line without loading it whole.
///
/// Bounded: a line longer than `maximumLineBytes` is not kept in memory; it is skipped up to
/// its newline and returned as `.tooLong` (the import reports it and goes on), so a file
/// without newlines cannot pull itself into memory.
public final class LineReader {
    public enum Line {
        case line([UInt8])
        /// A line over the bound: its length in bytes.
        case tooLong(Int)
    }

    /// 1 MiB: an exported device line is under 2 KB; Azure's own identity limit is far below.
    public static let defaultMaximumLineBytes = 1 << 20

    private let handle: FileHandle
    private let maximumLineBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the next newline resumes (bytes before it hold none).
    private var scanned = 0
    private var done = false
    /// Bytes of an over-long line dropped so far (0 when not inside one).
    private var skipping = 0
    /// Bytes consumed by the lines returned so far.
    public private(set) var position = 0

    public convenience init?(path: String, maximumLineBytes: Int = LineReader.defaultMaximumLineBytes) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        self.init(handle: handle, maximumLineBytes: maximumLineBytes)
    }

    /// Reads from an open file, from its current offset.
    public init(handle: FileHandle, maximumLineBytes: Int = LineReader.defaultMaximumLineBytes) {
        self.handle = handle
        self.maximumLineBytes = maximumLineBytes
    }

    public func next() -> Line? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 10) {
                position += newline + 1 - start
                defer {
                    start = newline + 1
                    scanned = start
                    skipping = 0
                }
                if skipping > 0 { return .tooLong(skipping + newline - start) }
                return newline - start > maximumLineBytes ? .tooLong(newline - start) : .line(Array(buffer[start..<newline]))
            }
            scanned = buffer.count
            if buffer.count - start > maximumLineBytes {
                // Inside an over-long line: drop what is buffered and keep only the count.
                skipping += buffer.count - start
                position += buffer.count - start
                buffer.removeAll(keepingCapacity: true)
                start = 0
                scanned = 0
            }
            if done {
                guard start < buffer.count || skipping > 0 else { return nil }
                position += buffer.count - start
                defer {
                    start = buffer.count
                    scanned = start
                    skipping = 0
                }
                if skipping > 0 { return .tooLong(skipping + buffer.count - start) }
                return .line(Array(buffer[start...]))
            }
            let chunk = handle.readData(ofLength: 1 << 20)
            buffer.removeFirst(start)
            scanned -= start
            start = 0
            if chunk.isEmpty { done = true } else { buffer += chunk }
        }
    }
}

/// An export's pending output and counts, shared with the visitor the backend runs.
private final class ExportOutput: Sendable {
    let state = Mutex<(buffer: [UInt8], counts: ImportExportEngine.ExportCounts)>(([], ImportExportEngine.ExportCounts()))
}
