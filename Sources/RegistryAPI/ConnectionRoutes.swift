import Foundation
import Hummingbird
import RegistryCore
import RegistryTransfer

/// `POST /registry/connections`: a broker reports devices and modules connecting and
/// disconnecting. Each report is an event in the log (so `connectionState`,
/// `connectionStateUpdatedTime` and `lastActivityTime` change, `connectedDeviceCount` counts it
/// and `DeviceConnectionStateEvents` routes carry it); the identity's etag does not change.
///
/// Body: one report or an array of them (up to `deviceAuth.maxReportsPerRequest`, applied in
/// one write transaction). A report is either ours,
/// `{"deviceId", "moduleId"?, "state": "connected"|"disconnected", "time"?}` (`time` ISO 8601 or
/// Unix milliseconds; default now), or an EMQX client event as its rule engine forwards it,
/// `{"event": "client.connected"|"client.disconnected", "clientid": "dev[/mod]",
/// "connected_at"|"disconnected_at"|"timestamp": ms}`. A report older than the state already
/// recorded is counted as stale and changes nothing. Needs DeviceConnect.
///
/// A single report answers its error directly (404 DeviceNotFound, ...); an array answers 200
/// with `{"recorded", "stale", "errors": [{"index", "deviceId", "moduleId", "errorCode", "message"}]}`.
struct ConnectionRoutes: Sendable {
    let store: any RegistryBackend
    let routes: RegistryRoutes
    let configuration: DeviceAuthConfiguration

    func register(on router: Router<RegistryRequestContext>) {
        router.post("registry/connections") { request, context in
            try context.require(.deviceConnect)
            let json = try IdentityRequestDecoder.parseAny(try await routes.body(request))
            let items: [JSONValue]
            let single: Bool
            switch json {
            case .array(let list):
                guard !list.isEmpty, list.count <= configuration.maxReportsPerRequest else {
                    throw APIError.invalid("Send from 1 to \(configuration.maxReportsPerRequest) reports in one request.")
                }
                (items, single) = (list, false)
            case .object:
                (items, single) = ([json], true)
            default:
                throw APIError.format("The body must be a connection report or an array of them.")
            }
            // Refuse the whole request when one report cannot be read: nothing is written.
            var reports: [ConnectionReport] = []
            for (index, item) in items.enumerated() {
                do {
                    reports.append(try Self.report(item))
                } catch let error as APIError where !single {
                    throw APIError(status: error.status, code: error.code, message: "Report \(index): \(error.message)")
                } catch let error as WireFormatError where !single {
                    throw WireFormatError(code: error.code, message: "Report \(index): \(error.message)")
                }
            }
            let results = try await store.execute(
                reports.map { context.scoped(.reportConnection($0)) },
                actor: context.actor,
                requestId: context.requestId
            )
            if single, case .failure(let error) = results[0] { throw error }
            var recorded = 0
            var stale = 0
            var errors: [JSONValue] = []
            for (index, (report, result)) in zip(reports, results).enumerated() {
                switch result {
                case .success(let outcome):
                    if outcome.events.isEmpty { stale += 1 } else { recorded += 1 }
                case .failure(let error):
                    errors.append(
                        .object([
                            "index": .int(Int64(index)), "deviceId": .string(report.deviceId), "moduleId": JSONValue(report.moduleId),
                            "errorCode": .string(error.code.name), "message": .string(error.message),
                        ])
                    )
                }
            }
            return RegistryRoutes.json(.object(["recorded": .int(Int64(recorded)), "stale": .int(Int64(stale)), "errors": .array(errors)]))
        }
    }

    /// One report in either accepted shape.
    static func report(_ json: JSONValue) throws -> ConnectionReport {
        guard case .object = json else { throw APIError.format("A connection report must be a JSON object.") }
        if let event = try IdentityRequestDecoder.string(json, "event") {
            let connected: Bool
            switch event {
            case "client.connected": connected = true
            case "client.disconnected": connected = false
            default: throw APIError.invalid("event must be client.connected or client.disconnected, got '\(event)'.")
            }
            guard let clientId = try IdentityRequestDecoder.string(json, "clientid"), !clientId.isEmpty else {
                throw APIError(status: .badRequest, code: "ArgumentNull", message: "clientid is required.")
            }
            let parts = clientId.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty }) else {
                throw APIError.invalid("clientid must be {deviceId} or {deviceId}/{moduleId}.")
            }
            let time = try timestamp(json, connected ? "connected_at" : "disconnected_at") ?? timestamp(json, "timestamp")
            return ConnectionReport(deviceId: parts[0], moduleId: parts.count == 2 ? parts[1] : nil, connected: connected, time: time)
        }
        guard let deviceId = try IdentityRequestDecoder.string(json, "deviceId"), !deviceId.isEmpty else {
            throw APIError(status: .badRequest, code: "ArgumentNull", message: "deviceId is required.")
        }
        let connected: Bool
        switch try IdentityRequestDecoder.string(json, "state")?.lowercased() {
        case "connected": connected = true
        case "disconnected": connected = false
        default: throw APIError.invalid("state must be connected or disconnected.")
        }
        return ConnectionReport(
            deviceId: deviceId,
            moduleId: try IdentityRequestDecoder.string(json, "moduleId").flatMap { $0.isEmpty ? nil : $0 },
            connected: connected,
            time: try timestamp(json, "time")
        )
    }

    /// An ISO 8601 string or Unix milliseconds.
    static func timestamp(_ json: JSONValue, _ name: String) throws -> Timestamp? {
        guard let value = IdentityRequestDecoder.member(json, name), value != .null else { return nil }
        // Below 9e12 ms (year 2255) so the nanoseconds fit an Int64.
        if let ms = value.intValue, ms > 0, ms < 9_000_000_000_000 { return Timestamp(unixNanoseconds: ms * 1_000_000) }
        if let text = value.stringValue, let time = Timestamp(iso8601: text) { return time }
        throw APIError.invalid("\(name) must be an ISO 8601 time or Unix milliseconds.")
    }
}
