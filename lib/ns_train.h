/* Training of one cluster's model (paper §3.5-3.6, Eq. 5-6).
 *
 * Input: the cluster's representative series (preprocessed T_i x M float32,
 * row-major), each with its closeness weight w_i and segment code (index of
 * the representative, the between-segment position), plus the cluster's
 * per-metric MAC weights W_m (sum 1).
 *
 * Each series is cut into windows of hp.window points: consecutive windows
 * from the start, and when the length is not a multiple, one more window
 * ending at the last point. Series shorter than one window give no training
 * window. The loss of a window is w_i * mean_t sum_m W_m (x - x^)^2, averaged
 * over the B windows of a batch, plus aux_weight x the MoE load-balancing
 * loss E * sum_e f_e P_e per layer (f: share of routed tokens, P: mean gate).
 * AdamW, global-norm gradient clipping, dropout, early stopping on a held-out
 * share (hp.val_fraction) of the windows. Deterministic: the same data,
 * hyperparameters, seed and thread count give the same model bit for bit.
 *
 * Contamination-robust rounds (the pipeline's job): train, read
 * result.window_error, drop the worst windows, and train again on the kept
 * window indices (opts.windows) or fine-tune the previous model. */
#ifndef NS_TRAIN_H
#define NS_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_model.h"
#include "ns_status.h"

typedef struct ns_train_series {
  const float *x; /* T x M row-major, finite */
  size_t T;
  float weight;   /* closeness weight, finite, >= 0 */
  int code;       /* segment code, 0 <= code < n_segments */
  const uint8_t *skip; /* T flags: rows left out of score statistics (expert anomalies); NULL = none */
} ns_train_series;

typedef struct ns_train_window {
  uint32_t series, start; /* rows [start, start + window) of series */
} ns_train_window;

/* All windows of the data in their canonical order (series by series, in
 * time order). Window indices in ns_train_opts and ns_train_result refer to
 * this list. *out is malloc'ed (NULL when *n_out == 0). */
NS_API ns_status ns_train_list_windows(const ns_train_series *s, size_t n, int window, ns_train_window **out,
                                       size_t *n_out);

typedef void (*ns_train_progress_fn)(void *ctx, int epoch, double train_loss, double val_loss);

typedef struct ns_train_opts {
  const size_t *windows; /* train only on these window indices; NULL = all */
  size_t n_windows;
  int epochs;            /* 0 = hp.epochs (fine-tuning passes a few) */
  ns_train_progress_fn progress; /* after each epoch; may be NULL */
  void *progress_ctx;
} ns_train_opts;

typedef struct ns_train_result {
  int epochs_run;
  int best_epoch;        /* 1-based epoch whose parameters were kept */
  double train_loss;     /* mean batch loss of the kept epoch */
  double val_loss;       /* its held-out loss; NAN without validation */
  int steps;
  double seconds;
  size_t n_windows;      /* all windows of the data */
  float *window_error;   /* n_windows: mean per-point score of each window (all windows, trained or not) */
  ns_score_stats stats;  /* per-point scores over the trained windows' points; also stored in the model */
} ns_train_result;
NS_API void ns_train_result_free(ns_train_result *r); /* frees window_error; NULL-safe */

/* Train a new model. hp->n_metrics must equal the metric count; n_segments
 * is raised to cover the largest code. metric_names: M names; mac_weights: M
 * weights summing to 1 (NULL = uniform). res may be NULL. */
NS_API ns_status ns_train_model(const ns_model_hparams *hp, const char *const *metric_names,
                                const float *mac_weights, const ns_train_series *s, size_t n,
                                const ns_train_opts *opts, ns_model **out, ns_train_result *res);
/* Continue training m (incremental training) for opts->epochs (0 = the
 * model's epochs) with fresh optimiser state; codes must be < n_segments. */
NS_API ns_status ns_train_finetune(ns_model *m, const ns_train_series *s, size_t n, const ns_train_opts *opts,
                                   ns_train_result *res);
/* Score the data with m: window_error (one per window of
 * ns_train_list_windows, may be NULL) and the per-point score statistics over
 * the listed windows (windows NULL = all; stats may be NULL). */
NS_API ns_status ns_train_evaluate(const ns_model *m, const ns_train_series *s, size_t n, const size_t *windows,
                                   size_t n_windows, float *window_error, ns_score_stats *stats);
/* Threshold statistics from data the model was not fitted to: as
 * ns_train_evaluate, with the runs the level rule flags left out
 * (ns_score_stats_calibrate; rule NULL = keep all). */
NS_API ns_status ns_train_calibrate(const ns_model *m, const ns_train_series *s, size_t n, const size_t *windows,
                                    size_t n_windows, const ns_calib_rule *rule, ns_score_stats *stats,
                                    size_t *trimmed);

/* Calibration's peer step (ns_calib_rule.peer_ref; the references come from
 * ns_peer_ref): marks in skip[] every run of at least min_run points whose
 * score is above rel x its peer reference (points without a reference end a
 * run). Returns the count of points newly marked. */
NS_API size_t ns_peer_trim(const float *score, const float *ref, size_t T, double rel, size_t min_run,
                           uint8_t *skip);

/* Contamination-robust rounds: each window's error (err, nw values indexed
 * like ns_train_list_windows) divided by the median error of the candidate
 * windows (cand, ncand indices) of its own series; a series without
 * candidates keeps absolute errors. out: nw values. */
NS_API ns_status ns_train_relative_error(const float *err, const ns_train_window *w, size_t nw, const size_t *cand,
                                         size_t ncand, size_t nseries, float *out);

#endif
