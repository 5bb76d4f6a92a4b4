#include "ns_source.h"
typedef int ns_source_placeholder_t;
