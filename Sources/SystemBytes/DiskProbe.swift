import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The disk's sync regime, for the store benchmark: a 4 KiB write plus `fdatasync`, 300 times.
/// Here because it writes from a raw buffer (the unsafe lines live in the low-level targets).
public enum DiskProbe {
    public static func fsync(path: String) -> (rate: Double, p50Ms: Double)? {
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { return nil }
        defer {
            close(fd)
            unlink(path)
        }
        let block = [UInt8](repeating: 7, count: 4096)
        _ = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, 0) }
        sync(fd)
        var times: [UInt64] = []
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<300 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, 0) }
            sync(fd)
            times.append(DispatchTime.now().uptimeNanoseconds - t0)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        times.sort()
        return (300 / seconds, Double(times[150]) / 1e6)
    }

    private static func sync(_ fd: Int32) {
        #if canImport(Darwin)
            _ = fsync(fd)
        #else
            _ = fdatasync(fd)
        #endif
    }
}
