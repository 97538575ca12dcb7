/* Every function of this module is a static inline in include/csystemcalls.h; SwiftPM needs one source file. */
#include "csystemcalls.h"
