/* Baselines: z-score math, autoencoder gradients/training/determinism,
 * serialisation and refusal of bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ns_baseline.h"

static const char *names4[4] = {"cpu", "mem", "net", "io"};

Test(zscore, known_data) {
  // Two series, metric 0 = 1..6 (mean 3.5, sd sqrt(3.5)), metric 1 constant 2.
  float a[3 * 2] = {1, 2, 2, 2, 3, 2}, b[3 * 2] = {4, 2, 5, 2, 6, 2};
  // A third series with weight 0 (dropped from training) must not count.
  float junk[2] = {1000, -1000};
  ns_train_series s[3] = {{a, 3, 1.0f, 0, NULL}, {b, 3, 0.5f, 1, NULL}, {junk, 1, 0.0f, 2, NULL}};
  ns_baseline *bl = NULL;
  const char *nm[2] = {"x", "c"};
  cr_assert_eq(ns_baseline_train(NS_BASELINE_ZSCORE, nm, 2, NULL, s, 3, NULL, &bl), NS_OK, "%s", ns_err_detail());
  const float *mu = ns_baseline_zscore_mean(bl), *sd = ns_baseline_zscore_sigma(bl);
  cr_assert_float_eq(mu[0], 3.5f, 1e-6);
  cr_assert_float_eq(sd[0], (float)sqrt(3.5), 1e-6);
  cr_assert_float_eq(mu[1], 2.0f, 1e-6);
  cr_assert_float_eq(sd[1], 1e-3f, 1e-9, "constant metric gets the sigma floor");
  float x[2] = {3.5f + 2 * (float)sqrt(3.5), 2.0f}, xh[2], sc, me[2];
  cr_assert_eq(ns_baseline_reconstruct(bl, x, 1, xh), NS_OK);
  cr_assert_eq(xh[0], mu[0]);
  cr_assert_eq(xh[1], mu[1]);
  ns_baseline_score(bl, x, xh, 1, &sc, me);
  cr_assert_float_eq(sc, 2.0f, 1e-4, "z = 2 on metric 0 -> (4 + 0) / 2");
  cr_assert_float_eq(me[0], 2.0f, 1e-4);
  cr_assert_float_eq(me[1], 0.0f, 1e-6);
  const ns_score_stats *st = ns_baseline_score_stats(bl);
  cr_assert_eq(st->count, 6);
  // Training scores: z^2/2 of 1..6 -> mean = (sum z^2)/(6*2) = 5*3.5/(3.5*12)
  cr_assert_float_eq(st->mean, 5.0 / 12.0, 1e-5);
  ns_baseline_free(bl);
}

Test(zscore, bad_input) {
  ns_baseline *bl = NULL;
  float nanx[2] = {1, NAN};
  ns_train_series s = {nanx, 1, 1, 0, NULL};
  const char *nm[2] = {"x", "c"};
  cr_assert_eq(ns_baseline_train(NS_BASELINE_ZSCORE, nm, 2, NULL, &s, 1, NULL, &bl), NS_ERR_NONFINITE);
  cr_assert(strstr(ns_err_detail(), "row 0 metric 1"), "%s", ns_err_detail());
  cr_assert_null(bl);
  cr_assert_eq(ns_baseline_train(NS_BASELINE_ZSCORE, nm, 2, NULL, NULL, 0, NULL, &bl), NS_ERR_EMPTY);
  float ok[2] = {1, 2};
  s.x = ok;
  s.weight = 0;
  cr_assert_eq(ns_baseline_train(NS_BASELINE_ZSCORE, nm, 2, NULL, &s, 1, NULL, &bl), NS_ERR_EMPTY);
  s.weight = 1;
  float badw[2] = {0.7f, 0.7f};
  cr_assert_eq(ns_baseline_train(NS_BASELINE_ZSCORE, nm, 2, badw, &s, 1, NULL, &bl), NS_ERR_RANGE);
  cr_assert_eq(ns_baseline_train((ns_baseline_kind)7, nm, 2, NULL, &s, 1, NULL, &bl), NS_ERR_RANGE);
  ns_baseline_kind k;
  cr_assert_eq(ns_baseline_kind_parse("ae", &k), NS_OK);
  cr_assert_eq(k, NS_BASELINE_DENSE_AE);
  cr_assert_eq(ns_baseline_kind_parse("zscore", &k), NS_OK);
  cr_assert_eq(k, NS_BASELINE_ZSCORE);
  cr_assert_eq(ns_baseline_kind_parse("pca", &k), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "zscore, ae"));
}

/* A simple 4-metric signal: two latent sines mixed linearly, plus a little noise. */
static float *signal(size_t T, unsigned seed) {
  float *x = malloc(T * 4 * sizeof *x);
  unsigned r = seed;
  for (size_t t = 0; t < T; t++) {
    double u = sin(2 * M_PI * t / 40.0), v = cos(2 * M_PI * t / 17.0);
    double mix[4] = {u, v, 0.5 * u + 0.5 * v, u - 0.3 * v};
    for (int m = 0; m < 4; m++) {
      r = r * 1103515245u + 12345u;
      x[t * 4 + m] = (float)(mix[m] + 0.01 * (((r >> 8) & 0xffff) / 65536.0 - 0.5));
    }
  }
  return x;
}

static ns_baseline_opts small_opts(int epochs) {
  ns_baseline_opts o;
  ns_baseline_opts_default(&o);
  o.hidden = 16;
  o.bottleneck = 4;
  o.epochs = epochs;
  o.batch = 32;
  o.lr = 3e-3;
  o.seed = 7;
  return o;
}

Test(ae, gradient_check) {
  float *x = signal(12, 3);
  ns_train_series s = {x, 12, 1, 0, NULL};
  ns_baseline_opts o = small_opts(0);
  float w[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  ns_baseline *bl = NULL;
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, w, &s, 1, &o, &bl), NS_OK, "%s", ns_err_detail());
  // Non-zero biases so every parameter's gradient is exercised.
  float *p = ns_baseline_params(bl);
  size_t P = ns_baseline_n_params(bl);
  cr_assert_eq(P, 16 * 4 + 16 + 4 * 16 + 4 + 16 * 4 + 16 + 4 * 16 + 4);
  for (size_t q = 0; q < P; q++)
    if (p[q] == 0) p[q] = 0.05f * (float)((q % 7) + 1);
  float *g = malloc(P * sizeof *g);
  double L0;
  cr_assert_eq(ns_baseline_ae_loss(bl, x, 12, &L0, g), NS_OK);
  double max_rel = 0;
  size_t checked = 0;
  for (size_t q = 0; q < P; q++) {
    float keep = p[q];
    double h = 1e-3, lp, lm;
    p[q] = keep + (float)h;
    ns_baseline_ae_loss(bl, x, 12, &lp, NULL);
    p[q] = keep - (float)h;
    ns_baseline_ae_loss(bl, x, 12, &lm, NULL);
    p[q] = keep;
    double num = (lp - lm) / (2 * h);
    double den = fabs(num) + fabs(g[q]);
    if (den < 1e-4) continue;
    // A ReLU kink inside +-h makes the one-sided slopes disagree: not checkable there.
    double fwd = (lp - L0) / h, bwd = (L0 - lm) / h;
    if (fabs(fwd - bwd) > 0.1 * (fabs(fwd) + fabs(bwd)) + 1e-4) continue;
    double rel = fabs(num - g[q]) / den;
    if (rel > max_rel) max_rel = rel;
    cr_expect(rel < 0.05, "param %zu: analytic %g numeric %g", q, g[q], num);
    checked++;
  }
  cr_assert_gt(checked, P / 2, "only %zu of %zu gradients non-trivial", checked, P);
  free(g), free(x);
  ns_baseline_free(bl);
  // A z-score baseline has no gradients.
  float one[4] = {1, 2, 3, 4};
  ns_train_series s1 = {one, 1, 1, 0, NULL};
  cr_assert_eq(ns_baseline_train(NS_BASELINE_ZSCORE, names4, 4, NULL, &s1, 1, NULL, &bl), NS_OK);
  double l;
  cr_assert_eq(ns_baseline_ae_loss(bl, one, 1, &l, NULL), NS_ERR_STATE);
  ns_baseline_free(bl);
}

Test(ae, learns_and_reconstructs) {
  size_t T = 800;
  float *x = signal(T, 11), *xt = signal(200, 99);
  ns_train_series s = {x, T, 1, 0, NULL};
  ns_baseline *b0 = NULL, *b1 = NULL;
  ns_baseline_opts o0 = small_opts(0), o1 = small_opts(60);
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, NULL, &s, 1, &o0, &b0), NS_OK);
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, NULL, &s, 1, &o1, &b1), NS_OK, "%s", ns_err_detail());
  double l0, l1;
  cr_assert_eq(ns_baseline_ae_loss(b0, xt, 200, &l0, NULL), NS_OK);
  cr_assert_eq(ns_baseline_ae_loss(b1, xt, 200, &l1, NULL), NS_OK);
  cr_assert_lt(l1, l0 * 0.05, "loss %g -> %g", l0, l1);
  // Held-out reconstruction error small against the signal's variance (~0.25 per metric).
  float *xh = malloc(200 * 4 * sizeof *xh), sc[200], me[800];
  cr_assert_eq(ns_baseline_reconstruct(b1, xt, 200, xh), NS_OK);
  ns_baseline_score(b1, xt, xh, 200, sc, me);
  double mean = 0;
  for (int t = 0; t < 200; t++) {
    mean += sc[t];
    double sum = me[t * 4] + me[t * 4 + 1] + me[t * 4 + 2] + me[t * 4 + 3];
    cr_assert_float_eq(sum, sc[t], 1e-5);
  }
  mean /= 200;
  cr_assert_lt(mean, 0.01, "mean held-out score %g", mean);
  // A point off the learnt manifold scores far higher.
  float odd[4] = {1, 1, -1, 1}, oh[4], os;
  ns_baseline_reconstruct(b1, odd, 1, oh);
  ns_baseline_score(b1, odd, oh, 1, &os, NULL);
  cr_assert_gt(os, 20 * mean, "anomaly %g vs normal %g", os, mean);
  const ns_score_stats *st = ns_baseline_score_stats(b1);
  cr_assert_eq(st->count, T);
  cr_assert_lt(st->mean, 0.01);
  free(x), free(xt), free(xh);
  ns_baseline_free(b0), ns_baseline_free(b1);
}

Test(ae, deterministic) {
  float *x = signal(300, 5);
  ns_train_series s[2] = {{x, 200, 1, 0, NULL}, {x + 200 * 4, 100, 0.5f, 1, NULL}};
  ns_baseline_opts o = small_opts(5);
  ns_baseline *a = NULL, *b = NULL, *c = NULL;
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, NULL, s, 2, &o, &a), NS_OK);
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, NULL, s, 2, &o, &b), NS_OK);
  o.seed = 8;
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, NULL, s, 2, &o, &c), NS_OK);
  size_t P = ns_baseline_n_params(a);
  cr_assert_eq(memcmp(ns_baseline_params(a), ns_baseline_params(b), P * sizeof(float)), 0, "same seed differs");
  cr_assert_neq(memcmp(ns_baseline_params(a), ns_baseline_params(c), P * sizeof(float)), 0, "seed ignored");
  free(x);
  ns_baseline_free(a), ns_baseline_free(b), ns_baseline_free(c);
}

static void roundtrip(ns_baseline_kind kind) {
  float *x = signal(100, 2);
  ns_train_series s = {x, 100, 1, 0, NULL};
  ns_baseline_opts o = small_opts(3);
  float w[4] = {0.4f, 0.3f, 0.2f, 0.1f};
  ns_baseline *a = NULL, *b = NULL;
  cr_assert_eq(ns_baseline_train(kind, names4, 4, w, &s, 1, &o, &a), NS_OK);
  void *buf = NULL;
  size_t n = 0;
  cr_assert_eq(ns_baseline_save(a, &buf, &n), NS_OK);
  cr_assert(ns_baseline_blob_is(buf, n));
  cr_assert_not(ns_baseline_blob_is(buf, 7));
  cr_assert_not(ns_baseline_blob_is("NSMODEL", 8));
  cr_assert_eq(ns_baseline_load(buf, n, names4, 4, &b), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_baseline_get_kind(b), kind);
  cr_assert_str_eq(ns_baseline_metric_name(b, 2), "net");
  cr_assert_eq(memcmp(ns_baseline_mac_weights(a), ns_baseline_mac_weights(b), sizeof w), 0);
  cr_assert_eq(memcmp(ns_baseline_score_stats(a), ns_baseline_score_stats(b), sizeof(ns_score_stats)), 0);
  float ya[400], yb[400], sa[100], sb[100];
  cr_assert_eq(ns_baseline_reconstruct(a, x, 100, ya), NS_OK);
  cr_assert_eq(ns_baseline_reconstruct(b, x, 100, yb), NS_OK);
  cr_assert_eq(memcmp(ya, yb, sizeof ya), 0);
  ns_baseline_score(a, x, ya, 100, sa, NULL);
  ns_baseline_score(b, x, yb, 100, sb, NULL);
  cr_assert_eq(memcmp(sa, sb, sizeof sa), 0);
  ns_baseline_free(b);
  b = NULL;
  unsigned char *c = malloc(n);
  // Flipped byte in the body: checksum.
  memcpy(c, buf, n);
  c[n / 2] ^= 0x40;
  cr_assert_eq(ns_baseline_load(c, n, NULL, 0, &b), NS_ERR_CORRUPT);
  cr_assert(strstr(ns_err_detail(), "checksum"), "%s", ns_err_detail());
  // Truncated.
  cr_assert_eq(ns_baseline_load(buf, n - 9, NULL, 0, &b), NS_ERR_CORRUPT);
  cr_assert_eq(ns_baseline_load(buf, 10, NULL, 0, &b), NS_ERR_CORRUPT);
  // Bad magic, other version.
  memcpy(c, buf, n);
  c[0] = 'X';
  cr_assert_eq(ns_baseline_load(c, n, NULL, 0, &b), NS_ERR_FORMAT);
  memcpy(c, buf, n);
  c[8] = 9;
  cr_assert_eq(ns_baseline_load(c, n, NULL, 0, &b), NS_ERR_VERSION);
  // Another metric schema.
  const char *other[4] = {"cpu", "mem", "disk", "io"};
  cr_assert_eq(ns_baseline_load(buf, n, other, 4, &b), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "'net'") && strstr(ns_err_detail(), "'disk'"), "%s", ns_err_detail());
  cr_assert_eq(ns_baseline_load(buf, n, other, 3, &b), NS_ERR_SCHEMA);
  cr_assert_eq(ns_baseline_load(buf, 0, NULL, 0, &b), NS_ERR_FORMAT);
  cr_assert_null(b);
  cr_assert_eq(ns_baseline_check_schema(a, other, 4), NS_ERR_SCHEMA);
  cr_assert_eq(ns_baseline_check_schema(a, names4, 4), NS_OK);
  free(c), free(buf), free(x);
  ns_baseline_free(a);
}

Test(io, zscore_roundtrip_and_refusals) { roundtrip(NS_BASELINE_ZSCORE); }
Test(io, ae_roundtrip_and_refusals) { roundtrip(NS_BASELINE_DENSE_AE); }

Test(ae, bad_options) {
  float x[4] = {1, 2, 3, 4};
  ns_train_series s = {x, 1, 1, 0, NULL};
  ns_baseline_opts o = small_opts(1);
  ns_baseline *b = NULL;
  o.hidden = 0;
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, NULL, &s, 1, &o, &b), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "hidden=0"), "%s", ns_err_detail());
  o = small_opts(1);
  o.lr = -1;
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, names4, 4, NULL, &s, 1, &o, &b), NS_ERR_RANGE);
  o = small_opts(1);
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, NULL, 4, NULL, &s, 1, &o, &b), NS_ERR_INVAL);
  cr_assert_null(b);
}

Test(opts, from_config) {
  ns_config *cfg = NULL;
  cr_assert_eq(ns_config_create(&cfg), NS_OK);
  ns_baseline_opts o, d;
  ns_baseline_opts_default(&d);
  cr_assert_eq(ns_baseline_opts_from_config(cfg, &o), NS_OK);
  cr_assert_eq(memcmp(&o, &d, sizeof o), 0, "config defaults differ from ns_baseline_opts_default");
  cr_assert_eq(ns_config_set(cfg, "baseline_ae_hidden", "32"), NS_OK);
  cr_assert_eq(ns_config_set(cfg, "ablation_seed", "9"), NS_OK);
  cr_assert_eq(ns_config_set(cfg, "baseline_ae_lr", "0.01"), NS_OK);
  cr_assert_eq(ns_baseline_opts_from_config(cfg, &o), NS_OK);
  cr_assert_eq(o.hidden, 32);
  cr_assert_eq(o.seed, 9);
  cr_assert_float_eq(o.lr, 0.01, 1e-12);
  cr_assert_neq(ns_config_set(cfg, "baseline_ae_hidden", "0"), NS_OK, "out of range accepted");
  cr_assert_eq(ns_cfg_int(cfg, NS_CFG_ablation_cut), 3600000);
  cr_assert_eq(ns_baseline_opts_from_config(NULL, &o), NS_ERR_INVAL);
  ns_config_free(cfg);
}
