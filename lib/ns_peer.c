#include "ns_peer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ns_model_impl.h"

void ns_peer_ref_free(float **ref, size_t n) {
  for (size_t i = 0; ref && i < n; i++) free(ref[i]);
  free(ref);
}

struct ns_peer_cache {
  char *cluster;       /* whose idle spans are loaded; NULL = none yet */
  ns_seg_span *idle;   /* the cluster's idle segments, in list order */
  size_t n_idle;
  struct entry {
    int64_t seg;       /* series' segment id */
    int64_t *ids;      /* its peer candidates */
    size_t n;
  } *e;
  size_t n_e, cap_e;
};

ns_status ns_peer_cache_create(ns_peer_cache **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_peer_cache_create: NULL output");
  *out = calloc(1, sizeof **out);
  return *out ? NS_OK : NS_ERR_NOMEM;
}

void ns_peer_cache_free(ns_peer_cache *c) {
  if (!c) return;
  free(c->cluster);
  ns_seg_spans_free(c->idle, c->n_idle);
  for (size_t i = 0; i < c->n_e; i++) free(c->e[i].ids);
  free(c->e);
  free(c);
}

/* Other nodes' idle segments overlapping g, from the cluster's idle spans
 * (one query per cluster: a time-overlap query scans the whole cluster). */
static ns_status idle_peers(ns_store *st, ns_peer_cache *c, const ns_segment *g, int64_t **ids, size_t *n) {
  if (!c->cluster || strcmp(c->cluster, g->cluster) != 0) {
    ns_seg_spans_free(c->idle, c->n_idle);
    free(c->cluster);
    c->idle = NULL, c->n_idle = 0;
    if (!(c->cluster = strdup(g->cluster))) return NS_ERR_NOMEM;
    ns_seg_filter f = NS_SEG_FILTER_ALL;
    f.cluster = g->cluster, f.kind = NS_SEG_IDLE;
    ns_status s = ns_store_list_spans(st, &f, &c->idle, &c->n_idle);
    if (s) {
      free(c->cluster);
      c->cluster = NULL;
      return s;
    }
  }
  size_t k = 0;
  for (size_t i = 0; i < c->n_idle; i++) k += c->idle[i].end_ms >= g->start_ms && c->idle[i].start_ms <= g->end_ms;
  if (!(*ids = malloc((k ? k : 1) * sizeof **ids))) return NS_ERR_NOMEM;
  for (size_t i = 0; i < c->n_idle; i++)
    if (c->idle[i].end_ms >= g->start_ms && c->idle[i].start_ms <= g->end_ms) (*ids)[(*n)++] = c->idle[i].id;
  return NS_OK;
}

/* Peers of g: the job's other nodes, or for an idle segment other nodes'
 * idle segments overlapping it; at most max_peers + 1 (g itself may be
 * among them), spread over the list. Cached per segment: the rounds ask
 * again for the same series. *ids belongs to the cache. */
static ns_status list_peers(ns_store *st, ns_peer_cache *c, const ns_segment *g, int max_peers, const int64_t **ids,
                            size_t *n) {
  for (size_t i = 0; i < c->n_e; i++)
    if (c->e[i].seg == g->id) {
      *ids = c->e[i].ids, *n = c->e[i].n;
      return NS_OK;
    }
  if (c->n_e == c->cap_e) {
    size_t nc = c->cap_e ? 2 * c->cap_e : 64;
    struct entry *e = realloc(c->e, nc * sizeof *e);
    if (!e) return NS_ERR_NOMEM;
    c->e = e, c->cap_e = nc;
  }
  int64_t *v = NULL;
  size_t k = 0;
  ns_status s;
  if (g->job_id) {
    ns_seg_filter f = NS_SEG_FILTER_ALL;
    f.cluster = g->cluster, f.job_id = g->job_id;
    s = ns_store_list_segments(st, &f, &v, &k);
  } else {
    s = idle_peers(st, c, g, &v, &k);
  }
  if (s) {
    free(v);
    return s;
  }
  if (k > (size_t)max_peers + 1) {
    // spread: a time-ordered idle list would otherwise give only the earliest
    size_t j = 0, step = k / ((size_t)max_peers + 1);
    for (size_t i = 0; i < k && j < (size_t)max_peers + 1; i += step) v[j++] = v[i];
    k = j;
  }
  c->e[c->n_e++] = (struct entry){g->id, v, k};
  *ids = v, *n = k;
  return NS_OK;
}

/* Scores of peer p at g's rows: nearest row within half an interval (nodes
 * sample at their own phase), NAN elsewhere. Returns whether any row hit. */
static bool align(const ns_segment *g, const ns_segment *p, const float *psc, float *out) {
  bool any = false;
  for (size_t t = 0; t < g->T; t++) {
    int64_t ms = g->start_ms + (int64_t)t * g->interval_ms;
    double pos = (double)(ms - p->start_ms) / (double)p->interval_ms;
    double r = floor(pos + 0.5);
    out[t] = NAN;
    if (r < 0 || r >= (double)p->T || fabs(pos - r) * (double)p->interval_ms > 0.5 * (double)g->interval_ms) continue;
    out[t] = psc[(size_t)r];
    any = true;
  }
  return any;
}

static ns_status series_ref(ns_store *st, ns_peer_cache *cache, const ns_model *m, const ns_segment *g, int code,
                             int max_peers, float *ref) {
  const int64_t *ids = NULL;
  size_t nid = 0, np = 0, M = (size_t)ns_model_get_hparams(m)->n_metrics;
  float *cols = NULL, *xh = NULL, *sc = NULL, v[64];
  ns_segment *p = NULL;
  for (size_t t = 0; t < g->T; t++) ref[t] = NAN;
  ns_status s = list_peers(st, cache, g, max_peers, &ids, &nid);
  if (s || nid == 0) goto done;
  if (!(cols = malloc((size_t)max_peers * g->T * sizeof *cols))) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t j = 0; j < nid && np < (size_t)max_peers; j++) {
    if (ids[j] == g->id) continue;
    if ((s = ns_store_get_segment(st, ids[j], &p))) goto done;
    if (strcmp(p->node, g->node) != 0 && p->M == M && p->T >= 2 && p->interval_ms > 0) {
      free(xh), free(sc);
      xh = malloc(p->T * M * sizeof *xh), sc = malloc(p->T * sizeof *sc);
      if (!xh || !sc) {
        s = NS_ERR_NOMEM;
        goto done;
      }
      if ((s = ns_model_reconstruct(m, p->x, p->T, code, xh))) goto done;
      ns_model_score(m, p->x, xh, p->T, sc, NULL);
      if (align(g, p, sc, cols + np * g->T)) np++;
    }
    ns_segment_free(p);
    p = NULL;
  }
  for (size_t t = 0; t < g->T && np; t++) {
    int c = 0;
    for (size_t q = 0; q < np; q++)
      if (isfinite(cols[q * g->T + t])) v[c++] = cols[q * g->T + t];
    if (!c) continue;
    qsort(v, (size_t)c, sizeof *v, ns_cmp_float);
    ref[t] = c % 2 ? v[c / 2] : 0.5f * (v[c / 2 - 1] + v[c / 2]);
  }
done:
  ns_segment_free(p);
  free(cols);
  free(xh);
  free(sc);
  return s;
}

ns_status ns_peer_ref(ns_store *st, ns_peer_cache *cache, const ns_model *m, ns_segment *const *segs,
                      const ns_train_series *ser, size_t n, int max_peers, float ***ref_out) {
  if (!ref_out) return ns_errorf(NS_ERR_INVAL, "ns_peer_ref: NULL output");
  *ref_out = NULL;
  if (!st || !m || (n && (!segs || !ser))) return ns_errorf(NS_ERR_INVAL, "ns_peer_ref: NULL argument");
  if (max_peers < 1 || max_peers > 64) return ns_errorf(NS_ERR_RANGE, "peers %d outside [1, 64]", max_peers);
  ns_peer_cache *own = NULL;
  ns_status s = cache ? NS_OK : ns_peer_cache_create(&own);
  if (s) return s;
  float **ref = calloc(n ? n : 1, sizeof *ref);
  if (!ref) {
    ns_peer_cache_free(own);
    return NS_ERR_NOMEM;
  }
  for (size_t i = 0; i < n && !s; i++) {
    if (!(ref[i] = malloc((ser[i].T ? ser[i].T : 1) * sizeof **ref))) {
      s = NS_ERR_NOMEM;
      break;
    }
    for (size_t t = 0; t < ser[i].T; t++) ref[i][t] = NAN;
    if (segs[i] && segs[i]->id && segs[i]->T == ser[i].T)
      s = series_ref(st, cache ? cache : own, m, segs[i], ser[i].code, max_peers, ref[i]);
  }
  ns_peer_cache_free(own);
  if (s) {
    ns_peer_ref_free(ref, n);
    return s;
  }
  *ref_out = ref;
  return NS_OK;
}

void ns_peer_window_ratio(const float *err, const ns_train_window *w, size_t nw, int window,
                          const ns_train_series *ser, float *const *ref, float *out) {
  for (size_t k = 0; k < nw; k++) {
    const float *r = ref[w[k].series];
    double a = 0;
    int c = 0;
    for (int t = 0; t < window && w[k].start + (size_t)t < ser[w[k].series].T; t++)
      if (isfinite(r[w[k].start + t])) a += r[w[k].start + t], c++;
    out[k] = 2 * c >= window && a > 0 ? (float)(err[k] / (a / c)) : NAN;
  }
}
