#include "ns_train.h"
typedef int ns_train_placeholder_t;
