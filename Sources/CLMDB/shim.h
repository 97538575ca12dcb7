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
#endif
