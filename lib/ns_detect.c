#include "ns_detect.h"
typedef int ns_detect_placeholder_t;
