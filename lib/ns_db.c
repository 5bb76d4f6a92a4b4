#include "ns_db.h"
typedef int ns_db_placeholder_t;
