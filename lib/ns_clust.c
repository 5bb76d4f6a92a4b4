#include "ns_clust.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

ns_status ns_linkage_parse(const char *s, ns_linkage *out) {
  static const char *names[] = {"complete", "average", "single", "ward"};
  *out = NS_LINKAGE_COMPLETE;
  for (int i = 0; s && i < 4; i++)
    if (strcasecmp(s, names[i]) == 0) {
      *out = (ns_linkage)i;
      return NS_OK;
    }
  return ns_errorf(NS_ERR_INVAL, "unknown linkage '%s' (complete|average|single|ward)", s ? s : "(null)");
}

const char *ns_linkage_name(ns_linkage l) {
  switch (l) {
  case NS_LINKAGE_COMPLETE: return "complete";
  case NS_LINKAGE_AVERAGE: return "average";
  case NS_LINKAGE_SINGLE: return "single";
  case NS_LINKAGE_WARD: return "ward";
  }
  return "unknown";
}

/* ---- threads ---- */

int ns_clust_threads(int threads) {
  if (threads > 0) return threads;
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c > 0 ? (int)c : 1;
}

typedef struct par_arg {
  void (*fn)(void *, int);
  void *ctx;
  int tid;
} par_arg;

static void *par_main(void *p) {
  par_arg *a = p;
  a->fn(a->ctx, a->tid);
  return NULL;
}

ns_status ns_clust_parallel(int threads, void (*fn)(void *ctx, int tid), void *ctx) {
  int nt = ns_clust_threads(threads);
  if (nt > 256) nt = 256;
  pthread_t th[256];
  par_arg args[256];
  int started = 1;
  for (int t = 1; t < nt; t++) {
    args[t] = (par_arg){fn, ctx, t};
    if (pthread_create(&th[t], NULL, par_main, &args[t]) != 0) break;
    started++;
  }
  // Work is handed out dynamically, so fewer threads than asked only costs time.
  fn(ctx, 0);
  for (int t = 1; t < started; t++) pthread_join(th[t], NULL);
  return NS_OK;
}

/* ---- HAC: nearest-neighbour chain ---- */

static ns_status check_matrix(const float *D, size_t n) {
  size_t N = ns_cond_size(n);
  for (size_t q = 0; q < N; q++)
    if (!isfinite(D[q]) || D[q] < 0) {
      // Recover (i, j) for the message.
      size_t i = 0, rowlen = n - 1, base = 0;
      while (q >= base + rowlen) base += rowlen--, i++;
      size_t j = i + 1 + (q - base);
      if (!isfinite(D[q])) return ns_errorf(NS_ERR_NONFINITE, "distance d(%zu,%zu) is %g", i, j, (double)D[q]);
      return ns_errorf(NS_ERR_RANGE, "distance d(%zu,%zu) = %g is negative", i, j, (double)D[q]);
    }
  return NS_OK;
}

static inline double lw_update(ns_linkage link, double d_xi, double d_yi, double d_xy, double nx, double ny,
                               double ni) {
  switch (link) {
  case NS_LINKAGE_COMPLETE: return d_xi > d_yi ? d_xi : d_yi;
  case NS_LINKAGE_SINGLE: return d_xi < d_yi ? d_xi : d_yi;
  case NS_LINKAGE_AVERAGE: return (nx * d_xi + ny * d_yi) / (nx + ny);
  case NS_LINKAGE_WARD: {
    double t = ((nx + ni) * d_xi * d_xi + (ny + ni) * d_yi * d_yi - ni * d_xy * d_xy) / (nx + ny + ni);
    return t > 0 ? sqrt(t) : 0;
  }
  }
  return d_xi;
}

typedef struct raw_merge {
  size_t x, y; /* representative items, x < y; the merged cluster lives at y */
  double h;
} raw_merge;

/* Stable merge sort of merges by height (qsort is not stable). */
static void sort_merges(raw_merge *a, raw_merge *tmp, size_t n) {
  if (n < 2) return;
  size_t h = n / 2;
  sort_merges(a, tmp, h);
  sort_merges(a + h, tmp, n - h);
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = (a[j].h < a[i].h) ? a[j++] : a[i++];
  while (i < h) tmp[k++] = a[i++];
  while (j < n) tmp[k++] = a[j++];
  memcpy(a, tmp, n * sizeof *a);
}

static size_t uf_find(size_t *parent, size_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

ns_status ns_clust_hac(const float *D, size_t n, ns_linkage link, ns_progress_fn progress, void *pctx,
                       ns_merge **out) {
  *out = NULL;
  if (n == 0) return ns_errorf(NS_ERR_EMPTY, "HAC needs at least one item");
  if (!D && n > 1) return ns_errorf(NS_ERR_INVAL, "HAC: no distance matrix");
  if ((unsigned)link > NS_LINKAGE_WARD) return ns_errorf(NS_ERR_INVAL, "HAC: bad linkage %d", (int)link);
  if (n == 1) return NS_OK;
  ns_status st = check_matrix(D, n);
  if (st) return st;
  size_t N = ns_cond_size(n);
  float *W = malloc(N * sizeof *W);
  size_t *size = malloc(n * sizeof *size), *chain = malloc(n * sizeof *chain);
  size_t *next = malloc((n + 1) * sizeof *next), *prev = malloc((n + 1) * sizeof *prev);
  raw_merge *rm = malloc((n - 1) * sizeof *rm), *tmp = malloc((n - 1) * sizeof *tmp);
  size_t *parent = malloc(2 * n * sizeof *parent), *cid = malloc(n * sizeof *cid);
  ns_merge *z = malloc((n - 1) * sizeof *z);
  if (!W || !size || !chain || !next || !prev || !rm || !tmp || !parent || !cid || !z) {
    st = ns_errorf(NS_ERR_NOMEM, "HAC: cannot allocate working memory for n = %zu", n);
    goto done;
  }
  memcpy(W, D, N * sizeof *W);
  // Active items as a doubly linked list with sentinel n, so scans skip merged ones.
  for (size_t i = 0; i < n; i++) size[i] = 1, next[i] = i + 1, prev[i] = i ? i - 1 : n;
  next[n] = 0, prev[n] = n - 1;
  size_t len = 0;
  for (size_t m = 0; m < n - 1; m++) {
    if (len == 0) chain[len++] = next[n];
    size_t x, y;
    double dmin;
    for (;;) {
      x = chain[len - 1];
      y = len >= 2 ? chain[len - 2] : n;
      dmin = len >= 2 ? W[ns_cond_index(n, x, y)] : INFINITY;
      // Row x: items before x are strided, items after x contiguous.
      for (size_t i = next[n]; i != n; i = next[i]) {
        if (i == x) continue;
        double d = W[ns_cond_index(n, x, i)];
        if (d < dmin) dmin = d, y = i;
      }
      if (len >= 2 && y == chain[len - 2]) break;
      chain[len++] = y;
    }
    len -= 2;
    if (x > y) {
      size_t t = x;
      x = y;
      y = t;
    }
    rm[m] = (raw_merge){x, y, dmin};
    double nx = (double)size[x], ny = (double)size[y];
    for (size_t i = next[n]; i != n; i = next[i]) {
      if (i == x || i == y) continue;
      size_t ix = ns_cond_index(n, i, x), iy = ns_cond_index(n, i, y);
      W[iy] = (float)lw_update(link, W[ix], W[iy], dmin, nx, ny, (double)size[i]);
    }
    size[y] += size[x];
    size[x] = 0;
    next[prev[x]] = next[x], prev[next[x]] = prev[x];
    if (progress && (m % 256 == 0 || m == n - 2)) progress(pctx, "hac", m + 1, n - 1);
  }
  sort_merges(rm, tmp, n - 1);
  // scipy ids: item i -> i, merge r -> n + r.
  for (size_t i = 0; i < 2 * n; i++) parent[i] = i;
  for (size_t i = 0; i < n; i++) cid[i] = i;
  for (size_t r = 0; r < n - 1; r++) {
    size_t a = uf_find(parent, rm[r].x), b = uf_find(parent, rm[r].y);
    // Roots are items; the cluster id of a root is tracked in cid[root].
    size_t ida = cid[a], idb = cid[b];
    z[r].a = ida < idb ? ida : idb;
    z[r].b = ida < idb ? idb : ida;
    z[r].height = rm[r].h;
    size_t sa = ida < n ? 1 : z[ida - n].size, sb = idb < n ? 1 : z[idb - n].size;
    z[r].size = sa + sb;
    parent[a] = b;
    cid[b] = n + r;
  }
  *out = z;
  z = NULL;
done:
  free(W), free(size), free(chain), free(next), free(prev), free(rm), free(tmp), free(parent), free(cid), free(z);
  return st;
}

size_t ns_clust_canonical(int *labels, size_t n) {
  // Labels may be arbitrary ints; map in order of first appearance.
  size_t k = 0, cap = 16;
  int *seen = malloc(cap * sizeof *seen);
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < k && seen[j] != labels[i]) j++;
    if (j == k) {
      if (k == cap) {
        cap *= 2;
        seen = realloc(seen, cap * sizeof *seen);
      }
      seen[k++] = labels[i];
    }
    labels[i] = (int)j;
  }
  free(seen);
  return k;
}

static void canon_dense(int *labels, size_t n, size_t kmax, int *map) {
  // labels in 0..kmax-1; O(n) renumbering by first appearance.
  for (size_t c = 0; c < kmax; c++) map[c] = -1;
  int next_id = 0;
  for (size_t i = 0; i < n; i++) {
    if (map[labels[i]] < 0) map[labels[i]] = next_id++;
    labels[i] = map[labels[i]];
  }
}

ns_status ns_clust_cut(const ns_merge *z, size_t n, size_t k, int *labels) {
  if (n == 0 || k < 1 || k > n) return ns_errorf(NS_ERR_RANGE, "cut: k = %zu outside 1..%zu", k, n);
  size_t *parent = malloc(2 * n * sizeof *parent);
  int *map = malloc(2 * n * sizeof *map);
  if (!parent || !map) {
    free(parent), free(map);
    return NS_ERR_NOMEM;
  }
  for (size_t i = 0; i < 2 * n; i++) parent[i] = i;
  for (size_t r = 0; r + k < n; r++) {
    if (z[r].a >= n + r || z[r].b >= n + r) {
      free(parent), free(map);
      return ns_errorf(NS_ERR_CORRUPT, "cut: merge %zu refers to a later cluster", r);
    }
    parent[z[r].a] = n + r;
    parent[z[r].b] = n + r;
  }
  for (size_t i = 0; i < n; i++) labels[i] = (int)uf_find(parent, i);
  canon_dense(labels, n, 2 * n, map);
  free(parent), free(map);
  return NS_OK;
}

/* ---- silhouette ---- */

/* One pass over D accumulates, for every item, the sum of its distances to
 * each cluster of the finest partition; coarser nested partitions sum those. */
typedef struct sil_ctx {
  const float *D;
  size_t n, kf;
  const int *lab;          /* finest labels */
  double **acc;            /* per thread n*kf */
  atomic_size_t next_row;
  bool oom;
} sil_ctx;

static void sil_worker(void *p, int tid) {
  sil_ctx *c = p;
  double *S = c->acc[tid];
  size_t n = c->n, kf = c->kf;
  const size_t chunk = 16;
  for (;;) {
    size_t r0 = atomic_fetch_add(&c->next_row, chunk);
    if (r0 >= n) break;
    size_t r1 = r0 + chunk < n ? r0 + chunk : n;
    for (size_t i = r0; i < r1; i++) {
      if (i + 1 >= n) break;
      const float *row = c->D + ns_cond_index(n, i, i + 1);
      double *Si = S + i * kf;
      int li = c->lab[i];
      for (size_t j = i + 1; j < n; j++) {
        double d = row[j - i - 1];
        Si[c->lab[j]] += d;
        S[j * kf + li] += d;
      }
    }
  }
}

/* Silhouettes of nested partitions: fine (kf clusters) and nc coarser ones,
 * each given as labels; out[p] for p < nc. */
static ns_status sil_multi(const float *D, size_t n, const int *fine, size_t kf, int *const *coarse,
                           const size_t *kc, size_t nc, int threads, double *out) {
  int nt = ns_clust_threads(threads);
  if (nt > 256) nt = 256;
  if (nt > (int)n) nt = (int)n > 0 ? (int)n : 1;
  sil_ctx c = {.D = D, .n = n, .kf = kf, .lab = fine};
  atomic_init(&c.next_row, 0);
  ns_status st = NS_OK;
  size_t *fsize = calloc(kf, sizeof *fsize), *csize = NULL;
  int *map = malloc(kf * sizeof *map);
  double *T = NULL;
  c.acc = calloc((size_t)nt, sizeof *c.acc);
  if (!fsize || !map || !c.acc) goto oom;
  for (int t = 0; t < nt; t++)
    if (!(c.acc[t] = calloc(n * kf, sizeof(double)))) goto oom;
  ns_clust_parallel(nt, sil_worker, &c);
  for (int t = 1; t < nt; t++)
    for (size_t q = 0; q < n * kf; q++) c.acc[0][q] += c.acc[t][q];
  for (size_t i = 0; i < n; i++) fsize[fine[i]]++;
  size_t kmax = 0;
  for (size_t p = 0; p < nc; p++) kmax = kc[p] > kmax ? kc[p] : kmax;
  csize = malloc(kmax * sizeof *csize);
  T = malloc(kmax * sizeof *T);
  if (!csize || !T) goto oom;
  for (size_t p = 0; p < nc; p++) {
    const int *cl = coarse[p];
    for (size_t f = 0; f < kf; f++) map[f] = -1;
    memset(csize, 0, kc[p] * sizeof *csize);
    for (size_t i = 0; i < n; i++) {
      if (map[fine[i]] >= 0 && map[fine[i]] != cl[i]) {
        st = ns_errorf(NS_ERR_INTERNAL, "silhouette: partitions are not nested");
        goto done;
      }
      map[fine[i]] = cl[i];
      csize[cl[i]]++;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
      const double *Si = c.acc[0] + i * kf;
      memset(T, 0, kc[p] * sizeof *T);
      for (size_t f = 0; f < kf; f++)
        if (fsize[f]) T[map[f]] += Si[f];
      size_t own = (size_t)cl[i];
      if (csize[own] <= 1) continue; /* singleton scores 0 */
      double a = T[own] / (double)(csize[own] - 1), b = INFINITY;
      for (size_t q = 0; q < kc[p]; q++)
        if (q != own && csize[q]) {
          double m = T[q] / (double)csize[q];
          if (m < b) b = m;
        }
      double den = a > b ? a : b;
      if (den > 0 && isfinite(b)) sum += (b - a) / den;
    }
    out[p] = sum / (double)n;
  }
  goto done;
oom:
  st = ns_errorf(NS_ERR_NOMEM, "silhouette: cannot allocate %zu x %zu sums per thread", n, kf);
done:
  if (c.acc)
    for (int t = 0; t < nt; t++) free(c.acc[t]);
  free(c.acc), free(fsize), free(csize), free(map), free(T);
  return st;
}

ns_status ns_clust_silhouette(const float *D, size_t n, const int *labels, int threads, double *out) {
  *out = 0;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (labels[i] < 0 || (size_t)labels[i] >= n)
      return ns_errorf(NS_ERR_RANGE, "silhouette: label %d of item %zu outside 0..%zu", labels[i], i, n - 1);
    if ((size_t)labels[i] + 1 > k) k = (size_t)labels[i] + 1;
  }
  if (n < 3 || k < 2 || k > n - 1)
    return ns_errorf(NS_ERR_RANGE, "silhouette needs 2 <= clusters <= n-1 (got %zu clusters, n = %zu)", k, n);
  int *const lab[1] = {(int *)labels};
  return sil_multi(D, n, labels, k, lab, &k, 1, threads, out);
}

/* ---- tiny clusters ---- */

ns_status ns_clust_merge_small(const float *D, size_t n, int *labels, size_t *k, size_t min_size) {
  size_t K = *k;
  if (min_size <= 1 || K <= 1) return NS_OK;
  size_t *sz = calloc(K, sizeof *sz);
  double *sum = malloc(K * sizeof *sum);
  int *map = malloc(K * sizeof *map);
  if (!sz || !sum || !map) {
    free(sz), free(sum), free(map);
    return NS_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) sz[labels[i]]++;
  size_t alive = 0;
  for (size_t c = 0; c < K; c++) alive += sz[c] > 0;
  while (alive > 1) {
    size_t small = K;
    for (size_t c = 0; c < K; c++)
      if (sz[c] && sz[c] < min_size && (small == K || sz[c] < sz[small])) small = c;
    if (small == K) break;
    // Mean distance from the tiny cluster to each other cluster.
    for (size_t c = 0; c < K; c++) sum[c] = 0;
    for (size_t i = 0; i < n; i++) {
      if ((size_t)labels[i] != small) continue;
      for (size_t j = 0; j < n; j++)
        if ((size_t)labels[j] != small) sum[labels[j]] += D[ns_cond_index(n, i, j)];
    }
    size_t best = K;
    double bd = INFINITY;
    for (size_t c = 0; c < K; c++) {
      if (c == small || !sz[c]) continue;
      double m = sum[c] / (double)(sz[c] * sz[small]);
      if (m < bd) bd = m, best = c;
    }
    for (size_t i = 0; i < n; i++)
      if ((size_t)labels[i] == small) labels[i] = (int)best;
    sz[best] += sz[small];
    sz[small] = 0;
    alive--;
  }
  canon_dense(labels, n, K, map);
  *k = alive;
  free(sz), free(sum), free(map);
  return NS_OK;
}

/* ---- selection ---- */

void ns_clust_result_free(ns_clust_result *r) {
  if (!r) return;
  free(r->silhouette);
  free(r->labels);
  free(r->merges);
  free(r);
}

ns_status ns_clust_select(const float *D, size_t n, const ns_clust_opts *o, ns_clust_result **out) {
  *out = NULL;
  if (!o) return ns_errorf(NS_ERR_INVAL, "cluster selection: no options");
  if (o->k_min > o->k_max)
    return ns_errorf(NS_ERR_RANGE, "clust_k_min = %zu is above clust_k_max = %zu", o->k_min, o->k_max);
  ns_clust_result *r = calloc(1, sizeof *r);
  if (!r) return NS_ERR_NOMEM;
  r->n = n;
  int **cuts = NULL;
  size_t ncand = 0;
  ns_status st = ns_clust_hac(D, n, o->linkage, o->progress, o->progress_ctx, &r->merges);
  if (st) goto fail;
  r->labels = calloc(n, sizeof *r->labels);
  if (!r->labels) goto oom;
  r->k_lo = o->k_min < 2 ? 2 : o->k_min;
  r->k_hi = n >= 3 ? (o->k_max < n - 1 ? o->k_max : n - 1) : 0;
  if (r->k_hi < r->k_lo) {
    // No candidate can be scored (too few items for the range): one cluster.
    r->k_best = 1;
    r->k_lo = r->k_hi + 1;
    r->sil_best = 0;
  } else {
    ncand = r->k_hi - r->k_lo + 1;
    r->silhouette = calloc(ncand, sizeof *r->silhouette);
    cuts = calloc(ncand, sizeof *cuts);
    if (!r->silhouette || !cuts) goto oom;
    // Batches of k (finest first) keep the per-thread sums under ~128 MB.
    int nt = ns_clust_threads(o->threads);
    size_t cap = (size_t)(128u << 20) / (sizeof(double) * (size_t)nt * n);
    if (cap < 2) cap = 2;
    size_t done = 0;
    for (size_t hi = r->k_hi; hi >= r->k_lo;) {
      size_t lo = hi >= r->k_lo + cap - 1 ? hi - cap + 1 : r->k_lo;
      for (size_t k = lo; k <= hi; k++) {
        if (!(cuts[k - r->k_lo] = malloc(n * sizeof(int)))) goto oom;
        if ((st = ns_clust_cut(r->merges, n, k, cuts[k - r->k_lo]))) goto fail;
      }
      size_t m = hi - lo + 1;
      size_t *kc = malloc(m * sizeof *kc);
      if (!kc) goto oom;
      for (size_t k = lo; k <= hi; k++) kc[k - lo] = k;
      st = sil_multi(D, n, cuts[hi - r->k_lo], hi, cuts + (lo - r->k_lo), kc, m, o->threads,
                     r->silhouette + (lo - r->k_lo));
      free(kc);
      if (st) goto fail;
      for (size_t k = lo; k <= hi; k++) {
        free(cuts[k - r->k_lo]);
        cuts[k - r->k_lo] = NULL;
      }
      done += m;
      if (o->progress) o->progress(o->progress_ctx, "silhouette", done, ncand);
      if (lo == r->k_lo) break;
      hi = lo - 1;
    }
    r->k_best = r->k_lo;
    r->sil_best = r->silhouette[0];
    for (size_t k = r->k_lo + 1; k <= r->k_hi; k++)
      if (r->silhouette[k - r->k_lo] > r->sil_best) r->sil_best = r->silhouette[k - r->k_lo], r->k_best = k;
  }
  if ((st = ns_clust_cut(r->merges, n, r->k_best, r->labels))) goto fail;
  r->k = r->k_best;
  if ((st = ns_clust_merge_small(D, n, r->labels, &r->k, o->min_size))) goto fail;
  if (cuts)
    for (size_t c = 0; c < ncand; c++) free(cuts[c]);
  free(cuts);
  *out = r;
  return NS_OK;
oom:
  st = ns_errorf(NS_ERR_NOMEM, "cluster selection: out of memory (n = %zu)", n);
fail:
  if (cuts)
    for (size_t c = 0; c < ncand; c++) free(cuts[c]);
  free(cuts);
  ns_clust_result_free(r);
  return st;
}
