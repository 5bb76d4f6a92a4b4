#include "ns_csv.h"
typedef int ns_csv_placeholder_t;
