#include "ns_pipeline.h"
typedef int ns_pipeline_placeholder_t;
