/* Thresholding a per-point anomaly score into flags and intervals.
 *
 * Two rules, OR-ed:
 * (a) change rule (the paper's k-sigma): point t is flagged when
 *       score[t] > mean + k * sd  of the trailing window of the previous
 *       W = window_ms / interval_ms points (the current point is EXCLUDED),
 *     and score[t] > noise_floor (a quantile of the cluster's training
 *     scores, so a flat stretch whose sd is ~0 cannot flag float noise).
 *     Warm-up: the rule is silent until min_history points of history exist;
 *     before the window is full it uses the history it has. sd is the
 *     population standard deviation of the window.
 * (b) level rule: runs of consecutive points with score > level lasting at
 *     least level_min_ms (i.e. ceil(level_min_ms / interval_ms) points, at
 *     least 1) are flagged over their whole length, so sustained anomalies
 *     that a trailing window absorbs stay flagged.
 * Flags are merged into intervals [first, last] of consecutive flagged
 * points; intervals shorter than min_interval_ms (last - first + interval)
 * are dropped. */
#ifndef NS_THRESH_H
#define NS_THRESH_H
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_status.h"

typedef struct ns_thresh_params {
  double k;
  int64_t window_ms;
  int64_t interval_ms;
  size_t min_history;     /* points; 0 = max(10, W/4) */
  double noise_floor;     /* change rule also needs score > this; <= 0 = none */
  double level;           /* level rule threshold; <= 0 = rule off */
  int64_t level_min_ms;
} ns_thresh_params;

typedef struct ns_span {
  size_t t0, t1;          /* points [t0, t1] inclusive */
  int64_t start_ms, end_ms;
  double score_max;
} ns_span;

/* flags[t] gets bit 1 for the change rule and bit 2 for the level rule. */
NS_API ns_status ns_thresh_apply(const float *score, size_t T, const ns_thresh_params *p, uint8_t *flags);
NS_API ns_status ns_thresh_spans(const float *score, const uint8_t *flags, size_t T, int64_t start_ms,
                                 int64_t interval_ms, int64_t min_interval_ms, ns_span **out, size_t *n);
/* q-quantile (linear interpolation, numpy's default) of n values; the
 * array is sorted in place. NaN if n == 0. */
NS_API double ns_quantile_sorted_inplace(float *v, size_t n, double q);

#endif
