/* The model: hyperparameters, parameter arena, workspaces, the whole-model
 * forward/backward, and segment reconstruction. */
#include "ns_model.h"
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "ns_model_impl.h"
#include "ns_model_par.h"

const char *const ns_param_names[NS_NPARAM] = {"emb_w", "emb_b", "seg_emb", "qkv_w", "qkv_b", "att_w",
                                               "att_b", "ln1_g", "ln1_b", "rt_w", "w1", "b1",
                                               "w2", "b2", "ln2_g", "ln2_b", "dec_w", "dec_b"};

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single(void) { openblas_set_num_threads(1); }
void ns_model_blas_init(void) { pthread_once(&blas_once, blas_single); }

/* ---------------- hyperparameters ---------------- */

void ns_model_hparams_default(ns_model_hparams *hp) {
  memset(hp, 0, sizeof *hp);
  hp->n_layers = 3;
  hp->n_heads = 3;
  hp->n_experts = 3;
  hp->top_k = 1;
  hp->n_segments = 1;
  hp->window = 64;
  hp->batch = 16;
  hp->epochs = 30;
  hp->patience = 5;
  hp->dropout = 0.1;
  hp->lr = 1e-3;
  hp->weight_decay = 0.01;
  hp->grad_clip = 1.0;
  hp->aux_weight = 0.01;
  hp->val_fraction = 0.1;
  hp->seed = 42;
  hp->between_pos = true;
  hp->moe = true;
  hp->threads = 1;
}

ns_status ns_model_hparams_from_config(const ns_config *cfg, ns_model_hparams *hp) {
  if (!cfg || !hp) return ns_errorf(NS_ERR_INVAL, "ns_model_hparams_from_config: NULL argument");
  int M = hp->n_metrics, S = hp->n_segments, thr = hp->threads;
  ns_model_hparams_default(hp);
  hp->n_metrics = M;
  hp->n_segments = S > 0 ? S : 1;
  hp->threads = thr > 0 ? thr : 1;
  hp->d_model = (int)ns_cfg_int(cfg, NS_CFG_model_d_model);
  hp->n_layers = (int)ns_cfg_int(cfg, NS_CFG_model_layers);
  hp->n_heads = (int)ns_cfg_int(cfg, NS_CFG_model_heads);
  hp->n_experts = (int)ns_cfg_int(cfg, NS_CFG_model_experts);
  hp->top_k = (int)ns_cfg_int(cfg, NS_CFG_model_topk);
  hp->d_ff = (int)ns_cfg_int(cfg, NS_CFG_model_d_ff);
  hp->dropout = ns_cfg_double(cfg, NS_CFG_model_dropout);
  hp->window = (int)ns_cfg_int(cfg, NS_CFG_model_window);
  hp->batch = (int)ns_cfg_int(cfg, NS_CFG_model_batch);
  hp->epochs = (int)ns_cfg_int(cfg, NS_CFG_model_epochs);
  hp->patience = (int)ns_cfg_int(cfg, NS_CFG_model_patience);
  hp->lr = ns_cfg_double(cfg, NS_CFG_model_lr);
  hp->weight_decay = ns_cfg_double(cfg, NS_CFG_model_weight_decay);
  hp->grad_clip = ns_cfg_double(cfg, NS_CFG_model_grad_clip);
  hp->aux_weight = ns_cfg_double(cfg, NS_CFG_model_aux_weight);
  hp->seed = (uint64_t)ns_cfg_int(cfg, NS_CFG_model_seed);
  hp->between_pos = ns_cfg_bool(cfg, NS_CFG_model_between_pos);
  hp->moe = ns_cfg_bool(cfg, NS_CFG_model_moe);
  return ns_precision_from_config(cfg, &hp->precision);
}

ns_status ns_model_hparams_resolve(ns_model_hparams *hp) {
  if (!hp) return ns_errorf(NS_ERR_INVAL, "model hyperparameters: NULL");
#define NS_HP_RANGE(f, lo, hi)                                                                   \
  if (hp->f < (lo) || hp->f > (hi))                                                              \
    return ns_errorf(NS_ERR_RANGE, "model hyperparameter %s = %g outside [%g, %g]", #f, (double)hp->f, \
                     (double)(lo), (double)(hi));
  NS_HP_RANGE(n_metrics, 1, 1 << 16)
  NS_HP_RANGE(n_heads, 1, 64)
  NS_HP_RANGE(n_layers, 1, 32)
  NS_HP_RANGE(d_model, 0, 1 << 14)
  NS_HP_RANGE(d_ff, 0, 1 << 16)
  NS_HP_RANGE(n_segments, 1, 1 << 16)
  NS_HP_RANGE(window, 2, 4096)
  NS_HP_RANGE(batch, 1, 4096)
  NS_HP_RANGE(epochs, 1, 1000000)
  NS_HP_RANGE(patience, 0, 100000)
  NS_HP_RANGE(dropout, 0.0, 0.95)
  NS_HP_RANGE(lr, 1e-9, 10.0)
  NS_HP_RANGE(weight_decay, 0.0, 10.0)
  NS_HP_RANGE(grad_clip, 0.0, 1e9)
  NS_HP_RANGE(aux_weight, 0.0, 100.0)
  NS_HP_RANGE(val_fraction, 0.0, 0.9)
  NS_HP_RANGE(threads, 0, 256)
  if (hp->precision != NS_PREC_FP32 && hp->precision != NS_PREC_BF16)
    return ns_errorf(NS_ERR_INVAL, "model precision %d is neither fp32 nor bf16", (int)hp->precision);
  if (hp->moe) {
    NS_HP_RANGE(n_experts, 1, 64)
    NS_HP_RANGE(top_k, 1, hp->n_experts)
  }
#undef NS_HP_RANGE
  if (hp->threads == 0) hp->threads = 1;
  if (hp->d_model == 0) hp->d_model = (hp->n_metrics + hp->n_heads - 1) / hp->n_heads * hp->n_heads;
  if (hp->d_model % hp->n_heads)
    return ns_errorf(NS_ERR_INVAL, "model_d_model = %d is not a multiple of model_heads = %d", hp->d_model,
                     hp->n_heads);
  if (hp->d_ff == 0) hp->d_ff = hp->d_model;
  return NS_OK;
}

/* ---------------- score statistics ---------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int ns_cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

ns_status ns_score_stats_compute(const float *score, size_t n, ns_score_stats *out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_score_stats_compute: NULL output");
  memset(out, 0, sizeof *out);
  float *v = malloc((n ? n : 1) * sizeof(float));
  if (!v) return ns_errorf(NS_ERR_NOMEM, "score stats: %zu values", n);
  size_t k = 0;
  double s = 0, s2 = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(score[i])) {
      v[k++] = score[i];
      s += score[i];
    }
  if (k == 0) {
    free(v);
    return ns_errorf(NS_ERR_EMPTY, "score stats: no finite score among %zu", n);
  }
  qsort(v, k, sizeof(float), ns_cmp_float);
  double mean = s / (double)k;
  for (size_t i = 0; i < k; i++) s2 += ((double)v[i] - mean) * ((double)v[i] - mean);
  out->count = k;
  out->mean = mean;
  out->std = k > 1 ? sqrt(s2 / (double)(k - 1)) : 0.0;
  out->min = v[0];
  out->max = v[k - 1];
  for (int i = 0; i < NS_SCORE_NQ; i++) {
    double pos = (double)i / (NS_SCORE_NQ - 1) * (double)(k - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < k ? lo + 1 : lo;
    double f = pos - (double)lo;
    out->q[i] = (float)((1 - f) * v[lo] + f * v[hi]);
  }
  free(v);
  return NS_OK;
}

typedef struct mix2 {
  double w[2], mu[2], var[2];
} mix2;

/* EM for two Gaussians on l[0..m), the upper one seeded with the values
 * above split. False when a component empties. */
static bool mix2_fit(const double *l, size_t m, double split, mix2 *g) {
  memset(g, 0, sizeof *g);
  for (size_t i = 0; i < m; i++) {
    int k = l[i] > split;
    g->w[k] += 1, g->mu[k] += l[i];
  }
  if (g->w[0] < 1 || g->w[1] < 1) return false;
  for (int k = 0; k < 2; k++) g->mu[k] /= g->w[k];
  for (size_t i = 0; i < m; i++) {
    int k = l[i] > split;
    g->var[k] += (l[i] - g->mu[k]) * (l[i] - g->mu[k]);
  }
  for (int k = 0; k < 2; k++) g->var[k] = fmax(g->var[k] / g->w[k], 1e-6), g->w[k] /= (double)m;
  for (int it = 0; it < 200; it++) {
    double sw[2] = {0}, sx[2] = {0}, sxx[2] = {0};
    for (size_t i = 0; i < m; i++) {
      double p[2];
      for (int k = 0; k < 2; k++)
        p[k] = g->w[k] / sqrt(g->var[k]) * exp(-0.5 * (l[i] - g->mu[k]) * (l[i] - g->mu[k]) / g->var[k]);
      double z = p[0] + p[1];
      double r1 = z > 0 ? p[1] / z : (l[i] > g->mu[1] ? 1 : 0);
      sw[0] += 1 - r1, sw[1] += r1;
      sx[0] += (1 - r1) * l[i], sx[1] += r1 * l[i];
      sxx[0] += (1 - r1) * l[i] * l[i], sxx[1] += r1 * l[i] * l[i];
    }
    if (sw[0] < 1 || sw[1] < 1) return false;
    double moved = 0;
    for (int k = 0; k < 2; k++) {
      double nm = sx[k] / sw[k];
      moved = fmax(moved, fabs(nm - g->mu[k]));
      g->mu[k] = nm;
      g->var[k] = fmax(sxx[k] / sw[k] - nm * nm, 1e-6);
      g->w[k] = sw[k] / (double)m;
    }
    if (moved < 1e-6) break;
  }
  if (g->mu[0] > g->mu[1]) { /* lower component first */
    mix2 t = *g;
    for (int k = 0; k < 2; k++) g->w[k] = t.w[1 - k], g->mu[k] = t.mu[1 - k], g->var[k] = t.var[1 - k];
  }
  return true;
}

/* Contaminated calibration data is bimodal in log score: the cluster's
 * normal error, and anomalies an order of magnitude or more above it. A
 * two-component Gaussian mixture on the log scores (EM, the upper component
 * seeded with the top 10 %, 2 % and 0.5 %; the most separated fit kept)
 * finds the second mode; only when the two are clearly apart (Ashman's
 * D >= 4, means a factor of 20 apart) and the upper one holds at most 5 %
 * of the points are its points, those also beyond mean + 3 sd of the lower
 * one, left out. A unimodal (clean) distribution is left alone, and so is a
 * larger upper mode: that is more often a normal regime the model fits
 * badly (C3's mixed cuts, a model fine-tuned on its easy windows) than
 * contamination, and trimming it would flag that regime in production.
 * Returns the count left out. */
static size_t mixture_trim(const float *score, uint8_t *use, size_t n) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) m += use[i];
  if (m < 100) return 0;
  double *l = malloc(m * sizeof *l), *srt = malloc(m * sizeof *srt);
  size_t out = 0;
  if (!l || !srt) goto done;
  m = 0;
  for (size_t i = 0; i < n; i++)
    if (use[i]) l[m] = srt[m] = log(score[i] > 1e-30f ? score[i] : 1e-30), m++;
  qsort(srt, m, sizeof *srt, cmp_double);
  static const double seeds[] = {0.9, 0.98, 0.995};
  mix2 best = {0};
  double best_d = 0;
  for (size_t j = 0; j < sizeof seeds / sizeof *seeds; j++) {
    mix2 g;
    if (!mix2_fit(l, m, srt[(size_t)(seeds[j] * (double)(m - 1))], &g)) continue;
    double d = sqrt(2.0) * (g.mu[1] - g.mu[0]) / sqrt(g.var[0] + g.var[1]);
    /* A minority of at most 5 %, a factor of 20 above the body. */
    if (g.w[1] <= 0.05 && g.mu[1] - g.mu[0] >= log(20.0) && d > best_d) best_d = d, best = g;
  }
  if (best_d < 4) goto done;
  double floor_l = best.mu[0] + 3 * sqrt(best.var[0]);
  for (size_t i = 0, j = 0; i < n; i++) {
    if (!use[i]) continue;
    double x = l[j++]; /* l holds the used points' logs in order */
    if (x <= floor_l) continue;
    double plo = best.w[0] / sqrt(best.var[0]) * exp(-0.5 * (x - best.mu[0]) * (x - best.mu[0]) / best.var[0]);
    double phi = best.w[1] / sqrt(best.var[1]) * exp(-0.5 * (x - best.mu[1]) * (x - best.mu[1]) / best.var[1]);
    if (phi > plo || x > best.mu[1]) use[i] = 0, out++;
  }
done:
  free(l);
  free(srt);
  return out;
}

/* Leaves out (use = 0) every run of at least min_run consecutive used points
 * of [a, b) above tau; a run never crosses a series start (brk) or an unused
 * point. Returns the count left out. */
static size_t drop_runs(const float *score, uint8_t *use, const uint8_t *brk, size_t a, size_t b, double tau,
                        size_t min_run) {
  size_t out = 0;
  for (size_t i = a; i < b;) {
    if (!use[i] || !(score[i] > tau)) {
      i++;
      continue;
    }
    size_t u = i + 1;
    while (u < b && use[u] && !brk[u] && score[u] > tau) u++;
    if (u - i >= min_run) {
      memset(use + i, 0, u - i);
      out += u - i;
    }
    i = u;
  }
  return out;
}

/* Contamination is local: an anomaly lifts a stretch of a segment far above
 * that segment's own typical error, while a regime the model fits badly lifts
 * the whole segment (and its median with it). Runs of at least min_run points
 * above rel x their series' median score are left out. */
static size_t relative_trim(const float *score, uint8_t *use, const uint8_t *brk, size_t n, const size_t *starts,
                            size_t n_starts, double rel, size_t min_run) {
  size_t out = 0;
  float *v = malloc((n ? n : 1) * sizeof *v);
  if (!v) return 0;
  for (size_t j = 0; j < n_starts; j++) {
    size_t a = starts[j], b = j + 1 < n_starts ? starts[j + 1] : n;
    if (a >= n) break;
    if (b > n) b = n;
    size_t m = 0;
    for (size_t i = a; i < b; i++)
      if (use[i]) v[m++] = score[i];
    if (m < 4 * min_run) continue;
    qsort(v, m, sizeof *v, ns_cmp_float);
    out += drop_runs(score, use, brk, a, b, rel * v[m / 2], min_run);
  }
  free(v);
  return out;
}

ns_status ns_score_stats_calibrate(const float *score, const uint8_t *keep, size_t n, const size_t *starts,
                                   size_t n_starts, const ns_calib_rule *rule, ns_score_stats *out, size_t *trimmed) {
  if (trimmed) *trimmed = 0;
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_score_stats_calibrate: NULL output");
  memset(out, 0, sizeof *out);
  uint8_t *use = malloc(n ? n : 1), *brk = calloc(n ? n : 1, 1);
  float *v = malloc((n ? n : 1) * sizeof(float));
  ns_status st = NS_OK;
  if (!use || !brk || !v) {
    st = ns_errorf(NS_ERR_NOMEM, "score stats: %zu values", n);
    goto done;
  }
  for (size_t i = 0; i < n; i++) use[i] = (!keep || keep[i]) && isfinite(score[i]);
  for (size_t j = 0; starts && j < n_starts; j++)
    if (starts[j] < n) brk[starts[j]] = 1;
  size_t cut = 0;
  if (rule && rule->min_run > 0 && rule->relative > 0 && starts)
    cut = relative_trim(score, use, brk, n, starts, n_starts, rule->relative, rule->min_run);
  if (rule && rule->min_run > 0) cut += mixture_trim(score, use, n);
  for (int pass = 0; pass < 50; pass++) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (use[i]) v[m++] = score[i];
    if ((st = ns_score_stats_compute(v, m, out))) goto done;
    if (!rule || rule->min_run == 0 || !(rule->factor > 0)) break;
    double tau = rule->factor * ns_score_stats_quantile(out, rule->quantile);
    size_t dropped = drop_runs(score, use, brk, 0, n, tau, rule->min_run);
    if (dropped == 0) break;
    cut += dropped;
  }
  if (trimmed) *trimmed = cut;
done:
  free(use);
  free(brk);
  free(v);
  return st;
}

double ns_score_stats_quantile(const ns_score_stats *s, double p) {
  if (!s || s->count == 0) return NAN;
  if (!(p > 0)) return s->q[0];
  if (p >= 1) return s->q[NS_SCORE_NQ - 1];
  double pos = p * (NS_SCORE_NQ - 1);
  int lo = (int)pos;
  double f = pos - lo;
  return (1 - f) * s->q[lo] + f * s->q[lo + 1];
}

/* ---------------- parameters ---------------- */

size_t ns_params_layout(const ns_shape *s, size_t sz[NS_NPARAM], bool decay[NS_NPARAM]) {
  size_t d = (size_t)s->d, L = (size_t)s->L, E = (size_t)s->E, F = (size_t)s->F, M = (size_t)s->M;
  size_t t[NS_NPARAM] = {d * M, d, (size_t)s->S * d, L * 3 * d * d, L * 3 * d, L * d * d, L * d, L * d, L * d,
                         L * E * d, L * E * F * d, L * E * F, L * E * d * F, L * E * d, L * d, L * d, M * d, M};
  bool dc[NS_NPARAM] = {1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0};
  size_t tot = 0;
  for (int i = 0; i < NS_NPARAM; i++) {
    sz[i] = t[i];
    if (decay) decay[i] = dc[i];
    tot += t[i];
  }
  return tot;
}

void ns_params_point(ns_params *p, float *arena, const size_t sz[NS_NPARAM]) {
  float **ptr[NS_NPARAM] = {&p->emb_w, &p->emb_b, &p->seg_emb, &p->qkv_w, &p->qkv_b, &p->att_w,
                            &p->att_b, &p->ln1_g, &p->ln1_b, &p->rt_w,  &p->w1,    &p->b1,
                            &p->w2,    &p->b2,    &p->ln2_g, &p->ln2_b, &p->dec_w, &p->dec_b};
  for (int i = 0; i < NS_NPARAM; i++) {
    *ptr[i] = arena;
    arena += sz[i];
  }
}

ns_status ns_model_pe_reserve(ns_model *m, int T) {
  if (T <= m->pe_len) return NS_OK;
  int d = m->sh.d;
  float *pe = realloc(m->pe, (size_t)T * d * sizeof(float));
  if (!pe) return ns_errorf(NS_ERR_NOMEM, "positional table %d x %d", T, d);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < d; i++) {
      double freq = exp(-log(10000.0) * (double)(i & ~1) / (double)d);
      pe[(size_t)t * d + i] = (float)((i & 1) ? cos(t * freq) : sin(t * freq));
    }
  m->pe = pe;
  m->pe_len = T;
  return NS_OK;
}

/* Allocates everything but the parameter values. */
static ns_status model_alloc(const ns_model_hparams *hp_in, const char *const *names, ns_model **out) {
  *out = NULL;
  ns_model_hparams hp = *hp_in;
  ns_status st = ns_model_hparams_resolve(&hp);
  if (st) return st;
  if (!names) return ns_errorf(NS_ERR_INVAL, "model: metric names required (%d metrics)", hp.n_metrics);
  ns_model *m = calloc(1, sizeof *m);
  if (!m) return ns_errorf(NS_ERR_NOMEM, "model");
  m->hp = hp;
  m->sh = (ns_shape){hp.n_metrics, hp.d_model, hp.n_layers, hp.n_heads, hp.moe ? hp.n_experts : 1,
                     hp.moe ? hp.top_k : 1, hp.d_ff, hp.n_segments};
  int M = hp.n_metrics;
  m->metrics = calloc((size_t)M, sizeof(char *));
  m->mac = malloc((size_t)M * sizeof(float));
  m->expert_rows = calloc((size_t)m->sh.E, sizeof(uint64_t));
  m->n_params = ns_params_layout(&m->sh, m->sizes, m->decay);
  m->arena = calloc(m->n_params, sizeof(float));
  if (!m->metrics || !m->mac || !m->expert_rows || !m->arena) {
    st = ns_errorf(NS_ERR_NOMEM, "model with %zu parameters", m->n_params);
    goto fail;
  }
  for (int i = 0; i < M; i++) {
    if (!names[i] || !names[i][0]) {
      st = ns_errorf(NS_ERR_INVAL, "model: metric %d has no name", i);
      goto fail;
    }
    if (!(m->metrics[i] = strdup(names[i]))) {
      st = ns_errorf(NS_ERR_NOMEM, "metric names");
      goto fail;
    }
  }
  for (int i = 0; i < M; i++) m->mac[i] = 1.0f / (float)M;
  ns_params_point(&m->p, m->arena, m->sizes);
  if ((st = ns_model_pe_reserve(m, hp.window))) goto fail;
  *out = m;
  return NS_OK;
fail:
  ns_model_free(m);
  return st;
}

static void fill_uniform(float *w, size_t n, float a, uint64_t *rng) {
  for (size_t i = 0; i < n; i++) w[i] = (2.0f * ns_rand_unit(rng) - 1.0f) * a;
}

ns_status ns_model_create(const ns_model_hparams *hp, const char *const *metric_names, const float *mac_weights,
                          ns_model **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_model_create: NULL output");
  *out = NULL;
  if (!hp) return ns_errorf(NS_ERR_INVAL, "ns_model_create: NULL hyperparameters");
  ns_model *m = NULL;
  ns_status st = model_alloc(hp, metric_names, &m);
  if (st) return st;
  if (mac_weights && (st = ns_model_set_mac_weights(m, mac_weights))) {
    ns_model_free(m);
    return st;
  }
  uint64_t rng = m->hp.seed * 0x2545F4914F6CDD1DULL + 1;
  const ns_shape *s = &m->sh;
  ns_params *p = &m->p;
  // PyTorch-like fan-in uniform init; LayerNorm gain 1, biases 0
  fill_uniform(p->emb_w, m->sizes[0], 1.0f / sqrtf((float)s->M), &rng);
  fill_uniform(p->seg_emb, m->sizes[2], 0.1f, &rng);
  fill_uniform(p->qkv_w, m->sizes[3], 1.0f / sqrtf((float)s->d), &rng);
  fill_uniform(p->att_w, m->sizes[5], 1.0f / sqrtf((float)s->d), &rng);
  fill_uniform(p->rt_w, m->sizes[9], 1.0f / sqrtf((float)s->d), &rng);
  fill_uniform(p->w1, m->sizes[10], 1.0f / sqrtf((float)s->d), &rng);
  fill_uniform(p->w2, m->sizes[12], 1.0f / sqrtf((float)s->F), &rng);
  fill_uniform(p->dec_w, m->sizes[16], 1.0f / sqrtf((float)s->d), &rng);
  for (size_t i = 0; i < m->sizes[7]; i++) p->ln1_g[i] = 1.0f;
  for (size_t i = 0; i < m->sizes[14]; i++) p->ln2_g[i] = 1.0f;
  if ((st = ns_model_weights_changed(m))) {
    ns_model_free(m);
    return st;
  }
  *out = m;
  return NS_OK;
}

void ns_model_free(ns_model *m) {
  if (!m) return;
  if (m->metrics)
    for (int i = 0; i < m->hp.n_metrics; i++) free(m->metrics[i]);
  free(m->metrics);
  free(m->mac);
  free(m->arena);
  free(m->pe);
  free(m->expert_rows);
  ns_bf16_free(m->bf16);
  free(m);
}

ns_status ns_model_clone(const ns_model *m, ns_model **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_model_clone: NULL output");
  *out = NULL;
  if (!m) return ns_errorf(NS_ERR_INVAL, "ns_model_clone: NULL model");
  ns_model *c = NULL;
  ns_status st = model_alloc(&m->hp, (const char *const *)m->metrics, &c);
  if (st) return st;
  memcpy(c->arena, m->arena, m->n_params * sizeof(float));
  memcpy(c->mac, m->mac, (size_t)m->hp.n_metrics * sizeof(float));
  c->stats = m->stats;
  if ((st = ns_model_weights_changed(c))) {
    ns_model_free(c);
    return st;
  }
  *out = c;
  return NS_OK;
}

const ns_model_hparams *ns_model_get_hparams(const ns_model *m) { return &m->hp; }
size_t ns_model_n_metrics(const ns_model *m) { return (size_t)m->hp.n_metrics; }
const char *ns_model_metric_name(const ns_model *m, size_t i) {
  return i < (size_t)m->hp.n_metrics ? m->metrics[i] : NULL;
}
const float *ns_model_mac_weights(const ns_model *m) { return m->mac; }
const ns_score_stats *ns_model_score_stats(const ns_model *m) { return &m->stats; }
void ns_model_set_score_stats(ns_model *m, const ns_score_stats *s) { m->stats = *s; }
size_t ns_model_n_params(const ns_model *m) { return m->n_params; }
void ns_model_set_threads(ns_model *m, int threads) { m->hp.threads = threads > 0 ? threads : 1; }

bool ns_precision_bf16_supported(void) { return ns_bf16_supported(); }

ns_status ns_precision_from_config(const ns_config *cfg, ns_precision *out) {
  if (!cfg || !out) return ns_errorf(NS_ERR_INVAL, "ns_precision_from_config: NULL argument");
  *out = NS_PREC_FP32;
  const char *v = ns_cfg_str(cfg, NS_CFG_model_precision);
  if (!strcmp(v, "fp32")) return NS_OK;
  if (ns_bf16_supported()) {
    *out = NS_PREC_BF16;
    return NS_OK;
  }
  if (!strcmp(v, "auto")) return NS_OK;
  return ns_errorf(NS_ERR_UNSUPPORTED, "model_precision = bf16 needs a CPU with AVX512-BF16; this one has none "
                                       "(use fp32 or auto)");
}

ns_status ns_model_set_precision(ns_model *m, ns_precision p) {
  if (!m) return ns_errorf(NS_ERR_INVAL, "ns_model_set_precision: NULL model");
  if (p != NS_PREC_FP32 && p != NS_PREC_BF16) return ns_errorf(NS_ERR_INVAL, "unknown precision %d", (int)p);
  ns_bf16_model *pk = NULL;
  if (p == NS_PREC_BF16) {
    ns_status st = ns_bf16_pack(m, &pk);
    if (st) return st;
  }
  ns_bf16_free(m->bf16);
  m->bf16 = pk;
  m->hp.precision = p;
  return NS_OK;
}

ns_precision ns_model_get_precision(const ns_model *m) { return m->hp.precision; }

ns_status ns_model_weights_changed(ns_model *m) {
  ns_bf16_free(m->bf16);
  m->bf16 = NULL;
  if (m->hp.precision != NS_PREC_BF16) return NS_OK;
  ns_status st = ns_bf16_pack(m, &m->bf16);
  if (st) m->hp.precision = NS_PREC_FP32; // the weights are right; only the fast copy is missing
  return st;
}

ns_status ns_model_set_mac_weights(ns_model *m, const float *w) {
  if (!m || !w) return ns_errorf(NS_ERR_INVAL, "ns_model_set_mac_weights: NULL argument");
  double s = 0;
  for (int i = 0; i < m->hp.n_metrics; i++) {
    if (!isfinite(w[i]) || w[i] < 0)
      return ns_errorf(NS_ERR_RANGE, "MAC weight of metric %d (%s) is %g (must be finite and >= 0)", i,
                       m->metrics[i], (double)w[i]);
    s += w[i];
  }
  if (fabs(s - 1.0) > 1e-3) return ns_errorf(NS_ERR_RANGE, "MAC weights sum to %g, not 1", s);
  memcpy(m->mac, w, (size_t)m->hp.n_metrics * sizeof(float));
  return NS_OK;
}

ns_status ns_model_check_schema(const ns_model *m, const char *const *names, size_t n) {
  if (!m || !names) return ns_errorf(NS_ERR_INVAL, "ns_model_check_schema: NULL argument");
  if (n != (size_t)m->hp.n_metrics)
    return ns_errorf(NS_ERR_SCHEMA, "model has %d metrics, data has %zu", m->hp.n_metrics, n);
  for (size_t i = 0; i < n; i++)
    if (!names[i] || strcmp(names[i], m->metrics[i]))
      return ns_errorf(NS_ERR_SCHEMA, "metric %zu is '%s' in the data but '%s' in the model", i,
                       names[i] ? names[i] : "(null)", m->metrics[i]);
  return NS_OK;
}

void ns_model_expert_rows(const ns_model *m, uint64_t *counts) {
  for (int e = 0; e < m->sh.E; e++) counts[e] = __atomic_load_n(&m->expert_rows[e], __ATOMIC_RELAXED);
}
void ns_model_reset_expert_rows(ns_model *m) {
  for (int e = 0; e < m->sh.E; e++) __atomic_store_n(&m->expert_rows[e], 0, __ATOMIC_RELAXED);
}

/* ---------------- workspace ---------------- */

enum { A_QKV, A_ATT, A_ATTY, A_ATTP, A_MASK1, A_RES1, A_LN1, A_MEAN1, A_RSTD1, A_PROB, A_G, A_H, A_Y, A_MOE,
       A_MASK2, A_RES2, A_LN2, A_MEAN2, A_RSTD2, A_NF };

ns_status ns_ws_create(const ns_model *m, int Bmax, int T, bool train, ns_ws **out) {
  *out = NULL;
  const ns_shape *s = &m->sh;
  ns_ws *w = calloc(1, sizeof *w);
  if (!w) return ns_errorf(NS_ERR_NOMEM, "model workspace");
  w->Bmax = Bmax;
  w->T = T;
  w->train = train;
  w->nlay = train ? s->L : 1;
  size_t N = (size_t)Bmax * T, d = (size_t)s->d, E = (size_t)s->E, K = (size_t)s->K, F = (size_t)s->F;
  w->N = N;
  size_t sz[A_NF] = {N * 3 * d, (size_t)Bmax * s->H * T * T, N * d, N * d, train ? N * d : 0, N * d, N * d, N,
                     N, N * E, N * K * d, N * K * F, N * K * d, N * d, train ? N * d : 0, N * d, N * d, N, N};
  size_t lf = 0;
  for (int i = 0; i < A_NF; i++) {
    w->off[i] = lf;
    lf += sz[i];
  }
  w->lstride_f = lf;
  w->n_asg = N * K;
  w->lstride_i = N * K + E + 1;
  size_t nscratch = train ? N * d * 5 + N * 3 * d + N * K * (2 * d + F) + N * E + (size_t)T * T : 0;
  size_t total = N * d + N * (size_t)s->M + lf * w->nlay + nscratch + N * (size_t)s->M;
  w->farena = malloc(total * sizeof(float));
  w->iarena = malloc(w->lstride_i * w->nlay * sizeof(int));
  w->rows = calloc((size_t)s->L * E, sizeof(uint64_t));
  if (!w->farena || !w->iarena || !w->rows) {
    ns_ws_free(w);
    return ns_errorf(NS_ERR_NOMEM, "model workspace for %d windows of %d points", Bmax, T);
  }
  float *f = w->farena;
  w->x0 = f, f += N * d;
  w->out = f, f += N * s->M;
  w->layer0 = f, f += lf * w->nlay;
  if (train) {
    w->dx = f, f += N * d;
    w->dx2 = f, f += N * d;
    w->datt = f, f += N * d;
    w->dattp = f, f += N * d;
    w->dmoe = f, f += N * d;
    w->dqkv = f, f += N * 3 * d;
    w->dY = f, f += N * K * d;
    w->dG = f, f += N * K * d;
    w->dH = f, f += N * K * F;
    w->dprob = f, f += N * E;
    w->dS = f, f += (size_t)T * T;
  }
  w->dout = f;
  *out = w;
  return NS_OK;
}

void ns_ws_free(ns_ws *w) {
  if (!w) return;
  free(w->farena);
  free(w->iarena);
  free(w->rows);
  free(w);
}

void ns_ws_layer(const ns_ws *w, int l, ns_acts *a) {
  if (l >= w->nlay) l = 0; // inference keeps one layer's activations
  float *base = w->layer0 + (size_t)l * w->lstride_f;
  a->qkv = base + w->off[A_QKV];
  a->att = base + w->off[A_ATT];
  a->atty = base + w->off[A_ATTY];
  a->attp = base + w->off[A_ATTP];
  a->mask1 = base + w->off[A_MASK1];
  a->res1 = base + w->off[A_RES1];
  a->ln1 = base + w->off[A_LN1];
  a->mean1 = base + w->off[A_MEAN1];
  a->rstd1 = base + w->off[A_RSTD1];
  a->prob = base + w->off[A_PROB];
  a->G = base + w->off[A_G];
  a->Hh = base + w->off[A_H];
  a->Y = base + w->off[A_Y];
  a->moe = base + w->off[A_MOE];
  a->mask2 = base + w->off[A_MASK2];
  a->res2 = base + w->off[A_RES2];
  a->ln2 = base + w->off[A_LN2];
  a->mean2 = base + w->off[A_MEAN2];
  a->rstd2 = base + w->off[A_RSTD2];
  int *ib = w->iarena + (size_t)l * w->lstride_i;
  a->asg_tok = ib;
  a->asg_off = ib + w->n_asg;
}

/* ---------------- fork-join ---------------- */

typedef struct par_job {
  ns_par_fn fn;
  void *ctx;
  int i;
} par_job;

static void *par_main(void *arg) {
  par_job *j = arg;
  j->fn(j->ctx, j->i);
  return NULL;
}

void ns_par_run(int n, ns_par_fn fn, void *ctx) {
  if (n <= 1) {
    if (n == 1) fn(ctx, 0);
    return;
  }
  pthread_t tid[n];
  par_job job[n];
  bool started[n];
  for (int i = 1; i < n; i++) {
    job[i] = (par_job){fn, ctx, i};
    started[i] = pthread_create(&tid[i], NULL, par_main, &job[i]) == 0;
  }
  fn(ctx, 0);
  for (int i = 1; i < n; i++) {
    if (started[i])
      pthread_join(tid[i], NULL);
    else
      fn(ctx, i);
  }
}

/* ---------------- whole model ---------------- */

static void make_mask(float *mask, int B, int T, int d, float p, uint64_t seed, const uint64_t *win_ids, int l,
                      int site) {
  float keep = 1.0f / (1.0f - p);
  for (int b = 0; b < B; b++) {
    uint64_t st = seed ^ (win_ids[b] * 0xD1B54A32D192ED03ULL) ^ ((uint64_t)(2 * l + site + 1) << 48);
    ns_splitmix64(&st);
    float *mk = mask + (size_t)b * T * d;
    for (int i = 0; i < T * d; i++) mk[i] = ns_rand_unit(&st) < p ? 0.0f : keep;
  }
}

static void layer_moe_params(const ns_model *m, int l, ns_moe_p *mp) {
  const ns_shape *s = &m->sh;
  size_t d = (size_t)s->d, E = (size_t)s->E, F = (size_t)s->F;
  mp->rt = m->p.rt_w + l * E * d;
  mp->w1 = m->p.w1 + l * E * F * d;
  mp->b1 = m->p.b1 + l * E * F;
  mp->w2 = m->p.w2 + l * E * d * F;
  mp->b2 = m->p.b2 + l * E * d;
}

void ns_model_fwd(const ns_model *m, ns_ws *w, const float *x, const int *seg, int B, int T, bool train,
                  uint64_t drop_seed, const uint64_t *win_ids) {
  const ns_shape *s = &m->sh;
  const ns_params *p = &m->p;
  int d = s->d, N = B * T;
  bool drop = train && m->hp.dropout > 0;
  float pd = (float)m->hp.dropout;
  memset(w->rows, 0, (size_t)s->L * s->E * sizeof(uint64_t));
  // (B,T,M) -> (B,T,d)
  ns_embed_fwd(w->x0, x, p->emb_w, p->emb_b, m->pe, m->hp.between_pos ? p->seg_emb : NULL, seg, B, T, s->M, d);
  const float *inp = w->x0;
  for (int l = 0; l < s->L; l++) {
    ns_acts a;
    ns_ws_layer(w, l, &a);
    size_t ld = (size_t)l * d;
    ns_matmul_fwd(a.qkv, inp, p->qkv_w + ld * 3 * d, p->qkv_b + ld * 3, N, d, 3 * d); // (N,3d)
    ns_attention_fwd(a.atty, a.att, a.qkv, B, T, d, s->H);                           // (N,d)
    ns_matmul_fwd(a.attp, a.atty, p->att_w + ld * d, p->att_b + ld, N, d, d);        // (N,d)
    if (drop) {
      make_mask(a.mask1, B, T, d, pd, drop_seed, win_ids, l, 0);
      for (size_t i = 0; i < (size_t)N * d; i++) a.res1[i] = inp[i] + a.mask1[i] * a.attp[i];
    } else {
      for (size_t i = 0; i < (size_t)N * d; i++) a.res1[i] = inp[i] + a.attp[i];
    }
    ns_layernorm_fwd(a.ln1, a.mean1, a.rstd1, a.res1, p->ln1_g + ld, p->ln1_b + ld, N, d);
    ns_moe_p mp;
    layer_moe_params(m, l, &mp);
    ns_moe_fwd(a.moe, &a, a.ln1, &mp, N, d, s->F, s->E, s->K, !m->hp.moe, w->rows + (size_t)l * s->E);
    if (drop) {
      make_mask(a.mask2, B, T, d, pd, drop_seed, win_ids, l, 1);
      for (size_t i = 0; i < (size_t)N * d; i++) a.res2[i] = a.ln1[i] + a.mask2[i] * a.moe[i];
    } else {
      for (size_t i = 0; i < (size_t)N * d; i++) a.res2[i] = a.ln1[i] + a.moe[i];
    }
    ns_layernorm_fwd(a.ln2, a.mean2, a.rstd2, a.res2, p->ln2_g + ld, p->ln2_b + ld, N, d);
    inp = a.ln2;
  }
  ns_matmul_fwd(w->out, inp, p->dec_w, p->dec_b, N, d, s->M); // (N,M)
  for (int l = 0; l < s->L; l++)
    for (int e = 0; e < s->E; e++)
      __atomic_fetch_add(&m->expert_rows[e], w->rows[(size_t)l * s->E + e], __ATOMIC_RELAXED);
}

double ns_model_loss(const ns_model *m, ns_ws *w, const float *x, const float *cw, int B, int T, double norm_B,
                     bool want_grad) {
  int M = m->sh.M;
  const float *W = m->mac;
  double loss = 0;
  for (int b = 0; b < B; b++) {
    double lb = 0;
    double c = (cw ? cw[b] : 1.0) / (norm_B * T);
    for (int t = 0; t < T; t++) {
      size_t o = ((size_t)b * T + t) * M;
      for (int i = 0; i < M; i++) {
        float e = w->out[o + i] - x[o + i];
        lb += (double)W[i] * e * e;
        if (want_grad) w->dout[o + i] = (float)(2.0 * c * W[i] * e);
      }
    }
    loss += c * lb;
  }
  return loss;
}

void ns_model_bwd(const ns_model *m, ns_ws *w, float *grads, const float *x, const int *seg, int B, int T,
                  const float *aux_g) {
  const ns_shape *s = &m->sh;
  const ns_params *p = &m->p;
  ns_params g;
  ns_params_point(&g, grads, m->sizes);
  int d = s->d, N = B * T;
  size_t Nd = (size_t)N * d;
  bool drop = m->hp.dropout > 0;
  ns_acts a;
  ns_ws_layer(w, s->L - 1, &a);
  // decoder: dx = dL/d(last layer output) (N,d)
  ns_matmul_bwd(w->dx, false, g.dec_w, g.dec_b, w->dout, a.ln2, p->dec_w, N, d, s->M);
  for (int l = s->L - 1; l >= 0; l--) {
    ns_ws_layer(w, l, &a);
    const float *inp = w->x0;
    if (l > 0) {
      ns_acts prev;
      ns_ws_layer(w, l - 1, &prev);
      inp = prev.ln2;
    }
    size_t ld = (size_t)l * d;
    // LN2: dres2 (N,d)
    memset(w->dx2, 0, Nd * sizeof(float));
    ns_layernorm_bwd(w->dx2, g.ln2_g + ld, g.ln2_b + ld, w->dx, a.res2, p->ln2_g + ld, a.mean2, a.rstd2, N, d);
    for (size_t i = 0; i < Nd; i++) w->dmoe[i] = drop ? w->dx2[i] * a.mask2[i] : w->dx2[i];
    memcpy(w->dx, w->dx2, Nd * sizeof(float)); // dln1 = dres2 + MoE's input gradient
    ns_moe_p mp;
    layer_moe_params(m, l, &mp);
    size_t E = (size_t)s->E, F = (size_t)s->F;
    ns_moe_g mg = {g.rt_w + l * E * d, g.w1 + l * E * F * d, g.b1 + l * E * F, g.w2 + l * E * d * F,
                   g.b2 + l * E * d};
    ns_moe_bwd(w->dx, &mg, w->dmoe, &a, a.ln1, &mp, w->dY, w->dH, w->dG, w->dprob, N, d, s->F, s->E, s->K,
               !m->hp.moe, aux_g ? aux_g + (size_t)l * E : NULL);
    // LN1: dres1 (N,d)
    memset(w->dx2, 0, Nd * sizeof(float));
    ns_layernorm_bwd(w->dx2, g.ln1_g + ld, g.ln1_b + ld, w->dx, a.res1, p->ln1_g + ld, a.mean1, a.rstd1, N, d);
    for (size_t i = 0; i < Nd; i++) w->dattp[i] = drop ? w->dx2[i] * a.mask1[i] : w->dx2[i];
    ns_matmul_bwd(w->datt, false, g.att_w + ld * d, g.att_b + ld, w->dattp, a.atty, p->att_w + ld * d, N, d, d);
    ns_attention_bwd(w->dqkv, w->dS, w->datt, a.qkv, a.att, B, T, d, s->H);
    memcpy(w->dx, w->dx2, Nd * sizeof(float)); // residual path
    ns_matmul_bwd(w->dx, true, g.qkv_w + ld * 3 * d, g.qkv_b + ld * 3, w->dqkv, inp, p->qkv_w + ld * 3 * d, N, d,
                  3 * d);
  }
  ns_embed_bwd(g.emb_w, g.emb_b, m->hp.between_pos ? g.seg_emb : NULL, w->dx, x, seg, B, T, s->M, d);
}

/* ---------------- inference ---------------- */

static ns_status check_finite(const float *x, size_t T, int M) {
  for (size_t t = 0; t < T; t++)
    for (int i = 0; i < M; i++)
      if (!isfinite(x[t * M + i]))
        return ns_errorf(NS_ERR_NONFINITE, "model input row %zu metric %d is %g", t, i, (double)x[t * M + i]);
  return NS_OK;
}

#define NS_INFER_B 8 /* windows per inference pass: keeps activations in L2 */

/* An inference workspace of the model's precision. */
typedef struct infer_ws {
  ns_ws *f32;
  ns_bf16_ws *bf16;
} infer_ws;

static ns_status infer_ws_create(const ns_model *m, int Bmax, int T, infer_ws *w) {
  return m->bf16 ? ns_bf16_ws_create(m, Bmax, T, &w->bf16) : ns_ws_create(m, Bmax, T, false, &w->f32);
}

static void infer_ws_free(infer_ws *w) {
  ns_ws_free(w->f32);
  ns_bf16_ws_free(w->bf16);
}

/* Forward B windows; returns the (B*T, M) reconstruction inside w. */
static const float *infer_fwd(const ns_model *m, infer_ws *w, const float *x, const int *seg, int B, int T) {
  if (w->bf16) {
    ns_bf16_fwd(m, w->bf16, x, seg, B, T);
    return ns_bf16_ws_out(w->bf16);
  }
  ns_model_fwd(m, w->f32, x, seg, B, T, false, 0, NULL);
  return w->f32->out;
}

ns_status ns_model_forward(const ns_model *m, const float *x, const int *seg_codes, int B, int T, float *out) {
  if (!m || !x || !seg_codes || !out) return ns_errorf(NS_ERR_INVAL, "ns_model_forward: NULL argument");
  if (B < 1 || T < 1 || T > m->pe_len)
    return ns_errorf(NS_ERR_RANGE, "ns_model_forward: %d windows of %d points (window limit %d)", B, T, m->pe_len);
  for (int b = 0; b < B; b++)
    if (seg_codes[b] < 0 || seg_codes[b] >= m->hp.n_segments)
      return ns_errorf(NS_ERR_RANGE, "segment code %d outside [0, %d)", seg_codes[b], m->hp.n_segments);
  ns_model_blas_init();
  int Bw = B < NS_INFER_B ? B : NS_INFER_B;
  infer_ws w = {0};
  ns_status st = infer_ws_create(m, Bw, T, &w);
  if (st) return st;
  int M = m->sh.M;
  for (int b0 = 0; b0 < B; b0 += Bw) {
    int nb = B - b0 < Bw ? B - b0 : Bw;
    const float *o = infer_fwd(m, &w, x + (size_t)b0 * T * M, seg_codes + b0, nb, T);
    memcpy(out + (size_t)b0 * T * M, o, (size_t)nb * T * M * sizeof(float));
  }
  infer_ws_free(&w);
  return NS_OK;
}

typedef struct recon_ctx {
  const ns_model *m;
  const float *x;
  float *out;
  size_t T;
  int W, seg, nfull, nthr;
  bool tail;
  ns_status st[64];
} recon_ctx;

static void recon_part(void *arg, int part) {
  recon_ctx *c = arg;
  const ns_model *m = c->m;
  int M = m->sh.M, W = c->W;
  // full windows [w0, w1) of this part; the last part also does the tail
  int w0 = (int)((long)c->nfull * part / c->nthr), w1 = (int)((long)c->nfull * (part + 1) / c->nthr);
  bool tail = c->tail && part == c->nthr - 1;
  int nb = w1 - w0 < NS_INFER_B ? w1 - w0 : NS_INFER_B;
  if (nb < 1) nb = 1;
  infer_ws w = {0};
  if ((c->st[part] = infer_ws_create(m, nb, W, &w))) return;
  int seg[NS_INFER_B];
  for (int i = 0; i < NS_INFER_B; i++) seg[i] = c->seg;
  for (int b0 = w0; b0 < w1; b0 += nb) {
    int k = w1 - b0 < nb ? w1 - b0 : nb;
    // consecutive windows are contiguous in x: no copy
    const float *o = infer_fwd(m, &w, c->x + (size_t)b0 * W * M, seg, k, W);
    memcpy(c->out + (size_t)b0 * W * M, o, (size_t)k * W * M * sizeof(float));
  }
  if (tail) {
    size_t t0 = c->T - (size_t)W, newpts = c->T - (size_t)c->nfull * W;
    const float *o = infer_fwd(m, &w, c->x + t0 * M, seg, 1, W);
    memcpy(c->out + (c->T - newpts) * M, o + ((size_t)W - newpts) * M, newpts * M * sizeof(float));
  }
  infer_ws_free(&w);
}

ns_status ns_model_reconstruct(const ns_model *m, const float *x, size_t T, int seg_code, float *out) {
  if (!m || !x || !out) return ns_errorf(NS_ERR_INVAL, "ns_model_reconstruct: NULL argument");
  if (T == 0) return ns_errorf(NS_ERR_TOO_SHORT, "ns_model_reconstruct: empty segment");
  if (seg_code < 0 || seg_code >= m->hp.n_segments)
    return ns_errorf(NS_ERR_RANGE, "segment code %d outside [0, %d)", seg_code, m->hp.n_segments);
  ns_status st = check_finite(x, T, m->sh.M);
  if (st) return st;
  ns_model_blas_init();
  int W = m->hp.window;
  if (T <= (size_t)W) {
    int sc = seg_code;
    return ns_model_forward(m, x, &sc, 1, (int)T, out);
  }
  recon_ctx c = {.m = m, .x = x, .out = out, .T = T, .W = W, .seg = seg_code};
  c.nfull = (int)(T / (size_t)W);
  c.tail = T % (size_t)W != 0;
  int thr = m->hp.threads < 1 ? 1 : m->hp.threads > 64 ? 64 : m->hp.threads;
  c.nthr = thr < c.nfull ? thr : c.nfull;
  ns_par_run(c.nthr, recon_part, &c);
  for (int i = 0; i < c.nthr; i++)
    if (c.st[i]) return c.st[i];
  return NS_OK;
}

void ns_model_score(const ns_model *m, const float *x, const float *xhat, size_t T, float *score,
                    float *metric_err) {
  int M = m->sh.M;
  for (size_t t = 0; t < T; t++) {
    double s = 0;
    for (int i = 0; i < M; i++) {
      float e = x[t * M + i] - xhat[t * M + i];
      float v = m->mac[i] * e * e;
      if (metric_err) metric_err[t * M + i] = v;
      s += v;
    }
    score[t] = (float)s;
  }
}
