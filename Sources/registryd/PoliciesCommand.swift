import ArgumentParser
import Foundation
import RegistryCore

/// `registryd policies list|add|remove|rotate --data-dir DIR`: shared access policies of a stopped
/// daemon's data directory, changed through the writer. While `serve` runs it holds the
/// directory, and the same changes go through `/registry/policies` (iothubowner). On PostgreSQL
/// (`--storage URL`) the change is made in the database while the nodes run (it serialises with
/// theirs on the hub's row) and every node installs it within its policy refresh (a second).
struct PoliciesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policies",
        abstract: "List, add, remove or rotate shared access policies (LMDB: daemon stopped; PostgreSQL: any time).",
        subcommands: [List.self, Add.self, Remove.self, Rotate.self]
    )

    static func open(_ data: DataDirectoryOptions) async throws -> any RegistryBackend {
        if case .postgres = try data.selection {
            return try await StoreOpening.backend(try data.selection, directory: DataDirectory(path: data.dataDir))
        }
        let dataDir = data.dataDir
        do {
            return try StoreOpening.writer(DataDirectory(path: dataDir))
        } catch let error as StoreError where error.description.contains("in use") {
            throw ValidationError(
                "\(error.description)\nWhile the daemon runs, use its API with an iothubowner token, e.g.\n"
                    + "  curl --cacert \(dataDir)/tls/ca.pem -H \"Authorization: $(registryd sas-token --data-dir \(dataDir))\" https://HOST/registry/policies"
            )
        }
    }

    static func change<T>(_ body: () async throws(PolicyError) -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// `name<TAB>rights[<TAB>scope JSON]`.
    static func line(_ policy: SharedAccessPolicy) -> String {
        let scope = policy.scope.map { "\t" + String(decoding: CanonicalJSON.encode($0.json), as: UTF8.self) } ?? ""
        return "\(policy.name)\t\(policy.rights.description)\(scope)"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Names and rights (no keys).")
        @OptionGroup var data: DataDirectoryOptions
        func run() async throws {
            let storage = try await data.reader(needsKeys: true)
            for policy in try await storage.policies().sorted(by: { $0.name < $1.name }) { print(PoliciesCommand.line(policy)) }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a policy (fresh keys) or change a policy's rights and scope (without scope options: unscoped)."
        )
        @OptionGroup var data: DataDirectoryOptions
        @Argument(help: "The policy name.") var name: String
        @Option(help: "Comma-separated rights: RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect, Metrics (only /metrics).") var rights:
            String
        @Option(name: .customLong("scope-prefix"), help: "Scope the policy to device ids starting with this (repeatable).")
        var scopePrefixes: [String] = []
        @Option(name: .customLong("scope-condition"), help: "Scope the policy to identities whose twin matches this query condition.")
        var scopeCondition: String?
        func run() async throws {
            guard let parsed = AccessRights(description: rights) else { throw ValidationError("unknown right in '\(rights)'") }
            var scope: PolicyScope?
            if !scopePrefixes.isEmpty || scopeCondition != nil {
                do {
                    scope = try PolicyScope(deviceIdPrefixes: scopePrefixes, condition: scopeCondition)
                } catch {
                    throw ValidationError(error.description)
                }
            }
            let store = try await PoliciesCommand.open(data)
            defer { store.close() }
            let policy = try await PoliciesCommand.change { () async throws(PolicyError) in
                try await store.upsertPolicy(name: name, rights: parsed, scope: scope)
            }
            print(PoliciesCommand.line(policy))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a policy (its tokens stop working).")
        @OptionGroup var data: DataDirectoryOptions
        @Argument(help: "The policy name.") var name: String
        func run() async throws {
            let store = try await PoliciesCommand.open(data)
            defer { store.close() }
            try await PoliciesCommand.change { () async throws(PolicyError) in try await store.removePolicy(name: name) }
            print("removed \(name)")
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rotate", abstract: "Give a policy a new primary (default) or secondary key.")
        @OptionGroup var data: DataDirectoryOptions
        @Argument(help: "The policy name.") var name: String
        @Flag(help: "Rotate the secondary key instead of the primary.") var secondary = false
        func run() async throws {
            let store = try await PoliciesCommand.open(data)
            defer { store.close() }
            _ = try await PoliciesCommand.change { () async throws(PolicyError) in try await store.rotatePolicy(name: name, secondary: secondary) }
            print(
                "rotated the \(secondary ? "secondary" : "primary") key of \(name); print it with: registryd connection-string --data-dir \(data.dataDir)\(data.storage.map { " --storage '\($0)'" } ?? "") --policy \(name)"
            )
        }
    }
}
