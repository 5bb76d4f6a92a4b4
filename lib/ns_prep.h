/* Preprocessing (the paper's four steps): cleaning (resampling, interpolation
 * of short gaps, splitting at long ones), reduction (per-core aggregation,
 * counters to rates, dropping one of each highly correlated metric pair),
 * standardisation per (node, metric) with trimmed mean/sigma and clipping,
 * and segmentation at job boundaries. Parameters are fitted once on training
 * data, persisted as a versioned artifact, and applied identically to new
 * data later (offline `nsentry prep` and the scoring service alike).
 * docs/preprocessing.md describes every decision. */
#ifndef NS_PREP_H
#define NS_PREP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_config.h"
#include "ns_mts.h"
#include "ns_status.h"
#include "ns_store.h"

#define NS_PREP_MAGIC "NSPREP\r\n"
#define NS_PREP_VERSION 1u
/* Default aggregation rules (config prep_aggregate). */
#define NS_PREP_DEFAULT_RULES "*cpu#_*=mean,*core#_*=mean,*gpu#_*=mean,*numa#_*=sum,*eth#_*=sum,*ib#_*=sum,*nvme#_*=sum"

typedef struct ns_prep_opts {
  int64_t interval_ms;     /* prep_interval */
  int64_t max_gap_ms;      /* prep_max_gap */
  int64_t min_segment_ms;  /* prep_min_segment */
  double corr_threshold;   /* prep_corr_threshold (|r|) */
  double trim;             /* prep_trim */
  double clip;             /* prep_clip */
  const char *rules;       /* prep_aggregate; NULL = NS_PREP_DEFAULT_RULES */
  const char *exclude;     /* prep_exclude: comma-separated globs on aggregated names; used by the fit only */
} ns_prep_opts;

/* Defaults of the config table. */
NS_API void ns_prep_opts_default(ns_prep_opts *o);
/* From a loaded config (rules point into cfg, which must outlive *o). */
NS_API void ns_prep_opts_from_config(const ns_config *cfg, ns_prep_opts *o);

typedef struct ns_prep_params ns_prep_params;

/* Counters of what one fit/apply did (summed by callers over nodes). */
typedef struct ns_prep_stats {
  size_t rows_in, rows_out;     /* raw rows read, grid rows produced */
  size_t points_in;             /* raw values read (rows x metrics) */
  size_t gaps_interpolated;     /* short per-metric gaps filled */
  size_t gaps_split;            /* long gaps that split the series */
  size_t counter_resets;        /* counter decreases (rate set missing) */
  size_t absent_metrics;        /* output metrics with no value at all (filled with the mean) */
  size_t pooled_nodes;          /* nodes standardised with pooled parameters */
} ns_prep_stats;

/* Rule parsing: "PATTERN=sum|mean,..." where `#` matches one or more digits
 * (removed from the name) and `*` any text (kept). Exposed so the
 * rules can be checked (and tested) on their own. Returns the aggregated
 * name in *out (malloc'd) and the rule's op (0 = none matched, 1 = sum,
 * 2 = mean). `*` may match empty text; separators ('_', '.') left doubled
 * or dangling where the digits were are collapsed. First matching rule wins. */
NS_API ns_status ns_prep_rules_check(const char *rules);
NS_API ns_status ns_prep_aggregate_name(const char *rules, const char *metric, char **out, int *op);

/* ---- fitting ----
 * Streaming over nodes: give each node's raw training data (counters
 * cumulative, NaN = missing) one at a time; only one node is held. */
typedef struct ns_prep_fit ns_prep_fit;
NS_API ns_status ns_prep_fit_begin(const ns_prep_opts *o, ns_prep_fit **out);
/* The first node fixes the input metric schema; later nodes may lack some
 * metrics (absent: pooled parameters) and extra metrics are ignored. After
 * an error the fit must be freed. */
NS_API ns_status ns_prep_fit_add(ns_prep_fit *f, const ns_mts *raw, ns_prep_stats *st);
/* Correlation dedup, pooled parameters; frees f even on error. */
NS_API ns_status ns_prep_fit_end(ns_prep_fit *f, ns_prep_params **out);
NS_API void ns_prep_fit_free(ns_prep_fit *f);

/* Fit on every stored raw node of `cluster` in [from, to] (0 = open),
 * reading one node at a time. */
NS_API ns_status ns_prep_fit_store(ns_store *s, const char *cluster, const ns_prep_opts *o, int64_t from_ms,
                                   int64_t to_ms, ns_prep_params **out, ns_prep_stats *st);

NS_API void ns_prep_params_free(ns_prep_params *p);

/* ---- inspection ---- */
NS_API size_t ns_prep_n_inputs(const ns_prep_params *p);
NS_API const char *ns_prep_input_name(const ns_prep_params *p, size_t i);
/* Reduced metrics before the correlation drop. */
NS_API size_t ns_prep_n_reduced(const ns_prep_params *p);
/* Output metrics (kept), in output column order. */
NS_API size_t ns_prep_n_outputs(const ns_prep_params *p);
NS_API const char *ns_prep_output_name(const ns_prep_params *p, size_t k);
NS_API char *const *ns_prep_output_names(const ns_prep_params *p);
/* Dropped correlated pairs: `dropped` was removed because |r| >= threshold
 * with `kept`, which survived. */
NS_API size_t ns_prep_n_dropped(const ns_prep_params *p);
NS_API void ns_prep_dropped(const ns_prep_params *p, size_t i, const char **dropped, const char **kept, double *r);
NS_API size_t ns_prep_n_nodes(const ns_prep_params *p);
/* Standardisation used for (node, output metric k); node NULL or unknown =
 * pooled. *zero_var says the node's training sigma was zero. Returns false if
 * k is out of range. */
NS_API bool ns_prep_node_param(const ns_prep_params *p, const char *node, size_t k, double *mean, double *sigma,
                               bool *zero_var);
NS_API const ns_prep_opts *ns_prep_params_opts(const ns_prep_params *p);
/* (node, output metric) pairs whose own training scale is below frac x the
 * pooled scale, narrowest first (node and metric point into p). The node
 * rarely ran the jobs that move the metric, so the trim took them out of its
 * sigma, and those jobs then sit far out on that node: its alarms on the
 * metric are less certain. Pairs on pooled or zero-variance parameters are
 * not listed. frac in (0, 1]. *out NULL when none; free() it. */
typedef struct ns_prep_narrow {
  const char *node, *metric;
  double ratio; /* node sigma / pooled sigma */
} ns_prep_narrow;
NS_API ns_status ns_prep_narrow_scales(const ns_prep_params *p, double frac, ns_prep_narrow **out, size_t *n);

/* ---- persistence (versioned binary; see docs/preprocessing.md) ---- */
NS_API ns_status ns_prep_save(const ns_prep_params *p, void **data, size_t *n);
/* Rejects a wrong magic, version, truncation, checksum or structure. */
NS_API ns_status ns_prep_load(const void *data, size_t n, ns_prep_params **out);
/* Stores/loads artifact kind "prep", name = cluster. version <= 0 = latest. */
NS_API ns_status ns_prep_store_save(ns_store *s, const char *cluster, const ns_prep_params *p, int64_t *version);
NS_API ns_status ns_prep_store_load(ns_store *s, const char *cluster, int64_t version, ns_prep_params **out);
/* NS_ERR_SCHEMA naming the first output metric none of whose inputs is in
 * `names` (extra names are fine). */
NS_API ns_status ns_prep_check_schema(const ns_prep_params *p, char *const *names, size_t M);

/* ---- applying ----
 * One node's raw series -> cleaned, reduced, standardised and clipped series
 * on the fixed grid (ts multiples of the interval). Grid points inside long
 * gaps are left out, so a jump in ts marks a split. Labels are carried. The
 * result never holds NaN or Inf. */
NS_API ns_status ns_prep_apply(const ns_prep_params *p, const ns_mts *raw, ns_mts **out, ns_prep_stats *st);

/* Cut a preprocessed node series (from ns_prep_apply) into job segments (one
 * per job on this node; jobs overlapping each other each get theirs) and idle
 * segments (grid rows covered by no job), split at long gaps, dropping
 * pieces shorter than min_segment (T x interval). `jobs` may include jobs of
 * other nodes: only those whose nodelist holds the node are used. */
NS_API ns_status ns_prep_segment(const ns_prep_params *p, const ns_mts *prepped, const char *cluster,
                                 const ns_job *jobs, size_t njobs, ns_segment ***out, size_t *n);
NS_API void ns_prep_segments_free(ns_segment **v, size_t n);

/* A raw segment as shipped by a node (fixed interval; counters already
 * rates; NaN = missing) -> its preprocessed pieces (one unless a long gap
 * splits it; pieces shorter than min_segment dropped, so *n may be 0).
 * Metadata (cluster, node, job) is carried. */
NS_API ns_status ns_prep_apply_segment(const ns_prep_params *p, const ns_segment *raw, ns_segment ***out,
                                       size_t *n, ns_prep_stats *st);

/* ---- the offline stage (`nsentry prep`) ---- */
typedef struct ns_prep_summary {
  size_t nodes, skipped_nodes;
  size_t metrics_in, metrics_reduced, metrics_out, dropped;
  size_t job_segments, idle_segments, train_segments, test_segments, replaced_segments;
  int64_t params_version;
  bool fitted;
  ns_prep_stats stats;          /* of the apply pass */
  double seconds;
} ns_prep_summary;
/* Progress: called after each node (may be NULL). */
typedef void (*ns_prep_progress_fn)(void *ctx, size_t done, size_t total);
/* Fit (when `fit` or no parameters are stored for the cluster) on raw data
 * before train_until (0 = all), store the parameters, apply them to all of
 * the cluster's raw data node by node, cut segments and store them with split
 * "train" (before train_until, or no train_until) or "test"; a segment
 * crossing train_until is cut there (pieces shorter than min_segment are
 * dropped). Per-point labels come from the stored anomalous labels. A refit
 * first deletes the train/test segments of the nodes it regenerates (they
 * were made with other parameters); shipped ("ingest") and imported segments
 * stay. Nodes whose metrics do not fit the parameters are skipped
 * with a warning (counted). */
NS_API ns_status ns_prep_run_store(ns_store *s, const char *cluster, const ns_prep_opts *o, bool fit,
                                   int64_t train_until_ms, ns_prep_summary *sum, ns_prep_progress_fn progress,
                                   void *ctx);

/* Split name of raw segments shipped by nodes and stored by nsentryd. */
#define NS_SPLIT_INGEST "ingest"
/* Copy every shipped segment (split "ingest") of `cluster` into the raw
 * telemetry store (source "ingest"), so that `nsentry prep` can fit and cut
 * them like imported telemetry: the way to train on a site's own jobs.
 * Idempotent (raw chunks of the same rows are replaced). */
NS_API ns_status ns_prep_ingest_to_raw(ns_store *s, const char *cluster, size_t *n_segments, size_t *n_rows);

/* Whether `node` is in a Slurm hostlist expression ("cn[01-04,07],gpu1"). */
NS_API bool ns_prep_nodelist_has(const char *nodelist, const char *node);

#endif
