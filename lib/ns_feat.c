#include "ns_feat.h"
typedef int ns_feat_placeholder_t;
