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
            return RegistryRoutes.json(try await jobs.create(body, now: clock(), scope: context.scope).json)
        }
        router.get("jobs") { _, context in
            try context.require(.registryRead)
            return RegistryRoutes.json(.array(try await jobs.list().map(\.json)))
        }
        router.get("jobs/:jobId") { _, context in
            try context.require(.registryRead)
            let id = try RegistryRoutes.pathId(context, "jobId")
            guard let record = try await jobs.get(id) else { throw Self.notFound(id) }
            return RegistryRoutes.json(record.json)
        }
        router.delete("jobs/:jobId") { _, context in
            try context.require(.registryWrite)
            let id = try RegistryRoutes.pathId(context, "jobId")
            guard let record = try await jobs.cancel(id, now: clock()) else { throw Self.notFound(id) }
            return RegistryRoutes.json(record.json)
        }
    }

    static func notFound(_ id: String) -> APIError {
        APIError(status: .notFound, code: "JobNotFound", message: "No job with id '\(id)'.")
    }
}
