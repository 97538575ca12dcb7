import Foundation
import Hummingbird
import RegistryCore
import RegistryTransfer

/// `/jobs`: Azure's import and export jobs (spec §10). Create and cancel need RegistryWrite,
/// reading RegistryRead; If-Match is ignored (C# sends the job id as one).
struct JobRoutes: Sendable {
    let jobs: JobService
    let routes: RegistryRoutes
    let clock: @Sendable () -> Timestamp

    func register(on router: Router<RegistryRequestContext>) {
        router.post("jobs/create") { request, context in
            try context.require(.registryWrite)
            let body = try IdentityRequestDecoder.parse(try await routes.body(request))
            return RegistryRoutes.json(try await jobs.create(body, now: clock(), scope: context.scope, createdBy: context.actor).json)
        }
        router.get("jobs") { _, context in
            try context.require(.registryRead)
            return RegistryRoutes.json(.array(try await jobs.list().filter { Self.visible($0, context) }.map(\.json)))
        }
        router.get("jobs/:jobId") { _, context in
            try context.require(.registryRead)
            let id = try RegistryRoutes.pathId(context, "jobId")
            guard let record = try await jobs.get(id), Self.visible(record, context) else { throw Self.notFound(id) }
            return RegistryRoutes.json(record.json)
        }
        router.delete("jobs/:jobId") { _, context in
            try context.require(.registryWrite)
            let id = try RegistryRoutes.pathId(context, "jobId")
            // A scoped caller cancels only its own jobs (another's is not there for it).
            if context.scope != nil {
                guard let record = try await jobs.get(id), Self.visible(record, context) else { throw Self.notFound(id) }
            }
            guard let record = try await jobs.cancel(id, now: clock()) else { throw Self.notFound(id) }
            return RegistryRoutes.json(record.json)
        }
    }

    /// A scoped caller sees only the jobs its own policy created (their records name queries,
    /// containers and refused identities of the whole registry otherwise).
    static func visible(_ record: JobRecord, _ context: RegistryRequestContext) -> Bool {
        context.scope == nil || record.createdBy == context.actor
    }

    static func notFound(_ id: String) -> APIError {
        APIError(status: .notFound, code: "JobNotFound", message: "No job with id '\(id)'.")
    }
}
