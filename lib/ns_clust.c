#include "ns_clust.h"
typedef int ns_clust_placeholder_t;
