#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include "ns_thresh.h"

static ns_thresh_params base(void) {
  ns_thresh_params p = {.k = 3, .window_ms = 15 * 60000, .interval_ms = 15000, .min_history = 10};
  return p;
}

Test(thresh, spike_flagged_current_point_excluded) {
  enum { T = 200 };
  float s[T];
  for (int t = 0; t < T; t++) s[t] = 1.0f + 0.01f * (float)((t * 7) % 5);
  s[120] = 5.0f;
  uint8_t f[T];
  ns_thresh_params p = base();
  cr_assert_eq(ns_thresh_apply(s, T, &p, f), NS_OK);
  int n = 0;
  for (int t = 0; t < T; t++) n += f[t] != 0;
  cr_assert_eq(n, 1);
  cr_assert_eq(f[120], 1);
}

Test(thresh, warmup_is_silent) {
  float s[30] = {0};
  s[5] = 100;  /* only 5 points of history: rule silent */
  uint8_t f[30];
  ns_thresh_params p = base();
  cr_assert_eq(ns_thresh_apply(s, 30, &p, f), NS_OK);
  cr_assert_eq(f[5], 0);
}

Test(thresh, noise_floor_blocks_flat_stretch) {
  enum { T = 100 };
  float s[T];
  for (int t = 0; t < T; t++) s[t] = 1e-6f;
  s[50] = 2e-6f;  /* many sigma above a flat window, but tiny in absolute terms */
  uint8_t f[T];
  ns_thresh_params p = base();
  cr_assert_eq(ns_thresh_apply(s, T, &p, f), NS_OK);
  cr_assert_eq(f[50], 1);
  p.noise_floor = 0.01;
  cr_assert_eq(ns_thresh_apply(s, T, &p, f), NS_OK);
  cr_assert_eq(f[50], 0);
}

Test(thresh, level_rule_keeps_sustained_anomaly) {
  enum { T = 300 };
  float s[T];
  for (int t = 0; t < T; t++) s[t] = (t >= 100 && t < 220) ? 4.0f : 1.0f + 0.01f * (float)(t % 3);
  uint8_t f[T];
  ns_thresh_params p = base();
  cr_assert_eq(ns_thresh_apply(s, T, &p, f), NS_OK);
  int change_only = 0;
  for (int t = 100; t < 220; t++) change_only += f[t] != 0;
  cr_assert_lt(change_only, 120, "trailing window should absorb the plateau");
  p.level = 2.0;
  p.level_min_ms = 60000;
  cr_assert_eq(ns_thresh_apply(s, T, &p, f), NS_OK);
  for (int t = 100; t < 220; t++) cr_assert(f[t] & 2, "point %d", t);
  cr_assert_eq(f[99] & 2, 0);
  cr_assert_eq(f[220] & 2, 0);
  /* A run shorter than level_min is not flagged by the level rule. */
  float g[20];
  for (int t = 0; t < 20; t++) g[t] = (t == 10 || t == 11) ? 4.0f : 1.0f;
  p.level_min_ms = 60000;  /* 4 points */
  cr_assert_eq(ns_thresh_apply(g, 20, &p, f), NS_OK);
  cr_assert_eq(f[10] & 2, 0);
}

Test(thresh, spans_and_min_interval) {
  uint8_t f[12] = {0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 0};
  float s[12] = {0, 1, 3, 0, 0, 9, 0, 2, 2, 5, 2, 0};
  ns_span *v;
  size_t n;
  cr_assert_eq(ns_thresh_spans(s, f, 12, 1000, 10, 0, &v, &n), NS_OK);
  cr_assert_eq(n, 3);
  cr_assert_eq(v[0].t0, 1);
  cr_assert_eq(v[0].t1, 2);
  cr_assert_eq(v[0].start_ms, 1010);
  cr_assert_eq(v[0].end_ms, 1020);
  cr_assert_float_eq(v[2].score_max, 5.0, 1e-9);
  free(v);
  cr_assert_eq(ns_thresh_spans(s, f, 12, 1000, 10, 30, &v, &n), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert_eq(v[0].t0, 7);
  free(v);
}

Test(thresh, bad_input) {
  float s[3] = {1, NAN, 2};
  uint8_t f[3];
  ns_thresh_params p = base();
  cr_assert_eq(ns_thresh_apply(s, 3, &p, f), NS_ERR_NONFINITE);
  p.interval_ms = 0;
  s[1] = 0;
  cr_assert_eq(ns_thresh_apply(s, 3, &p, f), NS_ERR_INVAL);
}

Test(thresh, quantile) {
  float v[] = {5, 1, 3, 2, 4};
  cr_assert_float_eq(ns_quantile_sorted_inplace(v, 5, 0.5), 3.0, 1e-9);
  cr_assert_float_eq(ns_quantile_sorted_inplace(v, 5, 0.9), 4.6, 1e-6);
  cr_assert(isnan(ns_quantile_sorted_inplace(v, 0, 0.5)));
}
