/* Core data model. ns_mts is raw node telemetry as imported (irregular
 * timestamps, double values, NaN = missing); ns_segment is one preprocessed
 * job or idle window of one node on a fixed interval, a T x M float32 matrix. */
#ifndef NS_MTS_H
#define NS_MTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_status.h"

typedef enum { NS_SEG_JOB = 0, NS_SEG_IDLE = 1 } ns_seg_kind;

typedef struct ns_segment {
  int64_t id;           /* store row id; 0 = not stored */
  char *cluster;        /* Slurm cluster name */
  char *node;
  char *job_id;         /* Slurm job id text ("123", "123_4", "123+0"); NULL for idle */
  ns_seg_kind kind;
  int64_t start_ms;     /* time of row 0 */
  int64_t end_ms;       /* time of row T-1 */
  int64_t interval_ms;  /* spacing of rows */
  size_t T, M;
  char **metrics;       /* M names, owned */
  float *x;             /* T*M row-major: x[t*M + m] */
  uint8_t *labels;      /* T per-point labels (1 = anomalous) or NULL */
} ns_segment;

/* Zeroed T x M matrix, metric names NULL, labels NULL. */
NS_API ns_status ns_segment_create(size_t T, size_t M, ns_segment **out);
NS_API void ns_segment_free(ns_segment *s);
/* Copies strings; job_id NULL means idle. */
NS_API ns_status ns_segment_set_meta(ns_segment *s, const char *cluster, const char *node,
                                     const char *job_id, int64_t start_ms, int64_t interval_ms);
NS_API ns_status ns_segment_set_metrics(ns_segment *s, char *const *names);
NS_API ns_status ns_segment_alloc_labels(ns_segment *s);
NS_API ns_status ns_segment_clone(const ns_segment *s, ns_segment **out);
/* Rows [t0, t1) as a new segment (labels and metadata carried). */
NS_API ns_status ns_segment_slice(const ns_segment *s, size_t t0, size_t t1, ns_segment **out);
/* Shape, names present and unique, every value finite. Detail names row/metric. */
NS_API ns_status ns_segment_check(const ns_segment *s);
/* Index of a metric name, or -1. */
NS_API long ns_segment_metric_index(const ns_segment *s, const char *name);

typedef struct ns_mts {
  char *node;
  size_t T, M, cap;
  int64_t *ts_ms;       /* T timestamps (ms since epoch) */
  double *x;            /* T*M row-major; NaN = missing */
  char **metrics;       /* M names, owned */
  uint8_t *is_counter;  /* M flags: cumulative counter, to be turned into a rate */
  uint8_t *labels;      /* T labels or NULL */
} ns_mts;

NS_API ns_status ns_mts_create(const char *node, size_t M, char *const *names, ns_mts **out);
NS_API void ns_mts_free(ns_mts *m);
/* Append one row of M values (NaN allowed = missing). */
NS_API ns_status ns_mts_append(ns_mts *m, int64_t ts_ms, const double *row);
NS_API ns_status ns_mts_enable_labels(ns_mts *m);

#endif
