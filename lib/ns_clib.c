#include "ns_clib.h"
#include "ns_hash.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "ns_feat.h"

#define NF NS_CLIB_NFEAT
_Static_assert(NS_FEAT_N == NS_CLIB_NFEAT, "ns_feat and ns_clib disagree on the feature count");

void ns_clib_params_default(ns_clib_params *p) {
  *p = (ns_clib_params){.linkage = NS_LINKAGE_COMPLETE,
                        .k_min = 2,
                        .k_max = 20,
                        .min_size = 2,
                        .n_rep = 10,
                        .match_len_ms = 3600000,
                        .radius_factor = 1.5,
                        .feat_fs = 0,
                        .strata = 16,
                        .threads = 0};
}

ns_status ns_clib_params_from_config(const ns_config *cfg, ns_clib_params *p) {
  ns_clib_params_default(p);
  ns_status st = ns_linkage_parse(ns_cfg_str(cfg, NS_CFG_clust_linkage), &p->linkage);
  if (st) return st;
  p->k_min = (size_t)ns_cfg_int(cfg, NS_CFG_clust_k_min);
  p->k_max = (size_t)ns_cfg_int(cfg, NS_CFG_clust_k_max);
  if (p->k_min > p->k_max)
    return ns_errorf(NS_ERR_RANGE, "clust_k_min = %zu is above clust_k_max = %zu", p->k_min, p->k_max);
  p->min_size = (size_t)ns_cfg_int(cfg, NS_CFG_clust_min_size);
  p->n_rep = (size_t)ns_cfg_int(cfg, NS_CFG_clust_representatives);
  p->match_len_ms = ns_cfg_int(cfg, NS_CFG_match_len);
  p->radius_factor = ns_cfg_double(cfg, NS_CFG_match_radius_factor);
  p->feat_fs = ns_cfg_double(cfg, NS_CFG_feat_fs);
  p->threads = (int)ns_cfg_int(cfg, NS_CFG_threads);
  p->strata = (size_t)ns_cfg_int(cfg, NS_CFG_clust_strata);
  return NS_OK;
}

/* ---- representations ---- */

ns_status ns_featset_create(size_t n, size_t M, ns_featset **out) {
  *out = NULL;
  if (M == 0) return ns_errorf(NS_ERR_INVAL, "feature set needs at least one metric");
  if (n > 0 && M > SIZE_MAX / sizeof(float) / NF / n)
    return ns_errorf(NS_ERR_RANGE, "feature set %zu x %zu too large", n, M);
  ns_featset *fs = calloc(1, sizeof *fs);
  if (!fs) return NS_ERR_NOMEM;
  fs->n = n, fs->M = M;
  fs->ids = calloc(n ? n : 1, sizeof *fs->ids);
  fs->kind = calloc(n ? n : 1, sizeof *fs->kind);
  fs->f = calloc(n ? n * M * NF : 1, sizeof *fs->f);
  if (!fs->ids || !fs->kind || !fs->f) {
    ns_featset_free(fs);
    return ns_errorf(NS_ERR_NOMEM, "feature set of %zu segments x %zu metrics", n, M);
  }
  *out = fs;
  return NS_OK;
}

void ns_featset_free(ns_featset *fs) {
  if (!fs) return;
  free(fs->ids), free(fs->kind), free(fs->f);
  free(fs);
}

size_t ns_clib_prefix_rows(const ns_segment *s, int64_t match_len_ms) {
  if (!s || s->T == 0) return 0;
  int64_t rows = s->interval_ms > 0 ? match_len_ms / s->interval_ms : (int64_t)s->T;
  if (rows < 1) rows = 1;
  return (size_t)rows < s->T ? (size_t)rows : s->T;
}

ns_status ns_clib_segment_features(const ns_segment *s, const ns_clib_params *p, float **out) {
  *out = NULL;
  if (!s) return ns_errorf(NS_ERR_INVAL, "features: no segment");
  ns_status st = ns_segment_check(s);
  if (st) return st;
  size_t rows = ns_clib_prefix_rows(s, p->match_len_ms);
  size_t need = ns_feat_min_length();
  if (rows < need)
    return ns_errorf(NS_ERR_TOO_SHORT, "segment %lld (%s %s): %zu rows in its first %lld s, features need %zu",
                     (long long)s->id, s->node ? s->node : "?", s->job_id ? s->job_id : "idle", rows,
                     (long long)(p->match_len_ms / 1000), need);
  double fs = p->feat_fs > 0 ? p->feat_fs : (s->interval_ms > 0 ? 1000.0 / (double)s->interval_ms : 1.0);
  float *f = NULL;
  if ((st = ns_feat_segment(s, 0, rows, fs, p->threads, &f))) return st;
  for (size_t q = 0; q < s->M * NF; q++)
    if (!isfinite(f[q])) {
      st = ns_errorf(NS_ERR_NONFINITE, "segment %lld: feature %zu of metric '%s' is not finite", (long long)s->id,
                     q % NF, s->metrics[q / NF]);
      free(f);
      return st;
    }
  *out = f;
  return NS_OK;
}

/* ---- the one distance ---- */

/* Per-metric L2 distances of two NF-vectors x, y to four others b[0..3]
 * (any of them may repeat): out[0..3] for x, out[4..7] for y. Every pair
 * goes through the same operations in the same order, so a distance does
 * not depend on which call or which slot computed it. Two rows against four
 * columns share the loads; all eight sums stay in registers. */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
_Static_assert(NS_CLIB_NFEAT == 134, "metric_l2_2x4 assumes 16 x 8 + 6 features");
static inline __attribute__((always_inline)) __m128 hsum4_sqrt(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  // The same tree for every slot: ((v0+v1)+(v2+v3)) + ((v4+v5)+(v6+v7)).
  __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
  return _mm_sqrt_ps(_mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
}
static inline __attribute__((always_inline)) void metric_l2_2x4(const float *x, const float *y,
                                                                const float *const b[4], float out[8]) {
  // The tail (134 = 16*8 + 6): the last 8 features, lanes 0..1 (already
  // counted) masked to zero. In-bounds loads; AMD's masked loads are slow.
  const __m256 tail = _mm256_castsi256_ps(_mm256_setr_epi32(0, 0, -1, -1, -1, -1, -1, -1));
  const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
  __m256 xv = _mm256_loadu_ps(x + 126), yv = _mm256_loadu_ps(y + 126), bv, d;
  __m256 x0, x1, x2, x3, y0, y1, y2, y3;
#define NS_L2_INIT(X, Y, B)                                   \
  bv = _mm256_loadu_ps(B + 126);                              \
  d = _mm256_and_ps(_mm256_sub_ps(xv, bv), tail);             \
  X = _mm256_mul_ps(d, d);                                    \
  d = _mm256_and_ps(_mm256_sub_ps(yv, bv), tail);             \
  Y = _mm256_mul_ps(d, d);
  NS_L2_INIT(x0, y0, b0)
  NS_L2_INIT(x1, y1, b1)
  NS_L2_INIT(x2, y2, b2)
  NS_L2_INIT(x3, y3, b3)
#undef NS_L2_INIT
  for (int k = 0; k < 128; k += 8) {
    xv = _mm256_loadu_ps(x + k), yv = _mm256_loadu_ps(y + k);
#define NS_L2_STEP(X, Y, B)               \
  bv = _mm256_loadu_ps(B + k);            \
  d = _mm256_sub_ps(xv, bv);              \
  X = _mm256_fmadd_ps(d, d, X);           \
  d = _mm256_sub_ps(yv, bv);              \
  Y = _mm256_fmadd_ps(d, d, Y);
    NS_L2_STEP(x0, y0, b0)
    NS_L2_STEP(x1, y1, b1)
    NS_L2_STEP(x2, y2, b2)
    NS_L2_STEP(x3, y3, b3)
#undef NS_L2_STEP
  }
  _mm_storeu_ps(out, hsum4_sqrt(x0, x1, x2, x3));
  _mm_storeu_ps(out + 4, hsum4_sqrt(y0, y1, y2, y3));
}
#else
typedef float v8f __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
static inline float l2_generic(const float *a, const float *b0) {
  v8f s = {0};
  for (int k = 0; k + 8 <= NF; k += 8) {
    v8f d = *(const v8u *)(a + k) - *(const v8u *)(b0 + k);
    s += d * d;
  }
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (int k = NF / 8 * 8; k < NF; k++) {
    float d = a[k] - b0[k];
    t += d * d;
  }
  return sqrtf(t);
}
static inline void metric_l2_2x4(const float *x, const float *y, const float *const b[4], float out[8]) {
  for (int q = 0; q < 4; q++) out[q] = l2_generic(x, b[q]), out[4 + q] = l2_generic(y, b[q]);
}
#endif

double ns_clib_distance(const float *a, const float *b, size_t M) {
  double s = 0;
  for (size_t m = 0; m < M; m++) {
    const float *bb[4] = {b + m * NF, b + m * NF, b + m * NF, b + m * NF};
    float o[8];
    metric_l2_2x4(a + m * NF, a + m * NF, bb, o);
    s += o[0];
  }
  return s;
}

#define TILE 64
#define MCHUNK 4

typedef struct dm_ctx {
  const ns_featset *fs;
  const size_t *idx;
  size_t n, nb, ntiles;
  float *D;
  atomic_size_t next, done;
  ns_progress_fn progress;
  void *pctx;
} dm_ctx;

static void dm_worker(void *p, int tid) {
  dm_ctx *c = p;
  size_t M = c->fs->M, stride = M * NF;
  double acc[TILE][TILE + 3]; /* +3: a last group of 4 may run past nj */
  const float *A[TILE], *B[TILE];
  for (;;) {
    size_t t = atomic_fetch_add(&c->next, 1);
    if (t >= c->ntiles) break;
    // Tile t -> (bi, bj), bi <= bj, row-major over the upper triangle of blocks.
    size_t bi = 0, rowlen = c->nb, base = 0;
    while (t >= base + rowlen) base += rowlen--, bi++;
    size_t bj = bi + (t - base);
    size_t i0 = bi * TILE, j0 = bj * TILE;
    size_t ni = c->n - i0 < TILE ? c->n - i0 : TILE, nj = c->n - j0 < TILE ? c->n - j0 : TILE;
    for (size_t a = 0; a < ni; a++) A[a] = c->fs->f + (c->idx ? c->idx[i0 + a] : i0 + a) * stride;
    for (size_t b = 0; b < nj; b++) B[b] = c->fs->f + (c->idx ? c->idx[j0 + b] : j0 + b) * stride;
    memset(acc, 0, sizeof acc);
    // A few metrics at a time keep both blocks' slices in cache; each pair
    // still sums its metrics in order 0..M-1, as ns_clib_distance does.
    for (size_t m0 = 0; m0 < M; m0 += MCHUNK) {
      size_t m1 = m0 + MCHUNK < M ? m0 + MCHUNK : M;
      // Rows a and a+1 (the same row twice for an odd last one) against
      // columns b..b+3 (the last repeated past nj); surplus results land in
      // acc entries that are never written out.
      for (size_t a = 0; a < ni; a += 2) {
        size_t a1 = a + 1 < ni ? a + 1 : a;
        for (size_t b = (bi == bj ? a + 1 : 0); b < nj; b += 4) {
          size_t nb = nj - b < 4 ? nj - b : 4;
          const float *B0 = B[b], *B1 = B[b + (nb > 1)], *B2 = B[b + (nb > 2) * 2], *B3 = B[b + (nb > 3) * 3];
          double s0 = acc[a][b], s1 = acc[a][b + 1], s2 = acc[a][b + 2], s3 = acc[a][b + 3];
          double t0 = acc[a1][b], t1 = acc[a1][b + 1], t2 = acc[a1][b + 2], t3 = acc[a1][b + 3];
          for (size_t m = m0; m < m1; m++) {
            const float *bb[4] = {B0 + m * NF, B1 + m * NF, B2 + m * NF, B3 + m * NF};
            float o[8];
            metric_l2_2x4(A[a] + m * NF, A[a1] + m * NF, bb, o);
            s0 += o[0], s1 += o[1], s2 += o[2], s3 += o[3];
            t0 += o[4], t1 += o[5], t2 += o[6], t3 += o[7];
          }
          acc[a][b] = s0, acc[a][b + 1] = s1, acc[a][b + 2] = s2, acc[a][b + 3] = s3;
          acc[a1][b] = t0, acc[a1][b + 1] = t1, acc[a1][b + 2] = t2, acc[a1][b + 3] = t3;
        }
      }
    }
    for (size_t a = 0; a < ni; a++)
      for (size_t b = (bi == bj ? a + 1 : 0); b < nj; b++) c->D[ns_cond_index(c->n, i0 + a, j0 + b)] = (float)acc[a][b];
    size_t d = atomic_fetch_add(&c->done, 1) + 1;
    if (tid == 0 && c->progress && (d % 64 == 0 || d == c->ntiles)) c->progress(c->pctx, "distances", d, c->ntiles);
  }
}

ns_status ns_clib_distance_matrix(const ns_featset *fs, const size_t *idx, size_t n, int threads,
                                  ns_progress_fn progress, void *pctx, float **out) {
  *out = NULL;
  if (!fs) return ns_errorf(NS_ERR_INVAL, "distance matrix: no features");
  if (!idx) n = fs->n;
  for (size_t i = 0; idx && i < n; i++)
    if (idx[i] >= fs->n) return ns_errorf(NS_ERR_RANGE, "distance matrix: index %zu outside the %zu segments", idx[i], fs->n);
  size_t N = ns_cond_size(n);
  float *D = malloc((N ? N : 1) * sizeof *D);
  if (!D) return ns_errorf(NS_ERR_NOMEM, "distance matrix for %zu segments (%zu MiB)", n, N * 4 >> 20);
  dm_ctx c = {.fs = fs, .idx = idx, .n = n, .nb = (n + TILE - 1) / TILE, .D = D, .progress = progress, .pctx = pctx};
  c.ntiles = c.nb * (c.nb + 1) / 2;
  atomic_init(&c.next, 0);
  atomic_init(&c.done, 0);
  if (n > 1) ns_clust_parallel(threads, dm_worker, &c);
  *out = D;
  return NS_OK;
}

/* ---- building ---- */

static void cluster_clear(ns_clib_cluster *c) {
  free(c->members), free(c->member_dist), free(c->rep_weight), free(c->rep_feat), free(c->centroid);
  free(c->mac), free(c->mac_weight), free(c->stratum), free(c->cover);
  memset(c, 0, sizeof *c);
}

void ns_clib_free(ns_clib *lib) {
  if (!lib) return;
  if (lib->metrics)
    for (size_t m = 0; m < lib->M; m++) free(lib->metrics[m]);
  free(lib->metrics);
  for (size_t c = 0; lib->clusters && c < lib->n_clusters; c++) cluster_clear(&lib->clusters[c]);
  free(lib->clusters);
  free(lib->sweep[0].silhouette), free(lib->sweep[1].silhouette);
  free(lib);
}

typedef struct dist_ix {
  double d;
  size_t i;
} dist_ix;

static int cmp_dist_ix(const void *a, const void *b) {
  const dist_ix *p = a, *q = b;
  if (p->d != q->d) return p->d < q->d ? -1 : 1;
  return p->i < q->i ? -1 : p->i > q->i; /* deterministic on ties */
}

static void mean_of(const ns_featset *fs, const size_t *rows, size_t k, double *tmp, float *out) {
  size_t len = fs->M * NF;
  memset(tmp, 0, len * sizeof *tmp);
  for (size_t r = 0; r < k; r++) {
    const float *f = fs->f + rows[r] * len;
    for (size_t q = 0; q < len; q++) tmp[q] += f[q];
  }
  for (size_t q = 0; q < len; q++) out[q] = (float)(tmp[q] / (double)k);
}

/* Closeness-style weights: 1 - 0.9 * (v - min) / (max - min), 1 if flat. */
static void affine_weights(const double *v, size_t n, float *w) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
  for (size_t i = 0; i < n; i++) w[i] = hi > lo ? (float)(1.0 - 0.9 * (v[i] - lo) / (hi - lo)) : 1.0f;
}

typedef struct strat_ix {
  size_t grp, j; /* group rank (largest group 0), sample index */
  double cent;   /* mean distance to the rest of its group */
} strat_ix;

static int cmp_strat(const void *a, const void *b) {
  const strat_ix *p = a, *q = b;
  if (p->grp != q->grp) return p->grp < q->grp ? -1 : 1;
  if (p->cent != q->cent) return p->cent < q->cent ? -1 : 1;
  return p->j < q->j ? -1 : p->j > q->j;
}

/* Step 7 (ns_clib.h): a broad cluster holds several patterns, and members
 * taken by distance rank give its model the commonest ones only; the others
 * are then flagged whole. di is in member order. */
#define STRATA_SAMPLE 512
static ns_status cover_groups(const ns_featset *fs, const size_t *rows, const dist_ix *di, size_t strata, int threads,
                              ns_clib_cluster *c) {
  size_t sz = c->size, n_rep = c->n_rep, rest = sz - n_rep, len = fs->M * NF;
  if (strata < 2 || rest <= 2 * strata) return NS_OK;
  size_t n = rest < STRATA_SAMPLE ? rest : STRATA_SAMPLE, gmin = n / (4 * strata) > 2 ? n / (4 * strata) : 2;
  size_t *pos = malloc(n * sizeof *pos), *idx = malloc(n * sizeof *idx), *gsize = calloc(strata, sizeof *gsize);
  size_t *grank = malloc(strata * sizeof *grank), *rank_of = malloc(strata * sizeof *rank_of);
  size_t *medoid = malloc(strata * sizeof *medoid);
  int *lab = malloc(n * sizeof *lab);
  strat_ix *sx = malloc(n * sizeof *sx);
  float *D = NULL;
  ns_merge *z = NULL;
  ns_status st = NS_OK;
  c->stratum = malloc(sz * sizeof *c->stratum);
  c->cover = malloc(n * sizeof *c->cover);
  if (!pos || !idx || !gsize || !grank || !rank_of || !medoid || !lab || !sx || !c->stratum || !c->cover) {
    st = ns_errorf(NS_ERR_NOMEM, "sub-patterns of a cluster of %zu segments", sz);
    goto done;
  }
  for (size_t j = 0; j < n; j++)
    pos[j] = n_rep + (size_t)((double)j * (double)rest / (double)n), idx[j] = rows[di[pos[j]].i];
  if ((st = ns_clib_distance_matrix(fs, idx, n, threads, NULL, NULL, &D)) ||
      (st = ns_clust_hac(D, n, NS_LINKAGE_WARD, NULL, NULL, &z)) || (st = ns_clust_cut(z, n, strata, lab)))
    goto done;
  for (size_t j = 0; j < n; j++) gsize[lab[j]]++;
  // Groups by size, largest first (ties: first appearance).
  for (size_t g = 0; g < strata; g++) grank[g] = g;
  for (size_t g = 1; g < strata; g++)
    for (size_t h = g; h > 0 && gsize[grank[h - 1]] < gsize[grank[h]]; h--) {
      size_t t = grank[h];
      grank[h] = grank[h - 1], grank[h - 1] = t;
    }
  size_t nq = 0;
  for (size_t r = 0; r < strata; r++) rank_of[grank[r]] = r, nq += gsize[grank[r]] >= gmin;
  for (size_t j = 0; j < n; j++) {
    double sum = 0;
    for (size_t k = 0; k < n; k++)
      if (k != j && lab[k] == lab[j]) sum += D[ns_cond_index(n, j, k)];
    size_t g = (size_t)lab[j];
    sx[j] = (strat_ix){rank_of[g], j, gsize[g] > 1 ? sum / (double)(gsize[g] - 1) : 0};
  }
  qsort(sx, n, sizeof *sx, cmp_strat);
  c->n_cover = 0;
  for (size_t q = 0; q < n; q++) {
    if (sx[q].grp >= nq) break;
    if (q == 0 || sx[q].grp != sx[q - 1].grp) medoid[sx[q].grp] = idx[sx[q].j];
    c->cover[c->n_cover++] = (uint64_t)pos[sx[q].j];
  }
  c->n_strata = nq;
  for (size_t m = 0; m < sz; m++) {
    const float *f = fs->f + rows[di[m].i] * len;
    double best = INFINITY;
    c->stratum[m] = -1;
    for (size_t r = 0; r < nq; r++) {
      double d = ns_clib_distance(f, fs->f + medoid[r] * len, fs->M);
      if (d < best) best = d, c->stratum[m] = (int32_t)r;
    }
  }
done:
  free(pos), free(idx), free(gsize), free(grank), free(rank_of), free(medoid), free(lab), free(sx);
  free(D), free(z);
  return st;
}

ns_status ns_clib_cluster_fill(const ns_featset *fs, const size_t *rows, size_t sz, const ns_clib_params *p,
                               ns_clib_cluster *c) {
  size_t M = fs->M, len = M * NF, n_rep = p->n_rep;
  ns_status st = NS_OK;
  double *tmp = malloc(len * sizeof *tmp), *dv = NULL;
  float *c0 = malloc(len * sizeof *c0);
  dist_ix *di = malloc(sz * sizeof *di);
  size_t *rep_rows = NULL;
  c->size = sz;
  c->n_rep = sz < n_rep ? sz : n_rep;
  c->members = malloc(sz * sizeof *c->members);
  c->member_dist = malloc(sz * sizeof *c->member_dist);
  c->rep_weight = malloc(c->n_rep * sizeof *c->rep_weight);
  c->rep_feat = malloc(c->n_rep * len * sizeof *c->rep_feat);
  c->centroid = malloc(len * sizeof *c->centroid);
  rep_rows = calloc(c->n_rep ? c->n_rep : 1, sizeof *rep_rows);
  dv = malloc(c->n_rep * sizeof *dv);
  if (!tmp || !c0 || !di || !c->members || !c->member_dist || !c->rep_weight || !c->rep_feat || !c->centroid ||
      !rep_rows || !dv) {
    st = ns_errorf(NS_ERR_NOMEM, "cluster of %zu segments", sz);
    goto done;
  }
  mean_of(fs, rows, sz, tmp, c0);
  for (size_t r = 0; r < sz; r++) di[r] = (dist_ix){ns_clib_distance(fs->f + rows[r] * len, c0, M), r};
  qsort(di, sz, sizeof *di, cmp_dist_ix);
  for (size_t r = 0; r < c->n_rep; r++) rep_rows[r] = rows[di[r].i];
  mean_of(fs, rep_rows, c->n_rep, tmp, c->centroid);
  // Distances to the final centroid; representatives first, then the rest.
  for (size_t r = 0; r < sz; r++) di[r].d = ns_clib_distance(fs->f + rows[di[r].i] * len, c->centroid, M);
  qsort(di, c->n_rep, sizeof *di, cmp_dist_ix);
  qsort(di + c->n_rep, sz - c->n_rep, sizeof *di, cmp_dist_ix);
  c->radius = 0;
  for (size_t r = 0; r < sz; r++) {
    size_t row = rows[di[r].i];
    c->members[r] = fs->ids[row];
    c->member_dist[r] = (float)di[r].d;
    if (c->member_dist[r] > c->radius) c->radius = c->member_dist[r]; /* the stored values bound it */
    if (r < c->n_rep) {
      memcpy(c->rep_feat + r * len, fs->f + row * len, len * sizeof(float));
      dv[r] = di[r].d;
    }
  }
  affine_weights(dv, c->n_rep, c->rep_weight);
  /* Sub-patterns are workloads; an idle window has none (its variety is the
   * tail of whatever ran before), and covering it only tightened thresholds. */
  st = cover_groups(fs, rows, di, c->kind == NS_SEG_JOB ? p->strata : 0, p->threads, c);
done:
  free(tmp), free(c0), free(di), free(rep_rows), free(dv);
  return st;
}

static ns_status copy_names(ns_clib *lib, const char *const *metrics, size_t M) {
  lib->metrics = calloc(M, sizeof *lib->metrics);
  if (!lib->metrics) return NS_ERR_NOMEM;
  lib->M = M;
  for (size_t m = 0; m < M; m++) {
    if (!metrics || !metrics[m]) return ns_errorf(NS_ERR_INVAL, "cluster library: metric %zu has no name", m);
    if (!(lib->metrics[m] = strdup(metrics[m]))) return NS_ERR_NOMEM;
  }
  return NS_OK;
}

ns_status ns_clib_build(const ns_featset *fs, const char *const *metrics, const ns_clib_params *p,
                        ns_progress_fn progress, void *pctx, ns_clib **out) {
  *out = NULL;
  if (!fs || !p) return ns_errorf(NS_ERR_INVAL, "cluster library: no features or parameters");
  if (fs->n == 0) return ns_errorf(NS_ERR_EMPTY, "cluster library: no training segments");
  if (p->n_rep < 1) return ns_errorf(NS_ERR_RANGE, "clust_representatives must be >= 1");
  if (p->k_min > p->k_max)
    return ns_errorf(NS_ERR_RANGE, "clust_k_min = %zu is above clust_k_max = %zu", p->k_min, p->k_max);
  for (size_t q = 0; q < fs->n * fs->M * NF; q++)
    if (!isfinite(fs->f[q]))
      return ns_errorf(NS_ERR_NONFINITE, "segment %lld: feature %zu of metric %zu is not finite",
                       (long long)fs->ids[q / (fs->M * NF)], q % NF, (q / NF) % fs->M);
  ns_clib *lib = calloc(1, sizeof *lib);
  size_t *idx = malloc(fs->n * sizeof *idx), *rows = malloc(fs->n * sizeof *rows);
  float *D = NULL;
  ns_clust_result *r = NULL;
  ns_status st = NS_OK;
  if (!lib || !idx || !rows) {
    st = NS_ERR_NOMEM;
    goto fail;
  }
  lib->params = *p;
  if ((st = copy_names(lib, metrics, fs->M))) goto fail;
  /* one_pool: a single pass over everything; the clusters are kind job, so
   * an idle segment is matched against them (no cluster of its kind). */
  for (int kind = NS_SEG_JOB; kind <= (p->one_pool ? NS_SEG_JOB : NS_SEG_IDLE); kind++) {
    size_t nk = 0;
    for (size_t i = 0; i < fs->n; i++)
      if (p->one_pool || (int)fs->kind[i] == kind) idx[nk++] = i;
    if (nk == 0) continue;
    if ((st = ns_clib_distance_matrix(fs, idx, nk, p->threads, progress, pctx, &D))) goto fail;
    ns_clust_opts o = {.linkage = p->linkage,
                       .k_min = p->k_min,
                       .k_max = p->k_max,
                       .min_size = p->min_size,
                       .threads = p->threads,
                       .progress = progress,
                       .progress_ctx = pctx};
    if ((st = ns_clust_select(D, nk, &o, &r))) goto fail;
    free(D);
    D = NULL;
    ns_clib_sweep *sw = &lib->sweep[kind];
    *sw = (ns_clib_sweep){.n = nk, .k_lo = r->k_lo, .k_hi = r->k_hi, .k_best = r->k_best, .k = r->k,
                          .sil_best = r->sil_best};
    if (r->k_hi >= r->k_lo) {
      size_t ns = r->k_hi - r->k_lo + 1;
      if (!(sw->silhouette = malloc(ns * sizeof *sw->silhouette))) goto oom;
      memcpy(sw->silhouette, r->silhouette, ns * sizeof *sw->silhouette);
    }
    ns_clib_cluster *grown = realloc(lib->clusters, (lib->n_clusters + r->k) * sizeof *grown);
    if (!grown) goto oom;
    lib->clusters = grown;
    for (size_t c = 0; c < r->k; c++) {
      ns_clib_cluster *cl = &lib->clusters[lib->n_clusters];
      memset(cl, 0, sizeof *cl);
      lib->n_clusters++;
      cl->kind = (ns_seg_kind)kind;
      cl->label = (int)c;
      size_t sz = 0;
      for (size_t i = 0; i < nk; i++)
        if ((size_t)r->labels[i] == c) rows[sz++] = idx[i];
      if ((st = ns_clib_cluster_fill(fs, rows, sz, p, cl))) goto fail;
    }
    ns_clust_result_free(r);
    r = NULL;
  }
  free(idx), free(rows);
  *out = lib;
  return NS_OK;
oom:
  st = ns_errorf(NS_ERR_NOMEM, "cluster library: out of memory");
fail:
  free(idx), free(rows), free(D);
  ns_clust_result_free(r);
  ns_clib_free(lib);
  return st;
}

static ns_status check_schema(const ns_clib *lib, const ns_segment *s) {
  if (s->M != lib->M)
    return ns_errorf(NS_ERR_SCHEMA, "segment %lld has %zu metrics, the cluster library %zu", (long long)s->id, s->M,
                     lib->M);
  for (size_t m = 0; m < s->M; m++)
    if (!s->metrics || !s->metrics[m] || strcmp(s->metrics[m], lib->metrics[m]) != 0)
      return ns_errorf(NS_ERR_SCHEMA, "segment %lld: metric %zu is '%s', the cluster library has '%s'",
                       (long long)s->id, m, s->metrics && s->metrics[m] ? s->metrics[m] : "(none)", lib->metrics[m]);
  return NS_OK;
}

ns_status ns_clib_set_mac(ns_clib *lib, size_t ci, const ns_segment *const *reps) {
  if (!lib || ci >= lib->n_clusters) return ns_errorf(NS_ERR_RANGE, "MAC: no cluster %zu", ci);
  ns_clib_cluster *c = &lib->clusters[ci];
  size_t M = lib->M;
  ns_status st = NS_OK;
  double *acc = calloc(M, sizeof *acc), wsum = 0;
  float *mac = malloc(M * sizeof *mac), *w = malloc(M * sizeof *w);
  if (!acc || !mac || !w) {
    st = NS_ERR_NOMEM;
    goto fail;
  }
  for (size_t r = 0; r < c->n_rep; r++) {
    const ns_segment *s = reps[r];
    if (!s) {
      st = ns_errorf(NS_ERR_INVAL, "MAC: representative %zu of cluster %zu missing", r, ci);
      goto fail;
    }
    if ((st = check_schema(lib, s)) || (st = ns_segment_check(s))) goto fail;
    if (s->id && c->members[r] && s->id != c->members[r]) {
      st = ns_errorf(NS_ERR_INVAL, "MAC: representative %zu of cluster %zu is segment %lld, got %lld", r, ci,
                     (long long)c->members[r], (long long)s->id);
      goto fail;
    }
    double wr = c->rep_weight[r];
    wsum += wr;
    for (size_t m = 0; m < M && s->T >= 2; m++) {
      double sum = 0;
      for (size_t t = 1; t < s->T; t++) sum += fabs((double)s->x[t * M + m] - (double)s->x[(t - 1) * M + m]);
      acc[m] += wr * sum / (double)(s->T - 1);
    }
  }
  double *v = acc;
  for (size_t m = 0; m < M; m++) v[m] = wsum > 0 ? v[m] / wsum : 0;
  for (size_t m = 0; m < M; m++) mac[m] = (float)v[m];
  affine_weights(v, M, w);
  double tot = 0;
  for (size_t m = 0; m < M; m++) tot += w[m];
  for (size_t m = 0; m < M; m++) w[m] = (float)(w[m] / tot);
  free(c->mac), free(c->mac_weight);
  c->mac = mac, c->mac_weight = w;
  free(acc);
  return NS_OK;
fail:
  free(acc), free(mac), free(w);
  return st;
}

/* ---- matching ---- */

ns_status ns_clib_match_features(const ns_clib *lib, ns_seg_kind kind, const float *feat, ns_clib_match *best,
                                 size_t n_best, size_t *n_out) {
  *n_out = 0;
  if (!lib || !feat) return ns_errorf(NS_ERR_INVAL, "match: no library or features");
  if (lib->n_clusters == 0) return ns_errorf(NS_ERR_EMPTY, "match: the cluster library has no clusters");
  size_t M = lib->M, len = M * NF;
  for (size_t q = 0; q < len; q++)
    if (!isfinite(feat[q]))
      return ns_errorf(NS_ERR_NONFINITE, "match: feature %zu of metric '%s' is not finite", q % NF,
                       lib->metrics[q / NF]);
  bool any = false;
  for (size_t c = 0; c < lib->n_clusters; c++) any |= lib->clusters[c].kind == kind;
  dist_ix *di = malloc(lib->n_clusters * sizeof *di);
  if (!di) return NS_ERR_NOMEM;
  size_t n = 0;
  for (size_t c = 0; c < lib->n_clusters; c++)
    if (!any || lib->clusters[c].kind == kind) di[n++] = (dist_ix){ns_clib_distance(feat, lib->clusters[c].centroid, M), c};
  qsort(di, n, sizeof *di, cmp_dist_ix);
  size_t k = n < n_best ? n : n_best;
  for (size_t r = 0; r < k; r++) {
    const ns_clib_cluster *c = &lib->clusters[di[r].i];
    ns_clib_match *o = &best[r];
    *o = (ns_clib_match){.cluster = di[r].i, .kind = c->kind, .label = c->label, .db_id = c->db_id,
                         .distance = di[r].d, .limit = lib->params.radius_factor * c->radius};
    o->unmatched = o->distance > o->limit;
    o->rep_distance = INFINITY;
    for (size_t q = 0; q < c->n_rep; q++) {
      double d = ns_clib_distance(feat, c->rep_feat + q * len, M);
      if (d < o->rep_distance) o->rep_distance = d, o->nearest_rep = q;
    }
  }
  free(di);
  *n_out = k;
  return NS_OK;
}

ns_status ns_clib_match_segment(const ns_clib *lib, const ns_segment *seg, ns_clib_match *best, size_t n_best,
                                size_t *n_out) {
  *n_out = 0;
  if (!lib || !seg) return ns_errorf(NS_ERR_INVAL, "match: no library or segment");
  ns_status st = check_schema(lib, seg);
  if (st) return st;
  float *f = NULL;
  if ((st = ns_clib_segment_features(seg, &lib->params, &f))) return st;
  st = ns_clib_match_features(lib, seg->kind, f, best, n_best, n_out);
  free(f);
  return st;
}

/* ---- binary form ---- */

#define CLIB_MAGIC "NSCLIB\0\1"
#define CLIB_FORMAT 2u /* 2: sub-patterns (clust_strata); 1 is read as none */

typedef struct wbuf {
  unsigned char *p;
  size_t n, cap;
  bool oom;
} wbuf;

static void w_put(wbuf *b, const void *src, size_t n) {
  if (b->oom) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) {
      b->oom = true;
      return;
    }
    b->p = q, b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, src, n);
  b->n += n;
}
static void w_u64(wbuf *b, uint64_t v) { w_put(b, &v, 8); }
static void w_f64(wbuf *b, double v) { w_put(b, &v, 8); }


ns_status ns_clib_serialize(const ns_clib *lib, void **buf, size_t *n) {
  *buf = NULL, *n = 0;
  if (!lib) return ns_errorf(NS_ERR_INVAL, "serialize: no library");
  wbuf b = {0};
  const ns_clib_params *p = &lib->params;
  size_t len = lib->M * NF;
  w_put(&b, CLIB_MAGIC, 8);
  w_u64(&b, CLIB_FORMAT);
  w_u64(&b, (uint64_t)p->linkage), w_u64(&b, p->k_min), w_u64(&b, p->k_max), w_u64(&b, p->min_size);
  w_u64(&b, p->n_rep), w_u64(&b, (uint64_t)p->match_len_ms), w_f64(&b, p->radius_factor), w_f64(&b, p->feat_fs);
  w_u64(&b, p->strata);
  w_u64(&b, NF), w_u64(&b, lib->M);
  for (size_t m = 0; m < lib->M; m++) {
    size_t l = strlen(lib->metrics[m]);
    w_u64(&b, l);
    w_put(&b, lib->metrics[m], l);
  }
  for (int k = 0; k < 2; k++) {
    const ns_clib_sweep *s = &lib->sweep[k];
    size_t ns = s->k_hi >= s->k_lo && s->silhouette ? s->k_hi - s->k_lo + 1 : 0;
    w_u64(&b, s->n), w_u64(&b, s->k_lo), w_u64(&b, s->k_hi), w_u64(&b, s->k_best), w_u64(&b, s->k);
    w_f64(&b, s->sil_best), w_u64(&b, ns);
    w_put(&b, s->silhouette, ns * sizeof(double));
  }
  w_u64(&b, lib->n_clusters);
  for (size_t ci = 0; ci < lib->n_clusters; ci++) {
    const ns_clib_cluster *c = &lib->clusters[ci];
    w_u64(&b, (uint64_t)c->kind), w_u64(&b, (uint64_t)c->label), w_u64(&b, c->size), w_u64(&b, c->n_rep);
    w_f64(&b, c->radius);
    w_put(&b, c->members, c->size * sizeof *c->members);
    w_put(&b, c->member_dist, c->size * sizeof *c->member_dist);
    w_put(&b, c->rep_weight, c->n_rep * sizeof *c->rep_weight);
    w_put(&b, c->centroid, len * sizeof(float));
    w_put(&b, c->rep_feat, c->n_rep * len * sizeof(float));
    w_u64(&b, c->mac && c->mac_weight);
    if (c->mac && c->mac_weight) {
      w_put(&b, c->mac, lib->M * sizeof(float));
      w_put(&b, c->mac_weight, lib->M * sizeof(float));
    }
    w_u64(&b, c->n_strata);
    if (c->n_strata) {
      w_put(&b, c->stratum, c->size * sizeof *c->stratum);
      w_u64(&b, c->n_cover);
      w_put(&b, c->cover, c->n_cover * sizeof *c->cover);
    }
  }
  if (!b.oom) w_u64(&b, ns_fnv1a64(b.p, b.n));
  if (b.oom) {
    free(b.p);
    return ns_errorf(NS_ERR_NOMEM, "serialize: cluster library too large");
  }
  *buf = b.p, *n = b.n;
  return NS_OK;
}

typedef struct rbuf {
  const unsigned char *p;
  size_t n, off;
  bool bad;
} rbuf;

static void r_get(rbuf *b, void *dst, size_t n) {
  if (b->bad || n > b->n - b->off) {
    b->bad = true;
    if (dst && n) memset(dst, 0, n);
    return;
  }
  memcpy(dst, b->p + b->off, n);
  b->off += n;
}
static uint64_t r_u64(rbuf *b) {
  uint64_t v = 0;
  r_get(b, &v, 8);
  return v;
}
static double r_f64(rbuf *b) {
  double v = 0;
  r_get(b, &v, 8);
  return v;
}
/* An array of cnt elements of sz bytes, refusing counts the buffer cannot hold. */
static void *r_arr(rbuf *b, uint64_t cnt, size_t sz) {
  if (b->bad || (sz && cnt > (b->n - b->off) / sz)) {
    b->bad = true;
    return NULL;
  }
  size_t bytes = (size_t)cnt * sz;
  void *q = malloc(bytes > 0 ? bytes : 1);
  if (!q) {
    b->bad = true;
    return NULL;
  }
  r_get(b, q, cnt * sz);
  return q;
}

ns_status ns_clib_deserialize(const void *buf, size_t n, ns_clib **out) {
  *out = NULL;
  if (!buf || n < 24 || memcmp(buf, CLIB_MAGIC, 8) != 0)
    return ns_errorf(NS_ERR_FORMAT, "not a cluster library (bad magic or %zu bytes)", n);
  uint64_t sum;
  memcpy(&sum, (const unsigned char *)buf + n - 8, 8);
  if (ns_fnv1a64(buf, n - 8) != sum) return ns_errorf(NS_ERR_CORRUPT, "cluster library: checksum mismatch");
  rbuf b = {buf, n - 8, 8, false};
  uint64_t fmt = r_u64(&b);
  if (fmt < 1 || fmt > CLIB_FORMAT)
    return ns_errorf(NS_ERR_VERSION, "cluster library format %llu, this build reads 1 to %u", (unsigned long long)fmt,
                     CLIB_FORMAT);
  ns_clib *lib = calloc(1, sizeof *lib);
  if (!lib) return NS_ERR_NOMEM;
  ns_status st = NS_OK;
  ns_clib_params *p = &lib->params;
  p->linkage = (ns_linkage)r_u64(&b), p->k_min = r_u64(&b), p->k_max = r_u64(&b), p->min_size = r_u64(&b);
  p->n_rep = r_u64(&b), p->match_len_ms = (int64_t)r_u64(&b), p->radius_factor = r_f64(&b), p->feat_fs = r_f64(&b);
  p->strata = fmt >= 2 ? r_u64(&b) : 0;
  uint64_t nf = r_u64(&b), M = r_u64(&b);
  if (b.bad || nf != NF || M == 0 || M > 1000000 || (unsigned)p->linkage > NS_LINKAGE_WARD) {
    st = ns_errorf(NS_ERR_FORMAT, "cluster library: bad header (features %llu, metrics %llu)", (unsigned long long)nf,
                   (unsigned long long)M);
    goto fail;
  }
  lib->M = M;
  size_t len = M * NF;
  if (!(lib->metrics = calloc(M, sizeof *lib->metrics))) goto oom;
  for (size_t m = 0; m < M; m++) {
    uint64_t l = r_u64(&b);
    if (b.bad || l > b.n - b.off) goto bad;
    char *s = malloc(l + 1);
    if (!s) goto oom;
    r_get(&b, s, l);
    s[l] = 0;
    lib->metrics[m] = s;
  }
  for (int k = 0; k < 2; k++) {
    ns_clib_sweep *s = &lib->sweep[k];
    s->n = r_u64(&b), s->k_lo = r_u64(&b), s->k_hi = r_u64(&b), s->k_best = r_u64(&b), s->k = r_u64(&b);
    s->sil_best = r_f64(&b);
    uint64_t ns = r_u64(&b);
    if (ns && !(s->silhouette = r_arr(&b, ns, sizeof(double)))) goto bad;
  }
  uint64_t nc = r_u64(&b);
  if (b.bad || nc > (b.n - b.off) / 40) goto bad;
  if (nc && !(lib->clusters = calloc(nc, sizeof *lib->clusters))) goto oom;
  for (size_t ci = 0; ci < nc; ci++) {
    ns_clib_cluster *c = &lib->clusters[ci];
    lib->n_clusters = ci + 1;
    c->kind = (ns_seg_kind)r_u64(&b), c->label = (int)r_u64(&b), c->size = r_u64(&b), c->n_rep = r_u64(&b);
    c->radius = r_f64(&b);
    if (b.bad || c->n_rep > c->size || c->size == 0 || (c->kind != NS_SEG_JOB && c->kind != NS_SEG_IDLE)) goto bad;
    if (!(c->members = r_arr(&b, c->size, sizeof *c->members)) ||
        !(c->member_dist = r_arr(&b, c->size, sizeof *c->member_dist)) ||
        !(c->rep_weight = r_arr(&b, c->n_rep, sizeof *c->rep_weight)) ||
        !(c->centroid = r_arr(&b, len, sizeof(float))) ||
        !(c->rep_feat = r_arr(&b, (uint64_t)c->n_rep * len, sizeof(float))))
      goto bad;
    if (r_u64(&b)) {
      if (!(c->mac = r_arr(&b, M, sizeof(float))) || !(c->mac_weight = r_arr(&b, M, sizeof(float)))) goto bad;
    }
    if (fmt >= 2 && (c->n_strata = r_u64(&b))) {
      if (b.bad || c->n_strata > c->size || !(c->stratum = r_arr(&b, c->size, sizeof *c->stratum))) goto bad;
      c->n_cover = r_u64(&b);
      if (b.bad || c->n_cover > c->size || !(c->cover = r_arr(&b, c->n_cover, sizeof *c->cover))) goto bad;
      for (size_t m = 0; m < c->size; m++)
        if (c->stratum[m] < -1 || c->stratum[m] >= (int64_t)c->n_strata) goto bad;
      for (size_t q = 0; q < c->n_cover; q++)
        if (c->cover[q] >= c->size || c->stratum[c->cover[q]] < 0) goto bad;
    }
  }
  if (b.bad || b.off != b.n) goto bad;
  *out = lib;
  return NS_OK;
bad:
  st = ns_errorf(NS_ERR_CORRUPT, "cluster library: truncated or inconsistent at byte %zu of %zu", b.off, n);
  goto fail;
oom:
  st = NS_ERR_NOMEM;
fail:
  ns_clib_free(lib);
  return st;
}
