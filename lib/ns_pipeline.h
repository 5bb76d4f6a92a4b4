/* The offline pipeline: stored training segments -> cluster library ->
 * one model per cluster (contamination-robust rounds) -> threshold
 * statistics, stored together as one versioned model library
 * (model_libraries row + cluster library artifact + models rows). One
 * library is active; older ones stay for rollback.
 *
 * Variants reproduce the paper's ablations (Table 5):
 *   full  clusters + sparse MoE + between-segment position
 *   c1    one global model (all training segments in one cluster)
 *   c2    random segments instead of clustering (same cluster count and sizes)
 *   c3    equal-length cuts (ablation_cut) of each node's timeline instead of
 *         job segments
 *   c4    no between-segment position embedding
 *   c5    dense FFN instead of MoE
 *   zscore  the full method's clusters, but each cluster's model is the
 *           per-metric z-score baseline (ns_baseline.h)
 *   ae      the same with the dense per-point autoencoder baseline
 * (docs/ablations.md). Baselines train once on the windows the Transformer
 * would get (no robust rounds) and are calibrated on the same held-out data. */
#ifndef NS_PIPELINE_H
#define NS_PIPELINE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_clust.h"
#include "ns_config.h"
#include "ns_status.h"
#include "ns_store.h"

typedef enum { NS_VARIANT_FULL = 0, NS_VARIANT_C1, NS_VARIANT_C2, NS_VARIANT_C3, NS_VARIANT_C4, NS_VARIANT_C5,
               NS_VARIANT_ZSCORE, NS_VARIANT_AE, NS_VARIANT_COUNT_ } ns_variant;
NS_API const char *ns_variant_name(ns_variant v);
/* NS_ERR_RANGE naming the choices if unknown. */
NS_API ns_status ns_variant_parse(const char *s, ns_variant *out);

typedef struct ns_train_plan {
  const char *cluster;   /* Slurm cluster name; NULL = any */
  const char *split;     /* segments with this split (NULL = any) ... */
  int64_t from_ms, to_ms;/* ... overlapping this range (0 = open) */
  ns_variant variant;
  bool incremental;      /* fine-tune the active library (see ns_pipeline_train) */
  bool activate;         /* make the new library the active one */
  const char *notes;
  ns_progress_fn progress;
  void *progress_ctx;
} ns_train_plan;

typedef struct ns_train_cluster_summary {
  int label;
  ns_seg_kind kind;
  size_t size, n_rep, n_series; /* members, representatives, segments trained on */
  size_t windows_total, windows_used, windows_labelled; /* labelled: excluded as anomalous */
  int window;                   /* points per window: model_window, or less for a cluster of short jobs */
  int rounds;
  double train_loss, score_mean, score_q99; /* threshold statistics (calibration set if any) */
  size_t calibration_segments;  /* held-out members the thresholds were taken from */
  size_t calibration_windows;   /* or held-out windows, when every member was trained on */
  size_t calibration_trimmed;   /* calibration points left out as anomalous (train_calib_robust) */
  bool finetuned, is_new;
} ns_train_cluster_summary;

typedef struct ns_train_summary {
  int64_t library_id;
  char version[32];
  size_t n_segments, n_clusters;
  double seconds, seconds_features, seconds_models;
  ns_train_cluster_summary *clusters;
  size_t n_unmatched;    /* incremental: segments that formed new clusters */
  size_t n_c3_test_cuts; /* C3: test-period cuts stored in split "test-c3" for scoring */
} ns_train_summary;
NS_API void ns_train_summary_clear(ns_train_summary *s);

/* Train (or, with plan->incremental, update) a model library from stored
 * segments. Incremental: segments that match an existing cluster fine-tune
 * its model for a few epochs; unmatched segments are clustered among
 * themselves and the new clusters get new models (paper §3.5). Baseline
 * variants (zscore, ae) are never incremental: NS_ERR_INVAL for such a plan,
 * NS_ERR_STATE when the active library is a baseline. */
NS_API ns_status ns_pipeline_train(ns_store *st, const ns_config *cfg, const ns_train_plan *plan,
                                   ns_train_summary *out);

/* Model libraries. */
typedef struct ns_library_info {
  int64_t id;
  char version[32];
  int64_t created_ms;
  bool active;
  int n_clusters;
  char variant[16];
  char notes[128];
} ns_library_info;
NS_API ns_status ns_library_list(ns_store *st, ns_library_info **out, size_t *n);
NS_API ns_status ns_library_activate(ns_store *st, int64_t library_id);

#endif
