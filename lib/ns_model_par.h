/* A tiny fork-join helper: run fn(ctx, i) for i in [0, n) on n threads (the
 * caller runs i = 0). Used by the model for windows split between workers. */
#ifndef NS_MODEL_PAR_H
#define NS_MODEL_PAR_H
#include "ns_status.h"

typedef void (*ns_par_fn)(void *ctx, int i);
/* Falls back to running the remaining parts on the caller's thread when a
 * thread cannot be started. */
void ns_par_run(int n, ns_par_fn fn, void *ctx);

#endif
