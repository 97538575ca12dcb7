import CSystemCalls

/// The C allocator's settings for a process that keeps a large working set (here because this
/// target holds the package's C interfaces).
///
/// By default glibc hands freed memory at the top of a heap back to the kernel as soon as
/// 128 KiB are free, and takes it back as fresh, page-faulted pages on the next burst. The
/// writer frees and rebuilds tens of megabytes per batch, so an import spent a tenth of its
/// time in `sysmalloc` and page faults. Keeping up to 256 MiB and growing by 64 MiB at a time
/// measured 10-15% faster imports (`registryd bench import-export`).
public enum ProcessMemory {
    public static func keepFreedMemory() {
        registryd_keep_freed_memory(256 << 20, 64 << 20)
    }
}
