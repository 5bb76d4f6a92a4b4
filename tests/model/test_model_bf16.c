/* The bf16 inference path (model_precision = bf16) against the fp32 one:
 * the same weights must give the same reconstruction up to bf16 rounding,
 * across odd shapes (metric count, width, heads, expert width, window
 * lengths that are not multiples of the kernels' blocks), with the same
 * routing bookkeeping, thread-independence, repacking after training, and
 * a precise refusal where the CPU cannot run it. Skipped (not passed) on a
 * CPU without AVX512-BF16, except the refusal tests. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_config.h"
#include "ns_model.h"
#include "ns_model_impl.h"
#include "ns_train.h"

static char **make_names(int M) {
  char **n = calloc((size_t)M, sizeof *n);
  cr_assert(n);
  for (int i = 0; i < M; i++) {
    n[i] = malloc(16);
    cr_assert(n[i]);
    snprintf(n[i], 16, "m%d", i);
  }
  return n;
}

static void free_names(char **n, int M) {
  for (int i = 0; i < M; i++) free(n[i]);
  free(n);
}

/* Smooth inputs of unit scale, as preprocessing gives. */
static float *inputs(size_t T, int M, int seed) {
  float *x = malloc(T * (size_t)M * sizeof *x);
  cr_assert(x);
  for (size_t t = 0; t < T; t++)
    for (int m = 0; m < M; m++)
      x[t * M + m] = (float)(sin(0.13 * (double)t * (1 + m % 5) + 0.7 * m + seed) + 0.25 * cos(0.031 * (double)t + m));
  return x;
}

static void skip_without_bf16(void) {
  if (!ns_precision_bf16_supported()) cr_skip_test("this CPU has no AVX512-BF16");
}

/* Relative RMS difference and max |diff| of two arrays. */
static double rel_rms(const float *a, const float *b, size_t n, double *maxd) {
  double sd = 0, ss = 0, md = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]);
    sd += e * e;
    ss += (double)b[i] * b[i];
    md = e > md ? e : md;
  }
  if (maxd) *maxd = md;
  return sqrt(sd / (ss > 0 ? ss : 1));
}

typedef struct shape_case {
  int M, d, H, E, K, F, T, B;
  bool moe, between;
} shape_case;

/* fp32 and bf16 forwards of one random model on the same input. */
static void compare(const shape_case *c, double *rr, double *md) {
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = c->M;
  hp.d_model = c->d;
  hp.n_heads = c->H;
  hp.n_experts = c->E;
  hp.top_k = c->K;
  hp.d_ff = c->F;
  hp.window = c->T < 2 ? 2 : c->T; // a shorter forward is still allowed
  hp.n_segments = 3;
  hp.moe = c->moe;
  hp.between_pos = c->between;
  hp.seed = 11;
  char **nm = make_names(c->M);
  ns_model *m = NULL;
  cr_assert_eq(ns_model_create(&hp, (const char *const *)nm, NULL, &m), NS_OK, "%s", ns_err_detail());
  size_t n = (size_t)c->B * c->T * c->M;
  float *x = inputs((size_t)c->B * c->T, c->M, 1), *y32 = malloc(n * sizeof *y32), *y16 = malloc(n * sizeof *y16);
  int codes[16];
  for (int b = 0; b < c->B; b++) codes[b] = b % 3;
  cr_assert_eq(ns_model_forward(m, x, codes, c->B, c->T, y32), NS_OK);
  cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_model_get_precision(m), NS_PREC_BF16);
  cr_assert_eq(ns_model_forward(m, x, codes, c->B, c->T, y16), NS_OK);
  *rr = rel_rms(y16, y32, n, md);
  for (size_t i = 0; i < n; i++) cr_assert(isfinite(y16[i]), "output %zu not finite", i);
  // back to fp32: bit-identical to before
  cr_assert_eq(ns_model_set_precision(m, NS_PREC_FP32), NS_OK);
  float *y32b = malloc(n * sizeof *y32b);
  cr_assert_eq(ns_model_forward(m, x, codes, c->B, c->T, y32b), NS_OK);
  cr_assert_eq(memcmp(y32, y32b, n * sizeof *y32), 0, "fp32 after bf16 differs");
  free(x), free(y32), free(y16), free(y32b);
  ns_model_free(m);
  free_names(nm, c->M);
}

Test(model_bf16, dense_matches_fp32_to_rounding) {
  skip_without_bf16();
  // no routing, so every difference is rounding: a bound on the kernels
  shape_case c = {.M = 138, .d = 138, .H = 3, .E = 1, .K = 1, .F = 138, .T = 50, .B = 8, .moe = false,
                  .between = true};
  double rr, md;
  compare(&c, &rr, &md);
  cr_log_info("dense 138: relative RMS %.2e, max %.3g", rr, md);
  cr_assert_lt(rr, 1e-2, "relative RMS %.3g", rr);
  cr_assert_lt(md, 0.1, "max diff %.3g", md);
}

Test(model_bf16, odd_shapes_match_fp32) {
  skip_without_bf16();
  /* odd metric counts and widths (pad elements), a width that is no multiple
   * of 16, heads wider than one 48-column block, windows longer than one
   * 64-column block, short windows and single rows, top-2 routing */
  shape_case cs[] = {
      {.M = 7, .d = 9, .H = 3, .E = 3, .K = 1, .F = 11, .T = 5, .B = 3, .moe = true, .between = true},
      {.M = 13, .d = 120, .H = 2, .E = 4, .K = 2, .F = 33, .T = 100, .B = 2, .moe = true, .between = false},
      {.M = 116, .d = 117, .H = 3, .E = 3, .K = 1, .F = 117, .T = 64, .B = 9, .moe = true, .between = true},
      {.M = 3, .d = 4, .H = 1, .E = 2, .K = 1, .F = 1, .T = 1, .B = 1, .moe = true, .between = true},
      {.M = 31, .d = 32, .H = 4, .E = 1, .K = 1, .F = 17, .T = 67, .B = 5, .moe = false, .between = true},
  };
  for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
    double rr, md;
    compare(&cs[i], &rr, &md);
    cr_log_info("case %zu: relative RMS %.2e, max %.3g", i, rr, md);
    // MoE cases may route a near-tie token differently: RMS, not max
    cr_assert_lt(rr, 3e-2, "case %zu: relative RMS %.3g", i, rr);
    if (!cs[i].moe) cr_assert_lt(md, 0.1, "case %zu: max diff %.3g", i, md);
  }
}

/* A small model trained on smooth data: its scores in bf16 agree with fp32
 * closely enough that no threshold decision moves except at the margin. */
Test(model_bf16, trained_scores_agree) {
  skip_without_bf16();
  int M = 10;
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = M;
  hp.d_model = 12;
  hp.n_layers = 2;
  hp.window = 32;
  hp.epochs = 25;
  hp.patience = 0;
  hp.dropout = 0;
  hp.lr = 3e-3;
  char **nm = make_names(M);
  size_t T = 32 * 40;
  float *x = inputs(T, M, 2);
  ns_train_series s = {x, T, 1.0f, 0, NULL};
  ns_model *m = NULL;
  ns_train_result r;
  cr_assert_eq(ns_train_model(&hp, (const char *const *)nm, NULL, &s, 1, NULL, &m, &r), NS_OK, "%s",
               ns_err_detail());
  ns_train_result_free(&r);
  float *xt = inputs(T, M, 5), *h32 = malloc(T * M * sizeof *h32), *h16 = malloc(T * M * sizeof *h16);
  float *s32 = malloc(T * sizeof *s32), *s16 = malloc(T * sizeof *s16);
  cr_assert_eq(ns_model_reconstruct(m, xt, T, 0, h32), NS_OK);
  cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_OK);
  cr_assert_eq(ns_model_reconstruct(m, xt, T, 0, h16), NS_OK);
  ns_model_score(m, xt, h32, T, s32, NULL);
  ns_model_score(m, xt, h16, T, s16, NULL);
  double m32 = 0, m16 = 0;
  for (size_t t = 0; t < T; t++) m32 += s32[t], m16 += s16[t];
  m32 /= (double)T, m16 /= (double)T;
  double rr = rel_rms(s16, s32, T, NULL);
  cr_log_info("trained: mean score fp32 %.4g bf16 %.4g, relative RMS of scores %.2e", m32, m16, rr);
  cr_assert_lt(fabs(m16 - m32) / m32, 0.05, "mean score fp32 %.4g bf16 %.4g", m32, m16);
  cr_assert_lt(rr, 0.1, "scores relative RMS %.3g", rr);
  free(x), free(xt), free(h32), free(h16), free(s32), free(s16);
  ns_model_free(m);
  free_names(nm, M);
}

Test(model_bf16, topk1_runs_one_expert_per_token) {
  skip_without_bf16();
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 20;
  hp.window = 40;
  char **nm = make_names(20);
  ns_model *m = NULL;
  cr_assert_eq(ns_model_create(&hp, (const char *const *)nm, NULL, &m), NS_OK);
  cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_OK);
  float *x = inputs(4 * 40, 20, 3), *y = malloc(4 * 40 * 20 * sizeof *y);
  int codes[4] = {0};
  ns_model_reset_expert_rows(m);
  cr_assert_eq(ns_model_forward(m, x, codes, 4, 40, y), NS_OK);
  uint64_t rows[3];
  ns_model_expert_rows(m, rows);
  uint64_t tot = rows[0] + rows[1] + rows[2];
  // k = 1: L layers x tokens rows in all, no more
  cr_assert_eq(tot, (uint64_t)hp.n_layers * 4 * 40, "%llu rows", (unsigned long long)tot);
  free(x), free(y);
  ns_model_free(m);
  free_names(nm, 20);
}

Test(model_bf16, threads_do_not_change_results) {
  skip_without_bf16();
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 24;
  char **nm = make_names(24);
  ns_model *m = NULL;
  cr_assert_eq(ns_model_create(&hp, (const char *const *)nm, NULL, &m), NS_OK);
  cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_OK);
  size_t T = 64 * 9 + 23; // ragged tail
  float *x = inputs(T, 24, 4), *a = malloc(T * 24 * sizeof *a), *b = malloc(T * 24 * sizeof *b);
  ns_model_set_threads(m, 1);
  cr_assert_eq(ns_model_reconstruct(m, x, T, 0, a), NS_OK);
  ns_model_set_threads(m, 2);
  cr_assert_eq(ns_model_reconstruct(m, x, T, 0, b), NS_OK);
  cr_assert_eq(memcmp(a, b, T * 24 * sizeof *a), 0);
  free(x), free(a), free(b);
  ns_model_free(m);
  free_names(nm, 24);
}

/* Fine-tuning a bf16 model must not leave the old packed weights in use. */
Test(model_bf16, training_repacks) {
  skip_without_bf16();
  int M = 8;
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = M;
  hp.window = 16;
  hp.epochs = 3;
  hp.patience = 0;
  char **nm = make_names(M);
  ns_model *m = NULL;
  cr_assert_eq(ns_model_create(&hp, (const char *const *)nm, NULL, &m), NS_OK);
  cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_OK);
  size_t T = 16 * 20;
  float *x = inputs(T, M, 6), *before = malloc(T * M * sizeof *before), *after = malloc(T * M * sizeof *after),
        *fresh = malloc(T * M * sizeof *fresh);
  cr_assert_eq(ns_model_reconstruct(m, x, T, 0, before), NS_OK);
  ns_train_series s = {x, T, 1.0f, 0, NULL};
  ns_train_result r;
  cr_assert_eq(ns_train_finetune(m, &s, 1, NULL, &r), NS_OK, "%s", ns_err_detail());
  ns_train_result_free(&r);
  cr_assert_eq(ns_model_get_precision(m), NS_PREC_BF16, "fine-tuning dropped the precision");
  cr_assert_eq(ns_model_reconstruct(m, x, T, 0, after), NS_OK);
  cr_assert_neq(memcmp(before, after, T * M * sizeof *after), 0, "fine-tuning changed nothing");
  // a clone packs its own copy of the new weights: the same output
  ns_model *c = NULL;
  cr_assert_eq(ns_model_clone(m, &c), NS_OK);
  cr_assert_eq(ns_model_get_precision(c), NS_PREC_BF16, "a clone keeps the precision");
  cr_assert_eq(ns_model_reconstruct(c, x, T, 0, fresh), NS_OK);
  cr_assert_eq(memcmp(after, fresh, T * M * sizeof *after), 0, "stale packed weights after training");
  free(x), free(before), free(after), free(fresh);
  ns_model_free(m);
  ns_model_free(c);
  free_names(nm, M);
}

/* Precision is a run-time choice: a saved bf16 model loads as fp32. */
Test(model_bf16, precision_is_not_saved) {
  skip_without_bf16();
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 5;
  char **nm = make_names(5);
  ns_model *m = NULL, *l = NULL;
  cr_assert_eq(ns_model_create(&hp, (const char *const *)nm, NULL, &m), NS_OK);
  cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_OK);
  void *buf = NULL;
  size_t n = 0;
  cr_assert_eq(ns_model_save(m, &buf, &n), NS_OK);
  cr_assert_eq(ns_model_load(buf, n, (const char *const *)nm, 5, &l), NS_OK);
  cr_assert_eq(ns_model_get_precision(l), NS_PREC_FP32);
  free(buf);
  ns_model_free(m);
  ns_model_free(l);
  free_names(nm, 5);
}

Test(model_bf16, config_resolves_precision) {
  ns_config *cfg = NULL;
  cr_assert_eq(ns_config_create(&cfg), NS_OK);
  ns_precision p = NS_PREC_BF16;
  ns_precision fast = ns_precision_bf16_supported() ? NS_PREC_BF16 : NS_PREC_FP32;
  cr_assert_eq(ns_precision_from_config(cfg, &p), NS_OK); // default: auto
  cr_assert_eq(p, fast);
  cr_assert_eq(ns_config_set(cfg, "model_precision", "fp32"), NS_OK);
  cr_assert_eq(ns_precision_from_config(cfg, &p), NS_OK);
  cr_assert_eq(p, NS_PREC_FP32);
  cr_assert_eq(ns_config_set(cfg, "model_precision", "auto"), NS_OK);
  cr_assert_eq(ns_precision_from_config(cfg, &p), NS_OK);
  cr_assert_eq(p, fast);
  cr_assert_eq(ns_config_set(cfg, "model_precision", "bf16"), NS_OK);
  ns_status st = ns_precision_from_config(cfg, &p);
  if (ns_precision_bf16_supported()) {
    cr_assert_eq(st, NS_OK);
    cr_assert_eq(p, NS_PREC_BF16);
  } else {
    cr_assert_eq(st, NS_ERR_UNSUPPORTED);
    cr_assert(strstr(ns_err_detail(), "AVX512-BF16"), "%s", ns_err_detail());
  }
  cr_assert_neq(ns_config_set(cfg, "model_precision", "fp16"), NS_OK, "fp16 accepted");
  cr_assert(strstr(ns_err_detail(), "model_precision"), "%s", ns_err_detail());
  ns_config_free(cfg);
}

Test(model_bf16, bad_arguments) {
  cr_assert_eq(ns_model_set_precision(NULL, NS_PREC_BF16), NS_ERR_INVAL);
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 4;
  char **nm = make_names(4);
  ns_model *m = NULL;
  cr_assert_eq(ns_model_create(&hp, (const char *const *)nm, NULL, &m), NS_OK);
  cr_assert_eq(ns_model_set_precision(m, (ns_precision)7), NS_ERR_INVAL);
  cr_assert_eq(ns_model_get_precision(m), NS_PREC_FP32);
  if (!ns_precision_bf16_supported()) {
    cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_ERR_UNSUPPORTED);
    cr_assert_eq(ns_model_get_precision(m), NS_PREC_FP32, "a refused bf16 must leave fp32 in place");
  }
  // non-finite input is refused before any kernel runs, in either precision
  if (ns_precision_bf16_supported()) cr_assert_eq(ns_model_set_precision(m, NS_PREC_BF16), NS_OK);
  float x[64 * 4];
  for (int i = 0; i < 64 * 4; i++) x[i] = 0.1f * (float)i;
  x[17] = NAN;
  float y[64 * 4];
  cr_assert_eq(ns_model_reconstruct(m, x, 64, 0, y), NS_ERR_NONFINITE);
  ns_model_free(m);
  free_names(nm, 4);
}
