#include "ns_mts.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ns_status dup_str(const char *s, char **out) {
  *out = NULL;
  if (!s) return NS_OK;
  if (!(*out = strdup(s))) return NS_ERR_NOMEM;
  return NS_OK;
}

ns_status ns_segment_create(size_t T, size_t M, ns_segment **out) {
  *out = NULL;
  if (M == 0) return ns_errorf(NS_ERR_INVAL, "segment needs at least one metric");
  if (T > 0 && M > SIZE_MAX / sizeof(float) / T) return ns_errorf(NS_ERR_RANGE, "segment %zux%zu too large", T, M);
  ns_segment *s = calloc(1, sizeof *s);
  if (!s) return NS_ERR_NOMEM;
  s->T = T;
  s->M = M;
  s->metrics = calloc(M, sizeof *s->metrics);
  s->x = calloc(T ? T * M : 1, sizeof *s->x);
  if (!s->metrics || !s->x) {
    ns_segment_free(s);
    return NS_ERR_NOMEM;
  }
  *out = s;
  return NS_OK;
}

void ns_segment_free(ns_segment *s) {
  if (!s) return;
  free(s->cluster);
  free(s->node);
  free(s->job_id);
  if (s->metrics)
    for (size_t m = 0; m < s->M; m++) free(s->metrics[m]);
  free(s->metrics);
  free(s->x);
  free(s->labels);
  free(s);
}

ns_status ns_segment_set_meta(ns_segment *s, const char *cluster, const char *node, const char *job_id,
                              int64_t start_ms, int64_t interval_ms) {
  char *c = NULL, *n = NULL, *j = NULL;
  if (dup_str(cluster, &c) || dup_str(node, &n) || dup_str(job_id, &j)) {
    free(c), free(n), free(j);
    return NS_ERR_NOMEM;
  }
  free(s->cluster), free(s->node), free(s->job_id);
  s->cluster = c, s->node = n, s->job_id = j;
  s->kind = j ? NS_SEG_JOB : NS_SEG_IDLE;
  s->start_ms = start_ms;
  s->interval_ms = interval_ms;
  s->end_ms = start_ms + (s->T ? (int64_t)(s->T - 1) * interval_ms : 0);
  return NS_OK;
}

ns_status ns_segment_set_metrics(ns_segment *s, char *const *names) {
  for (size_t m = 0; m < s->M; m++) {
    char *d = strdup(names[m]);
    if (!d) return NS_ERR_NOMEM;
    free(s->metrics[m]);
    s->metrics[m] = d;
  }
  return NS_OK;
}

ns_status ns_segment_alloc_labels(ns_segment *s) {
  if (s->labels) return NS_OK;
  s->labels = calloc(s->T ? s->T : 1, 1);
  return s->labels ? NS_OK : NS_ERR_NOMEM;
}

ns_status ns_segment_slice(const ns_segment *s, size_t t0, size_t t1, ns_segment **out) {
  *out = NULL;
  if (t0 > t1 || t1 > s->T) return ns_errorf(NS_ERR_RANGE, "slice [%zu,%zu) outside %zu rows", t0, t1, s->T);
  ns_segment *r = NULL;
  ns_status st = ns_segment_create(t1 - t0, s->M, &r);
  if (st) return st;
  if ((st = ns_segment_set_meta(r, s->cluster, s->node, s->job_id, s->start_ms + (int64_t)t0 * s->interval_ms,
                                s->interval_ms)))
    goto fail;
  r->kind = s->kind;
  if (s->metrics[0] && (st = ns_segment_set_metrics(r, s->metrics))) goto fail;
  memcpy(r->x, s->x + t0 * s->M, (t1 - t0) * s->M * sizeof *r->x);
  if (s->labels) {
    if ((st = ns_segment_alloc_labels(r))) goto fail;
    memcpy(r->labels, s->labels + t0, t1 - t0);
  }
  *out = r;
  return NS_OK;
fail:
  ns_segment_free(r);
  return st;
}

ns_status ns_segment_clone(const ns_segment *s, ns_segment **out) {
  ns_status st = ns_segment_slice(s, 0, s->T, out);
  if (!st) (*out)->id = s->id;
  return st;
}

ns_status ns_segment_check(const ns_segment *s) {
  if (!s || !s->x || !s->metrics) return ns_errorf(NS_ERR_INVAL, "segment is empty");
  if (s->T == 0) return ns_errorf(NS_ERR_EMPTY, "segment %s/%s has no rows", s->node ? s->node : "?",
                                  s->job_id ? s->job_id : "idle");
  if (s->interval_ms <= 0) return ns_errorf(NS_ERR_INVAL, "interval %lld ms is not positive", (long long)s->interval_ms);
  for (size_t m = 0; m < s->M; m++) {
    if (!s->metrics[m] || !s->metrics[m][0]) return ns_errorf(NS_ERR_INVAL, "metric %zu has no name", m);
    for (size_t k = 0; k < m; k++)
      if (strcmp(s->metrics[k], s->metrics[m]) == 0)
        return ns_errorf(NS_ERR_INVAL, "metric name '%s' appears twice", s->metrics[m]);
  }
  for (size_t t = 0; t < s->T; t++)
    for (size_t m = 0; m < s->M; m++)
      if (!isfinite(s->x[t * s->M + m]))
        return ns_errorf(NS_ERR_NONFINITE, "row %zu, metric '%s'", t, s->metrics[m]);
  return NS_OK;
}

long ns_segment_metric_index(const ns_segment *s, const char *name) {
  for (size_t m = 0; m < s->M; m++)
    if (s->metrics[m] && strcmp(s->metrics[m], name) == 0) return (long)m;
  return -1;
}

ns_status ns_mts_create(const char *node, size_t M, char *const *names, ns_mts **out) {
  *out = NULL;
  if (M == 0) return ns_errorf(NS_ERR_INVAL, "time series needs at least one metric");
  ns_mts *m = calloc(1, sizeof *m);
  if (!m) return NS_ERR_NOMEM;
  m->M = M;
  ns_status st = dup_str(node, &m->node);
  m->metrics = calloc(M, sizeof *m->metrics);
  m->is_counter = calloc(M, 1);
  if (st || !m->metrics || !m->is_counter) goto nomem;
  for (size_t i = 0; i < M; i++)
    if (names && !(m->metrics[i] = strdup(names[i]))) goto nomem;
  *out = m;
  return NS_OK;
nomem:
  ns_mts_free(m);
  return NS_ERR_NOMEM;
}

void ns_mts_free(ns_mts *m) {
  if (!m) return;
  free(m->node);
  if (m->metrics)
    for (size_t i = 0; i < m->M; i++) free(m->metrics[i]);
  free(m->metrics);
  free(m->is_counter);
  free(m->ts_ms);
  free(m->x);
  free(m->labels);
  free(m);
}

static ns_status mts_grow(ns_mts *m) {
  size_t cap = m->cap ? m->cap * 2 : 256;
  int64_t *ts = realloc(m->ts_ms, cap * sizeof *ts);
  if (!ts) return NS_ERR_NOMEM;
  m->ts_ms = ts;
  double *x = realloc(m->x, cap * m->M * sizeof *x);
  if (!x) return NS_ERR_NOMEM;
  m->x = x;
  if (m->labels) {
    uint8_t *l = realloc(m->labels, cap);
    if (!l) return NS_ERR_NOMEM;
    m->labels = l;
  }
  m->cap = cap;
  return NS_OK;
}

ns_status ns_mts_append(ns_mts *m, int64_t ts_ms, const double *row) {
  if (m->T == m->cap) {
    ns_status st = mts_grow(m);
    if (st) return st;
  }
  m->ts_ms[m->T] = ts_ms;
  memcpy(m->x + m->T * m->M, row, m->M * sizeof *row);
  if (m->labels) m->labels[m->T] = 0;
  m->T++;
  return NS_OK;
}

ns_status ns_mts_enable_labels(ns_mts *m) {
  if (m->labels) return NS_OK;
  m->labels = calloc(m->cap ? m->cap : 1, 1);
  return m->labels ? NS_OK : NS_ERR_NOMEM;
}
