#include "ns_model.h"
typedef int ns_model_placeholder_t;
