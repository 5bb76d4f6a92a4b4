/* The per-cluster reconstruction model (paper §3.4-3.5): a Transformer
 * encoder whose feed-forward blocks are sparse mixtures of experts.
 *
 *   token = one time point (M metrics) -> Linear(M -> d) + sinusoidal position
 *   within the window + learned embedding of the segment code (which
 *   representative the window comes from; ablation C4 drops it)
 *   -> L post-norm layers: x = LN1(x + Drop(MHA(x))); x = LN2(x + Drop(MoE(x)))
 *      MoE: p = softmax(W_r x); y = sum over the top-k experts of p_i E_i(x),
 *      E_i = Linear(d_ff -> d) . ReLU . Linear(d -> d_ff); unselected experts
 *      are not computed (ablation C5: one dense FFN instead)
 *   -> Linear(d -> M), the reconstruction of the input.
 *
 * A model is read-only once trained or loaded: ns_model_reconstruct() may be
 * called from several threads at once on the same model. Training lives in
 * ns_train.h. All parallelism comes from nsentry's own threads; the model
 * switches OpenBLAS to one thread on first use so that the two never
 * oversubscribe the cores. */
#ifndef NS_MODEL_H
#define NS_MODEL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_config.h"
#include "ns_status.h"

#define NS_MODEL_FORMAT_VERSION 1

/* Arithmetic of inference (training is always fp32). bf16: weights and the
 * inputs of linear layers rounded to bf16, fp32 accumulation, everything else
 * fp32; about 2x the forward rate on CPUs with AVX512-BF16, scores change by
 * the rounding (relative ~1e-2 at worst on a point, see docs/benchmarks.md). */
typedef enum ns_precision { NS_PREC_FP32 = 0, NS_PREC_BF16 = 1 } ns_precision;
/* Whether this CPU runs the bf16 kernels (AVX512-BF16). */
NS_API bool ns_precision_bf16_supported(void);
/* The config key model_precision (fp32 | bf16 | auto) resolved on this CPU:
 * auto is bf16 where supported, else fp32; an explicit bf16 on a CPU without
 * it is NS_ERR_UNSUPPORTED. */
NS_API ns_status ns_precision_from_config(const ns_config *cfg, ns_precision *out);

typedef struct ns_model_hparams {
  int n_metrics;      /* M */
  int d_model;        /* 0 = M rounded up to a multiple of n_heads */
  int n_layers;       /* L */
  int n_heads;
  int n_experts;      /* experts per MoE block (ignored when !moe) */
  int top_k;          /* experts per token */
  int d_ff;           /* expert hidden width; 0 = d_model */
  int n_segments;     /* rows of the between-segment embedding (segment codes 0..n-1) */
  int window;         /* T, time points per window */
  int batch;          /* B, windows per training batch */
  int epochs;
  int patience;       /* early-stopping epochs; 0 = off */
  double dropout;
  double lr, weight_decay, grad_clip, aux_weight;
  double val_fraction;/* share of windows held out for early stopping */
  uint64_t seed;
  bool between_pos;   /* learned between-segment embedding (off = C4) */
  bool moe;           /* sparse MoE (off = dense FFN, C5) */
  int threads;        /* worker threads for training and reconstruction (>= 1) */
  ns_precision precision; /* inference arithmetic (not saved; training is fp32) */
} ns_model_hparams;

/* Built-in defaults (the paper's: L = 3, h = 3, 3 experts, top-1, T = 64). */
NS_API void ns_model_hparams_default(ns_model_hparams *hp);
/* Built-in defaults overridden by the `model` section of cfg. Keeps the
 * caller's n_metrics, n_segments (raised by training to cover its codes)
 * and threads, which are not config keys. model_precision is resolved on
 * this CPU (ns_precision_from_config). */
NS_API ns_status ns_model_hparams_from_config(const ns_config *cfg, ns_model_hparams *hp);
/* Validate and fill the derived sizes (d_model, d_ff) in place. */
NS_API ns_status ns_model_hparams_resolve(ns_model_hparams *hp);

/* Distribution of the per-point training scores (score_t = sum_m W_m
 * (x - x^)^2), used by detection for its thresholds. q[i] is the
 * i/(NS_SCORE_NQ-1) quantile. */
#define NS_SCORE_NQ 1001
typedef struct ns_score_stats {
  uint64_t count;
  double mean, std, min, max;
  float q[NS_SCORE_NQ];
} ns_score_stats;
/* Quantile p in [0, 1] by linear interpolation of the table. */
NS_API double ns_score_stats_quantile(const ns_score_stats *s, double p);
/* Stats of n scores (NaN ignored); NS_ERR_EMPTY if none are finite. */
NS_API ns_status ns_score_stats_compute(const float *score, size_t n, ns_score_stats *out);
/* Calibration against contamination, in three steps, each leaving points
 * out: (1) with relative > 0 and series starts, runs of at least min_run
 * points above relative x their own series' median score (an anomaly lifts
 * a stretch of a segment, a regime the model fits badly the whole segment);
 * (2) a far upper mode of at most 5 % of the points (log-score mixture);
 * (3) the level rule run on the calibration scores themselves: runs of at
 * least min_run consecutive points above factor x the quantile are what
 * detection would call anomalous; they are left out and the quantile is
 * taken again, until nothing more is left out (at most 50 passes). Series
 * start at the offsets in starts (sorted; NULL = one series), and a run never
 * crosses a series start or a point with keep[i] == 0 (keep NULL = every
 * point counts). min_run 0 = plain stats. */
typedef struct ns_calib_rule {
  double quantile, factor;
  size_t min_run;
  double relative; /* step (1); 0 = off */
  /* ns_train_calibrate only, before step (1): per series, the peers' score
   * at the same times (ns_peer_ref, NAN = none); runs of at least min_run
   * points above peer_relative x it are left out (ns_peer_trim) and counted
   * in *trimmed. NULL or 0 = off. */
  float *const *peer_ref;
  double peer_relative;
} ns_calib_rule;
NS_API ns_status ns_score_stats_calibrate(const float *score, const uint8_t *keep, size_t n, const size_t *starts,
                                          size_t n_starts, const ns_calib_rule *rule, ns_score_stats *out,
                                          size_t *trimmed);

typedef struct ns_model ns_model;

/* A freshly initialised model (seeded by hp->seed). metric_names: hp->n_metrics
 * names (copied; the metric schema checked on load). mac_weights: M per-metric
 * loss/score weights summing to 1, or NULL for uniform 1/M. */
NS_API ns_status ns_model_create(const ns_model_hparams *hp, const char *const *metric_names,
                                 const float *mac_weights, ns_model **out);
NS_API void ns_model_free(ns_model *m);
NS_API ns_status ns_model_clone(const ns_model *m, ns_model **out);

NS_API const ns_model_hparams *ns_model_get_hparams(const ns_model *m);
NS_API size_t ns_model_n_metrics(const ns_model *m);
NS_API const char *ns_model_metric_name(const ns_model *m, size_t i);
NS_API const float *ns_model_mac_weights(const ns_model *m);
/* Copies M weights; they must be finite, >= 0 and sum to 1 (+-1e-3). */
NS_API ns_status ns_model_set_mac_weights(ns_model *m, const float *w);
NS_API const ns_score_stats *ns_model_score_stats(const ns_model *m);
NS_API void ns_model_set_score_stats(ns_model *m, const ns_score_stats *s);
NS_API size_t ns_model_n_params(const ns_model *m);
/* Worker threads used by ns_model_reconstruct (not saved). */
NS_API void ns_model_set_threads(ns_model *m, int threads);

/* Inference precision (hp.precision; not saved: a loaded model is fp32).
 * bf16 packs a bf16 copy of the weights now (NS_ERR_UNSUPPORTED without
 * AVX512-BF16, and the model stays as it was); training keeps the choice and
 * repacks, so training scores are taken in it too; a clone keeps it. Not
 * thread-safe: call before sharing the model. */
NS_API ns_status ns_model_set_precision(ns_model *m, ns_precision p);
NS_API ns_precision ns_model_get_precision(const ns_model *m);

/* NS_ERR_SCHEMA (detail names the first differing metric) unless the model
 * was trained on exactly these metrics in this order. */
NS_API ns_status ns_model_check_schema(const ns_model *m, const char *const *names, size_t n);

/* Reconstruct a whole segment x (T x M row-major, preprocessed, finite) of
 * any length T >= 1 as it looked to the representative `seg_code`. It is cut
 * into windows of hp.window; a ragged tail is covered by one more window
 * ending at the last point (only its new points are used); a segment shorter
 * than a window is one short window. out: T x M. Thread-safe. */
NS_API ns_status ns_model_reconstruct(const ns_model *m, const float *x, size_t T, int seg_code, float *out);
/* Per-point scores sum_m W_m (x - xhat)^2 with the model's MAC weights;
 * score: T values. metric_err (T x M, may be NULL): the weighted terms. */
NS_API void ns_model_score(const ns_model *m, const float *x, const float *xhat, size_t T, float *score,
                           float *metric_err);
/* Raw forward pass for B windows of length T (B*T*M inputs, one segment code
 * per window), inference mode. Used by benchmarks and tests. */
NS_API ns_status ns_model_forward(const ns_model *m, const float *x, const int *seg_codes, int B, int T,
                                  float *out);

/* Rows processed by each expert since creation/reset (instrumentation:
 * with top-k routing the total is k x tokens). counts: n_experts values. */
NS_API void ns_model_expert_rows(const ns_model *m, uint64_t *counts);
NS_API void ns_model_reset_expert_rows(ns_model *m);

/* Versioned binary form: magic "NSMODEL\0", format version, hyperparameters,
 * metric schema, MAC weights, score statistics, seed, parameters, CRC-32.
 * Stored by the pipeline as an artifact BLOB. *buf is malloc'ed. */
NS_API ns_status ns_model_save(const ns_model *m, void **buf, size_t *n);
/* Refuses a wrong magic, another format version, truncation, a bad
 * checksum or inconsistent sizes. expect_names (may be NULL): the metric
 * schema the caller will feed; a mismatch is NS_ERR_SCHEMA. */
NS_API ns_status ns_model_load(const void *buf, size_t n, const char *const *expect_names, size_t n_expect,
                               ns_model **out);
NS_API ns_status ns_model_save_file(const ns_model *m, const char *path);
NS_API ns_status ns_model_load_file(const char *path, const char *const *expect_names, size_t n_expect,
                                    ns_model **out);

#endif
