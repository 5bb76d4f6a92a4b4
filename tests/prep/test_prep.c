/* Preprocessing: each step on hand-built inputs with known answers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_prep.h"

#define I 15000

static ns_prep_opts opts(void) {
  ns_prep_opts o;
  ns_prep_opts_default(&o);
  return o;
}

static ns_mts *mk(const char *node, size_t M, const char *const *names) {
  ns_mts *m = NULL;
  cr_assert_eq(ns_mts_create(node, M, (char *const *)names, &m), NS_OK);
  return m;
}

static void add(ns_mts *m, int64_t ts, const double *row) { cr_assert_eq(ns_mts_append(m, ts, row), NS_OK); }

/* Params fitted on one node with no trimming: mean/sigma of the node. */
static ns_prep_params *fit1(const ns_prep_opts *o, const ns_mts *m) {
  ns_prep_fit *f = NULL;
  cr_assert_eq(ns_prep_fit_begin(o, &f), NS_OK);
  cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_OK, "%s", ns_err_detail());
  ns_prep_params *p = NULL;
  cr_assert_eq(ns_prep_fit_end(f, &p), NS_OK, "%s", ns_err_detail());
  return p;
}

/* ---- aggregation rules ---- */

Test(rules, per_core_names_and_ops) {
  char *n = NULL;
  int op = -1;
  cr_assert_eq(ns_prep_aggregate_name(NULL, "cpu12_user", &n, &op), NS_OK);
  cr_assert_str_eq(n, "cpu_user");
  cr_assert_eq(op, 2);
  free(n);
  cr_assert_eq(ns_prep_aggregate_name(NULL, "procstat.cpu3_sys", &n, &op), NS_OK);
  cr_assert_str_eq(n, "procstat.cpu_sys");
  free(n);
  cr_assert_eq(ns_prep_aggregate_name(NULL, "eth0_rx_bytes", &n, &op), NS_OK);
  cr_assert_str_eq(n, "eth_rx_bytes");
  cr_assert_eq(op, 1);
  free(n);
  cr_assert_eq(ns_prep_aggregate_name(NULL, "mem_used", &n, &op), NS_OK);
  cr_assert_str_eq(n, "mem_used");
  cr_assert_eq(op, 0);
  free(n);
  /* "cpu_user" has no digits: not a per-core metric. */
  cr_assert_eq(ns_prep_aggregate_name(NULL, "cpu_user", &n, &op), NS_OK);
  cr_assert_eq(op, 0);
  free(n);
  cr_assert_eq(ns_prep_aggregate_name("gpu#=sum", "gpu7", &n, &op), NS_OK);
  cr_assert_str_eq(n, "gpu");
  cr_assert_eq(op, 1);
  free(n);
}

Test(rules, malformed_rules_rejected) {
  cr_assert_eq(ns_prep_rules_check("cpu#_*=median"), NS_ERR_PARSE);
  cr_assert(strstr(ns_err_detail(), "sum or mean"));
  cr_assert_eq(ns_prep_rules_check("cpu_*=sum"), NS_ERR_PARSE); /* no '#' */
  cr_assert_eq(ns_prep_rules_check("=sum"), NS_ERR_PARSE);
  cr_assert_eq(ns_prep_rules_check("cpu#"), NS_ERR_PARSE);
  cr_assert_eq(ns_prep_rules_check("cpu#_*=sum,,eth#=mean"), NS_OK);
  ns_prep_opts o = opts();
  o.rules = "bad";
  ns_prep_fit *f = NULL;
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_ERR_PARSE);
  cr_assert_null(f);
}

Test(reduce, aggregation_sum_and_mean) {
  const char *names[] = {"cpu0_user", "cpu1_user", "eth0_rx", "eth1_rx", "load"};
  ns_mts *m = mk("n1", 5, names);
  for (int t = 0; t < 40; t++) {
    double row[5] = {10 + t, 30 + t, 100, 200 + t, t % 7};
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  o.corr_threshold = 1.0;
  ns_prep_params *p = fit1(&o, m);
  cr_assert_eq(ns_prep_n_inputs(p), 5);
  cr_assert_eq(ns_prep_n_reduced(p), 3);
  /* cpu_user = mean -> 20+t ; eth_rx = sum -> 300+t: r = 1 exactly, so at
   * threshold 1.0 one of them goes: the later name ("eth_rx" < "cpu_user"?
   * no: "cpu_user" sorts first and survives). */
  cr_assert_eq(ns_prep_n_outputs(p), 2);
  cr_assert_str_eq(ns_prep_output_name(p, 0), "cpu_user");
  cr_assert_str_eq(ns_prep_output_name(p, 1), "load");
  const char *d, *k;
  double r;
  cr_assert_eq(ns_prep_n_dropped(p), 1);
  ns_prep_dropped(p, 0, &d, &k, &r);
  cr_assert_str_eq(d, "eth_rx");
  cr_assert_str_eq(k, "cpu_user");
  cr_assert_float_eq(r, 1.0, 1e-9);
  double mean, sigma;
  bool zero;
  cr_assert(ns_prep_node_param(p, "n1", 0, &mean, &sigma, &zero));
  /* trimmed 5 %: 40 values 20..59 -> drop 2 each side -> 22..57 */
  cr_assert_float_eq(mean, 39.5, 1e-9);
  cr_assert_float_eq(sigma, sqrt((36.0 * 36.0 - 1) / 12.0), 1e-9);
  cr_assert(!zero);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

Test(reduce, sum_with_missing_input_is_missing_then_interpolated) {
  const char *names[] = {"eth0_rx", "eth1_rx"};
  ns_mts *m = mk("n1", 2, names);
  for (int t = 0; t < 20; t++) {
    double row[2] = {t, t == 5 ? NAN : 10.0};
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  o.trim = 0;
  ns_prep_params *p = fit1(&o, m);
  ns_mts *out = NULL;
  ns_prep_stats st = {0};
  cr_assert_eq(ns_prep_apply(p, m, &out, &st), NS_OK);
  cr_assert_eq(out->T, 20);
  double mean, sigma;
  bool zero;
  ns_prep_node_param(p, "n1", 0, &mean, &sigma, &zero);
  /* row 5 = interpolation of 14 and 16 = 15 = the true sum */
  cr_assert_float_eq(out->x[5] * sigma + mean, 15.0, 1e-9);
  cr_assert_eq(st.gaps_interpolated, 1);
  ns_mts_free(out);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

/* ---- counters ---- */

Test(reduce, counter_to_rate_with_reset) {
  const char *names[] = {"bytes", "g"};
  ns_mts *m = mk("n1", 2, names);
  m->is_counter[0] = 1;
  /* 150 bytes per 15 s = 10/s; a reset at t=10 (value drops to 5). */
  double c = 1000;
  for (int t = 0; t < 30; t++) {
    if (t == 10) c = 5;
    else if (t > 0) c += 150;
    double row[2] = {c, (double)(t % 3)};
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  o.trim = 0;
  ns_prep_params *p = fit1(&o, m);
  double mean, sigma;
  bool zero;
  cr_assert(ns_prep_node_param(p, "n1", 0, &mean, &sigma, &zero));
  cr_assert_float_eq(mean, 10.0, 1e-9); /* reset row interpolated, never negative */
  cr_assert(zero, "a constant rate has zero variance");
  ns_prep_stats st = {0};
  ns_mts *out = NULL;
  cr_assert_eq(ns_prep_apply(p, m, &out, &st), NS_OK);
  cr_assert_eq(st.counter_resets, 1);
  /* row 0 has no rate: the grid starts at the second sample */
  cr_assert_eq(out->ts_ms[0], I);
  for (size_t t = 0; t < out->T; t++) cr_assert_float_eq(out->x[t * 2], 0.0, 1e-12);
  ns_mts_free(out);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

/* ---- cleaning ---- */

Test(clean, resample_jitter_and_interpolate) {
  const char *names[] = {"a"};
  ns_mts *m = mk("n1", 1, names);
  /* samples every 10 s (jittered +1 s): a = t seconds; grid 15 s */
  for (int k = 0; k < 30; k++) {
    int64_t ts = (int64_t)k * 10000 + 1000;
    double v = (double)ts / 1000.0;
    add(m, ts, &v);
  }
  ns_prep_opts o = opts();
  o.trim = 0;
  ns_prep_params *p = fit1(&o, m);
  ns_mts *out = NULL;
  cr_assert_eq(ns_prep_apply(p, m, &out, NULL), NS_OK);
  double mean, sigma;
  bool zero;
  ns_prep_node_param(p, "n1", 0, &mean, &sigma, &zero);
  cr_assert_eq(out->ts_ms[0], 15000);
  cr_assert_eq(out->T, (size_t)((291000 / 15000) - 1 + 1));
  for (size_t t = 0; t < out->T; t++) {
    cr_assert_eq(out->ts_ms[t] % I, 0);
    cr_assert_float_eq(out->x[t] * sigma + mean, (double)out->ts_ms[t] / 1000.0, 1e-9);
  }
  ns_mts_free(out);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

Test(clean, long_gap_splits_and_is_counted) {
  const char *names[] = {"a", "b"};
  ns_mts *m = mk("n1", 2, names);
  for (int t = 0; t < 100; t++) {
    if (t >= 40 && t < 50) continue;       /* 150 s hole: > 2 min -> split */
    double row[2] = {sin(t), t == 20 || t == 21 ? NAN : cos(t)}; /* 30 s hole in b: interpolated */
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  ns_prep_params *p = fit1(&o, m);
  ns_mts *out = NULL;
  ns_prep_stats st = {0};
  cr_assert_eq(ns_prep_apply(p, m, &out, &st), NS_OK);
  cr_assert_eq(st.gaps_split, 1);
  cr_assert_eq(st.gaps_interpolated, 1);
  cr_assert_eq(out->T, 90);
  cr_assert_eq(out->ts_ms[39], 39 * I);
  cr_assert_eq(out->ts_ms[40], 50 * I);
  for (size_t i = 0; i < out->T * out->M; i++) cr_assert(isfinite(out->x[i]));
  ns_mts_free(out);
  /* A hole of exactly max_gap is still interpolated. */
  ns_mts *m2 = mk("n1", 2, names);
  for (int t = 0; t < 30; t++) {
    if (t >= 10 && t < 18) continue; /* 8 missing = 120 s */
    double row[2] = {t, 2.0 * t};
    add(m2, (int64_t)t * I, row);
  }
  memset(&st, 0, sizeof st);
  cr_assert_eq(ns_prep_apply(p, m2, &out, &st), NS_OK);
  cr_assert_eq(out->T, 30);
  cr_assert_eq(st.gaps_split, 0);
  ns_mts_free(out);
  ns_mts_free(m2);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

Test(clean, unsorted_timestamps_rejected) {
  const char *names[] = {"a"};
  ns_mts *m = mk("n9", 1, names);
  double v = 1;
  add(m, 30000, &v);
  add(m, 15000, &v);
  ns_prep_opts o = opts();
  ns_prep_fit *f = NULL;
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_OK);
  cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "row 1") && strstr(ns_err_detail(), "n9"), "%s", ns_err_detail());
  ns_prep_fit_free(f);
  ns_mts_free(m);
}

/* ---- standardisation ---- */

Test(standardise, trimmed_mean_sigma_and_clip) {
  const char *names[] = {"a"};
  ns_mts *m = mk("n1", 1, names);
  /* 1..100 in scrambled order plus nothing else */
  for (int t = 0; t < 100; t++) {
    double v = (double)((t * 37) % 100 + 1);
    add(m, (int64_t)t * I, &v);
  }
  ns_prep_opts o = opts();
  ns_prep_params *p = fit1(&o, m);
  double mean, sigma;
  bool zero;
  ns_prep_node_param(p, "n1", 0, &mean, &sigma, &zero);
  /* 5 % trimmed: 6..95 */
  cr_assert_float_eq(mean, 50.5, 1e-9);
  cr_assert_float_eq(sigma, sqrt((90.0 * 90.0 - 1) / 12.0), 1e-9);
  ns_mts *big = mk("n1", 1, names);
  double v = 1e9;
  for (int t = 0; t < 3; t++) add(big, (int64_t)t * I, &v);
  ns_mts *out = NULL;
  cr_assert_eq(ns_prep_apply(p, big, &out, NULL), NS_OK);
  cr_assert_float_eq(out->x[0], 5.0, 0);
  ns_mts_free(out);
  v = -1e300;
  ns_mts *neg = mk("n1", 1, names);
  add(neg, 0, &v);
  cr_assert_eq(ns_prep_apply(p, neg, &out, NULL), NS_OK);
  cr_assert_float_eq(out->x[0], -5.0, 0);
  ns_mts_free(out);
  ns_mts_free(neg);
  ns_mts_free(big);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

/* Params fitted on nodes n1..n<nodes>, T rows each, row(n, t, out) giving
 * node n's values at t. */
typedef void row_fn(int n, int t, double *out);
static ns_prep_params *fit_nodes(const ns_prep_opts *o, int nodes, size_t M, const char *const *names, int T,
                                 row_fn *row) {
  double r[8];
  cr_assert_leq(M, sizeof r / sizeof *r);
  ns_prep_fit *f = NULL;
  cr_assert_eq(ns_prep_fit_begin(o, &f), NS_OK);
  for (int n = 1; n <= nodes; n++) {
    char node[8];
    snprintf(node, sizeof node, "n%d", n);
    ns_mts *m = mk(node, M, names);
    for (int t = 0; t < T; t++) {
      row(n, t, r);
      add(m, (int64_t)t * I, r);
    }
    cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_OK);
    ns_mts_free(m);
  }
  ns_prep_params *p = NULL;
  cr_assert_eq(ns_prep_fit_end(f, &p), NS_OK, "%s", ns_err_detail());
  return p;
}

/* n1: c constant 7; n2: c alternates 0/2 (sigma 1) */
static void zero_var_row(int n, int t, double *r) {
  r[0] = n == 1 ? 7.0 : 2.0 * (t % 2);
  r[1] = n * 10.0 + (t % 5);
}

Test(standardise, zero_variance_and_unknown_node) {
  const char *names[] = {"c", "v"};
  ns_prep_opts o = opts();
  o.trim = 0;
  ns_prep_params *p = fit_nodes(&o, 2, 2, names, 50, zero_var_row);
  double mean, sigma;
  bool zero;
  cr_assert(ns_prep_node_param(p, "n1", 0, &mean, &sigma, &zero));
  cr_assert(zero);
  cr_assert_float_eq(mean, 7.0, 1e-12);
  /* pooled: means 7 and 1 -> var of means 9, mean var (0 + 1)/2 -> sigma sqrt(9.5) */
  cr_assert_float_eq(sigma, sqrt(9.5), 1e-9);
  cr_assert(ns_prep_node_param(p, "never-seen", 0, &mean, &sigma, &zero));
  cr_assert_float_eq(mean, 4.0, 1e-12);
  cr_assert_float_eq(sigma, sqrt(9.5), 1e-9);
  /* Apply to n1 with constant data: exactly 0, never NaN. */
  ns_mts *m = mk("n1", 2, names);
  for (int t = 0; t < 5; t++) {
    double row[2] = {7.0, 10.0};
    add(m, (int64_t)t * I, row);
  }
  ns_mts *out = NULL;
  cr_assert_eq(ns_prep_apply(p, m, &out, NULL), NS_OK);
  for (size_t t = 0; t < out->T; t++) cr_assert_float_eq(out->x[t * 2], 0.0, 0);
  ns_mts_free(out);
  /* Unknown node: pooled parameters, counted. */
  free(m->node);
  m->node = strdup("n77");
  ns_prep_stats st = {0};
  cr_assert_eq(ns_prep_apply(p, m, &out, &st), NS_OK);
  cr_assert_eq(st.pooled_nodes, 1);
  cr_assert_float_eq(out->x[0], (7.0 - 4.0) / sqrt(9.5), 1e-9);
  ns_mts_free(out);
  ns_mts_free(m);
  ns_prep_params_free(p);
}

/* n1, n2: bursts 40 % of the time; n3: 2 % (inside the trim). */
static void burst_row(int n, int t, double *r) {
  bool on = n < 3 ? t % 10 < 4 : t % 50 == 0;
  r[0] = on ? 100.0 + t % 3 : (double)(t % 5);
  r[1] = n == 3 ? 5.0 : (double)(t % 4);
  r[2] = (double)((t * 7) % 11);
}

/* A node that rarely ran the jobs moving a metric: the trim takes those
 * bursts out of its sigma, so its scale is narrow against the pooled one. */
Test(standardise, narrow_scales_name_rare_job_nodes) {
  const char *names[] = {"burst", "const", "noise"};
  ns_prep_opts o = opts(); /* trim 5 % */
  o.corr_threshold = 1.0;
  ns_prep_params *p = fit_nodes(&o, 3, 3, names, 200, burst_row);
  cr_assert_eq(ns_prep_n_outputs(p), 3);
  ns_prep_narrow *v = NULL;
  size_t n = 99;
  cr_assert_eq(ns_prep_narrow_scales(p, 0.25, &v, &n), NS_OK);
  cr_assert_eq(n, 1, "only n3's burst metric is narrow, got %zu", n);
  cr_assert_str_eq(v[0].node, "n3");
  cr_assert_str_eq(v[0].metric, "burst");
  double mean, s3, s1, sp;
  bool zero;
  ns_prep_node_param(p, "n3", 0, &mean, &s3, &zero);
  ns_prep_node_param(p, "n1", 0, &mean, &s1, &zero);
  ns_prep_node_param(p, NULL, 0, &mean, &sp, &zero);
  cr_assert_float_eq(v[0].ratio, s3 / sp, 1e-12);
  cr_assert(v[0].ratio < 0.1 && s1 / sp > 0.25, "n3 %g, n1 %g of pooled", v[0].ratio, s1 / sp);
  free(v);
  /* Everything under a fraction of 1 that is narrower than pooled, narrowest first. */
  cr_assert_eq(ns_prep_narrow_scales(p, 1.0, &v, &n), NS_OK);
  cr_assert_geq(n, 1);
  for (size_t i = 1; i < n; i++) cr_assert_leq(v[i - 1].ratio, v[i].ratio);
  free(v);
  /* Bad arguments name the problem and leave the outputs empty. */
  v = (ns_prep_narrow *)&n;
  cr_assert_eq(ns_prep_narrow_scales(p, 0, &v, &n), NS_ERR_RANGE);
  cr_assert_null(v);
  cr_assert_eq(n, 0);
  cr_assert(strstr(ns_err_detail(), "outside (0, 1]"));
  cr_assert_eq(ns_prep_narrow_scales(p, 1.5, &v, &n), NS_ERR_RANGE);
  cr_assert_eq(ns_prep_narrow_scales(p, NAN, &v, &n), NS_ERR_RANGE);
  cr_assert_eq(ns_prep_narrow_scales(NULL, 0.25, &v, &n), NS_ERR_INVAL);
  ns_prep_params_free(p);
}

Test(standardise, absent_metric_and_schema_mismatch) {
  const char *names[] = {"a", "b"};
  ns_mts *m = mk("n1", 2, names);
  for (int t = 0; t < 30; t++) {
    double row[2] = {t, (t * 7) % 11};
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  ns_prep_params *p = fit1(&o, m);
  /* b is entirely NaN: filled with its mean (0), counted. */
  ns_mts *m2 = mk("n1", 2, names);
  for (int t = 0; t < 30; t++) {
    double row[2] = {t, NAN};
    add(m2, (int64_t)t * I, row);
  }
  ns_mts *out = NULL;
  ns_prep_stats st = {0};
  cr_assert_eq(ns_prep_apply(p, m2, &out, &st), NS_OK);
  cr_assert_eq(st.absent_metrics, 1);
  cr_assert_eq(out->T, 30);
  for (size_t t = 0; t < out->T; t++) cr_assert_float_eq(out->x[t * 2 + 1], 0.0, 0);
  ns_mts_free(out);
  /* b missing from the schema: rejected, naming it. */
  const char *only_a[] = {"a", "zzz"};
  ns_mts *m3 = mk("n1", 2, only_a);
  double row[2] = {1, 2};
  add(m3, 0, row);
  cr_assert_eq(ns_prep_apply(p, m3, &out, NULL), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "'b'"), "%s", ns_err_detail());
  cr_assert_null(out);
  ns_mts_free(m3);
  ns_mts_free(m2);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

/* ---- correlation ---- */

static ns_prep_params *fit_corr(const char *const *names, size_t M) {
  ns_prep_opts o = opts();
  ns_mts *m = mk("n1", M, names);
  for (int t = 0; t < 200; t++) {
    double base = sin(t * 0.1) + 0.3 * cos(t * 0.37);
    double row[4];
    for (size_t j = 0; j < M; j++) {
      const char *n = names[j];
      if (!strcmp(n, "x")) row[j] = base;
      else if (!strcmp(n, "x2")) row[j] = 3 * base + 1;       /* r = 1 */
      else if (!strcmp(n, "neg")) row[j] = -2 * base;         /* r = -1 */
      else row[j] = cos(t * 0.05) * ((t * 13) % 7);           /* independent */
    }
    add(m, (int64_t)t * I, row);
  }
  ns_prep_params *p = fit1(&o, m);
  ns_mts_free(m);
  return p;
}

Test(correlation, drop_is_deterministic_in_name_order) {
  const char *a[] = {"x2", "other", "neg", "x"};
  const char *b[] = {"x", "neg", "x2", "other"};
  ns_prep_params *p = fit_corr(a, 4), *q = fit_corr(b, 4);
  cr_assert_eq(ns_prep_n_outputs(p), 2);
  cr_assert_eq(ns_prep_n_outputs(q), 2);
  for (size_t k = 0; k < 2; k++) cr_assert_str_eq(ns_prep_output_name(p, k), ns_prep_output_name(q, k));
  /* sorted names: neg < other < x < x2: "neg" survives, x and x2 go. */
  cr_assert_str_eq(ns_prep_output_name(p, 0), "neg");
  cr_assert_str_eq(ns_prep_output_name(p, 1), "other");
  cr_assert_eq(ns_prep_n_dropped(p), 2);
  const char *d, *k;
  double r;
  ns_prep_dropped(p, 0, &d, &k, &r);
  cr_assert_str_eq(d, "x");
  cr_assert_str_eq(k, "neg");
  cr_assert_float_eq(r, -1.0, 1e-9);
  ns_prep_params_free(p);
  ns_prep_params_free(q);
}

/* ---- segmentation ---- */

static ns_job job(const char *id, const char *nodes, int64_t s, int64_t e) {
  ns_job j = {0};
  j.job_id = (char *)id;
  j.nodelist = (char *)nodes;
  j.start_ms = s;
  j.end_ms = e;
  return j;
}

Test(segment, jobs_idle_overlap_short_and_gaps) {
  const char *names[] = {"a", "b"};
  ns_mts *m = mk("cn02", 2, names);
  for (int t = 0; t < 200; t++) {
    if (t >= 150 && t < 170) continue; /* long gap */
    double row[2] = {sin(t), cos(t * 0.3)};
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  ns_prep_params *p = fit1(&o, m);
  ns_mts *pre = NULL;
  cr_assert_eq(ns_prep_apply(p, m, &pre, NULL), NS_OK);
  ns_job jobs[] = {
      job("1", "cn[01-03]", 20 * I, 60 * I),   /* rows 20..60 */
      job("2", "cn02,cn09", 50 * I, 80 * I),   /* overlaps job 1 */
      job("3", "cn[02]", 100 * I, 105 * I),    /* 6 rows = 90 s < 3 min: dropped */
      job("4", "cn01", 0, 100 * I),            /* other node */
      job("5", "cn02", 135 * I, 190 * I),      /* crosses the gap: two pieces */
  };
  ns_segment **seg = NULL;
  size_t n = 0;
  cr_assert_eq(ns_prep_segment(p, pre, "lab", jobs, 5, &seg, &n), NS_OK);
  /* jobs: 1, 2, 5a (135..149), 5b (170..190); idle: 0..19, 81..99,
   * 106..134 (job 3's rows still count as covered); 191..199 too short */
  size_t nj = 0, ni = 0;
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(ns_segment_check(seg[i]), NS_OK);
    cr_assert_str_eq(seg[i]->cluster, "lab");
    cr_assert_str_eq(seg[i]->node, "cn02");
    if (seg[i]->kind == NS_SEG_JOB) nj++;
    else ni++;
  }
  cr_assert_eq(nj, 4);
  cr_assert_eq(ni, 3);
  cr_assert_str_eq(seg[0]->job_id, "1");
  cr_assert_eq(seg[0]->start_ms, 20 * I);
  cr_assert_eq(seg[0]->T, 41);
  cr_assert_str_eq(seg[1]->job_id, "2");
  cr_assert_eq(seg[1]->T, 31);
  cr_assert_str_eq(seg[2]->job_id, "5");
  cr_assert_eq(seg[2]->T, 15);
  cr_assert_eq(seg[3]->start_ms, 170 * I);
  cr_assert_eq(seg[3]->T, 21);
  cr_assert_null(seg[4]->job_id);
  cr_assert_eq(seg[4]->T, 20);
  cr_assert_eq(seg[5]->start_ms, 81 * I);
  cr_assert_eq(seg[5]->T, 19);  /* 81..99 */
  cr_assert_eq(seg[6]->start_ms, 106 * I);
  cr_assert_eq(seg[6]->T, 29);
  ns_prep_segments_free(seg, n);
  ns_mts_free(pre);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

Test(segment, nodelist_matching) {
  cr_assert(ns_prep_nodelist_has("cn[01-04,07]", "cn03"));
  cr_assert(ns_prep_nodelist_has("cn[01-04,07]", "cn07"));
  cr_assert(!ns_prep_nodelist_has("cn[01-04,07]", "cn3"));
  cr_assert(!ns_prep_nodelist_has("cn[01-04,07]", "cn05"));
  cr_assert(ns_prep_nodelist_has("gpu1, cn[1-10]", "cn10"));
  cr_assert(ns_prep_nodelist_has("r[1-2]n[01-04]", "r2n04"));
  cr_assert(!ns_prep_nodelist_has("r[1-2]n[01-04]", "r3n04"));
  cr_assert(ns_prep_nodelist_has("Node-1,Node-3", "Node-3"));
  cr_assert(!ns_prep_nodelist_has("Node-1,Node-3", "Node-2"));
  cr_assert(!ns_prep_nodelist_has("cn[01-", "cn01"));
  cr_assert(!ns_prep_nodelist_has(NULL, "cn01"));
}

Test(segment, apply_segment_as_shipped) {
  const char *names[] = {"cpu0_user", "cpu1_user", "bytes"};
  ns_mts *m = mk("cn1", 3, names);
  m->is_counter[2] = 1;
  double c = 0;
  for (int t = 0; t < 100; t++) {
    c += 1500 + 150 * (t % 4);
    double row[3] = {50 + 10 * sin(t), 50 + 10 * cos(t * 0.7), c};
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  ns_prep_params *p = fit1(&o, m);
  /* Shipped segment: rates already, one missing value, a long gap. */
  ns_segment *raw = NULL;
  cr_assert_eq(ns_segment_create(60, 3, &raw), NS_OK);
  cr_assert_eq(ns_segment_set_meta(raw, "lab", "cn1", "77", 1000 * I, I), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(raw, (char *const *)names), NS_OK);
  for (int t = 0; t < 60; t++) {
    raw->x[t * 3 + 0] = 50, raw->x[t * 3 + 1] = 55;
    raw->x[t * 3 + 2] = (t >= 20 && t < 35) ? NAN : 110.0f;
  }
  raw->x[5 * 3] = NAN;
  ns_segment **out = NULL;
  size_t n = 0;
  ns_prep_stats st = {0};
  cr_assert_eq(ns_prep_apply_segment(p, raw, &out, &n, &st), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_eq(st.gaps_split, 1);
  cr_assert_eq(out[0]->T, 20);
  cr_assert_eq(out[1]->T, 25);
  cr_assert_str_eq(out[1]->job_id, "77");
  cr_assert_eq(out[1]->kind, NS_SEG_JOB);
  cr_assert_eq(out[1]->start_ms, 1035 * I);
  cr_assert_eq(out[0]->M, ns_prep_n_outputs(p));
  for (size_t i = 0; i < n; i++) cr_assert_eq(ns_segment_check(out[i]), NS_OK);
  ns_prep_segments_free(out, n);
  /* Bad inputs */
  free(raw->metrics[1]);
  raw->metrics[1] = strdup("cpu0_user");
  cr_assert_eq(ns_prep_apply_segment(p, raw, &out, &n, NULL), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "twice"), "%s", ns_err_detail());
  raw->interval_ms = 0;
  cr_assert_eq(ns_prep_apply_segment(p, raw, &out, &n, NULL), NS_ERR_INVAL);
  ns_segment_free(raw);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

/* ---- persistence ---- */

static ns_prep_params *sample_params(void) {
  const char *names[] = {"cpu0_user", "cpu1_user", "mem", "mem2", "net"};
  ns_prep_opts o = opts();
  ns_prep_fit *f = NULL;
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_OK);
  for (int n = 0; n < 3; n++) {
    char node[8];
    snprintf(node, sizeof node, "n%d", n);
    ns_mts *m = mk(node, 5, names);
    m->is_counter[4] = 1;
    double c = 0;
    for (int t = 0; t < 80; t++) {
      c += 100 + (t * 17) % 23;
      double mem = n + sin(t * 0.2);
      double row[5] = {t % 9, (t * 3) % 5, mem, 2 * mem, c};
      add(m, (int64_t)t * I, row);
    }
    cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_OK);
    ns_mts_free(m);
  }
  ns_prep_params *p = NULL;
  cr_assert_eq(ns_prep_fit_end(f, &p), NS_OK);
  return p;
}

Test(params, save_load_round_trip) {
  ns_prep_params *p = sample_params();
  void *d = NULL;
  size_t n = 0;
  cr_assert_eq(ns_prep_save(p, &d, &n), NS_OK);
  ns_prep_params *q = NULL;
  cr_assert_eq(ns_prep_load(d, n, &q), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_prep_n_outputs(q), ns_prep_n_outputs(p));
  cr_assert_eq(ns_prep_n_outputs(p), 3); /* mem2 dropped */
  cr_assert_eq(ns_prep_n_dropped(q), 1);
  cr_assert_eq(ns_prep_n_nodes(q), 3);
  for (size_t k = 0; k < ns_prep_n_outputs(p); k++) {
    cr_assert_str_eq(ns_prep_output_name(p, k), ns_prep_output_name(q, k));
    double m1, s1, m2, s2;
    bool z1, z2;
    ns_prep_node_param(p, "n1", k, &m1, &s1, &z1);
    ns_prep_node_param(q, "n1", k, &m2, &s2, &z2);
    cr_assert_eq(m1, m2);
    cr_assert_eq(s1, s2);
    ns_prep_node_param(p, NULL, k, &m1, &s1, &z1);
    ns_prep_node_param(q, NULL, k, &m2, &s2, &z2);
    cr_assert_eq(m1, m2);
  }
  /* Saving again gives identical bytes. */
  void *d2 = NULL;
  size_t n2 = 0;
  cr_assert_eq(ns_prep_save(q, &d2, &n2), NS_OK);
  cr_assert_eq(n, n2);
  cr_assert_eq(memcmp(d, d2, n), 0);
  free(d2);
  free(d);
  ns_prep_params_free(q);
  ns_prep_params_free(p);
}

Test(params, corrupt_and_mismatched_rejected) {
  ns_prep_params *p = sample_params();
  void *d = NULL;
  size_t n = 0;
  cr_assert_eq(ns_prep_save(p, &d, &n), NS_OK);
  uint8_t *b = d;
  ns_prep_params *q = NULL;
  cr_assert_eq(ns_prep_load(d, 5, &q), NS_ERR_CORRUPT);
  cr_assert_eq(ns_prep_load(NULL, 0, &q), NS_ERR_CORRUPT);
  b[0] ^= 1;
  cr_assert_eq(ns_prep_load(d, n, &q), NS_ERR_FORMAT);
  b[0] ^= 1;
  b[8] = 99; /* version */
  cr_assert_eq(ns_prep_load(d, n, &q), NS_ERR_VERSION);
  b[8] = 1;
  for (size_t i = 12; i < n; i += 7) { /* any flipped byte is caught */
    b[i] ^= 0x40;
    cr_assert_eq(ns_prep_load(d, n, &q), NS_ERR_CORRUPT, "byte %zu", i);
    cr_assert_null(q);
    b[i] ^= 0x40;
  }
  cr_assert_eq(ns_prep_load(d, n - 1, &q), NS_ERR_CORRUPT);
  cr_assert_eq(ns_prep_load(d, n, &q), NS_OK);
  /* Metric schema mismatch: data without "mem". */
  const char *names[] = {"cpu0_user", "net", "extra"};
  cr_assert_eq(ns_prep_check_schema(q, (char *const *)names, 3), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "'mem'"), "%s", ns_err_detail());
  const char *names2[] = {"cpu1_user", "net", "mem", "extra"};
  cr_assert_eq(ns_prep_check_schema(q, (char *const *)names2, 4), NS_OK);
  free(d);
  ns_prep_params_free(q);
  ns_prep_params_free(p);
}

Test(fit, bad_inputs) {
  ns_prep_opts o = opts();
  ns_prep_params *p = NULL;
  ns_prep_fit *f = NULL;
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_OK);
  cr_assert_eq(ns_prep_fit_end(f, &p), NS_ERR_EMPTY);
  cr_assert_null(p);
  o.trim = 0.6;
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_ERR_RANGE);
  o = opts();
  o.interval_ms = 0;
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_ERR_INVAL);
  o = opts();
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_OK);
  const char *names[] = {"a"};
  ns_mts *m = mk("n1", 1, names);
  double v = 1;
  add(m, 0, &v);
  cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_OK);
  cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_ERR_EXISTS);
  free(m->node);
  m->node = NULL;
  cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_ERR_INVAL);
  ns_prep_fit_free(f);
  ns_prep_fit_free(NULL);
  ns_prep_params_free(NULL);
  ns_mts_free(m);
}

/* Trimmed statistics agree with a sort-based reference on random data. */
Test(standardise, trimmed_matches_sorted_reference) {
  const char *names[] = {"a"};
  srand(7);
  for (int rep = 0; rep < 20; rep++) {
    int n = 20 + rand() % 500;
    double *v = malloc(n * sizeof *v);
    ns_mts *m = mk("n1", 1, names);
    for (int t = 0; t < n; t++) {
      v[t] = (rand() % 50) * ((rand() % 10) == 0 ? 100.0 : 1.0); /* ties, outliers */
      add(m, (int64_t)t * I, &v[t]);
    }
    ns_prep_opts o = opts();
    o.trim = 0.1;
    ns_prep_params *p = fit1(&o, m);
    for (int a = 0; a < n; a++)
      for (int b = a + 1; b < n; b++)
        if (v[b] < v[a]) {
          double x = v[a];
          v[a] = v[b], v[b] = x;
        }
    int lo = (int)floor(0.1 * n), hi = n - lo;
    double s = 0, ss = 0;
    for (int i = lo; i < hi; i++) s += v[i];
    double mean = s / (hi - lo);
    for (int i = lo; i < hi; i++) ss += (v[i] - mean) * (v[i] - mean);
    double pm, ps;
    bool z;
    ns_prep_node_param(p, "n1", 0, &pm, &ps, &z);
    cr_assert_float_eq(pm, mean, 1e-9);
    if (!z) cr_assert_float_eq(ps, sqrt(ss / (hi - lo)), 1e-9);
    ns_prep_params_free(p);
    ns_mts_free(m);
    free(v);
  }
}

/* Offline (whole node series) and online (a shipped job window) give the
 * same preprocessed values for the same raw data. */
Test(segment, offline_and_online_agree) {
  const char *names[] = {"cpu0_user", "cpu1_user", "mem", "rate"};
  ns_mts *m = mk("cn4", 4, names);
  for (int t = 0; t < 400; t++) {
    double row[4] = {50 + 20 * sin(t * 0.05), 40 + 10 * cos(t * 0.11), 1e6 + 1e4 * sin(t * 0.013),
                     (double)((t * 37) % 101)};
    if (t == 250) row[2] = NAN; /* a short hole, interpolated both ways */
    add(m, (int64_t)(t + 100000) * I, row);
  }
  ns_prep_opts o = opts();
  ns_prep_params *p = fit1(&o, m);
  ns_mts *whole = NULL;
  cr_assert_eq(ns_prep_apply(p, m, &whole, NULL), NS_OK);
  size_t t0 = 200, T = 120;
  ns_segment *raw = NULL;
  cr_assert_eq(ns_segment_create(T, 4, &raw), NS_OK);
  cr_assert_eq(ns_segment_set_meta(raw, "c", "cn4", "9", m->ts_ms[t0], I), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(raw, (char *const *)names), NS_OK);
  for (size_t t = 0; t < T; t++)
    for (size_t j = 0; j < 4; j++) raw->x[t * 4 + j] = (float)m->x[(t0 + t) * 4 + j];
  ns_segment **out = NULL;
  size_t n = 0;
  cr_assert_eq(ns_prep_apply_segment(p, raw, &out, &n, NULL), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert_eq(out[0]->T, T);
  cr_assert_eq(out[0]->M, whole->M);
  for (size_t t = 0; t < T; t++)
    for (size_t k = 0; k < whole->M; k++)
      cr_assert_float_eq(out[0]->x[t * whole->M + k], whole->x[(t0 + t) * whole->M + k], 1e-4,
                         "row %zu metric %s", t, whole->metrics[k]);
  ns_prep_segments_free(out, n);
  ns_segment_free(raw);
  ns_mts_free(whole);
  ns_prep_params_free(p);
  ns_mts_free(m);
}

/* The config defaults and ns_prep_opts_default agree. */
Test(params, config_defaults_match) {
  ns_config *c = NULL;
  cr_assert_eq(ns_config_create(&c), NS_OK);
  ns_prep_opts a, b;
  ns_prep_opts_from_config(c, &a);
  ns_prep_opts_default(&b);
  cr_assert_eq(a.interval_ms, b.interval_ms);
  cr_assert_eq(a.max_gap_ms, b.max_gap_ms);
  cr_assert_eq(a.min_segment_ms, b.min_segment_ms);
  cr_assert_float_eq(a.corr_threshold, b.corr_threshold, 0);
  cr_assert_float_eq(a.trim, b.trim, 0);
  cr_assert_float_eq(a.clip, b.clip, 0);
  cr_assert_str_eq(a.rules, b.rules);
  ns_config_free(c);
}

/* ---- prep_exclude ---- */

Test(exclude, globs_drop_metrics_and_are_recorded) {
  const char *names[] = {"load1", "load15", "mem_used", "cpu3_user"};
  ns_mts *m = mk("n1", 4, names);
  for (int t = 0; t < 40; t++) {
    double row[4] = {t % 3, (t * 7) % 5, (t * 3) % 11, (t * 5) % 13};
    add(m, (int64_t)t * I, row);
  }
  ns_prep_opts o = opts();
  o.exclude = " load15 , cpu*";
  ns_prep_params *p = fit1(&o, m);
  cr_assert_eq(ns_prep_n_outputs(p), 2, "load1 and mem_used stay");
  cr_assert_str_eq(ns_prep_output_name(p, 0), "load1");
  cr_assert_str_eq(ns_prep_output_name(p, 1), "mem_used");
  cr_assert_eq(ns_prep_n_dropped(p), 2);
  const char *d, *k;
  double r;
  ns_prep_dropped(p, 0, &d, &k, &r);
  cr_assert_str_eq(d, "cpu_user", "globs match the aggregated name");
  cr_assert_str_eq(k, "prep_exclude");
  /* The exclusion is part of the artifact: a reload keeps it. */
  void *blob = NULL;
  size_t n = 0;
  cr_assert_eq(ns_prep_save(p, &blob, &n), NS_OK);
  ns_prep_params *q = NULL;
  cr_assert_eq(ns_prep_load(blob, n, &q), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_prep_n_outputs(q), 2);
  cr_assert_eq(ns_prep_n_dropped(q), 2);
  free(blob);
  ns_prep_params_free(q);
  ns_prep_params_free(p);
  /* Excluding everything leaves nothing to model: a clear error, not an empty artifact. */
  ns_prep_fit *f = NULL;
  o.exclude = "*";
  cr_assert_eq(ns_prep_fit_begin(&o, &f), NS_OK);
  cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_OK);
  p = NULL;
  ns_status st = ns_prep_fit_end(f, &p);
  cr_assert_neq(st, NS_OK);
  cr_assert_null(p);
  cr_assert(strstr(ns_err_detail(), "prep_exclude"), "%s", ns_err_detail());
  ns_mts_free(m);
}
