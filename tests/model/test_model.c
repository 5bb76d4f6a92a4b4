/* Model behaviour: hyperparameters, positions, sparse routing, training,
 * determinism, reconstruction of whole segments, serialisation and the
 * refusal of bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ns_config.h"
#include "ns_model.h"
#include "ns_model_impl.h"
#include "ns_train.h"

#define M6 6
static const char *NAMES6[M6] = {"cpu", "mem", "net_rx", "net_tx", "io_r", "io_w"};

static ns_model_hparams small_hp(void) {
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = M6;
  hp.n_layers = 2;
  hp.n_heads = 3;
  hp.d_model = 24;
  hp.window = 32;
  hp.batch = 8;
  hp.epochs = 40;
  hp.patience = 0;
  hp.dropout = 0.0;
  hp.lr = 3e-3;
  hp.seed = 7;
  return hp;
}

static ns_model *random_model(ns_model_hparams hp) {
  ns_model *m = NULL;
  cr_assert_eq(ns_model_create(&hp, NAMES6, NULL, &m), NS_OK, "%s", ns_err_detail());
  return m;
}

/* Smooth periodic series; the phase depends on the representative. */
static float *synth(size_t T, int code) {
  float *x = malloc(T * M6 * sizeof(float));
  cr_assert(x);
  for (size_t t = 0; t < T; t++)
    for (int m = 0; m < M6; m++) {
      double P = 16.0 + 5.0 * m;
      x[t * M6 + m] = (float)(sin(2 * M_PI * t / P + 0.7 * code + m) + 0.3 * cos(2 * M_PI * t / (2.3 * P)));
    }
  return x;
}

static double mse(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return s / (double)n;
}

/* ---------- hyperparameters ---------- */

Test(hparams, d_model_rounds_up_and_validates) {
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 116;
  cr_assert_eq(ns_model_hparams_resolve(&hp), NS_OK);
  cr_assert_eq(hp.d_model, 117);
  cr_assert_eq(hp.d_ff, 117);
  ns_model_hparams_default(&hp);
  hp.n_metrics = 138;
  cr_assert_eq(ns_model_hparams_resolve(&hp), NS_OK);
  cr_assert_eq(hp.d_model, 138);
  hp.d_model = 10;
  cr_assert_eq(ns_model_hparams_resolve(&hp), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "multiple"), "%s", ns_err_detail());
  ns_model_hparams_default(&hp);
  hp.n_metrics = 10;
  hp.top_k = 4;
  cr_assert_eq(ns_model_hparams_resolve(&hp), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "top_k"), "%s", ns_err_detail());
  hp.top_k = 1;
  hp.n_metrics = 0;
  cr_assert_eq(ns_model_hparams_resolve(&hp), NS_ERR_RANGE);
}

Test(hparams, from_config) {
  ns_config *c = NULL;
  cr_assert_eq(ns_config_create(&c), NS_OK);
  cr_assert_eq(ns_config_set(c, "model_layers", "2"), NS_OK);
  cr_assert_eq(ns_config_set(c, "model_topk", "2"), NS_OK);
  cr_assert_eq(ns_config_set(c, "model_moe", "no"), NS_OK);
  cr_assert_eq(ns_config_set(c, "model_window", "50"), NS_OK);
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 20;
  hp.n_segments = 4;
  cr_assert_eq(ns_model_hparams_from_config(c, &hp), NS_OK);
  cr_assert_eq(hp.n_metrics, 20);
  cr_assert_eq(hp.n_segments, 4);
  cr_assert_eq(hp.n_layers, 2);
  cr_assert_eq(hp.top_k, 2);
  cr_assert_eq(hp.window, 50);
  cr_assert_not(hp.moe);
  cr_assert(hp.between_pos);
  cr_assert_float_eq(hp.lr, 1e-3, 1e-12);
  cr_assert_eq(hp.seed, 42u);
  cr_assert_eq(ns_model_hparams_from_config(NULL, &hp), NS_ERR_INVAL);
  ns_config_free(c);
}

Test(score_stats, quantiles) {
  float v[101];
  for (int i = 0; i <= 100; i++) v[100 - i] = (float)i;
  ns_score_stats s;
  cr_assert_eq(ns_score_stats_compute(v, 101, &s), NS_OK);
  cr_assert_eq(s.count, 101u);
  cr_assert_float_eq(s.mean, 50.0, 1e-9);
  cr_assert_float_eq(s.max, 100.0, 1e-9);
  cr_assert_float_eq(ns_score_stats_quantile(&s, 0.9), 90.0, 1e-3);
  cr_assert_float_eq(ns_score_stats_quantile(&s, 0.999), 99.9, 1e-3);
  cr_assert_float_eq(ns_score_stats_quantile(&s, 0.0), 0.0, 1e-9);
  float nan[2] = {NAN, NAN};
  cr_assert_eq(ns_score_stats_compute(nan, 2, &s), NS_ERR_EMPTY);
}

/* ---------- architecture ---------- */

Test(model, positions_break_permutation_equivariance) {
  ns_model_hparams hp = small_hp();
  hp.n_segments = 2;
  ns_model *m = random_model(hp);
  int T = 16;
  float *x = synth((size_t)T, 0), *xp = malloc(T * M6 * 4), *y = malloc(T * M6 * 4), *yp = malloc(T * M6 * 4);
  for (int t = 0; t < T; t++) memcpy(xp + t * M6, x + ((t + 5) % T) * M6, M6 * 4); // rotate time
  int code = 0;
  cr_assert_eq(ns_model_forward(m, x, &code, 1, T, y), NS_OK);
  cr_assert_eq(ns_model_forward(m, xp, &code, 1, T, yp), NS_OK);
  double worst = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < M6; i++) worst = fmax(worst, fabs(yp[t * M6 + i] - y[((t + 5) % T) * M6 + i]));
  cr_assert(worst > 1e-3, "model is equivariant to permuting time points (max diff %g)", worst);
  // the between-segment code changes the output
  int code1 = 1;
  cr_assert_eq(ns_model_forward(m, x, &code1, 1, T, yp), NS_OK);
  cr_assert(mse(y, yp, (size_t)T * M6) > 1e-8);
  // without positions (a sanity check that the comparison can detect equivariance): zero the table
  memset(m->pe, 0, (size_t)m->pe_len * m->sh.d * sizeof(float));
  cr_assert_eq(ns_model_forward(m, x, &code, 1, T, y), NS_OK);
  cr_assert_eq(ns_model_forward(m, xp, &code, 1, T, yp), NS_OK);
  worst = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < M6; i++) worst = fmax(worst, fabs(yp[t * M6 + i] - y[((t + 5) % T) * M6 + i]));
  cr_assert(worst < 1e-4, "without positional encoding the model should be equivariant (%g)", worst);
  free(x), free(xp), free(y), free(yp);
  ns_model_free(m);
}

Test(model, between_pos_off_ignores_code) {
  ns_model_hparams hp = small_hp();
  hp.n_segments = 3;
  hp.between_pos = false;
  ns_model *m = random_model(hp);
  float *x = synth(20, 0), y0[20 * M6], y2[20 * M6];
  int c0 = 0, c2 = 2;
  cr_assert_eq(ns_model_forward(m, x, &c0, 1, 20, y0), NS_OK);
  cr_assert_eq(ns_model_forward(m, x, &c2, 1, 20, y2), NS_OK);
  cr_assert_eq(memcmp(y0, y2, sizeof y0), 0);
  free(x);
  ns_model_free(m);
}

static void count_case(int K, bool moe, uint64_t per_token) {
  ns_model_hparams hp = small_hp();
  hp.top_k = K;
  hp.moe = moe;
  hp.n_layers = 3;
  ns_model *m = random_model(hp);
  int B = 5, T = 24;
  float *x = malloc((size_t)B * T * M6 * 4), *y = malloc((size_t)B * T * M6 * 4);
  for (int b = 0; b < B; b++) {
    float *s = synth((size_t)T, b);
    memcpy(x + (size_t)b * T * M6, s, (size_t)T * M6 * 4);
    free(s);
  }
  int codes[5] = {0, 0, 0, 0, 0};
  ns_model_reset_expert_rows(m);
  cr_assert_eq(ns_model_forward(m, x, codes, B, T, y), NS_OK);
  uint64_t cnt[3] = {0, 0, 0}, tot = 0;
  ns_model_expert_rows(m, cnt);
  int E = moe ? 3 : 1;
  for (int e = 0; e < E; e++) tot += cnt[e];
  cr_assert_eq(tot, per_token * (uint64_t)(3 * B * T), "expert rows %llu for %d tokens x 3 layers",
               (unsigned long long)tot, B * T);
  free(x), free(y);
  ns_model_free(m);
}
Test(model, top1_runs_one_expert_per_token) { count_case(1, true, 1); }
Test(model, top2_runs_two_experts_per_token) { count_case(2, true, 2); }
Test(model, dense_runs_one_ffn_per_token) { count_case(1, false, 1); }

Test(model, create_rejects_bad_input) {
  ns_model_hparams hp = small_hp();
  ns_model *m = NULL;
  float bad[M6] = {0.5f, 0.5f, 0.5f, 0, 0, 0};
  cr_assert_eq(ns_model_create(&hp, NAMES6, bad, &m), NS_ERR_RANGE);
  cr_assert_null(m);
  bad[1] = NAN;
  cr_assert_eq(ns_model_create(&hp, NAMES6, bad, &m), NS_ERR_RANGE);
  cr_assert_eq(ns_model_create(&hp, NULL, NULL, &m), NS_ERR_INVAL);
  const char *dup[M6] = {"a", "b", "", "d", "e", "f"};
  cr_assert_eq(ns_model_create(&hp, dup, NULL, &m), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "metric 2"), "%s", ns_err_detail());
  ns_model_free(NULL);
}

/* ---------- reconstruction of whole segments ---------- */

Test(model, reconstruct_windows_and_tail) {
  ns_model_hparams hp = small_hp();
  hp.n_segments = 2;
  ns_model *m = random_model(hp);
  size_t T = 3 * 32 + 7;
  float *x = synth(T, 1), *y = malloc(T * M6 * 4), *ref = malloc(32 * M6 * 4);
  cr_assert_eq(ns_model_reconstruct(m, x, T, 1, y), NS_OK, "%s", ns_err_detail());
  int code = 1;
  // full windows are independent forwards
  for (int w = 0; w < 3; w++) {
    cr_assert_eq(ns_model_forward(m, x + (size_t)w * 32 * M6, &code, 1, 32, ref), NS_OK);
    for (int i = 0; i < 32 * M6; i++) cr_assert_float_eq(y[(size_t)w * 32 * M6 + i], ref[i], 1e-5);
  }
  // the tail comes from the last window ending at the last point
  cr_assert_eq(ns_model_forward(m, x + (T - 32) * M6, &code, 1, 32, ref), NS_OK);
  for (int i = 0; i < 7 * M6; i++) cr_assert_float_eq(y[(T - 7) * M6 + i], ref[(32 - 7) * M6 + i], 1e-5);
  // two threads give the same reconstruction
  float *y2 = malloc(T * M6 * 4);
  ns_model_set_threads(m, 2);
  cr_assert_eq(ns_model_reconstruct(m, x, T, 1, y2), NS_OK);
  for (size_t i = 0; i < T * M6; i++) cr_assert_float_eq(y[i], y2[i], 1e-5);
  // a single point, and a segment shorter than a window
  cr_assert_eq(ns_model_reconstruct(m, x, 1, 1, y2), NS_OK);
  for (int i = 0; i < M6; i++) cr_assert(isfinite(y2[i]));
  cr_assert_eq(ns_model_reconstruct(m, x, 5, 1, y2), NS_OK);
  cr_assert_eq(ns_model_forward(m, x, &code, 1, 5, ref), NS_OK);
  cr_assert_eq(memcmp(y2, ref, 5 * M6 * 4), 0);
  // scores: sum_m W_m e^2
  float sc[5], me[5 * M6];
  ns_model_score(m, x, y2, 5, sc, me);
  double s0 = 0;
  for (int i = 0; i < M6; i++) s0 += (1.0 / M6) * pow(x[i] - y2[i], 2);
  cr_assert_float_eq(sc[0], s0, 1e-5);
  free(x), free(y), free(y2), free(ref);
  ns_model_free(m);
}

Test(model, reconstruct_rejects_bad_input) {
  ns_model_hparams hp = small_hp();
  ns_model *m = random_model(hp);
  float *x = synth(40, 0), y[40 * M6];
  cr_assert_eq(ns_model_reconstruct(m, x, 40, 1, y), NS_ERR_RANGE);
  cr_assert_eq(ns_model_reconstruct(m, x, 40, -1, y), NS_ERR_RANGE);
  cr_assert_eq(ns_model_reconstruct(m, x, 0, 0, y), NS_ERR_TOO_SHORT);
  x[37 * M6 + 2] = NAN;
  cr_assert_eq(ns_model_reconstruct(m, x, 40, 0, y), NS_ERR_NONFINITE);
  cr_assert(strstr(ns_err_detail(), "row 37 metric 2"), "%s", ns_err_detail());
  cr_assert_eq(ns_model_reconstruct(NULL, x, 40, 0, y), NS_ERR_INVAL);
  int code = 0;
  cr_assert_eq(ns_model_forward(m, x, &code, 1, 33, y), NS_ERR_RANGE);
  free(x);
  ns_model_free(m);
}

/* ---------- training ---------- */

typedef struct {
  double first, last;
  int calls;
} progress_log;
static void on_epoch(void *ctx, int epoch, double train_loss, double val_loss) {
  progress_log *p = ctx;
  if (p->calls++ == 0) p->first = train_loss;
  p->last = train_loss;
  (void)epoch, (void)val_loss;
}

#define NSER 3
#define TSER 320
static void make_data(float *xs[NSER], ns_train_series s[NSER]) {
  for (int i = 0; i < NSER; i++) {
    xs[i] = synth(TSER, i);
    s[i] = (ns_train_series){xs[i], TSER, i == 2 ? 0.5f : 1.0f, i, NULL};
  }
}

Test(train, reduces_loss_and_reconstructs, .timeout = 240) {
  float *xs[NSER];
  ns_train_series s[NSER];
  make_data(xs, s);
  ns_model_hparams hp = small_hp();
  float mac[M6] = {0.1f, 0.2f, 0.2f, 0.2f, 0.2f, 0.1f};
  progress_log log = {0};
  ns_train_opts o = {.progress = on_epoch, .progress_ctx = &log};
  ns_model *m = NULL;
  ns_train_result r;
  cr_assert_eq(ns_train_model(&hp, NAMES6, mac, s, NSER, &o, &m, &r), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(log.calls, 40);
  cr_assert(log.last < log.first / 5, "loss %g -> %g", log.first, log.last);
  cr_assert_eq(r.n_windows, (size_t)NSER * 10);
  cr_assert_eq(ns_model_get_hparams(m)->n_segments, NSER);
  // reconstruction error well below the signal's variance (~0.55)
  float *y = malloc(TSER * M6 * 4);
  for (int i = 0; i < NSER; i++) {
    cr_assert_eq(ns_model_reconstruct(m, xs[i], TSER, i, y), NS_OK);
    double e = mse(xs[i], y, TSER * M6);
    cr_assert(e < 0.03, "series %d reconstruction MSE %g", i, e);
  }
  // statistics and per-window errors are filled
  cr_assert_eq(r.stats.count, (uint64_t)NSER * TSER);
  cr_assert(r.stats.mean > 0 && r.stats.mean < 0.03);
  cr_assert(ns_score_stats_quantile(&r.stats, 0.99) >= r.stats.mean);
  cr_assert_eq(memcmp(&r.stats, ns_model_score_stats(m), sizeof r.stats), 0);
  for (size_t k = 0; k < r.n_windows; k++) cr_assert(r.window_error[k] >= 0 && r.window_error[k] < 0.1);
  /* Rows flagged in skip (expert anomalies) stay out of the statistics: a
   * spike there moves nothing. */
  float *spiked = malloc(TSER * M6 * 4);
  memcpy(spiked, xs[0], TSER * M6 * 4);
  for (int t = 100; t < 140; t++) spiked[t * M6 + 2] += 4.0f;
  uint8_t skip[TSER] = {0};
  memset(skip + 100, 1, 40);
  ns_train_series sp[NSER];
  memcpy(sp, s, sizeof sp);
  sp[0].x = spiked;
  ns_score_stats with, without;
  cr_assert_eq(ns_train_calibrate(m, sp, NSER, NULL, 0, NULL, &with, NULL), NS_OK);
  sp[0].skip = skip;
  cr_assert_eq(ns_train_calibrate(m, sp, NSER, NULL, 0, NULL, &without, NULL), NS_OK);
  cr_assert_eq(with.count, (uint64_t)NSER * TSER);
  cr_assert_eq(without.count, (uint64_t)NSER * TSER - 40);
  cr_assert(ns_score_stats_quantile(&with, 0.99) > 3 * ns_score_stats_quantile(&without, 0.99), "q99 %g vs %g",
            ns_score_stats_quantile(&with, 0.99), ns_score_stats_quantile(&without, 0.99));
  cr_assert(without.mean < 0.03, "mean without the skipped rows %g", without.mean);
  free(spiked);
  ns_train_result_free(&r);
  ns_train_result_free(&r);
  free(y);
  ns_model_free(m);
  for (int i = 0; i < NSER; i++) free(xs[i]);
}

static void *train_blob(ns_model_hparams hp, size_t *n) {
  float *xs[NSER];
  ns_train_series s[NSER];
  make_data(xs, s);
  ns_model *m = NULL;
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, NSER, NULL, &m, NULL), NS_OK, "%s", ns_err_detail());
  void *buf = NULL;
  cr_assert_eq(ns_model_save(m, &buf, n), NS_OK);
  ns_model_free(m);
  for (int i = 0; i < NSER; i++) free(xs[i]);
  return buf;
}

Test(train, deterministic_with_seed, .timeout = 240) {
  ns_model_hparams hp = small_hp();
  hp.epochs = 3;
  hp.dropout = 0.1;
  hp.patience = 2;
  hp.threads = 2;
  size_t n1, n2, n3;
  void *a = train_blob(hp, &n1), *b = train_blob(hp, &n2);
  cr_assert_eq(n1, n2);
  cr_assert_eq(memcmp(a, b, n1), 0, "same seed, different model");
  hp.seed = 8;
  void *c = train_blob(hp, &n3);
  cr_assert_eq(n1, n3);
  cr_assert_neq(memcmp(a, c, n1), 0, "different seed, same model");
  free(a), free(b), free(c);
}

Test(train, window_subset_and_errors_find_contamination, .timeout = 240) {
  float *xs[NSER];
  ns_train_series s[NSER];
  make_data(xs, s);
  // contaminate window 13 (series 1, rows 96..127)
  for (int t = 96; t < 128; t++)
    for (int i = 0; i < M6; i++) xs[1][t * M6 + i] += (float)((t * 7 + i * 3) % 5) - 2.0f;
  ns_train_window *wl = NULL;
  size_t nw = 0;
  cr_assert_eq(ns_train_list_windows(s, NSER, 32, &wl, &nw), NS_OK);
  cr_assert_eq(nw, 30u);
  cr_assert_eq(wl[13].series, 1u);
  cr_assert_eq(wl[13].start, 96u);
  size_t keep[29];
  for (size_t i = 0, k = 0; i < nw; i++)
    if (i != 13) keep[k++] = i;
  ns_model_hparams hp = small_hp();
  hp.epochs = 25;
  ns_train_opts o = {.windows = keep, .n_windows = 29};
  ns_model *m = NULL;
  ns_train_result r;
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, NSER, &o, &m, &r), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(r.n_windows, 30u);
  size_t worst = 0;
  for (size_t k = 1; k < nw; k++)
    if (r.window_error[k] > r.window_error[worst]) worst = k;
  cr_assert_eq(worst, 13u, "worst window %zu", worst);
  cr_assert_eq(r.stats.count, 29u * 32u);
  // fine-tune a few epochs on all windows: runs and keeps the schema
  ns_train_result r2;
  ns_train_opts o2 = {.epochs = 2};
  cr_assert_eq(ns_train_finetune(m, s, NSER, &o2, &r2), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(r2.epochs_run, 2);
  cr_assert_eq(r2.stats.count, 30u * 32u);
  // codes beyond the model's segments are refused when fine-tuning
  s[0].code = 5;
  cr_assert_eq(ns_train_finetune(m, s, NSER, &o2, NULL), NS_ERR_RANGE);
  s[0].code = 0;
  size_t bad = 30;
  ns_train_opts o3 = {.windows = &bad, .n_windows = 1};
  cr_assert_eq(ns_train_finetune(m, s, NSER, &o3, NULL), NS_ERR_RANGE);
  ns_train_result_free(&r);
  ns_train_result_free(&r2);
  free(wl);
  ns_model_free(m);
  for (int i = 0; i < NSER; i++) free(xs[i]);
}

Test(train, early_stopping_keeps_best) {
  float *xs[NSER];
  ns_train_series s[NSER];
  make_data(xs, s);
  ns_model_hparams hp = small_hp();
  hp.epochs = 200;
  hp.patience = 2;
  hp.lr = 0.05; // too high: validation stops improving early
  ns_model *m = NULL;
  ns_train_result r;
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, NSER, NULL, &m, &r), NS_OK, "%s", ns_err_detail());
  cr_assert(r.epochs_run < 200, "ran %d epochs", r.epochs_run);
  cr_assert_eq(r.epochs_run, r.best_epoch + 2);
  cr_assert(isfinite(r.val_loss));
  ns_train_result_free(&r);
  ns_model_free(m);
  for (int i = 0; i < NSER; i++) free(xs[i]);
}

Test(train, rejects_bad_data) {
  float *xs[NSER];
  ns_train_series s[NSER];
  make_data(xs, s);
  ns_model_hparams hp = small_hp();
  ns_model *m = NULL;
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, 0, NULL, &m, NULL), NS_ERR_EMPTY);
  s[1].weight = -1;
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, NSER, NULL, &m, NULL), NS_ERR_RANGE);
  s[1].weight = 1;
  xs[2][5 * M6 + 1] = INFINITY;
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, NSER, NULL, &m, NULL), NS_ERR_NONFINITE);
  cr_assert(strstr(ns_err_detail(), "series 2 row 5 metric 1"), "%s", ns_err_detail());
  xs[2][5 * M6 + 1] = 0;
  for (int i = 0; i < NSER; i++) s[i].T = 20; // shorter than the window
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, NSER, NULL, &m, NULL), NS_ERR_TOO_SHORT);
  cr_assert_null(m);
  for (int i = 0; i < NSER; i++) free(xs[i]);
}

/* ---------- serialisation ---------- */

static ns_model *trained_small(void) {
  float *xs[NSER];
  ns_train_series s[NSER];
  make_data(xs, s);
  ns_model_hparams hp = small_hp();
  hp.epochs = 2;
  ns_model *m = NULL;
  float mac[M6] = {0.25f, 0.25f, 0.1f, 0.1f, 0.3f, 0.0f};
  cr_assert_eq(ns_train_model(&hp, NAMES6, mac, s, NSER, NULL, &m, NULL), NS_OK, "%s", ns_err_detail());
  for (int i = 0; i < NSER; i++) free(xs[i]);
  return m;
}

Test(io, save_load_identical_outputs) {
  ns_model *m = trained_small();
  void *buf = NULL;
  size_t n = 0;
  cr_assert_eq(ns_model_save(m, &buf, &n), NS_OK);
  ns_model *l = NULL;
  cr_assert_eq(ns_model_load(buf, n, NAMES6, M6, &l), NS_OK, "%s", ns_err_detail());
  float *x = synth(100, 2), y1[100 * M6], y2[100 * M6];
  cr_assert_eq(ns_model_reconstruct(m, x, 100, 2, y1), NS_OK);
  cr_assert_eq(ns_model_reconstruct(l, x, 100, 2, y2), NS_OK);
  cr_assert_eq(memcmp(y1, y2, sizeof y1), 0);
  cr_assert_eq(memcmp(ns_model_mac_weights(m), ns_model_mac_weights(l), M6 * 4), 0);
  cr_assert_eq(memcmp(ns_model_score_stats(m), ns_model_score_stats(l), sizeof(ns_score_stats)), 0);
  cr_assert_eq(ns_model_get_hparams(l)->seed, ns_model_get_hparams(m)->seed);
  cr_assert_str_eq(ns_model_metric_name(l, 3), "net_tx");
  // saving the loaded model gives the same bytes
  void *buf2 = NULL;
  size_t n2 = 0;
  cr_assert_eq(ns_model_save(l, &buf2, &n2), NS_OK);
  cr_assert_eq(n, n2);
  cr_assert_eq(memcmp(buf, buf2, n), 0);
  // file round trip
  char path[] = "/tmp/ns_model_test_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  cr_assert_eq(ns_model_save_file(m, path), NS_OK);
  ns_model *f = NULL;
  cr_assert_eq(ns_model_load_file(path, NULL, 0, &f), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_model_reconstruct(f, x, 100, 2, y2), NS_OK);
  cr_assert_eq(memcmp(y1, y2, sizeof y1), 0);
  unlink(path);
  ns_model_free(f);
  cr_assert_eq(ns_model_load_file(path, NULL, 0, &f), NS_ERR_IO);
  cr_assert_null(f);
  free(x), free(buf), free(buf2);
  ns_model_free(m), ns_model_free(l), ns_model_free(f);
}

Test(io, refuses_corrupt_and_mismatched) {
  ns_model *m = trained_small();
  unsigned char *buf = NULL;
  size_t n = 0;
  cr_assert_eq(ns_model_save(m, (void **)&buf, &n), NS_OK);
  ns_model *l = NULL;
  // a flipped bit anywhere
  for (size_t pos = 20; pos < n; pos += n / 7) {
    buf[pos] ^= 0x10;
    cr_assert_eq(ns_model_load(buf, n, NULL, 0, &l), NS_ERR_CORRUPT, "flip at %zu", pos);
    cr_assert_null(l);
    buf[pos] ^= 0x10;
  }
  // truncation
  cr_assert_eq(ns_model_load(buf, n - 9, NULL, 0, &l), NS_ERR_CORRUPT);
  cr_assert_eq(ns_model_load(buf, 10, NULL, 0, &l), NS_ERR_FORMAT);
  // not a model
  buf[0] = 'X';
  cr_assert_eq(ns_model_load(buf, n, NULL, 0, &l), NS_ERR_FORMAT);
  cr_assert(strstr(ns_err_detail(), "magic"), "%s", ns_err_detail());
  buf[0] = 'N';
  // another format version
  buf[8] = NS_MODEL_FORMAT_VERSION + 1;
  cr_assert_eq(ns_model_load(buf, n, NULL, 0, &l), NS_ERR_VERSION);
  cr_assert(strstr(ns_err_detail(), "version"), "%s", ns_err_detail());
  buf[8] = NS_MODEL_FORMAT_VERSION;
  // metric schema
  const char *other[M6] = {"cpu", "mem", "net_rx", "net_tx", "io_w", "io_r"};
  cr_assert_eq(ns_model_load(buf, n, other, M6, &l), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "metric 4 is 'io_r' in the model but 'io_w'"), "%s", ns_err_detail());
  cr_assert_eq(ns_model_load(buf, n, NAMES6, 5, &l), NS_ERR_SCHEMA);
  cr_assert_eq(ns_model_check_schema(m, other, M6), NS_ERR_SCHEMA);
  cr_assert_eq(ns_model_check_schema(m, NAMES6, M6), NS_OK);
  // bad arguments and unwritable paths
  cr_assert_eq(ns_model_load(NULL, n, NULL, 0, &l), NS_ERR_INVAL);
  cr_assert_eq(ns_model_save_file(m, "/nonexistent-dir/model.bin"), NS_ERR_IO);
  cr_assert(strstr(ns_err_detail(), "/nonexistent-dir/model.bin"), "%s", ns_err_detail());
  void *b2 = NULL;
  size_t n2 = 0;
  cr_assert_eq(ns_model_save(NULL, &b2, &n2), NS_ERR_INVAL);
  cr_assert_null(b2);
  // the intact blob still loads
  cr_assert_eq(ns_model_load(buf, n, NAMES6, M6, &l), NS_OK);
  ns_model_free(l);
  free(buf);
  ns_model_free(m);
}

/* ---------- sharing a model between scoring threads ---------- */

typedef struct {
  const ns_model *m;
  const float *x;
  float *y;
  size_t T;
  ns_status st;
} recon_job;
static void *recon_thread(void *arg) {
  recon_job *j = arg;
  for (int r = 0; r < 5 && j->st == NS_OK; r++) j->st = ns_model_reconstruct(j->m, j->x, j->T, 0, j->y);
  return NULL;
}
Test(model, concurrent_reconstruct_is_safe) {
  ns_model_hparams hp = small_hp();
  ns_model *m = random_model(hp);
  size_t T = 500;
  float *x = synth(T, 3), *ref = malloc(T * M6 * 4);
  cr_assert_eq(ns_model_reconstruct(m, x, T, 0, ref), NS_OK);
  pthread_t th[4];
  recon_job jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (recon_job){m, x, malloc(T * M6 * 4), T, NS_OK};
    cr_assert_eq(pthread_create(&th[i], NULL, recon_thread, &jobs[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(jobs[i].st, NS_OK);
    cr_assert_eq(memcmp(jobs[i].y, ref, T * M6 * 4), 0, "thread %d differs", i);
    free(jobs[i].y);
  }
  free(x), free(ref);
  ns_model_free(m);
}

/* ---------- the public NodeSentry sample (../shared; skipped when absent) ---------- */

/* Reads a sample CSV (timestamp, Metric1..MetricM[, Label]); returns rows. */
static size_t read_sample(const char *path, int M, float **out, uint8_t **label) {
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s", path);
  size_t cap = 2048, n = 0;
  float *x = malloc(cap * M * sizeof(float));
  uint8_t *lab = malloc(cap);
  char *line = malloc(1 << 16);
  cr_assert(fgets(line, 1 << 16, f), "%s: no header", path);
  while (fgets(line, 1 << 16, f)) {
    if (n == cap) {
      cap *= 2;
      x = realloc(x, cap * M * sizeof(float));
      lab = realloc(lab, cap);
    }
    char *p = strchr(line, ',');
    cr_assert(p, "%s: row %zu", path, n);
    for (int m = 0; m < M; m++) {
      char *end;
      x[n * M + m] = strtof(p + 1, &end);
      cr_assert(end != p + 1, "%s: row %zu metric %d", path, n, m);
      p = end;
    }
    lab[n] = (*p == ',') ? (uint8_t)atoi(p + 1) : 0;
    n++;
  }
  fclose(f);
  free(line);
  *out = x;
  if (label)
    *label = lab;
  else
    free(lab);
  return n;
}

Test(sample, trains_on_real_telemetry, .timeout = 600) {
  const char *shared = getenv("NS_SHARED");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/data/nodesentry-sample", shared ? shared : "");
  if (!shared || access(dir, R_OK) != 0) cr_skip_test("NS_SHARED sample data not present");
  enum { M = 138, NS = 4 };
  const char *train[NS] = {"Train/Node-1/Node-1_Job-1.csv", "Train/Node-1/Node-1_Job-3.csv",
                           "Train/Node-3/Node-3_Job-1.csv", "Train/Node-3/Node-3_Job-3.csv"};
  float *xs[NS];
  ns_train_series s[NS];
  char path[4200];
  for (int i = 0; i < NS; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, train[i]);
    size_t T = read_sample(path, M, &xs[i], NULL);
    cr_assert(T > 1000);
    s[i] = (ns_train_series){xs[i], T, 1.0f - 0.25f * i, i, NULL};
  }
  char *names[M];
  for (int m = 0; m < M; m++) {
    names[m] = malloc(16);
    snprintf(names[m], 16, "Metric%d", m + 1);
  }
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = M;
  hp.epochs = 4;
  hp.patience = 0;
  hp.threads = 2;
  progress_log log = {0};
  ns_train_opts o = {.progress = on_epoch, .progress_ctx = &log};
  ns_model *m = NULL;
  ns_train_result r;
  cr_assert_eq(ns_train_model(&hp, (const char *const *)names, NULL, s, NS, &o, &m, &r), NS_OK, "%s",
               ns_err_detail());
  cr_assert(log.last < 0.7 * log.first, "loss %g -> %g", log.first, log.last);
  // a held-out job of a trained node: reconstruction beats predicting the (standardised) mean
  snprintf(path, sizeof path, "%s/Test/Node-1_Job-13.csv", dir);
  float *xt;
  uint8_t *lab;
  size_t T = read_sample(path, M, &xt, &lab);
  float *y = malloc(T * M * sizeof(float)), *sc = malloc(T * sizeof(float));
  cr_assert_eq(ns_model_reconstruct(m, xt, T, 0, y), NS_OK);
  double e = mse(xt, y, T * M), base = 0;
  for (size_t i = 0; i < T * M; i++) base += (double)xt[i] * xt[i];
  base /= (double)(T * M);
  cr_assert(e < 0.8 * base, "test-job reconstruction MSE %g vs mean-prediction %g", e, base);
  ns_model_score(m, xt, y, T, sc, NULL);
  size_t rank = 0, pos = 0;
  for (size_t t = 0; t < T; t++)
    if (lab[t]) pos = t;
  for (size_t t = 0; t < T; t++) rank += sc[t] > sc[pos];
  cr_log_info("sample: loss %.4f -> %.4f, test MSE %.4f (mean-prediction %.4f), labelled point ranks %zu of %zu",
              log.first, log.last, e, base, rank + 1, T);
  ns_train_result_free(&r);
  ns_model_free(m);
  for (int i = 0; i < NS; i++) free(xs[i]);
  for (int i = 0; i < M; i++) free(names[i]);
  free(xt), free(lab), free(y), free(sc);
}

Test(train, balance_loss_keeps_experts_in_use, .timeout = 240) {
  float *xs[NSER];
  ns_train_series s[NSER];
  make_data(xs, s);
  ns_model_hparams hp = small_hp();
  hp.aux_weight = 0.1;
  ns_model *m = NULL;
  cr_assert_eq(ns_train_model(&hp, NAMES6, NULL, s, NSER, NULL, &m, NULL), NS_OK, "%s", ns_err_detail());
  ns_model_reset_expert_rows(m);
  float *y = malloc(TSER * M6 * 4);
  for (int i = 0; i < NSER; i++) cr_assert_eq(ns_model_reconstruct(m, xs[i], TSER, i, y), NS_OK);
  uint64_t c[3];
  ns_model_expert_rows(m, c);
  uint64_t tot = c[0] + c[1] + c[2];
  cr_assert_eq(tot, (uint64_t)2 * NSER * TSER); // 2 layers, top-1
  for (int e = 0; e < 3; e++)
    cr_assert(c[e] > tot / 5, "expert %d ran on %llu of %llu tokens", e, (unsigned long long)c[e],
              (unsigned long long)tot);
  free(y);
  ns_model_free(m);
  for (int i = 0; i < NSER; i++) free(xs[i]);
}

/* ---- calibration against contamination (ns_score_stats_calibrate) ---- */

/* Log-normal "normal error" from a fixed LCG, deterministic. */
static void lognormal(float *v, size_t n, double mu, double sd, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    double u1, u2;
    seed = seed * 1664525u + 1013904223u, u1 = ((seed >> 8) + 0.5) / 16777216.0;
    seed = seed * 1664525u + 1013904223u, u2 = ((seed >> 8) + 0.5) / 16777216.0;
    v[i] = (float)exp(mu + sd * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
  }
}

Test(score_stats, calibrate_leaves_clean_data_alone) {
  enum { N = 20000 };
  float *v = malloc(N * sizeof *v);
  lognormal(v, N, -4, 0.8, 7);
  ns_score_stats plain, cal;
  cr_assert_eq(ns_score_stats_compute(v, N, &plain), NS_OK);
  ns_calib_rule rule = {.quantile = 0.999, .factor = 1.5, .min_run = 4, .relative = 0};
  size_t cut = 99;
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, N, NULL, 0, &rule, &cal, &cut), NS_OK);
  cr_assert_eq(cut, 0, "unimodal scores: nothing left out (%zu)", cut);
  cr_assert_float_eq(ns_score_stats_quantile(&cal, 0.999), ns_score_stats_quantile(&plain, 0.999), 1e-9);
  free(v);
}

Test(score_stats, calibrate_removes_a_contaminating_mode) {
  enum { N = 20000, SEG = 200 };
  float *v = malloc(N * sizeof *v), *v0 = malloc(N * sizeof *v0);
  lognormal(v, N, -4, 0.8, 11);
  memcpy(v0, v, N * sizeof *v);
  ns_score_stats clean;
  cr_assert_eq(ns_score_stats_compute(v, N, &clean), NS_OK);
  /* 4 % anomalous: 4 stretches of 200 points, 100x the normal level. */
  float *a = malloc(SEG * sizeof *a);
  for (int k = 0; k < 10; k++) {
    lognormal(a, SEG, log(2.0), 0.5, 100u + (uint32_t)k);
    memcpy(v + (size_t)k * 2000 + 500, a, SEG * sizeof *a);
    if (k == 3) memcpy(v0, v, N * sizeof *v); /* v0: the first 4 stretches */
  }
  ns_score_stats plain, cal;
  cr_assert_eq(ns_score_stats_compute(v0, N, &plain), NS_OK);
  ns_calib_rule rule = {.quantile = 0.999, .factor = 1.5, .min_run = 4, .relative = 0};
  size_t cut = 0;
  cr_assert_eq(ns_score_stats_calibrate(v0, NULL, N, NULL, 0, &rule, &cal, &cut), NS_OK);
  double q_clean = ns_score_stats_quantile(&clean, 0.999), q_plain = ns_score_stats_quantile(&plain, 0.999),
         q_cal = ns_score_stats_quantile(&cal, 0.999);
  cr_assert_gt(q_plain, 20 * q_clean, "contamination lifts the plain quantile (%g vs %g)", q_plain, q_clean);
  cr_assert_geq(cut, 760, "the anomalous stretches are left out (%zu)", cut);
  cr_assert_leq(cut, 1000, "and little else (%zu)", cut);
  cr_assert_lt(q_cal, 1.5 * q_clean, "calibrated quantile %g near the clean %g", q_cal, q_clean);
  /* Off (min_run 0): plain statistics, nothing left out. */
  ns_calib_rule off = {.quantile = 0.999, .factor = 1.5, .min_run = 0, .relative = 0};
  cr_assert_eq(ns_score_stats_calibrate(v0, NULL, N, NULL, 0, &off, &cal, &cut), NS_OK);
  cr_assert_eq(cut, 0);
  cr_assert_float_eq(ns_score_stats_quantile(&cal, 0.999), q_plain, 1e-9);
  /* A tenth of the points in a far mode is more likely a regime the model
   * fits badly than contamination: trimming it would flag that regime in
   * production, so it is left alone. */
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, N, NULL, 0, &rule, &cal, &cut), NS_OK);
  cr_assert_eq(cut, 0, "a 10 %% mode was trimmed (%zu points)", cut);
  free(a);
  free(v);
  free(v0);
}

/* Step (1): 100 segments of 200 points. Contamination lifts a stretch of a
 * segment; a badly fitted regime lifts whole segments. Relative to each
 * segment's own median the first is left out at 10 %, the second stays. */
Test(score_stats, calibrate_relative_trims_local_stretches_not_regimes) {
  enum { NSEG = 100, L = 200, N = NSEG * L };
  float *v = malloc(N * sizeof *v), *a = malloc(L * sizeof *a);
  size_t starts[NSEG];
  lognormal(v, N, -4, 0.8, 21);
  for (int k = 0; k < NSEG; k++) starts[k] = (size_t)k * L;
  ns_score_stats clean;
  cr_assert_eq(ns_score_stats_compute(v, N, &clean), NS_OK);
  ns_calib_rule rel = {.quantile = 0.999, .factor = 1.5, .min_run = 4, .relative = 5},
                norel = {.quantile = 0.999, .factor = 1.5, .min_run = 4, .relative = 0};
  ns_score_stats cal;
  size_t cut = 0;
  // clean: nothing (or next to nothing) left out, the quantile unchanged
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, N, starts, NSEG, &rel, &cal, &cut), NS_OK);
  cr_assert_leq(cut, 20, "clean segments lost %zu points", cut);
  cr_assert_float_eq(ns_score_stats_quantile(&cal, 0.999), ns_score_stats_quantile(&clean, 0.999),
                     0.02 * ns_score_stats_quantile(&clean, 0.999));
  // every second segment carries a 40-point anomaly at 100x: 10 % of all points
  for (int k = 0; k < NSEG; k += 2) {
    lognormal(a, 40, log(2.0), 0.5, 300u + (uint32_t)k);
    memcpy(v + (size_t)k * L + 80, a, 40 * sizeof *a);
  }
  ns_score_stats plain;
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, N, starts, NSEG, &norel, &plain, &cut), NS_OK);
  double q_clean = ns_score_stats_quantile(&clean, 0.999), q_plain = ns_score_stats_quantile(&plain, 0.999);
  cr_assert_gt(q_plain, 20 * q_clean, "without step (1) 10 %% contamination stays (%g vs %g)", q_plain, q_clean);
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, N, starts, NSEG, &rel, &cal, &cut), NS_OK);
  cr_assert_geq(cut, 1950, "the anomalous stretches are left out (%zu of 2000)", cut);
  cr_assert_leq(cut, 2100, "and little else (%zu)", cut);
  cr_assert_lt(ns_score_stats_quantile(&cal, 0.999), 1.5 * q_clean);
  // without series starts step (1) cannot run
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, N, NULL, 0, &rel, &cal, &cut), NS_OK);
  cr_assert_gt(ns_score_stats_quantile(&cal, 0.999), 20 * q_clean);
  // a regime: every tenth segment whole at 30x, no local stretch
  lognormal(v, N, -4, 0.8, 21);
  for (int k = 0; k < NSEG; k += 10)
    for (int i = 0; i < L; i++) v[(size_t)k * L + i] *= 30.0f;
  ns_score_stats reg;
  cr_assert_eq(ns_score_stats_compute(v, N, &reg), NS_OK);
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, N, starts, NSEG, &rel, &cal, &cut), NS_OK);
  cr_assert_leq(cut, 20, "a badly fitted regime was trimmed (%zu points)", cut);
  cr_assert_float_eq(ns_score_stats_quantile(&cal, 0.999), ns_score_stats_quantile(&reg, 0.999),
                     0.02 * ns_score_stats_quantile(&reg, 0.999));
  free(v);
  free(a);
}

/* Robust rounds' ranking: series 0 is a regime the model fits badly (every
 * window 10x), series 1 is fitted well but holds one anomalous window (5x).
 * By absolute error the regime's windows fill the top; relative to each
 * series' median the anomaly is first and the regime is ordinary. */
Test(train, relative_error_ranks_local_anomalies_first) {
  enum { NW = 20 };
  ns_train_window w[NW];
  float err[NW], rel[NW];
  size_t cand[NW];
  for (int i = 0; i < NW; i++) {
    w[i] = (ns_train_window){(uint32_t)(i / 10), (uint32_t)(i % 10) * 64};
    err[i] = i < 10 ? 10.0f + 0.1f * (float)(i % 3) : 1.0f + 0.05f * (float)(i % 4);
    cand[i] = (size_t)i;
  }
  err[15] = 5.0f;
  int top_abs = 0;
  for (int i = 1; i < NW; i++) top_abs = err[i] > err[top_abs] ? i : top_abs;
  cr_assert_lt(top_abs, 10, "absolute: the regime is on top");
  cr_assert_eq(ns_train_relative_error(err, w, NW, cand, NW, 2, rel), NS_OK);
  int top = 0;
  for (int i = 1; i < NW; i++) top = rel[i] > rel[top] ? i : top;
  cr_assert_eq(top, 15, "relative: the anomalous window first (got %d)", top);
  cr_assert_gt(rel[15], 4.0f);
  for (int i = 0; i < 10; i++) cr_assert_lt(rel[i], 1.05f, "regime window %d: %g", i, (double)rel[i]);
  // candidates only from series 1: series 0 keeps absolute errors
  cr_assert_eq(ns_train_relative_error(err, w, NW, cand + 10, 10, 2, rel), NS_OK);
  for (int i = 0; i < 10; i++) cr_assert_float_eq(rel[i], err[i], 1e-6);
  cr_assert_gt(rel[15], 4.0f);
}

Test(score_stats, calibrate_level_runs_respect_series_starts_and_keep) {
  /* Flat 1.0 with a 3-point run at 10.0 on each side of a series start: as
   * one run (6 points) it is left out, split by the start it is two short
   * runs and stays; masked points never count. (Under 100 points the
   * mixture step stays out of it, so this is the level rule alone.) */
  float v[90];
  for (int i = 0; i < 90; i++) v[i] = 1.0f + 0.001f * (float)(i % 7);
  for (int i = 42; i < 48; i++) v[i] = 10.0f;
  ns_calib_rule rule = {.quantile = 0.5, .factor = 2.0, .min_run = 4, .relative = 0};
  ns_score_stats s;
  size_t cut = 0;
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, 90, NULL, 0, &rule, &s, &cut), NS_OK);
  cr_assert_eq(cut, 6);
  cr_assert_lt(s.max, 2.0);
  size_t starts[] = {0, 45};
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, 90, starts, 2, &rule, &s, &cut), NS_OK);
  cr_assert_eq(cut, 0);
  cr_assert_float_eq(s.max, 10.0, 1e-6);
  uint8_t keep[90];
  memset(keep, 1, sizeof keep);
  for (int i = 41; i < 49; i++) keep[i] = 0;
  cr_assert_eq(ns_score_stats_calibrate(v, keep, 90, NULL, 0, &rule, &s, &cut), NS_OK);
  cr_assert_eq(s.count, 82);
  cr_assert_eq(ns_score_stats_calibrate(v, NULL, 90, NULL, 0, &rule, NULL, &cut), NS_ERR_INVAL);
}
