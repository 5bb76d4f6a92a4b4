#include "ns_sql.h"
typedef int ns_sql_placeholder_t;
