#ifndef REGISTRYD_CLMDB_SHIM_H
#define REGISTRYD_CLMDB_SHIM_H
#include <stddef.h>
#include <lmdb.h>

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
#endif
