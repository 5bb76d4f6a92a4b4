#include "ns_hostlist.h"
typedef int ns_hostlist_placeholder_t;
