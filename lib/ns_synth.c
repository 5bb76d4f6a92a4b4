#include "ns_synth.h"
typedef int ns_synth_placeholder_t;
