/* Online scoring of one job-node (or idle) segment with a model library:
 * preprocess with stored parameters, match a cluster, reconstruct with that
 * cluster's model, score, threshold, and summarise as a verdict. */
#ifndef NS_DETECT_H
#define NS_DETECT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_config.h"
#include "ns_model.h"
#include "ns_mts.h"
#include "ns_status.h"
#include "ns_store.h"

/* A loaded model library: preprocessing parameters, cluster library, one
 * model per cluster, threshold statistics. Read-only once loaded; safe to
 * share between scoring threads. */
typedef struct ns_library ns_library;

/* NS_ERR_NOTFOUND (with a detail) when no library is active yet. */
NS_API ns_status ns_library_load_active(ns_store *st, ns_library **out);
NS_API ns_status ns_library_load(ns_store *st, int64_t library_id, ns_library **out);
NS_API void ns_library_free(ns_library *lib);
NS_API int64_t ns_library_id(const ns_library *lib);
/* Score with this inference precision (model_precision; see ns_model.h).
 * Baselines have no bf16 path and stay as they are. Call before sharing. */
NS_API ns_status ns_library_set_precision(ns_library *lib, ns_precision p);
/* Short version tag shown to admins, e.g. "r3". */
NS_API const char *ns_library_version(const ns_library *lib);

#define NS_TOP_METRICS 3
typedef struct ns_interval {
  int64_t start_ms, end_ms;
  double score_max;
  int n_top;
  char top_metric[NS_TOP_METRICS][64];
  int8_t top_direction[NS_TOP_METRICS]; /* +1 above reconstruction, -1 below */
} ns_interval;

typedef struct ns_node_verdict {
  bool anomalous;
  bool scored;               /* false: nothing long enough to score (reason in `note`) */
  char note[128];
  bool new_pattern;          /* unmatched: scored by the nearest cluster anyway */
  double score_max, score_mean;
  int cluster;               /* cluster label used (-1 none) */
  int64_t cluster_db_id;     /* its clusters.id, 0 if unknown */
  double match_distance;
  char model_version[32];
  size_t n_intervals;
  ns_interval *intervals;
  double threshold;          /* level-rule threshold used (for charts) */
  double noise_floor;
  size_t T;                  /* per-point results after preprocessing */
  int64_t start_ms, interval_ms;
  float *score;
  uint8_t *flag;             /* bit 1 change rule, bit 2 level rule */
} ns_node_verdict;

/* `raw` is a node's job window as shipped (gauges/rates, any interval;
 * NaN = missing). */
NS_API ns_status ns_detect_segment(const ns_library *lib, const ns_segment *raw, const ns_config *cfg,
                                   ns_node_verdict **out);
/* Same for a segment that is already preprocessed (imported training/test
 * segments, `nsentry prep` output): its metrics must be the library's. */
NS_API ns_status ns_detect_prepped(const ns_library *lib, const ns_segment *seg, const ns_config *cfg,
                                   ns_node_verdict **out);
NS_API void ns_node_verdict_free(ns_node_verdict *v);
/* {"scored","anomalous","new_pattern","score_max","score_mean","cluster","match_distance",
 *  "model","threshold","noise_floor","points",
 *  "intervals":[{"start_ms","end_ms","score_max","top_metrics":[{"metric","direction":"above"|"below"}]}],
 *  "top_metrics":[names]}  (the `details` of a verdict in the DB and the HTTP API). malloc'ed. */
NS_API ns_status ns_node_verdict_json(const ns_node_verdict *v, char **out);
/* Upsert the verdicts row of (cluster, job_id, node) with details and
 * per-point scores. */
NS_API ns_status ns_detect_store_verdict(ns_store *st, const char *cluster, const char *job_id, const char *node,
                                         int64_t segment_id, const ns_node_verdict *v);
/* The library's metric schema (what ns_detect_prepped expects). */
NS_API size_t ns_library_n_metrics(const ns_library *lib);
NS_API const char *ns_library_metric(const ns_library *lib, size_t i);
/* Whether the library preprocesses raw input itself (false when it was
 * trained on already-preprocessed imported segments). */
NS_API bool ns_library_has_prep(const ns_library *lib);

#endif
