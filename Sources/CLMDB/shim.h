#ifndef REGISTRYD_CLMDB_SHIM_H
#define REGISTRYD_CLMDB_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <string.h>
#include <lmdb.h>

/* memmem is a GNU extension that Swift's Glibc module does not export. */
static inline const void *registryd_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length) {
    return memmem(haystack, haystack_length, needle, needle_length);
}
#endif
