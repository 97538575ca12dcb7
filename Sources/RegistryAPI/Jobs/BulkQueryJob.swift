import HTTPTypes
import RegistryCore
import RegistryTransfer

/// A `bulkByQuery` job (ours, beside Azure's import and export): one change applied to every
/// identity a query selects, each under the etags its page was read with.
///
/// ```json
/// {"type": "bulkByQuery", "query": "SELECT * FROM devices WHERE tags.site = 'lyon'",
///  "change": {"action": "disable", "statusReason": "site decommissioned"}, "dryRun": false}
/// ```
///
/// Actions: `disable` / `enable` (`statusReason` optional; devices only), `regenerateKeys`
/// (`keys`: `primary`, `secondary` or `both`, the default), `setTags` (`tags`: an object merged as
/// PATCH merges it, `null` removing a key), `removeTags` (`tags`: an array of top-level names),
/// `delete`. A dry run only counts what the query selects.
struct BulkQueryJob: Sendable, Hashable {
    var text: String
    var query: DeviceQuery
    var action: IdentityChange.Action
    /// The change as the request gave it, normalised (stored in the record).
    var change: JSONValue
    var dryRun: Bool
    /// The creating caller's scope, if scoped (each change is checked against it).
    var scope: PolicyScope?

    /// Refusals kept in the job record; the counts go on past it.
    static let recordedRefusals = 1_000

    /// Reads the request's `query`, `change` and `dryRun`; a bad one is the caller's 400.
    static func parse(_ body: JSONValue) throws -> BulkQueryJob {
        guard let text = try IdentityRequestDecoder.string(body, "query"), !text.isEmpty else {
            throw APIError(status: .badRequest, code: "ArgumentNull", message: "A bulkByQuery job needs query (SELECT * FROM devices WHERE ...).")
        }
        let query: DeviceQuery
        do {
            query = try BulkQueryEngine.selection(try QueryParser.parse(text))
        } catch let error as QuerySyntaxError {
            throw APIError.invalid("query: \(error.description)")
        } catch let error as BulkQueryError {
            throw APIError.invalid(error.description)
        }
        guard let change = body["change"], case .object = change else {
            throw APIError(
                status: .badRequest,
                code: "ArgumentNull",
                message: "A bulkByQuery job needs change, an object whose action is disable, enable, regenerateKeys, setTags, removeTags or delete."
            )
        }
        let (action, normalised) = try Self.action(change, modules: query.source == .modules)
        return BulkQueryJob(
            text: text,
            query: query,
            action: action,
            change: normalised,
            dryRun: try IdentityRequestDecoder.bool(body, "dryRun") ?? false
        )
    }

    static func action(_ change: JSONValue, modules: Bool) throws -> (IdentityChange.Action, JSONValue) {
        let actions = ["delete", "disable", "enable", "regenerateKeys", "removeTags", "setTags"]
        guard let name = change["action"]?.stringValue else {
            throw APIError.invalid("change.action must be one of \(actions.joined(separator: ", ")).")
        }
        let allowed: [String: Set<String>] = [
            "disable": ["action", "statusReason"], "enable": ["action", "statusReason"], "regenerateKeys": ["action", "keys"],
            "setTags": ["action", "tags"], "removeTags": ["action", "tags"], "delete": ["action"],
        ]
        guard let fields = allowed[name] else { throw APIError.invalid("change.action '\(name)' is not one of \(actions.joined(separator: ", ")).") }
        if case .object(let members) = change, let unknown = members.keys.sorted().first(where: { !fields.contains($0) }) {
            throw APIError.invalid("change.\(unknown) does not apply to action \(name) (it takes \(fields.sorted().joined(separator: ", "))).")
        }
        switch name {
        case "disable", "enable":
            if modules { throw APIError.invalid("Modules cannot be disabled or enabled; select devices (FROM devices).") }
            let reason = change["statusReason"]
            guard reason == nil || reason == .null || reason?.stringValue != nil else {
                throw APIError.invalid("change.statusReason must be a string.")
            }
            let text = reason?.stringValue
            if let text, text.count > Validation.maximumStatusReasonLength {
                throw APIError.invalid("change.statusReason is longer than \(Validation.maximumStatusReasonLength) characters.")
            }
            var normalised: [String: JSONValue] = ["action": .string(name)]
            if let text { normalised["statusReason"] = .string(text) }
            return (.setStatus(name == "disable" ? .disabled : .enabled, reason: text), .object(normalised))
        case "regenerateKeys":
            let given = change["keys"]
            guard given == nil || given?.stringValue.flatMap(IdentityChange.KeySlots.init(rawValue:)) != nil else {
                throw APIError.invalid("change.keys must be primary, secondary or both.")
            }
            let slots = given?.stringValue.flatMap(IdentityChange.KeySlots.init(rawValue:)) ?? .both
            return (.regenerateKeys(slots), .object(["action": .string(name), "keys": .string(slots.rawValue)]))
        case "setTags":
            guard case .object(let tags) = change["tags"] ?? .null, !tags.isEmpty else {
                throw APIError.invalid("change.tags must be a non-empty object (a null value removes that tag).")
            }
            return (.mergeTags(tags), .object(["action": .string(name), "tags": .object(tags)]))
        case "removeTags":
            guard let names = change["tags"]?.arrayValue, !names.isEmpty,
                names.allSatisfy({ ($0.stringValue ?? "").isEmpty == false })
            else { throw APIError.invalid("change.tags must be a non-empty array of tag names.") }
            let removed = Dictionary(names.compactMap(\.stringValue).map { ($0, JSONValue.null) }, uniquingKeysWith: { a, _ in a })
            return (.mergeTags(removed), .object(["action": .string(name), "tags": .array(names)]))
        default:
            return (.delete, .object(["action": .string(name)]))
        }
    }

    /// What a bulk-by-query job record carries beside Azure's fields.
    struct Record: Sendable, Hashable {
        var query: String
        var change: JSONValue
        var dryRun: Bool
        var counts = BulkQueryEngine.Counts()
        /// The first `recordedRefusals` identities the change did not apply to.
        var refusals: [JSONValue] = []
        /// Refusals past those kept.
        var refusalsOmitted = 0

        init(_ job: BulkQueryJob) {
            query = job.text
            change = job.change
            dryRun = job.dryRun
        }

        init?(json: JSONValue) {
            guard let query = json["query"]?.stringValue, let change = json["change"] else { return nil }
            self.query = query
            self.change = change
            dryRun = json["dryRun"]?.boolValue ?? false
            func count(_ name: String) -> Int { Int(json[name]?.intValue ?? 0) }
            counts.matched = count("matched")
            counts.processed = count("processed")
            counts.changed = count("changed")
            counts.skipped = count("skipped")
            counts.failed = count("failed")
            refusals = json["results"]?.arrayValue ?? []
            refusalsOmitted = count("resultsOmitted")
        }

        mutating func refused(_ refusal: BulkQueryEngine.Refusal) {
            if refusals.count < BulkQueryJob.recordedRefusals { refusals.append(refusal.json) } else { refusalsOmitted += 1 }
        }

        var fields: [String: JSONValue] {
            [
                "query": .string(query), "change": change, "dryRun": .bool(dryRun),
                "matched": .int(Int64(counts.matched)), "processed": .int(Int64(counts.processed)),
                "changed": .int(Int64(counts.changed)), "skipped": .int(Int64(counts.skipped)), "failed": .int(Int64(counts.failed)),
                "results": .array(refusals), "resultsOmitted": .int(Int64(refusalsOmitted)),
            ]
        }
    }
}
