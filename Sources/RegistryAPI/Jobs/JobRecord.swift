import RegistryCore

/// An import, export or bulk-by-query job as Azure's `JobProperties` (spec §10), stored in the
/// `jobs` database (key: job id; value: this JSON) outside the hash chain.
public struct JobRecord: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case export, `import`
        /// Ours: one change applied to every identity a query selects (`BulkQueryJob`).
        case bulkByQuery
    }

    public enum Status: String, Sendable, Hashable {
        case enqueued, running, completed, failed, cancelled

        public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }
    }

    public var jobId: String
    public var type: Kind
    public var status: Status
    public var startTimeUtc: Timestamp
    public var endTimeUtc: Timestamp?
    public var progress: Int
    public var inputBlobContainerUri: String?
    public var inputBlobName: String?
    public var outputBlobContainerUri: String?
    public var outputBlobName: String?
    public var excludeKeysInExport: Bool
    public var failureReason: String?
    /// Ours: identities exported or imported and lines that failed, so far.
    public var identities: Int = 0
    public var failedLines: Int = 0
    /// A bulk-by-query job's request and outcome (nil for imports and exports).
    var bulk: BulkQueryJob.Record?
    /// Ours: the policy that created the job (a scoped policy sees and cancels only its own).
    public var createdBy: String?

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "jobId": .string(jobId), "type": .string(type.rawValue), "status": .string(status.rawValue),
            "startTimeUtc": .string(startTimeUtc.iso8601), "progress": .int(Int64(progress)),
            "excludeKeysInExport": .bool(excludeKeysInExport), "storageAuthenticationType": .string("keyBased"),
            "identities": .int(Int64(identities)), "failedLines": .int(Int64(failedLines)),
        ]
        if let endTimeUtc { o["endTimeUtc"] = .string(endTimeUtc.iso8601) }
        if let inputBlobContainerUri { o["inputBlobContainerUri"] = .string(inputBlobContainerUri) }
        if let inputBlobName { o["inputBlobName"] = .string(inputBlobName) }
        if let outputBlobContainerUri { o["outputBlobContainerUri"] = .string(outputBlobContainerUri) }
        if let outputBlobName { o["outputBlobName"] = .string(outputBlobName) }
        if let failureReason { o["failureReason"] = .string(failureReason) }
        if let createdBy { o["createdBy"] = .string(createdBy) }
        if let bulk {
            for (key, value) in bulk.fields { o[key] = value }
        }
        return .object(o)
    }

    public init?(json: JSONValue) {
        guard let id = json["jobId"]?.stringValue, let type = json["type"]?.stringValue.flatMap(Kind.init(rawValue:)),
            let status = json["status"]?.stringValue.flatMap(Status.init(rawValue:)),
            let start = json["startTimeUtc"]?.stringValue.flatMap(Timestamp.init(iso8601:))
        else { return nil }
        jobId = id
        self.type = type
        self.status = status
        startTimeUtc = start
        endTimeUtc = json["endTimeUtc"]?.stringValue.flatMap(Timestamp.init(iso8601:))
        progress = Int(json["progress"]?.intValue ?? 0)
        inputBlobContainerUri = json["inputBlobContainerUri"]?.stringValue
        inputBlobName = json["inputBlobName"]?.stringValue
        outputBlobContainerUri = json["outputBlobContainerUri"]?.stringValue
        outputBlobName = json["outputBlobName"]?.stringValue
        excludeKeysInExport = json["excludeKeysInExport"]?.boolValue ?? false
        failureReason = json["failureReason"]?.stringValue
        identities = Int(json["identities"]?.intValue ?? 0)
        failedLines = Int(json["failedLines"]?.intValue ?? 0)
        bulk = type == .bulkByQuery ? BulkQueryJob.Record(json: json) : nil
        createdBy = json["createdBy"]?.stringValue
    }

    public init(
        jobId: String,
        type: Kind,
        status: Status,
        startTimeUtc: Timestamp,
        inputBlobContainerUri: String?,
        inputBlobName: String?,
        outputBlobContainerUri: String?,
        outputBlobName: String?,
        excludeKeysInExport: Bool
    ) {
        self.jobId = jobId
        self.type = type
        self.status = status
        self.startTimeUtc = startTimeUtc
        self.progress = 0
        self.inputBlobContainerUri = inputBlobContainerUri
        self.inputBlobName = inputBlobName
        self.outputBlobContainerUri = outputBlobContainerUri
        self.outputBlobName = outputBlobName
        self.excludeKeysInExport = excludeKeysInExport
    }
}
