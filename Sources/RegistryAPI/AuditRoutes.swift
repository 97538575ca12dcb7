import Foundation
import HTTPTypes
import Hummingbird
import RegistryCore
import RegistryTransfer

/// The audit chain over HTTP (the console's overview; the same work as the CLI's).
///
/// `GET /registry/log/head`: `{"seq", "hash" (hex), "time"}` of the last event. RegistryRead.
///
/// `POST /registry/audit/verify`: runs the verification `registryd audit verify` runs (the log's
/// continuity, hash chain and decoding, and every projection against a replay) and streams its
/// progress as JSON lines, `{"verified", "total"}`, then one result line, `{"result": "clean" |
/// "logCorrupt" | "projectionDiffers", "events", "detail"?}`. RegistryRead; the bulk throttling
/// class (it reads the whole log).
struct AuditRoutes: Sendable {
    let store: any RegistryBackend

    func register(on router: Router<RegistryRequestContext>) {
        router.get("registry/log/head") { _, context in
            try context.require(.registryRead)
            try context.requireUnscoped("the log")
            let head = try await store.head()
            return RegistryRoutes.json(
                .object([
                    "seq": .int(Int64(head.seq)),
                    "hash": .string(head.hash.map { String(format: "%02x", $0) }.joined()),
                    "time": head.time == .unset ? .null : .string(head.time.iso8601),
                ])
            )
        }
        router.post("registry/audit/verify") { _, context in
            try context.require(.registryRead)
            try context.requireUnscoped("the log")
            let total = try await store.head().seq
            return Response(
                status: .ok,
                headers: [.contentType: "application/x-ndjson", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    let (progress, report) = AsyncStream<UInt64>.makeStream(bufferingPolicy: .bufferingNewest(1))
                    let verification = Task {
                        defer { report.finish() }
                        return try await store.verifyLog { report.yield($0) }
                    }
                    for await verified in progress {
                        try await writer.write(Self.line(.object(["verified": .int(Int64(verified)), "total": .int(Int64(total))])))
                    }
                    let result: JSONValue
                    do {
                        result = Self.result(try await verification.value)
                    } catch {
                        result = .object(["result": .string("failed"), "detail": .string("\(error)")])
                    }
                    try await writer.write(Self.line(result))
                    try await writer.finish(nil)
                }
            )
        }
    }

    /// One JSON line.
    static func line(_ value: JSONValue) -> ByteBuffer { ByteBuffer(bytes: CanonicalJSON.encode(value) + [10]) }

    static func result(_ report: Replayer.Report) -> JSONValue {
        var fields: [String: JSONValue] = ["events": .int(Int64(report.events))]
        switch report.outcome {
        case .clean:
            fields["result"] = .string("clean")
        case .logCorrupt(let seq, let reason):
            fields["result"] = .string("logCorrupt")
            fields["detail"] = .string("at seq \(seq): \(reason)")
        case .projectionDiffers(let database, let key, let detail):
            fields["result"] = .string("projectionDiffers")
            fields["detail"] = .string("\(database) \(key): \(detail)")
        }
        return .object(fields)
    }
}
