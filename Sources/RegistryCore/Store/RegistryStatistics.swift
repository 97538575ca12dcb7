/// Registry counts.
public struct RegistryStatistics: Sendable, Hashable {
    public var totalDeviceCount: Int
    public var enabledDeviceCount: Int
    public var disabledDeviceCount: Int
    public var totalModuleCount: Int
    /// Devices a broker last reported connected (`POST /registry/connections`).
    public var connectedDeviceCount: Int

    public init(totalDeviceCount: Int, enabledDeviceCount: Int, disabledDeviceCount: Int, totalModuleCount: Int, connectedDeviceCount: Int) {
        self.totalDeviceCount = totalDeviceCount
        self.enabledDeviceCount = enabledDeviceCount
        self.disabledDeviceCount = disabledDeviceCount
        self.totalModuleCount = totalModuleCount
        self.connectedDeviceCount = connectedDeviceCount
    }
}
