/* Baselines (z-score, dense autoencoder), their serialisation, and the C3
 * equal-length cuts. */
#include "ns_baseline.h"
#include "ns_hash.h"
#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ns_baseline {
  ns_baseline_kind kind;
  size_t M;
  char **metrics;
  float *mac;          /* M */
  ns_baseline_opts o;
  ns_score_stats stats;
  float *mean, *sigma; /* z-score */
  size_t n_params;     /* AE */
  float *p;            /* AE parameters, layout in ns_baseline.h */
};

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single(void) { openblas_set_num_threads(1); }

const char *ns_baseline_kind_name(ns_baseline_kind k) {
  switch (k) {
    case NS_BASELINE_ZSCORE: return "zscore";
    case NS_BASELINE_DENSE_AE: return "ae";
    default: return "?";
  }
}

ns_status ns_baseline_kind_parse(const char *s, ns_baseline_kind *out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_baseline_kind_parse: NULL output");
  if (s && strcmp(s, "zscore") == 0) *out = NS_BASELINE_ZSCORE;
  else if (s && (strcmp(s, "ae") == 0 || strcmp(s, "dense_ae") == 0)) *out = NS_BASELINE_DENSE_AE;
  else return ns_errorf(NS_ERR_RANGE, "unknown baseline '%s' (choices: zscore, ae)", s ? s : "(null)");
  return NS_OK;
}

void ns_baseline_opts_default(ns_baseline_opts *o) {
  memset(o, 0, sizeof *o);
  o->hidden = 64;
  o->bottleneck = 16;
  o->epochs = 20;
  o->batch = 256;
  o->lr = 1e-3;
  o->seed = 42;
  o->min_sigma = 1e-3;
}

ns_status ns_baseline_opts_from_config(const ns_config *cfg, ns_baseline_opts *o) {
  if (!o) return ns_errorf(NS_ERR_INVAL, "ns_baseline_opts_from_config: NULL output");
  ns_baseline_opts_default(o);
  if (!cfg) return ns_errorf(NS_ERR_INVAL, "ns_baseline_opts_from_config: NULL config");
  o->hidden = (int)ns_cfg_int(cfg, NS_CFG_baseline_ae_hidden);
  o->bottleneck = (int)ns_cfg_int(cfg, NS_CFG_baseline_ae_bottleneck);
  o->epochs = (int)ns_cfg_int(cfg, NS_CFG_baseline_ae_epochs);
  o->batch = (int)ns_cfg_int(cfg, NS_CFG_baseline_ae_batch);
  o->lr = ns_cfg_double(cfg, NS_CFG_baseline_ae_lr);
  o->min_sigma = ns_cfg_double(cfg, NS_CFG_baseline_min_sigma);
  o->seed = (uint64_t)ns_cfg_int(cfg, NS_CFG_ablation_seed);
  return NS_OK;
}

void ns_baseline_free(ns_baseline *b) {
  if (!b) return;
  for (size_t m = 0; b->metrics && m < b->M; m++) free(b->metrics[m]);
  free(b->metrics), free(b->mac), free(b->mean), free(b->sigma), free(b->p);
  free(b);
}

ns_baseline_kind ns_baseline_get_kind(const ns_baseline *b) { return b->kind; }
size_t ns_baseline_n_metrics(const ns_baseline *b) { return b->M; }
const char *ns_baseline_metric_name(const ns_baseline *b, size_t i) { return i < b->M ? b->metrics[i] : NULL; }
const float *ns_baseline_mac_weights(const ns_baseline *b) { return b->mac; }
const ns_baseline_opts *ns_baseline_get_opts(const ns_baseline *b) { return &b->o; }
const ns_score_stats *ns_baseline_score_stats(const ns_baseline *b) { return &b->stats; }
void ns_baseline_set_score_stats(ns_baseline *b, const ns_score_stats *s) { b->stats = *s; }
const float *ns_baseline_zscore_mean(const ns_baseline *b) { return b->mean; }
const float *ns_baseline_zscore_sigma(const ns_baseline *b) { return b->sigma; }
size_t ns_baseline_n_params(const ns_baseline *b) { return b->n_params; }
float *ns_baseline_params(ns_baseline *b) { return b->p; }

ns_status ns_baseline_check_schema(const ns_baseline *b, const char *const *names, size_t n) {
  if (n != b->M) return ns_errorf(NS_ERR_SCHEMA, "baseline was trained on %zu metrics, caller has %zu", b->M, n);
  for (size_t m = 0; m < n; m++)
    if (!names || !names[m] || strcmp(names[m], b->metrics[m]) != 0)
      return ns_errorf(NS_ERR_SCHEMA, "metric %zu is '%s' in the baseline but '%s' in the data", m, b->metrics[m],
                       names && names[m] ? names[m] : "(null)");
  return NS_OK;
}

/* Empty baseline with names and weights; shared by training and loading. */
static ns_status alloc_base(ns_baseline_kind kind, const char *const *names, size_t M, const float *mac,
                            const ns_baseline_opts *o, ns_baseline **out) {
  *out = NULL;
  if ((unsigned)kind >= NS_BASELINE_COUNT_) return ns_errorf(NS_ERR_RANGE, "baseline: unknown kind %d", (int)kind);
  if (M == 0 || M > 100000) return ns_errorf(NS_ERR_RANGE, "baseline: %zu metrics", M);
  if (!names) return ns_errorf(NS_ERR_INVAL, "baseline: no metric names");
  if (kind == NS_BASELINE_DENSE_AE &&
      (o->hidden < 1 || o->hidden > 65536 || o->bottleneck < 1 || o->bottleneck > 65536 || o->batch < 1 ||
       o->epochs < 0 || !(o->lr > 0) || !isfinite(o->lr)))
    return ns_errorf(NS_ERR_RANGE, "autoencoder: bad options hidden=%d bottleneck=%d batch=%d epochs=%d lr=%g",
                     o->hidden, o->bottleneck, o->batch, o->epochs, o->lr);
  if (kind == NS_BASELINE_ZSCORE && !(o->min_sigma > 0 && isfinite(o->min_sigma)))
    return ns_errorf(NS_ERR_RANGE, "z-score: min_sigma %g must be > 0", o->min_sigma);
  if (mac) {
    double tot = 0;
    for (size_t m = 0; m < M; m++) {
      if (!isfinite(mac[m]) || mac[m] < 0)
        return ns_errorf(NS_ERR_RANGE, "baseline: MAC weight %zu (%s) is %g", m, names[m] ? names[m] : "?", mac[m]);
      tot += mac[m];
    }
    if (fabs(tot - 1.0) > 1e-3) return ns_errorf(NS_ERR_RANGE, "baseline: MAC weights sum to %g, not 1", tot);
  }
  ns_baseline *b = calloc(1, sizeof *b);
  if (!b) return NS_ERR_NOMEM;
  b->kind = kind;
  b->M = M;
  b->o = *o;
  b->metrics = calloc(M, sizeof *b->metrics);
  b->mac = malloc(M * sizeof *b->mac);
  if (!b->metrics || !b->mac) goto oom;
  for (size_t m = 0; m < M; m++) {
    if (!names[m]) {
      ns_baseline_free(b);
      return ns_errorf(NS_ERR_INVAL, "baseline: metric %zu has no name", m);
    }
    if (!(b->metrics[m] = strdup(names[m]))) goto oom;
    b->mac[m] = mac ? mac[m] : (float)(1.0 / (double)M);
  }
  if (kind == NS_BASELINE_ZSCORE) {
    b->mean = calloc(M, sizeof *b->mean);
    b->sigma = calloc(M, sizeof *b->sigma);
    if (!b->mean || !b->sigma) goto oom;
  } else {
    size_t h = (size_t)o->hidden, k = (size_t)o->bottleneck;
    b->n_params = h * M + h + k * h + k + h * k + h + M * h + M;
    if (!(b->p = calloc(b->n_params, sizeof *b->p))) goto oom;
  }
  *out = b;
  return NS_OK;
oom:
  ns_baseline_free(b);
  return ns_errorf(NS_ERR_NOMEM, "baseline of %zu metrics", M);
}

/* ---- deterministic random numbers (splitmix64) ---- */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

/* ---- the autoencoder ---- */

typedef struct ae_view {
  size_t M, h, k;
  float *w1, *b1, *w2, *b2, *w3, *b3, *w4, *b4;
} ae_view;

static ae_view ae_split(float *p, size_t M, size_t h, size_t k) {
  ae_view v = {M, h, k, 0, 0, 0, 0, 0, 0, 0, 0};
  v.w1 = p, p += h * M;
  v.b1 = p, p += h;
  v.w2 = p, p += k * h;
  v.b2 = p, p += k;
  v.w3 = p, p += h * k;
  v.b3 = p, p += h;
  v.w4 = p, p += M * h;
  v.b4 = p;
  return v;
}

/* Activations of a batch of n points: a1 (n x h), a2 (n x k), a3 (n x h), y (n x M). */
typedef struct ae_work {
  size_t cap;
  float *a1, *a2, *a3, *y, *d1, *d2, *d3, *dy;
} ae_work;

static void ae_work_free(ae_work *w) {
  free(w->a1), free(w->a2), free(w->a3), free(w->y), free(w->d1), free(w->d2), free(w->d3), free(w->dy);
  memset(w, 0, sizeof *w);
}

static bool ae_work_reserve(ae_work *w, const ae_view *v, size_t n, bool backward) {
  if (n <= w->cap && (!backward || w->dy)) return true;
  ae_work_free(w);
  w->cap = n;
  w->a1 = malloc(n * v->h * sizeof(float));
  w->a2 = malloc(n * v->k * sizeof(float));
  w->a3 = malloc(n * v->h * sizeof(float));
  w->y = malloc(n * v->M * sizeof(float));
  if (backward) {
    w->d1 = malloc(n * v->h * sizeof(float));
    w->d2 = malloc(n * v->k * sizeof(float));
    w->d3 = malloc(n * v->h * sizeof(float));
    w->dy = malloc(n * v->M * sizeof(float));
  }
  bool ok = w->a1 && w->a2 && w->a3 && w->y && (!backward || (w->d1 && w->d2 && w->d3 && w->dy));
  if (!ok) ae_work_free(w);
  return ok;
}

/* out (n x o) = act(in (n x i) . W^T + bias), W o x i. */
static void dense(const float *in, size_t n, size_t i, const float *W, const float *bias, size_t o, bool relu,
                  float *out) {
  for (size_t r = 0; r < n; r++) memcpy(out + r * o, bias, o * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)o, (int)i, 1.0f, in, (int)i, W, (int)i, 1.0f,
              out, (int)o);
  if (relu)
    for (size_t q = 0; q < n * o; q++) out[q] = out[q] > 0 ? out[q] : 0;
}

static void ae_forward(const ae_view *v, const float *x, size_t n, ae_work *w) {
  dense(x, n, v->M, v->w1, v->b1, v->h, true, w->a1);
  dense(w->a1, n, v->h, v->w2, v->b2, v->k, true, w->a2);
  dense(w->a2, n, v->k, v->w3, v->b3, v->h, true, w->a3);
  dense(w->a3, n, v->h, v->w4, v->b4, v->M, false, w->y);
}

/* Given dout (n x o) of a layer out = act(in W^T + b): gW (o x i) and gb (o)
 * are overwritten; din (n x i, may be NULL) = dout W, then masked by the
 * input's own ReLU (in > 0) when in_relu. dout has already been masked. */
static void dense_back(const float *in, size_t n, size_t i, const float *W, size_t o, const float *dout, float *gW,
                       float *gb, float *din, bool in_relu) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)o, (int)i, (int)n, 1.0f, dout, (int)o, in, (int)i, 0.0f,
              gW, (int)i);
  for (size_t c = 0; c < o; c++) gb[c] = 0;
  for (size_t r = 0; r < n; r++)
    for (size_t c = 0; c < o; c++) gb[c] += dout[r * o + c];
  if (!din) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)i, (int)o, 1.0f, dout, (int)o, W, (int)i, 0.0f,
              din, (int)i);
  if (in_relu)
    for (size_t q = 0; q < n * i; q++)
      if (!(in[q] > 0)) din[q] = 0;
}

/* Weighted loss of a batch, sum_r wt_r sum_m W_m (y - x)^2 / n, and (grad
 * != NULL) its gradient. wt NULL = 1 for every point. */
static double ae_loss_grad(const ae_view *v, const float *mac, const float *x, const float *wt, size_t n,
                           ae_work *w, float *grad) {
  ae_forward(v, x, n, w);
  double loss = 0;
  size_t M = v->M;
  for (size_t r = 0; r < n; r++) {
    double wr = wt ? wt[r] : 1.0, acc = 0;
    for (size_t m = 0; m < M; m++) {
      double d = (double)w->y[r * M + m] - (double)x[r * M + m];
      acc += mac[m] * d * d;
      if (grad) w->dy[r * M + m] = (float)(2.0 * wr * mac[m] * d / (double)n);
    }
    loss += wr * acc;
  }
  if (grad) {
    ae_view g = ae_split(grad, v->M, v->h, v->k);
    dense_back(w->a3, n, v->h, v->w4, M, w->dy, g.w4, g.b4, w->d3, true);
    dense_back(w->a2, n, v->k, v->w3, v->h, w->d3, g.w3, g.b3, w->d2, true);
    dense_back(w->a1, n, v->h, v->w2, v->k, w->d2, g.w2, g.b2, w->d1, true);
    dense_back(x, n, M, v->w1, v->h, w->d1, g.w1, g.b1, NULL, false);
  }
  return loss / (double)n;
}

static ae_view ae_of(const ns_baseline *b) {
  return ae_split(b->p, b->M, (size_t)b->o.hidden, (size_t)b->o.bottleneck);
}

ns_status ns_baseline_ae_loss(const ns_baseline *b, const float *x, size_t n, double *loss, float *grad) {
  if (!b || !x || !loss) return ns_errorf(NS_ERR_INVAL, "ns_baseline_ae_loss: NULL argument");
  if (b->kind != NS_BASELINE_DENSE_AE) return ns_errorf(NS_ERR_STATE, "ns_baseline_ae_loss: not an autoencoder");
  if (n == 0) return ns_errorf(NS_ERR_EMPTY, "ns_baseline_ae_loss: no points");
  pthread_once(&blas_once, blas_single);
  ae_view v = ae_of(b);
  ae_work w = {0};
  if (!ae_work_reserve(&w, &v, n, grad != NULL)) return ns_errorf(NS_ERR_NOMEM, "autoencoder: batch of %zu", n);
  *loss = ae_loss_grad(&v, b->mac, x, NULL, n, &w, grad);
  ae_work_free(&w);
  return NS_OK;
}

/* He-uniform weights, zero biases. */
static void ae_init(ns_baseline *b) {
  ae_view v = ae_of(b);
  uint64_t s = b->o.seed ^ 0x6E73626173656C31ull; /* decorrelate from the shuffle stream */
  struct {
    float *w;
    size_t o, i;
  } L[4] = {{v.w1, v.h, v.M}, {v.w2, v.k, v.h}, {v.w3, v.h, v.k}, {v.w4, v.M, v.h}};
  for (int l = 0; l < 4; l++) {
    double a = sqrt(6.0 / (double)L[l].i);
    for (size_t q = 0; q < L[l].o * L[l].i; q++) L[l].w[q] = (float)((2.0 * rng_unit(&s) - 1.0) * a);
  }
}

typedef struct point_ref {
  uint32_t s, t;
} point_ref;

static ns_status ae_train(ns_baseline *b, const ns_train_series *s, size_t n, const point_ref *pts, size_t np) {
  ae_view v = ae_of(b);
  size_t M = b->M, B = (size_t)b->o.batch < np ? (size_t)b->o.batch : np, P = b->n_params;
  ns_status st = NS_OK;
  ae_work w = {0};
  float *g = malloc(P * sizeof *g), *xb = malloc(B * M * sizeof *xb), *wb = malloc(B * sizeof *wb);
  double *m1 = calloc(P, sizeof *m1), *m2 = calloc(P, sizeof *m2);
  size_t *order = malloc(np * sizeof *order);
  if (!g || !xb || !wb || !m1 || !m2 || !order || !ae_work_reserve(&w, &v, B, true)) {
    st = ns_errorf(NS_ERR_NOMEM, "autoencoder training (%zu parameters, batch %zu)", P, B);
    goto done;
  }
  (void)n;
  for (size_t i = 0; i < np; i++) order[i] = i;
  uint64_t rs = b->o.seed;
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  long step = 0;
  for (int ep = 0; ep < b->o.epochs; ep++) {
    for (size_t i = np - 1; i > 0; i--) {
      size_t j = (size_t)(rng_next(&rs) % (uint64_t)(i + 1));
      size_t t = order[i];
      order[i] = order[j], order[j] = t;
    }
    for (size_t off = 0; off < np; off += B) {
      size_t nb = np - off < B ? np - off : B;
      for (size_t r = 0; r < nb; r++) {
        const point_ref *pr = &pts[order[off + r]];
        memcpy(xb + r * M, s[pr->s].x + (size_t)pr->t * M, M * sizeof(float));
        wb[r] = s[pr->s].weight;
      }
      ae_loss_grad(&v, b->mac, xb, wb, nb, &w, g);
      step++;
      double c1 = 1.0 - pow(b1, (double)step), c2 = 1.0 - pow(b2, (double)step);
      for (size_t q = 0; q < P; q++) {
        m1[q] = b1 * m1[q] + (1 - b1) * g[q];
        m2[q] = b2 * m2[q] + (1 - b2) * (double)g[q] * g[q];
        b->p[q] -= (float)(b->o.lr * (m1[q] / c1) / (sqrt(m2[q] / c2) + eps));
      }
    }
  }
  for (size_t q = 0; q < P; q++)
    if (!isfinite(b->p[q])) {
      st = ns_errorf(NS_ERR_NONFINITE, "autoencoder training diverged (parameter %zu); lower the learning rate", q);
      break;
    }
done:
  ae_work_free(&w);
  free(g), free(xb), free(wb), free(m1), free(m2), free(order);
  return st;
}

/* ---- training entry ---- */

static ns_status zscore_fit(ns_baseline *b, const ns_train_series *s, size_t n) {
  size_t M = b->M;
  // Two passes in double: exact enough and order-independent of threads.
  double cnt = 0;
  double *sum = calloc(M, sizeof *sum), *ss = calloc(M, sizeof *ss);
  ns_status st = NS_OK;
  if (!sum || !ss) {
    st = ns_errorf(NS_ERR_NOMEM, "z-score: %zu metrics", M);
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    if (s[i].weight > 0) {
      cnt += (double)s[i].T;
      for (size_t t = 0; t < s[i].T; t++)
        for (size_t m = 0; m < M; m++) sum[m] += s[i].x[t * M + m];
    }
  for (size_t m = 0; m < M; m++) sum[m] /= cnt;
  for (size_t i = 0; i < n; i++)
    if (s[i].weight > 0)
      for (size_t t = 0; t < s[i].T; t++)
        for (size_t m = 0; m < M; m++) {
          double d = s[i].x[t * M + m] - sum[m];
          ss[m] += d * d;
        }
  for (size_t m = 0; m < M; m++) {
    double sd = cnt > 1 ? sqrt(ss[m] / (cnt - 1)) : 0;
    b->mean[m] = (float)sum[m];
    b->sigma[m] = (float)(sd > b->o.min_sigma ? sd : b->o.min_sigma);
  }
done:
  free(sum), free(ss);
  return st;
}

static ns_status train_stats(ns_baseline *b, const ns_train_series *s, size_t n, size_t np) {
  size_t M = b->M, maxT = 0;
  for (size_t i = 0; i < n; i++) maxT = s[i].T > maxT ? s[i].T : maxT;
  float *sc = malloc(np * sizeof *sc), *xh = malloc(maxT * M * sizeof *xh);
  ns_status st = NS_OK;
  if (!sc || !xh) {
    st = ns_errorf(NS_ERR_NOMEM, "baseline: scores of %zu points", np);
    goto done;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(s[i].weight > 0) || s[i].T == 0) continue;
    if ((st = ns_baseline_reconstruct(b, s[i].x, s[i].T, xh))) goto done;
    ns_baseline_score(b, s[i].x, xh, s[i].T, sc + k, NULL);
    k += s[i].T;
  }
  st = ns_score_stats_compute(sc, k, &b->stats);
done:
  free(sc), free(xh);
  return st;
}

ns_status ns_baseline_train(ns_baseline_kind kind, const char *const *metric_names, size_t M,
                            const float *mac_weights, const ns_train_series *s, size_t n,
                            const ns_baseline_opts *opts, ns_baseline **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_baseline_train: NULL output");
  *out = NULL;
  if (!s && n) return ns_errorf(NS_ERR_INVAL, "ns_baseline_train: NULL series");
  ns_baseline_opts o;
  if (opts) o = *opts;
  else ns_baseline_opts_default(&o);
  size_t np = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(s[i].weight) || s[i].weight < 0)
      return ns_errorf(NS_ERR_RANGE, "baseline: series %zu has weight %g", i, s[i].weight);
    if (s[i].T && !s[i].x) return ns_errorf(NS_ERR_INVAL, "baseline: series %zu has no data", i);
    if (s[i].T > UINT32_MAX || n > UINT32_MAX) return ns_errorf(NS_ERR_LIMIT, "baseline: series %zu too long", i);
    for (size_t q = 0; q < s[i].T * M; q++)
      if (!isfinite(s[i].x[q]))
        return ns_errorf(NS_ERR_NONFINITE, "baseline: series %zu row %zu metric %zu is not finite", i, q / M, q % M);
    if (s[i].weight > 0) np += s[i].T;
  }
  if (np == 0) return ns_errorf(NS_ERR_EMPTY, "baseline: no training points (%zu series)", n);
  ns_baseline *b = NULL;
  ns_status st = alloc_base(kind, metric_names, M, mac_weights, &o, &b);
  if (st) return st;
  pthread_once(&blas_once, blas_single);
  point_ref *pts = NULL;
  if (kind == NS_BASELINE_ZSCORE) {
    if ((st = zscore_fit(b, s, n))) goto fail;
  } else {
    if (!(pts = malloc(np * sizeof *pts))) {
      st = ns_errorf(NS_ERR_NOMEM, "baseline: %zu training points", np);
      goto fail;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (s[i].weight > 0)
        for (size_t t = 0; t < s[i].T; t++) pts[k++] = (point_ref){(uint32_t)i, (uint32_t)t};
    ae_init(b);
    if ((st = ae_train(b, s, n, pts, np))) goto fail;
  }
  if ((st = train_stats(b, s, n, np))) goto fail;
  free(pts);
  *out = b;
  return NS_OK;
fail:
  free(pts);
  ns_baseline_free(b);
  return st;
}

/* ---- scoring ---- */

ns_status ns_baseline_reconstruct(const ns_baseline *b, const float *x, size_t T, float *out) {
  if (!b || !x || !out) return ns_errorf(NS_ERR_INVAL, "ns_baseline_reconstruct: NULL argument");
  if (T == 0) return ns_errorf(NS_ERR_EMPTY, "ns_baseline_reconstruct: empty segment");
  size_t M = b->M;
  if (b->kind == NS_BASELINE_ZSCORE) {
    for (size_t t = 0; t < T; t++) memcpy(out + t * M, b->mean, M * sizeof(float));
    return NS_OK;
  }
  pthread_once(&blas_once, blas_single);
  ae_view v = ae_of(b);
  size_t chunk = 1024;
  ae_work w = {0};
  if (!ae_work_reserve(&w, &v, T < chunk ? T : chunk, false))
    return ns_errorf(NS_ERR_NOMEM, "autoencoder: reconstruction buffers");
  for (size_t t0 = 0; t0 < T; t0 += chunk) {
    size_t nb = T - t0 < chunk ? T - t0 : chunk;
    ae_forward(&v, x + t0 * M, nb, &w);
    memcpy(out + t0 * M, w.y, nb * M * sizeof(float));
  }
  ae_work_free(&w);
  return NS_OK;
}

void ns_baseline_score(const ns_baseline *b, const float *x, const float *xhat, size_t T, float *score,
                       float *metric_err) {
  size_t M = b->M;
  for (size_t t = 0; t < T; t++) {
    double acc = 0;
    for (size_t m = 0; m < M; m++) {
      double d = (double)x[t * M + m] - (double)xhat[t * M + m], e;
      if (b->kind == NS_BASELINE_ZSCORE) {
        double z = d / b->sigma[m];
        e = z * z / (double)M;
      } else {
        e = b->mac[m] * d * d;
      }
      acc += e;
      if (metric_err) metric_err[t * M + m] = (float)e;
    }
    score[t] = (float)acc;
  }
}

/* ---- serialisation ---- */

static const char MAGIC[8] = {'N', 'S', 'B', 'A', 'S', 'E', 'L', 0};

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host required");


typedef struct wbuf {
  unsigned char *p;
  size_t n, cap;
  bool fail;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
  if (b->fail || n == 0) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) {
      b->fail = true;
      return;
    }
    b->p = q, b->cap = cap;
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}
#define PUT(b, v) put(b, &(v), sizeof(v))

ns_status ns_baseline_save(const ns_baseline *b, void **buf, size_t *n) {
  if (!buf || !n) return ns_errorf(NS_ERR_INVAL, "ns_baseline_save: NULL output");
  *buf = NULL, *n = 0;
  if (!b) return ns_errorf(NS_ERR_INVAL, "ns_baseline_save: NULL baseline");
  wbuf w = {0};
  uint32_t ver = NS_BASELINE_FORMAT_VERSION, kind = (uint32_t)b->kind;
  uint64_t M = b->M;
  put(&w, MAGIC, 8);
  PUT(&w, ver);
  PUT(&w, kind);
  PUT(&w, M);
  int32_t iv[4] = {b->o.hidden, b->o.bottleneck, b->o.epochs, b->o.batch};
  put(&w, iv, sizeof iv);
  double dv[2] = {b->o.lr, b->o.min_sigma};
  put(&w, dv, sizeof dv);
  PUT(&w, b->o.seed);
  for (size_t m = 0; m < b->M; m++) {
    size_t len = strlen(b->metrics[m]);
    uint16_t l16 = (uint16_t)(len > 65535 ? 65535 : len);
    PUT(&w, l16);
    put(&w, b->metrics[m], l16);
  }
  put(&w, b->mac, b->M * sizeof(float));
  PUT(&w, b->stats.count);
  double sv[4] = {b->stats.mean, b->stats.std, b->stats.min, b->stats.max};
  put(&w, sv, sizeof sv);
  put(&w, b->stats.q, sizeof b->stats.q);
  uint64_t np = b->kind == NS_BASELINE_ZSCORE ? 2 * b->M : b->n_params;
  PUT(&w, np);
  if (b->kind == NS_BASELINE_ZSCORE) {
    put(&w, b->mean, b->M * sizeof(float));
    put(&w, b->sigma, b->M * sizeof(float));
  } else {
    put(&w, b->p, b->n_params * sizeof(float));
  }
  uint32_t crc = w.fail ? 0 : ns_crc32(w.p, w.n);
  PUT(&w, crc);
  if (w.fail) {
    free(w.p);
    return ns_errorf(NS_ERR_NOMEM, "baseline serialisation");
  }
  *buf = w.p, *n = w.n;
  return NS_OK;
}

bool ns_baseline_blob_is(const void *buf, size_t n) { return buf && n >= 8 && memcmp(buf, MAGIC, 8) == 0; }

typedef struct rbuf {
  const unsigned char *p;
  size_t n, pos;
} rbuf;

static bool get(rbuf *r, void *dst, size_t n) {
  if (r->n - r->pos < n) return false;
  memcpy(dst, r->p + r->pos, n);
  r->pos += n;
  return true;
}
#define GET(r, v) get(r, &(v), sizeof(v))

ns_status ns_baseline_load(const void *buf, size_t n, const char *const *expect_names, size_t n_expect,
                           ns_baseline **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_baseline_load: NULL output");
  *out = NULL;
  if (!buf) return ns_errorf(NS_ERR_INVAL, "ns_baseline_load: NULL buffer");
  rbuf r = {buf, n, 0};
  char magic[8];
  uint32_t ver, kind, crc_stored;
  if (n < 8 || !get(&r, magic, 8) || memcmp(magic, MAGIC, 8))
    return ns_errorf(NS_ERR_FORMAT, "baseline blob: not an nsentry baseline (bad magic, %zu bytes)", n);
  if (!GET(&r, ver)) return ns_errorf(NS_ERR_CORRUPT, "baseline blob: truncated (%zu bytes)", n);
  if (ver != NS_BASELINE_FORMAT_VERSION)
    return ns_errorf(NS_ERR_VERSION, "baseline blob: format version %u, this build reads version %d", ver,
                     NS_BASELINE_FORMAT_VERSION);
  if (n < 20) return ns_errorf(NS_ERR_CORRUPT, "baseline blob: truncated (%zu bytes)", n);
  memcpy(&crc_stored, (const unsigned char *)buf + n - 4, 4);
  uint32_t crc = ns_crc32(buf, n - 4);
  if (crc != crc_stored)
    return ns_errorf(NS_ERR_CORRUPT, "baseline blob: checksum mismatch (stored %08x, computed %08x)", crc_stored, crc);
  r.n = n - 4;
  uint64_t M;
  int32_t iv[4];
  double dv[2];
  ns_baseline_opts o;
  ns_baseline_opts_default(&o);
  if (!GET(&r, kind) || !GET(&r, M) || !get(&r, iv, sizeof iv) || !get(&r, dv, sizeof dv) || !GET(&r, o.seed))
    return ns_errorf(NS_ERR_CORRUPT, "baseline blob: truncated header");
  if (kind >= NS_BASELINE_COUNT_) return ns_errorf(NS_ERR_CORRUPT, "baseline blob: unknown kind %u", kind);
  if (M == 0 || M > 100000) return ns_errorf(NS_ERR_CORRUPT, "baseline blob: %llu metrics", (unsigned long long)M);
  o.hidden = iv[0], o.bottleneck = iv[1], o.epochs = iv[2], o.batch = iv[3];
  o.lr = dv[0], o.min_sigma = dv[1];
  ns_status st = NS_OK;
  ns_baseline *b = NULL;
  char **names = calloc((size_t)M, sizeof *names);
  float *mac = malloc((size_t)M * sizeof *mac);
  if (!names || !mac) {
    st = ns_errorf(NS_ERR_NOMEM, "baseline blob: %llu metric names", (unsigned long long)M);
    goto done;
  }
  for (size_t m = 0; m < M; m++) {
    uint16_t l16;
    if (!GET(&r, l16) || r.n - r.pos < l16) {
      st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: truncated metric schema at metric %zu", m);
      goto done;
    }
    if (!(names[m] = malloc((size_t)l16 + 1))) {
      st = NS_ERR_NOMEM;
      goto done;
    }
    get(&r, names[m], l16);
    names[m][l16] = 0;
  }
  if (!get(&r, mac, (size_t)M * sizeof(float))) {
    st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: truncated MAC weights");
    goto done;
  }
  if (expect_names && (st = ns_baseline_check_schema(&(ns_baseline){.M = (size_t)M, .metrics = names},
                                                     expect_names, n_expect)))
    goto done;
  if ((st = alloc_base((ns_baseline_kind)kind, (const char *const *)names, (size_t)M, mac, &o, &b))) {
    char why[512];
    snprintf(why, sizeof why, "%s", ns_err_detail());
    st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: bad header: %s", why);
    goto done;
  }
  double sv[4];
  uint64_t np;
  if (!GET(&r, b->stats.count) || !get(&r, sv, sizeof sv) || !get(&r, b->stats.q, sizeof b->stats.q) ||
      !GET(&r, np)) {
    st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: truncated statistics");
    goto done;
  }
  b->stats.mean = sv[0], b->stats.std = sv[1], b->stats.min = sv[2], b->stats.max = sv[3];
  size_t want = b->kind == NS_BASELINE_ZSCORE ? 2 * b->M : b->n_params;
  if (np != want) {
    st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: %llu parameters stored, header implies %zu",
                   (unsigned long long)np, want);
    goto done;
  }
  bool ok = b->kind == NS_BASELINE_ZSCORE
                ? get(&r, b->mean, b->M * sizeof(float)) && get(&r, b->sigma, b->M * sizeof(float))
                : get(&r, b->p, b->n_params * sizeof(float));
  if (!ok || r.pos != r.n) {
    st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: parameter block of %zu floats, %zu bytes present", want,
                   r.n - r.pos);
    goto done;
  }
  for (size_t m = 0; b->kind == NS_BASELINE_ZSCORE && m < b->M; m++)
    if (!isfinite(b->mean[m]) || !(b->sigma[m] > 0) || !isfinite(b->sigma[m])) {
      st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: metric %zu has mean %g sigma %g", m, b->mean[m], b->sigma[m]);
      goto done;
    }
  for (size_t q = 0; q < b->n_params; q++)
    if (!isfinite(b->p[q])) {
      st = ns_errorf(NS_ERR_CORRUPT, "baseline blob: parameter %zu is not finite", q);
      goto done;
    }
  *out = b;
  b = NULL;
done:
  ns_baseline_free(b);
  for (size_t m = 0; names && m < M; m++) free(names[m]);
  free(names), free(mac);
  return st;
}

/* ---- C3: equal-length cuts ---- */

static bool same_schema(const ns_segment *a, const ns_segment *b) {
  if (a->M != b->M) return false;
  for (size_t m = 0; m < a->M; m++)
    if (strcmp(a->metrics[m], b->metrics[m]) != 0) return false;
  return true;
}

static int cmp_seg(const void *pa, const void *pb) {
  const ns_segment *a = *(ns_segment *const *)pa, *b = *(ns_segment *const *)pb;
  int c = strcmp(a->node, b->node);
  if (c) return c;
  return a->start_ms < b->start_ms ? -1 : a->start_ms > b->start_ms;
}

/* Store the pieces of one contiguous run of rows (row r of the run is the
 * `in_seg[r]`'s row `in_row[r]`). */
typedef struct run_buf {
  const ns_segment **seg;
  size_t *row, n, cap;
} run_buf;

static ns_status flush_run(ns_store *st, const run_buf *rb, size_t full, bool keep_tail, const char *out_split,
                           size_t *piece, size_t *n_out) {
  ns_status s = NS_OK;
  ns_segment *p = NULL;
  for (size_t off = 0; off < rb->n; off += full) {
    size_t rows = full;
    if (off + full > rb->n) {
      if (!keep_tail || rb->n - off < 2) break;
      rows = rb->n - off;
    }
    const ns_segment *s0 = rb->seg[off];
    size_t M = s0->M;
    if ((s = ns_segment_create(rows, M, &p))) return s;
    char job[256];
    snprintf(job, sizeof job, "c3-%s-%zu", s0->node, (*piece)++);
    int64_t t0 = s0->start_ms + (int64_t)rb->row[off] * s0->interval_ms, id = 0;
    bool labels = false;
    for (size_t r = 0; r < rows; r++) labels |= rb->seg[off + r]->labels != NULL;
    if ((s = ns_segment_set_meta(p, s0->cluster, s0->node, job, t0, s0->interval_ms)) ||
        (s = ns_segment_set_metrics(p, s0->metrics)) || (labels && (s = ns_segment_alloc_labels(p))))
      goto done;
    for (size_t r = 0; r < rows; r++) {
      const ns_segment *src = rb->seg[off + r];
      memcpy(p->x + r * M, src->x + rb->row[off + r] * M, M * sizeof(float));
      if (labels) p->labels[r] = src->labels ? src->labels[rb->row[off + r]] : 0;
    }
    // A cut's job id names one piece: the same piece under a second split
    // would be two rows with one name, so it is refused.
    ns_seg_filter f = {s0->cluster, s0->node, job, -1, NULL, t0, t0};
    int64_t *dup = NULL;
    size_t nd = 0;
    if ((s = ns_store_list_segments(st, &f, &dup, &nd))) goto done;
    free(dup);
    if (nd) {
      s = ns_errorf(NS_ERR_EXISTS, "C3 cuts: segment %s of node %s at %" PRId64 " already exists in another split; "
                    "delete those cuts or cut into the same split", job, s0->node, t0);
      goto done;
    }
    if ((s = ns_store_put_segment(st, p, out_split, &id))) goto done;
    ns_segment_free(p);
    p = NULL;
    (*n_out)++;
  }
done:
  ns_segment_free(p);
  return s;
}

ns_status ns_c3_equal_cuts(ns_store *st, const char *cluster, const char *src_split, int64_t from_ms,
                           int64_t to_ms, int64_t cut_ms, bool keep_tail, const char *out_split, size_t *n_out) {
  if (!n_out) return ns_errorf(NS_ERR_INVAL, "C3 cuts: NULL count");
  *n_out = 0;
  if (!st || !cluster || !*cluster) return ns_errorf(NS_ERR_INVAL, "C3 cuts: no store or cluster name");
  if (!out_split || !*out_split) return ns_errorf(NS_ERR_INVAL, "C3 cuts: no output split name");
  if (src_split && strcmp(src_split, out_split) == 0)
    return ns_errorf(NS_ERR_INVAL, "C3 cuts: output split '%s' is also the source split", out_split);
  if (cut_ms <= 0) return ns_errorf(NS_ERR_RANGE, "C3 cuts: cut length %" PRId64 " ms must be > 0", cut_ms);
  if (to_ms && from_ms && to_ms < from_ms)
    return ns_errorf(NS_ERR_RANGE, "C3 cuts: range end %" PRId64 " before start %" PRId64, to_ms, from_ms);
  int64_t *ids = NULL, *old = NULL;
  size_t n = 0, n_old = 0, nseg = 0, piece = 0;
  ns_segment **seg = NULL;
  run_buf rb = {0};
  bool in_tx = false;
  ns_seg_filter f = {cluster, NULL, NULL, -1, src_split, from_ms, to_ms};
  ns_status s = ns_store_list_segments(st, &f, &ids, &n);
  if (s) goto done;
  if (!(seg = calloc(n ? n : 1, sizeof *seg))) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    ns_segment *g = NULL;
    if ((s = ns_store_get_segment(st, ids[i], &g))) goto done;
    if (g->job_id && strncmp(g->job_id, "c3-", 3) == 0) {
      ns_segment_free(g); /* earlier cuts are never sources */
      continue;
    }
    seg[nseg++] = g;
  }
  if (nseg == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "C3 cuts: no segments of cluster '%s'%s%s%s in the range (run `nsentry prep` first?)",
                  cluster, src_split ? " in split '" : "", src_split ? src_split : "", src_split ? "'" : "");
    goto done;
  }
  qsort(seg, nseg, sizeof *seg, cmp_seg);
  ns_seg_filter fo = {cluster, NULL, NULL, -1, out_split, from_ms, to_ms};
  if ((s = ns_store_list_segments(st, &fo, &old, &n_old))) goto done;
  if ((s = ns_store_begin(st))) goto done;
  in_tx = true;
  for (size_t i = 0; i < n_old; i++)
    if ((s = ns_store_delete_segment(st, old[i]))) goto done;
  for (size_t i = 0; i < nseg;) {
    // One node: runs of contiguous segments.
    size_t j = i;
    while (j < nseg && strcmp(seg[j]->node, seg[i]->node) == 0) j++;
    piece = 0;
    rb.n = 0;
    const ns_segment *prev = NULL;
    int64_t prev_t = 0; /* time of the run's last row */
    for (size_t k = i; k < j; k++) {
      const ns_segment *g = seg[k];
      if (g->interval_ms <= 0) {
        s = ns_errorf(NS_ERR_CORRUPT, "C3 cuts: segment %" PRId64 " has interval %" PRId64, g->id, g->interval_ms);
        goto done;
      }
      int64_t rows64 = cut_ms / g->interval_ms;
      if (rows64 < 2) {
        s = ns_errorf(NS_ERR_RANGE, "C3 cuts: %" PRId64 " ms is under 2 rows at interval %" PRId64 " ms", cut_ms,
                      g->interval_ms);
        goto done;
      }
      for (size_t t = 0; t < g->T; t++) {
        int64_t ts = g->start_ms + (int64_t)t * g->interval_ms;
        if ((from_ms && ts < from_ms) || (to_ms && ts > to_ms)) continue;
        bool contiguous = prev && rb.n > 0 && g->interval_ms == prev->interval_ms && same_schema(g, prev) &&
                          ts == prev_t + g->interval_ms;
        if (rb.n > 0 && prev && ts <= prev_t && g->interval_ms == prev->interval_ms && same_schema(g, prev))
          continue; /* overlapping row already taken from the previous segment */
        if (rb.n > 0 && !contiguous) {
          if ((s = flush_run(st, &rb, (size_t)(cut_ms / prev->interval_ms), keep_tail, out_split, &piece, n_out))) goto done;
          rb.n = 0;
        }
        if (rb.n == rb.cap) {
          size_t cap = rb.cap ? 2 * rb.cap : 1024;
          const ns_segment **ns_ = realloc(rb.seg, cap * sizeof *ns_);
          if (ns_) rb.seg = ns_;
          size_t *nr = ns_ ? realloc(rb.row, cap * sizeof *nr) : NULL;
          if (nr) rb.row = nr;
          if (!ns_ || !nr) {
            s = NS_ERR_NOMEM;
            goto done;
          }
          rb.cap = cap;
        }
        rb.seg[rb.n] = g, rb.row[rb.n] = t, rb.n++;
        prev = g, prev_t = ts;
      }
    }
    if (rb.n > 0 && (s = flush_run(st, &rb, (size_t)(cut_ms / prev->interval_ms), keep_tail, out_split, &piece, n_out)))
      goto done;
    i = j;
  }
  s = ns_store_commit(st);
  in_tx = false;
done:
  if (in_tx) {
    char why[512];
    snprintf(why, sizeof why, "%s", ns_err_detail());
    ns_store_rollback(st);
    ns_errorf(s, "%s", why);
    *n_out = 0;
  }
  for (size_t i = 0; i < nseg; i++) ns_segment_free(seg[i]);
  free(seg), free(ids), free(old), free(rb.seg), free(rb.row);
  return s;
}
