import RegistryAPI
import RegistryDelivery

/// As `serve` wires it (Sources/registryd): the API shows the router through the protocol.
extension DeliveryService: RouteAdministration {}
