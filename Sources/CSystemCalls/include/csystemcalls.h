#ifndef REGISTRYD_CSYSTEM_H
#define REGISTRYD_CSYSTEM_H
/* The few C library calls Swift's Glibc module does not export, for the SystemBytes target
   (byte search, allocator settings, the kernel's CSPRNG). Kept apart from CLMDB so that code
   needing them does not depend on LMDB. */
#include <stddef.h>

/* memmem is a GNU extension that Swift's Glibc module does not export. It is declared here
   rather than through _GNU_SOURCE, which would make this module's view of the C library
   headers differ from SwiftGlibc's (a clean build then fails on conflicting definitions). */
extern void *memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length);

static inline const void *registryd_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length) {
    return memmem(haystack, haystack_length, needle, needle_length);
}
/* glibc's allocator settings (malloc.h is not part of Swift's Glibc module either; the
   parameter numbers are glibc's M_TRIM_THRESHOLD and M_TOP_PAD). See LMDB.ProcessMemory. */
#if defined(__GLIBC__)
extern int mallopt(int param, int value);
static inline void registryd_keep_freed_memory(int trim_threshold, int top_pad) {
    mallopt(-1, trim_threshold);
    mallopt(-2, top_pad);
}
#else
static inline void registryd_keep_freed_memory(int trim_threshold, int top_pad) { (void)trim_threshold; (void)top_pad; }
#endif
/* The kernel's CSPRNG, read in bulk (see LMDB.SystemEntropy). getrandom(2) is declared here
   because sys/random.h is not part of Swift's Glibc module. For the urandom source a request
   returns in full unless a signal interrupts it (possible above 256 bytes), hence the loop.
   Returns 0, or the errno of the failure. */
#if defined(__linux__)
#include <errno.h>
#include <sys/types.h>
extern ssize_t getrandom(void *buffer, size_t length, unsigned int flags);
static inline int registryd_kernel_random(void *buffer, size_t length) {
    unsigned char *next = (unsigned char *)buffer;
    while (length > 0) {
        ssize_t n = getrandom(next, length, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        next += n;
        length -= (size_t)n;
    }
    return 0;
}
#elif defined(__APPLE__)
#include <stdlib.h>
static inline int registryd_kernel_random(void *buffer, size_t length) {
    arc4random_buf(buffer, length);
    return 0;
}
#else
#include <errno.h>
static inline int registryd_kernel_random(void *buffer, size_t length) { (void)buffer; (void)length; return ENOSYS; }
#endif
#endif
