#include "ns_thresh.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

ns_status ns_thresh_apply(const float *score, size_t T, const ns_thresh_params *p, uint8_t *flags) {
  if (!score || !flags || !p) return ns_errorf(NS_ERR_INVAL, "threshold: missing argument");
  if (p->interval_ms <= 0) return ns_errorf(NS_ERR_INVAL, "threshold: interval %lld ms", (long long)p->interval_ms);
  if (!(p->k > 0)) return ns_errorf(NS_ERR_INVAL, "threshold: k must be positive");
  for (size_t t = 0; t < T; t++)
    if (!isfinite(score[t])) return ns_errorf(NS_ERR_NONFINITE, "threshold: score at point %zu", t);
  memset(flags, 0, T);
  size_t W = (size_t)(p->window_ms / p->interval_ms);
  if (W < 2) W = 2;
  size_t hmin = p->min_history ? p->min_history : (W / 4 > 10 ? W / 4 : 10);
  if (hmin > W) hmin = W;
  /* Running sums in double over the trailing window; recomputed exactly
   * every W steps so drift cannot accumulate over long segments. */
  double s = 0, s2 = 0;
  for (size_t t = 0; t < T; t++) {
    size_t h = t < W ? t : W;
    if (t > 0 && t % W == 0) {
      s = s2 = 0;
      for (size_t i = t - h; i < t; i++) s += score[i], s2 += (double)score[i] * score[i];
    }
    if (h >= hmin) {
      double mean = s / (double)h, var = s2 / (double)h - mean * mean;
      double sd = var > 0 ? sqrt(var) : 0;
      if (score[t] > mean + p->k * sd && (p->noise_floor <= 0 || score[t] > p->noise_floor)) flags[t] |= 1;
    }
    s += score[t], s2 += (double)score[t] * score[t];
    if (t >= W) s -= score[t - W], s2 -= (double)score[t - W] * score[t - W];
  }
  if (p->level > 0) {
    size_t need = (size_t)((p->level_min_ms + p->interval_ms - 1) / p->interval_ms);
    if (need < 1) need = 1;
    size_t t = 0;
    while (t < T) {
      if (!(score[t] > p->level)) {
        t++;
        continue;
      }
      size_t u = t;
      while (u < T && score[u] > p->level) u++;
      if (u - t >= need)
        for (size_t i = t; i < u; i++) flags[i] |= 2;
      t = u;
    }
  }
  return NS_OK;
}

ns_status ns_thresh_spans(const float *score, const uint8_t *flags, size_t T, int64_t start_ms,
                          int64_t interval_ms, int64_t min_interval_ms, ns_span **out, size_t *n) {
  *out = NULL;
  *n = 0;
  size_t cap = 0, cnt = 0;
  ns_span *v = NULL;
  for (size_t t = 0; t < T;) {
    if (!flags[t]) {
      t++;
      continue;
    }
    size_t u = t;
    double mx = -INFINITY;
    while (u < T && flags[u]) {
      if (score && score[u] > mx) mx = score[u];
      u++;
    }
    int64_t len = (int64_t)(u - t) * interval_ms;
    if (len >= min_interval_ms) {
      if (cnt == cap) {
        cap = cap ? cap * 2 : 8;
        ns_span *nv = realloc(v, cap * sizeof *nv);
        if (!nv) {
          free(v);
          return NS_ERR_NOMEM;
        }
        v = nv;
      }
      v[cnt++] = (ns_span){t, u - 1, start_ms + (int64_t)t * interval_ms, start_ms + (int64_t)(u - 1) * interval_ms,
                           score ? mx : 0};
    }
    t = u;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

double ns_quantile_sorted_inplace(float *v, size_t n, double q) {
  if (n == 0) return NAN;
  qsort(v, n, sizeof *v, cmp_float);
  if (q <= 0) return v[0];
  if (q >= 1) return v[n - 1];
  double pos = q * (double)(n - 1);
  size_t i = (size_t)pos;
  double frac = pos - (double)i;
  return i + 1 < n ? v[i] + frac * ((double)v[i + 1] - v[i]) : v[i];
}
