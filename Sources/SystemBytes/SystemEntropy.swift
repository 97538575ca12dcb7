import CSystemCalls

/// The kernel's CSPRNG (`getrandom(2)` on Linux, `arc4random_buf` on Darwin), filled in bulk.
///
/// Here rather than in RegistryCore because this target is the package's one door to C and to
/// unsafe pointers (as for `ProcessMemory`); the generator built on it lives in RegistryCore.
public enum SystemEntropy {
    /// Overwrites every element of `words` with random bytes from the kernel: one system call
    /// for a 16 KiB buffer, unless a signal interrupts it.
    ///
    /// Stops the process if the kernel cannot provide them (no `getrandom`, kernels before 3.17):
    /// a registry that makes keys must not continue without a source for them.
    public static func fill(_ words: inout [UInt64]) {
        let error = words.withUnsafeMutableBytes { registryd_kernel_random($0.baseAddress, $0.count) }
        guard error == 0 else { fatalError("the kernel's random source failed (errno \(error)); keys cannot be made") }
    }
}
