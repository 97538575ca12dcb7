import ArgumentParser
import Foundation
import RegistryCore

/// Options shared by the commands that print credentials.
struct CredentialOptions: ParsableArguments {
    @OptionGroup var data: DataDirectoryOptions

    @Option(help: "Shared access policy.")
    var policy: String = "iothubowner"

    @Option(help: "Host name (default: the one `serve` recorded).")
    var hostName: String?

    func load() async throws -> (SharedAccessPolicy, String) {
        let storage = try await data.reader(needsKeys: true)
        let policies = try await storage.policies()
        guard !policies.isEmpty else { throw ValidationError("no policies yet: start `registryd serve` once to create them") }
        guard let found = policies.first(where: { $0.name == policy }) else {
            throw ValidationError("no policy '\(policy)'; the policies are \(policies.map(\.name).sorted().joined(separator: ", "))")
        }
        guard let host = try await hostNameOrRecorded(storage) else {
            throw ValidationError("no host name recorded yet: pass --host-name or start `registryd serve` once")
        }
        return (found, host)
    }

    func hostNameOrRecorded(_ storage: any RegistryReader) async throws -> String? {
        if let hostName { return hostName }
        return try await storage.metaString(MetaKey.hostName)
    }
}

/// `registryd connection-string`: prints `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`.
struct ConnectionStringCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connection-string", abstract: "Print a service connection string.")

    @OptionGroup var options: CredentialOptions

    func run() async throws {
        let (policy, host) = try await options.load()
        print("HostName=\(host);SharedAccessKeyName=\(policy.name);SharedAccessKey=\(policy.primaryKey)")
    }
}

/// `registryd sas-token`: prints a ready `Authorization` header value.
struct SASTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sas-token", abstract: "Print a SharedAccessSignature for the Authorization header.")

    @OptionGroup var options: CredentialOptions

    @Option(help: "Lifetime in seconds.")
    var ttl: Int64 = 3600

    func run() async throws {
        let (policy, host) = try await options.load()
        let expiry = Int64(Date().timeIntervalSince1970) + ttl
        print(SharedAccessSignature.make(resource: host, key: policy.primaryKey, keyName: policy.name, expiry: expiry))
    }
}
