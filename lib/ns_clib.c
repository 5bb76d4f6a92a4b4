#include "ns_clib.h"
typedef int ns_clib_placeholder_t;
