import RegistryAPI
import RegistryDelivery

/// The daemon wires the lifecycle router into the API here: the API target knows only the
/// protocol, the delivery target only the store interface.
extension DeliveryService: RouteAdministration {}
