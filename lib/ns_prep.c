#include "ns_prep.h"
typedef int ns_prep_placeholder_t;
