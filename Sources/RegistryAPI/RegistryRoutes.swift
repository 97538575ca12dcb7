import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RegistryCore
import RegistryTransfer

/// The Azure-compatible identity routes: devices, modules, statistics, and the health probes.
struct RegistryRoutes: Sendable {
    let store: any RegistryBackend
    let configuration: RegistryAPIConfiguration

    func register(on router: Router<RegistryRequestContext>) {

        router.get("devices") { request, context in try await listDevices(request, context) }
        router.get("devices/:deviceId") { _, context in try await getDevice(context) }
        let query = QueryRoute(store: store, routes: self)
        router.post("devices/:deviceId") { request, context in
            guard context.parameters.get("deviceId") == "query" else {
                throw APIError(status: .methodNotAllowed, code: "InvalidOperation", message: "POST is supported on /devices/query and /devices only.")
            }
            return try await query.handle(request, context)
        }
        router.put("devices/:deviceId") { request, context in try await putDevice(request, context) }
        router.delete("devices/:deviceId") { request, context in try await deleteDevice(request, context) }
        router.get("devices/:deviceId/modules") { _, context in try await listModules(context) }
        router.get("devices/:deviceId/modules/:moduleId") { _, context in try await getModule(context) }
        router.put("devices/:deviceId/modules/:moduleId") { request, context in try await putModule(request, context) }
        router.delete("devices/:deviceId/modules/:moduleId") { request, context in try await deleteModule(request, context) }
        router.get("statistics/devices") { _, context in try await deviceStatistics(context) }
        router.get("statistics/service") { _, context in try await serviceStatistics(context) }
    }

    // MARK: devices

    func listDevices(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryRead)
        var top = 1000
        if let text = request.uri.queryParameters.get("top") {
            guard let value = Int(text) else { throw APIError.invalid("top must be an integer from 1 to 1000.") }
            // Azure's documented behaviour: values outside 1...1000 mean 1000.
            top = (1...1000).contains(value) ? value : 1000
        }
        guard let scope = context.scope else { return Self.jsonArray(try await store.deviceDocuments(limit: top)) }
        // A scoped caller: the first `top` devices in its scope, in id order.
        var found: [JSONValue] = []
        var after: String?
        while found.count < top {
            let page = try await store.devices(after: after, limit: 1000)
            found += page.filter { scope.admits(.device($0)) }.prefix(top - found.count).map { Self.encode(.device($0)) }
            guard page.count == 1000, let last = page.last else { break }
            after = last.deviceId
        }
        return Self.json(.array(found))
    }

    func getDevice(_ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryRead)
        let id = try Self.pathId(context, "deviceId")
        // Outside a scoped caller's scope, a device is not there for it.
        guard let document = try await store.deviceDocument(id), context.sees(document.json) else {
            throw RegistryError(.deviceNotFound, "Device \(id) not registered")
        }
        return Self.document(document)
    }

    func putDevice(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryWrite)
        let id = try Self.pathId(context, "deviceId")
        let spec = try IdentityRequestDecoder.device(try await body(request), pathId: id)
        let condition = ETagCondition(header: request.headers[.ifMatch])
        let command: Command = condition == .absent ? .createDevice(spec) : .replaceDevice(spec, ifMatch: condition)
        return try await execute(command, context)
    }

    func deleteDevice(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryWrite)
        let id = try Self.pathId(context, "deviceId")
        return try await execute(.deleteDevice(deviceId: id, ifMatch: ETagCondition(header: request.headers[.ifMatch])), context)
    }

    // MARK: modules

    func listModules(_ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryRead)
        let id = try Self.pathId(context, "deviceId")
        guard let modules = try await store.moduleDocuments(of: id) else { throw RegistryError(.deviceNotFound, "Device \(id) not registered") }
        guard context.scope != nil else { return Self.jsonArray(modules) }
        guard let device = try await store.deviceDocument(id), context.sees(device.json) else {
            throw RegistryError(.deviceNotFound, "Device \(id) not registered")
        }
        return Self.jsonArray(modules.filter { context.sees($0.json) })
    }

    func getModule(_ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryRead)
        let id = try Self.pathId(context, "deviceId")
        let moduleId = try Self.pathId(context, "moduleId")
        guard let module = try await store.moduleDocument(id, moduleId) else { throw try await missingModule(id, moduleId, context) }
        guard context.sees(module.json) else { throw try await missingModule(id, moduleId, context) }
        return Self.document(module)
    }

    func putModule(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryWrite)
        let id = try Self.pathId(context, "deviceId")
        let moduleId = try Self.pathId(context, "moduleId")
        let spec = try IdentityRequestDecoder.module(try await body(request), deviceId: id, moduleId: moduleId)
        let condition = ETagCondition(header: request.headers[.ifMatch])
        let command: Command = condition == .absent ? .createModule(spec) : .replaceModule(spec, ifMatch: condition)
        return try await execute(command, context)
    }

    func deleteModule(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryWrite)
        let id = try Self.pathId(context, "deviceId")
        let moduleId = try Self.pathId(context, "moduleId")
        return try await execute(.deleteModule(deviceId: id, moduleId: moduleId, ifMatch: ETagCondition(header: request.headers[.ifMatch])), context)
    }

    // MARK: statistics

    func deviceStatistics(_ context: RegistryRequestContext) async throws -> Response {
        try context.require(.registryRead)
        let stats = try await statistics(context)
        return Self.json(
            .object([
                "totalDeviceCount": .int(Int64(stats.totalDeviceCount)),
                "enabledDeviceCount": .int(Int64(stats.enabledDeviceCount)),
                "disabledDeviceCount": .int(Int64(stats.disabledDeviceCount)),
            ])
        )
    }

    func serviceStatistics(_ context: RegistryRequestContext) async throws -> Response {
        try context.require(.serviceConnect)
        // Devices a broker last reported connected (POST /registry/connections).
        let stats = try await statistics(context)
        return Self.json(.object(["connectedDeviceCount": .int(Int64(stats.connectedDeviceCount))]))
    }

    /// The registry's counters, or for a scoped caller the same counted inside its scope (one
    /// aggregate query over the devices).
    func statistics(_ context: RegistryRequestContext) async throws -> RegistryStatistics {
        guard let scope = context.scope else { return try await store.statistics() }
        var query = try QueryParser.parse("SELECT status, connectionState, COUNT() AS n FROM devices GROUP BY status, connectionState")
        query.filter = scope.queryCondition
        let groups = try await store.runQuery(query, cursor: nil, pageSize: 1000, bounds: configuration.queryBounds).items
        var stats = RegistryStatistics(
            totalDeviceCount: 0,
            enabledDeviceCount: 0,
            disabledDeviceCount: 0,
            totalModuleCount: 0,
            connectedDeviceCount: 0
        )
        for group in groups {
            let n = Int(group["n"]?.intValue ?? 0)
            stats.totalDeviceCount += n
            if group["status"] == .string(DeviceStatus.disabled.rawValue) { stats.disabledDeviceCount += n } else { stats.enabledDeviceCount += n }
            if group["connectionState"] == .string(ConnectionState.connected.rawValue) { stats.connectedDeviceCount += n }
        }
        return stats
    }

    // MARK: helpers

    /// Runs one command through the writer; answers with the identity as committed (a GET right
    /// after sees the same), or 204 after a delete.
    func execute(_ command: Command, _ context: RegistryRequestContext) async throws -> Response {
        let outcome = try await store.execute(context.scoped(command), actor: context.actor, requestId: context.requestId)
        guard let identity = outcome.identity else { return Response(status: .noContent) }
        return Self.identity(identity)
    }

    /// The body, refused with 413 before parsing when larger than the configured limit.
    func body(_ request: Request) async throws -> [UInt8] {
        let limit = configuration.maxRequestBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw APIError.tooLarge(limit) }
        do {
            var buffer = try await request.body.collect(upTo: limit)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.tooLarge(limit)
        }
    }

    /// A path parameter, percent-decoded exactly once.
    static func pathId(_ context: RegistryRequestContext, _ name: String) throws -> String {
        guard let raw = context.parameters.get(name), let decoded = percentDecoded(raw) else {
            throw APIError.invalid("The \(name) in the path is not validly percent-encoded.")
        }
        return decoded
    }

    /// Decodes `%XX` escapes once (not `+`); `nil` for a malformed escape or invalid UTF-8.
    /// The 404 for a module that is not there: DeviceNotFound when its device is missing too (or,
    /// for a scoped caller, outside its scope: which devices exist outside is not its business).
    func missingModule(_ deviceId: String, _ moduleId: String, _ context: RegistryRequestContext) async throws -> RegistryError {
        let device = try await store.storedDocument(deviceId: deviceId, moduleId: nil)
        if device.map(context.sees) != true { return RegistryError(.deviceNotFound, "Device \(deviceId) not registered") }
        return RegistryError(.moduleNotFound, "Module \(moduleId) on device \(deviceId) not registered")
    }

    static func percentDecoded(_ text: String) -> String? {
        text.utf8.contains(UInt8(ascii: "%")) ? PercentDecoding.decode(text.utf8) : text
    }

    /// Azure's Device or Module JSON: the stored form without our `twin` member (served by /twins).
    static func encode(_ identity: Identity) -> JSONValue {
        guard case .object(var members) = IdentityCodec.encode(identity, key: { key, _ in key }) else { return .null }
        members["twin"] = nil
        return .object(members)
    }

    static func identity(_ identity: Identity) -> Response {
        var response = json(encode(identity))
        response.headers[.eTag] = "\"\(identity.etag)\""
        return response
    }

    static func document(_ document: IdentityDocument) -> Response {
        var response = Response(
            status: .ok,
            headers: [.contentType: jsonContentType],
            body: .init(byteBuffer: ByteBuffer(bytes: document.identityJSON))
        )
        response.headers[.eTag] = "\"\(document.etag)\""
        return response
    }

    static func jsonArray(_ documents: [IdentityDocument]) -> Response {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(ascii: "["))
        for (i, document) in documents.enumerated() {
            if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeBytes(document.identityJSON)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
        return Response(status: .ok, headers: [.contentType: jsonContentType], body: .init(byteBuffer: buffer))
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: jsonContentType],
            body: .init(byteBuffer: ByteBuffer(bytes: CanonicalJSON.encode(value)))
        )
    }
}
