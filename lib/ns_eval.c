#include "ns_eval.h"
typedef int ns_eval_placeholder_t;
