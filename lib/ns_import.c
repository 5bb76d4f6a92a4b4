#include "ns_import.h"
typedef int ns_import_placeholder_t;
