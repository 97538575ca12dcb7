#ifndef REGISTRYD_CLMDB_SHIM_H
#define REGISTRYD_CLMDB_SHIM_H
#include <stddef.h>
#include <lmdb.h>
#endif
