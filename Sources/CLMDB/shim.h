#ifndef REGISTRYD_CLMDB_SHIM_H
#define REGISTRYD_CLMDB_SHIM_H
#include <lmdb.h>
#endif
