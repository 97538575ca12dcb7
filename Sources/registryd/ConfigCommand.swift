import ArgumentParser
import RegistryAPI
import RegistryCore
import RegistryDelivery

/// `registryd config check --config FILE`: validates a configuration file without starting
/// anything (unknown keys and bad values are errors naming the field). Exit 0 when valid.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Configuration file tools.",
        subcommands: [ConfigCheckCommand.self]
    )
}

struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Validate a configuration file without starting the daemon.")

    @Option(help: "The JSON configuration file.")
    var config: String

    func run() throws {
        let settings: RegistryConfiguration
        do {
            settings = try RegistryConfiguration(file: config)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        let delivery = settings.delivery
        print(
            "\(config): ok (\(delivery.endpoints.count) endpoints, \(delivery.routes.count) routes, "
                + "maxModulesPerDevice \(settings.limits.maxModulesPerDevice), maxIdentities \(settings.limits.maxIdentities.map(String.init) ?? "unlimited"))"
        )
    }
}
