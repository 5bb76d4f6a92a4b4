/* Shared between cmd_prep.c and cmd_demo.c (prep area). */
#ifndef NS_CMD_PREP_H
#define NS_CMD_PREP_H
#include <stdint.h>
#include "ns_prep.h"
#include "ns_store.h"

/* The `nsentry prep` summary block (st may be NULL: no dropped-pair list). */
void ns_cmd_prep_print_summary(const char *cluster, const ns_prep_summary *s, int64_t train_until, ns_store *st);
#endif
