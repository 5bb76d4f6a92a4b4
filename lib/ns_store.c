#include "ns_store.h"
typedef int ns_store_placeholder_t;
