#include "ns_spool.h"
typedef int ns_spool_placeholder_t;
