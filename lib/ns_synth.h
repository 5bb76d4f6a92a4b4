/* Synthetic cluster: N nodes, a job stream drawn from archetypes (compute,
 * memory-bound, I/O, communication, idle) with multi-node jobs whose nodes
 * behave alike, sub-phases within jobs, per-node offsets and noise, and
 * labelled anomalies modelled on HPAS (cpuoccupy, memleak, membw, cachecopy,
 * iobandwidth, netoccupy). Deterministic by seed. Telemetry is generated one
 * node (or one time step of every node) at a time, so a D1-sized cluster is
 * never held in memory. Metrics are named like LDMS ("schema.metric"),
 * counters are cumulative. docs/preprocessing.md describes the model. */
#ifndef NS_SYNTH_H
#define NS_SYNTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_mts.h"
#include "ns_prep.h"
#include "ns_status.h"
#include "ns_store.h"

typedef enum {
  NS_SYNTH_COMPUTE = 0, NS_SYNTH_MEMORY, NS_SYNTH_IO, NS_SYNTH_COMM, NS_SYNTH_IDLEJOB, NS_SYNTH_NARCH
} ns_synth_arch;

typedef enum {
  NS_ANOM_CPUOCCUPY = 0, NS_ANOM_MEMLEAK, NS_ANOM_MEMBW, NS_ANOM_CACHECOPY, NS_ANOM_IOBANDWIDTH,
  NS_ANOM_NETOCCUPY, NS_ANOM_COUNT
} ns_synth_anom;

NS_API const char *ns_synth_arch_name(ns_synth_arch a);
NS_API const char *ns_synth_anom_name(ns_synth_anom a);

typedef struct ns_synth_opts {
  const char *cluster;     /* default "synth" */
  int nodes;               /* default 8 */
  double days;             /* default 1 */
  int64_t interval_ms;     /* sampling interval, default 15000 */
  int metrics;             /* 16..4096; default 82 (D1); 116 = D2-like */
  int jobs;                /* jobs submitted (some may not fit); 0 = about 1.4 per node-day */
  uint64_t seed;           /* default 1 */
  double anomaly_ratio;    /* fraction of test-period time that is anomalous, per node; default 0.02 */
  double contamination;    /* same for the training period; default 0 */
  double train_frac;       /* training period = first train_frac of the span; default 0.7 */
  int64_t start_ms;        /* default 2026-01-05 00:00 UTC */
  double missing;          /* fraction of samples dropped one by one; default 0.001 */
  double outages;          /* node outages (reboot: counters reset) per node-week; default 0.3 */
  int64_t jitter_ms;       /* sample time jitter (0..jitter); default 250 */
  int apps;                /* 0 (default): every job is one of the archetypes as they are; N (1..1000):
                              N applications, each a fixed variant of an archetype (a second archetype
                              blended into its main phases, its own gains per resource, period, phase
                              structure and level), jobs drawn from them by a Zipf-like popularity */
} ns_synth_opts;

NS_API void ns_synth_opts_default(ns_synth_opts *o);

typedef struct ns_synth ns_synth;
NS_API ns_status ns_synth_create(const ns_synth_opts *o, ns_synth **out);
NS_API void ns_synth_free(ns_synth *s);

NS_API const ns_synth_opts *ns_synth_get_opts(const ns_synth *s);
NS_API size_t ns_synth_n_nodes(const ns_synth *s);
NS_API const char *ns_synth_node_name(const ns_synth *s, size_t i);
NS_API size_t ns_synth_n_metrics(const ns_synth *s);
NS_API char *const *ns_synth_metric_names(const ns_synth *s);
NS_API const uint8_t *ns_synth_metric_counters(const ns_synth *s);
/* Jobs that were scheduled (cluster, job_id, start, end, nodelist, tag =
 * archetype name, or "appNN-<archetype>" with apps, state COMPLETED). */
NS_API const ns_job *ns_synth_jobs(const ns_synth *s, size_t *n);
/* Injected anomalies: one label per interval (source "synth", label 1,
 * note = HPAS name, job_id = the job running at its start or NULL). */
NS_API const ns_label *ns_synth_labels(const ns_synth *s, size_t *n);
NS_API int64_t ns_synth_start(const ns_synth *s);
NS_API int64_t ns_synth_end(const ns_synth *s);
NS_API int64_t ns_synth_train_until(const ns_synth *s);

/* Streaming generator for one node: rows in time order (missing samples and
 * outages skipped), with the per-point anomaly label. */
typedef struct ns_synth_gen ns_synth_gen;
NS_API ns_status ns_synth_gen_create(const ns_synth *s, size_t node, ns_synth_gen **out);
NS_API void ns_synth_gen_free(ns_synth_gen *g);
/* false at the end; row has ns_synth_n_metrics values. */
NS_API bool ns_synth_gen_next(ns_synth_gen *g, int64_t *ts_ms, double *row, uint8_t *label);

/* A node's rows with ts in [from, to) (0 = open) as an ns_mts (labels on). */
NS_API ns_status ns_synth_node_mts(const ns_synth *s, size_t node, int64_t from_ms, int64_t to_ms, ns_mts **out);

typedef struct ns_synth_report {
  int64_t rows, points, files, jobs, labels, segments;
  double seconds;
} ns_synth_report;

/* LDMS store_csv layout: DIR/ldms/<schema>.csv (procstat, meminfo, vmstat,
 * procnetdev, procdiskstats, loadavg, psi, perfevent) with every node's rows
 * in time order, plus DIR/jobs.sacct (sacct -P format) and
 * DIR/anomalies.csv. */
NS_API ns_status ns_synth_write_ldms(const ns_synth *s, const char *dir, ns_synth_report *rep);
/* NodeSentry layout in dir: Job, Train/<node>/<node>_Job-<id>.csv and
 * Test/<node>_Job-<id>.csv (with Label), values preprocessed as in the
 * public dataset (parameters fitted on the training period with `po`), plus
 * anomalies.csv. */
NS_API ns_status ns_synth_write_nodesentry(const ns_synth *s, const char *dir, const ns_prep_opts *po,
                                           ns_synth_report *rep);
/* Straight into the store: jobs, raw telemetry (source "synth", one
 * transaction per node, in day-sized chunks) and labels. */
NS_API ns_status ns_synth_write_store(const ns_synth *s, ns_store *st, ns_synth_report *rep);

#endif
