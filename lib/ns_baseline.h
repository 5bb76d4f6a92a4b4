/* Simple baselines for comparison with the NodeSentry models, and the C3
 * ablation's training data (docs/ablations.md).
 *
 *   zscore    per-metric mean and sigma over the training points;
 *             score_t = (1/M) sum_m z_{t,m}^2, z = (x - mean) / sigma.
 *             The "reconstruction" is the mean vector, so top-metric and
 *             direction code written for reconstruction models works.
 *   dense_ae  per-time-point MLP autoencoder M -> h -> b -> h -> M (ReLU on
 *             the hidden layers, linear output), trained with Adam on
 *             minibatches of points, loss = mean over points of
 *             w_i sum_m W_m (x - x^)^2 (w_i the series' closeness weight,
 *             W_m the cluster's MAC weights); score_t = sum_m W_m (x - x^)^2
 *             like ns_model_score.
 *
 * A baseline is read-only once trained or loaded (reconstruct/score may run
 * on several threads at once). Training is single-threaded (OpenBLAS is
 * switched to one thread) and bit-for-bit deterministic for a seed. */
#ifndef NS_BASELINE_H
#define NS_BASELINE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_config.h"
#include "ns_model.h"
#include "ns_status.h"
#include "ns_store.h"
#include "ns_train.h"

#define NS_BASELINE_FORMAT_VERSION 1

typedef enum { NS_BASELINE_ZSCORE = 0, NS_BASELINE_DENSE_AE = 1, NS_BASELINE_COUNT_ } ns_baseline_kind;
/* "zscore", "ae"; "?" if unknown. */
NS_API const char *ns_baseline_kind_name(ns_baseline_kind k);
/* Accepts "zscore" and "ae" (also "dense_ae"); NS_ERR_RANGE naming the choices. */
NS_API ns_status ns_baseline_kind_parse(const char *s, ns_baseline_kind *out);

typedef struct ns_baseline_opts {
  int hidden;        /* AE h (default 64) */
  int bottleneck;    /* AE b (default 16) */
  int epochs;        /* AE passes over all points (default 20; 0 = untrained initial weights) */
  int batch;         /* AE points per minibatch (default 256) */
  double lr;         /* Adam step (default 1e-3) */
  uint64_t seed;     /* AE initialisation and shuffling (default 42) */
  double min_sigma;  /* z-score: sigma floor for (near-)constant metrics (default 1e-3) */
} ns_baseline_opts;
NS_API void ns_baseline_opts_default(ns_baseline_opts *o);
/* Defaults overridden by the `ablation` section of cfg (baseline_ae_*,
 * baseline_min_sigma; seed = ablation_seed). */
NS_API ns_status ns_baseline_opts_from_config(const ns_config *cfg, ns_baseline_opts *o);

typedef struct ns_baseline ns_baseline;

/* Train a baseline on the series s[0..n) (T_i x M, finite; code ignored;
 * weight: AE loss weight, the z-score uses every point of a series with
 * weight > 0). metric_names: M names (copied). mac_weights: M weights summing
 * to 1 (NULL = uniform); the z-score keeps them for reference only. opts NULL
 * = defaults. The training-score statistics are computed over all training
 * points and stored in the baseline. Errors: no points (NS_ERR_EMPTY),
 * non-finite input (NS_ERR_NONFINITE naming series/row/metric), bad sizes. */
NS_API ns_status ns_baseline_train(ns_baseline_kind kind, const char *const *metric_names, size_t M,
                                   const float *mac_weights, const ns_train_series *s, size_t n,
                                   const ns_baseline_opts *opts, ns_baseline **out);
NS_API void ns_baseline_free(ns_baseline *b);

NS_API ns_baseline_kind ns_baseline_get_kind(const ns_baseline *b);
NS_API size_t ns_baseline_n_metrics(const ns_baseline *b);
NS_API const char *ns_baseline_metric_name(const ns_baseline *b, size_t i);
NS_API const float *ns_baseline_mac_weights(const ns_baseline *b);
NS_API const ns_baseline_opts *ns_baseline_get_opts(const ns_baseline *b);
NS_API const ns_score_stats *ns_baseline_score_stats(const ns_baseline *b);
NS_API void ns_baseline_set_score_stats(ns_baseline *b, const ns_score_stats *s);
/* z-score: the M means and sigmas (NULL for the AE). */
NS_API const float *ns_baseline_zscore_mean(const ns_baseline *b);
NS_API const float *ns_baseline_zscore_sigma(const ns_baseline *b);
/* NS_ERR_SCHEMA naming the first differing metric. */
NS_API ns_status ns_baseline_check_schema(const ns_baseline *b, const char *const *names, size_t n);

/* x: T x M (finite); out: T x M. z-score: the means; AE: the decoder output. */
NS_API ns_status ns_baseline_reconstruct(const ns_baseline *b, const float *x, size_t T, float *out);
/* Per-point scores (T) and, if metric_err != NULL, the per-metric terms
 * (T x M) that sum to them: z-score z^2/M, AE W_m (x - x^)^2. */
NS_API void ns_baseline_score(const ns_baseline *b, const float *x, const float *xhat, size_t T, float *score,
                              float *metric_err);

/* Versioned binary: magic "NSBASEL\0", format version, kind, metric schema,
 * MAC weights, score statistics, options, parameters, CRC-32. *buf malloc'ed. */
NS_API ns_status ns_baseline_save(const ns_baseline *b, void **buf, size_t *n);
/* Refuses a wrong magic (NS_ERR_FORMAT), another version (NS_ERR_VERSION),
 * truncation or a bad checksum (NS_ERR_CORRUPT); expect_names (may be NULL):
 * the caller's metric schema, a mismatch is NS_ERR_SCHEMA. */
NS_API ns_status ns_baseline_load(const void *buf, size_t n, const char *const *expect_names, size_t n_expect,
                                  ns_baseline **out);

/* True when buf starts with the baseline magic (tells a baseline blob from an
 * ns_model blob, "NSMODEL\0", in a models row). */
NS_API bool ns_baseline_blob_is(const void *buf, size_t n);

/* AE internals for tests: parameter count and vector (W1 h x M, b1, W2 b x h,
 * b2, W3 h x b, b3, W4 M x h, b4), and the training loss of the n points x
 * (n x M, weight 1 each) with its gradient (n_params floats, may be NULL).
 * NS_ERR_STATE for a z-score baseline. */
NS_API size_t ns_baseline_n_params(const ns_baseline *b);
NS_API float *ns_baseline_params(ns_baseline *b);
NS_API ns_status ns_baseline_ae_loss(const ns_baseline *b, const float *x, size_t n, double *loss, float *grad);

/* C3 ablation data: equal-length cuts of each node's timeline.
 * The segments of `cluster` overlapping [from_ms, to_ms] (0 = open) in split
 * src_split (NULL = any; segments whose job_id starts "c3-" are never
 * sources) are grouped per node in time order; consecutive segments are
 * joined where contiguous (next start = previous end + interval, same
 * interval and metric schema), rows outside [from, to] are dropped, and each
 * joined run is cut into pieces of cut_ms / interval rows from its start; a
 * shorter tail is dropped, or with keep_tail (scoring data: every point
 * counts) stored as a last, shorter piece when it has 2 rows or more. Pieces are stored as job segments in out_split
 * with job_id "c3-<node>-<n>" (n counts per node from 0). Previous segments
 * of out_split in the range are deleted first, in the same transaction, so a
 * re-run replaces them. *n_out: pieces stored. Errors: no source segments
 * (NS_ERR_EMPTY), cut shorter than 2 rows (NS_ERR_RANGE), out_split equal to
 * src_split (NS_ERR_INVAL), a piece whose job id and start already exist
 * in another split (NS_ERR_EXISTS; the store keys segments without split). */
NS_API ns_status ns_c3_equal_cuts(ns_store *st, const char *cluster, const char *src_split, int64_t from_ms,
                                  int64_t to_ms, int64_t cut_ms, bool keep_tail, const char *out_split,
                                  size_t *n_out);

#endif
