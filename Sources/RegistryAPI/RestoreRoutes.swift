import HTTPTypes
import Hummingbird
import RegistryCore

/// Undelete, from the log (issue 22, item 4):
///
/// - `POST /registry/devices/{id}/restore[?seq=N][&modules=true]`: the device as its deletion
///   event (seq N; by default its latest deletion) carried it, and with `modules=true` the modules
///   deleted with it (the `moduleDeleted` events just before, from the same request).
/// - `POST /registry/devices/{id}/modules/{mid}/restore[?seq=N]`: one module, onto its device.
///
/// Each comes back with its keys, status, tags and scopes as they were, a new generationId, etag
/// and twin etag, and `restoredFrom: N` in the identity and its creation event (the audit trail
/// names the deletion it undid). Refused with 409 if the id is registered again.
struct RestoreRoutes: Sendable {
    let store: any RegistryBackend

    func register(on router: Router<RegistryRequestContext>) {
        router.post("registry/devices/:deviceId/restore") { request, context in
            try context.require(.registryWrite)
            let id = try RegistryRoutes.pathId(context, "deviceId")
            try Self.checkPrefix(id, context)
            let parameters = request.uri.queryParameters
            let withModules = try Self.flag(parameters.get("modules"), "modules")
            let given = try Self.seq(parameters.get("seq"))
            let seq = try await given.asyncOr { try await latestDeletion(id, moduleId: nil) }
            let record = try await deletion(at: seq, deviceId: id, moduleId: nil, context: context)
            var modules: [Restoration.Deleted] = []
            if withModules {
                for earlier in try await modulesDeleted(before: record) {
                    modules.append(Restoration.Deleted(identity: try store.identity(in: earlier), seq: earlier.seq))
                }
            }
            let device = Restoration.Deleted(identity: try store.identity(in: record), seq: seq)
            _ = try await store.execute(
                context.scoped(.restore(Restoration(deviceId: id, device: device, modules: modules))),
                actor: context.actor,
                requestId: context.requestId
            )
            guard let document = try await store.deviceDocument(id) else { throw RegistryError(.deviceNotFound, "Device \(id) not registered") }
            return RegistryRoutes.document(document)
        }
        router.post("registry/devices/:deviceId/modules/:moduleId/restore") { request, context in
            try context.require(.registryWrite)
            let id = try RegistryRoutes.pathId(context, "deviceId")
            let moduleId = try RegistryRoutes.pathId(context, "moduleId")
            try Self.checkPrefix(id, context)
            let given = try Self.seq(request.uri.queryParameters.get("seq"))
            let seq = try await given.asyncOr { try await latestDeletion(id, moduleId: moduleId) }
            let record = try await deletion(at: seq, deviceId: id, moduleId: moduleId, context: context)
            let module = Restoration.Deleted(identity: try store.identity(in: record), seq: seq)
            _ = try await store.execute(
                context.scoped(.restore(Restoration(deviceId: id, device: nil, modules: [module]))),
                actor: context.actor,
                requestId: context.requestId
            )
            guard let document = try await store.moduleDocument(id, moduleId) else {
                throw RegistryError(.moduleNotFound, "Module \(moduleId) on device \(id) not registered")
            }
            return RegistryRoutes.document(document)
        }
    }

    /// A scoped caller restoring a device id outside its prefixes: refused before the log is
    /// read (nothing about that id's past is told).
    static func checkPrefix(_ deviceId: String, _ context: RegistryRequestContext) throws {
        if let scope = context.scope, scope.excludes(deviceId: deviceId) {
            throw APIError.unauthorized("The policy's scope does not cover device '\(deviceId)'.")
        }
    }

    static func seq(_ text: String?) throws -> UInt64? {
        guard let text else { return nil }
        guard let value = UInt64(text), value > 0 else { throw APIError.invalid("seq must be the sequence number of a deletion event.") }
        return value
    }

    static func flag(_ text: String?, _ name: String) throws -> Bool {
        switch text?.lowercased() {
        case nil, "false": return false
        case "true": return true
        default: throw APIError.invalid("\(name) must be true or false.")
        }
    }

    /// The seq of the identity's latest deletion, from its history.
    func latestDeletion(_ deviceId: String, moduleId: String?) async throws -> UInt64 {
        let type: EventType = moduleId == nil ? .deviceDeleted : .moduleDeleted
        var after: UInt64 = 0
        var latest: UInt64?
        while true {
            let page = try await store.history(deviceId: deviceId, moduleId: moduleId, after: after, limit: HistoryRoute.maximumPage)
            for entry in page.entries where entry.type == type && entry.moduleId == moduleId { latest = entry.seq }
            guard let next = page.next else { break }
            after = next
        }
        guard let latest else {
            let what = moduleId.map { "Module \($0) on device \(deviceId)" } ?? "Device \(deviceId)"
            throw RegistryError(moduleId == nil ? .deviceNotFound : .moduleNotFound, "\(what) was never deleted: the log holds nothing to restore.")
        }
        return latest
    }

    /// The deletion event at `seq`, which must be this identity's.
    func deletion(at seq: UInt64, deviceId: String, moduleId: String?, context: RegistryRequestContext) async throws -> EventRecord {
        let type: EventType = moduleId == nil ? .deviceDeleted : .moduleDeleted
        guard let record = try await store.events(from: seq, limit: 1).first, record.seq == seq else {
            throw APIError.invalid("The log has no event with seq \(seq).")
        }
        guard record.type == type, record.deviceId == deviceId, record.moduleId == moduleId else {
            let what = moduleId.map { "module '\($0)' of device '\(deviceId)'" } ?? "device '\(deviceId)'"
            // What the event is instead is told only to an unscoped caller (a scoped one could
            // otherwise walk the log and learn every identity's name).
            let instead = context.scope == nil ? " (it is a \(record.type.rawValue) of \(record.identityName))" : ""
            throw APIError.invalid("The event with seq \(seq) is not the deletion of \(what)\(instead).")
        }
        return record
    }

    /// The modules deleted with the device of `record`: the run of `moduleDeleted` events of
    /// the same device, request and time just before it (a device delete writes them first, all
    /// at its decision's time; event times strictly increase from one command to the next, so
    /// a module deleted separately, even under a reused request id, is not taken).
    func modulesDeleted(before record: EventRecord) async throws -> [EventRecord] {
        var run: [EventRecord] = []
        var end = record.seq  // exclusive
        // Read backwards in chunks until the run ends (however many modules the device had).
        while end > 1 {
            let first = end > 64 ? end - 64 : 1
            let chunk = try await store.events(from: first, limit: Int(end - first)).filter { $0.seq < end }
            for candidate in chunk.reversed() {
                guard candidate.type == .moduleDeleted, candidate.deviceId == record.deviceId, candidate.requestId == record.requestId,
                    candidate.time == record.time
                else {
                    return run.reversed()
                }
                run.append(candidate)
            }
            end = first
        }
        return run.reversed()
    }
}

extension Optional {
    /// The value, or the one `fallback` finds (`??` takes no async right-hand side).
    fileprivate func asyncOr(_ fallback: () async throws -> Wrapped) async rethrows -> Wrapped {
        if let self { return self }
        return try await fallback()
    }
}

extension EventRecord {
    /// `device` or `device/module`, for messages.
    fileprivate var identityName: String { moduleId.map { "'\(deviceId)/\($0)'" } ?? "'\(deviceId)'" }
}
