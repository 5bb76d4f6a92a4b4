/* Node telemetry collection for nsentry-sampler: /proc (stat, meminfo, vmstat,
 * loadavg, diskstats, net/dev, pressure), hardware counters through
 * perf_event_open, and GPUs through NVML (dlopen'ed only if present).
 * Cumulative counters become per-second rates (or percentages) here, so every
 * value handed to the spool is a gauge. */
#ifndef NS_COLLECT_H
#define NS_COLLECT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_status.h"

typedef struct ns_collect ns_collect;

enum {
  NS_COLLECT_NO_PERF = 1u << 0,
  NS_COLLECT_NO_NVML = 1u << 1,
};

/* proc_root: normally "/proc"; tests point it at a fake tree. */
ns_status ns_collect_create(const char *proc_root, unsigned flags, ns_collect **out);
void ns_collect_free(ns_collect *c);

/* Take one sample at ts_ms. The first call only primes the counters and returns
 * NS_ERR_EMPTY. On success the names and values (M entries) stay valid until the next call. */
ns_status ns_collect_sample(ns_collect *c, int64_t ts_ms, size_t *M, char ***names, float **values);

/* What is active, for the startup log: "perf: 5 counters", "perf: unavailable (...)". */
const char *ns_collect_perf_state(const ns_collect *c);
const char *ns_collect_gpu_state(const ns_collect *c);

#endif
