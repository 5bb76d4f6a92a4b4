/* Training loop: windows, batches split between worker threads (each with
 * its own activations and gradients, reduced in a fixed order), the MoE
 * load-balancing loss, AdamW, clipping, early stopping, score statistics. */
#include "ns_train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_log.h"
#include "ns_model_impl.h"
#include "ns_model_par.h"

#define NS_MAX_THREADS 64

ns_status ns_train_list_windows(const ns_train_series *s, size_t n, int window, ns_train_window **out,
                                size_t *n_out) {
  if (!out || !n_out) return ns_errorf(NS_ERR_INVAL, "ns_train_list_windows: NULL output");
  *out = NULL;
  *n_out = 0;
  if (window < 2) return ns_errorf(NS_ERR_RANGE, "window %d < 2", window);
  if (n && !s) return ns_errorf(NS_ERR_INVAL, "ns_train_list_windows: NULL series");
  size_t cnt = 0, W = (size_t)window;
  for (size_t i = 0; i < n; i++)
    if (s[i].T >= W) cnt += s[i].T / W + (s[i].T % W != 0);
  if (cnt == 0) return NS_OK;
  ns_train_window *w = malloc(cnt * sizeof *w);
  if (!w) return ns_errorf(NS_ERR_NOMEM, "%zu windows", cnt);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i].T < W) continue;
    for (size_t t = 0; t + W <= s[i].T; t += W) w[k++] = (ns_train_window){(uint32_t)i, (uint32_t)t};
    if (s[i].T % W) w[k++] = (ns_train_window){(uint32_t)i, (uint32_t)(s[i].T - W)};
  }
  *out = w;
  *n_out = cnt;
  return NS_OK;
}

void ns_train_result_free(ns_train_result *r) {
  if (!r) return;
  free(r->window_error);
  r->window_error = NULL;
}

static ns_status check_data(const ns_train_series *s, size_t n, int M, int n_segments) {
  if (n == 0 || !s) return ns_errorf(NS_ERR_EMPTY, "training: no series");
  for (size_t i = 0; i < n; i++) {
    if (!s[i].x || s[i].T == 0) return ns_errorf(NS_ERR_EMPTY, "training series %zu is empty", i);
    if (s[i].T > UINT32_MAX) return ns_errorf(NS_ERR_RANGE, "training series %zu: %zu rows", i, s[i].T);
    if (!isfinite(s[i].weight) || s[i].weight < 0)
      return ns_errorf(NS_ERR_RANGE, "training series %zu: closeness weight %g", i, (double)s[i].weight);
    if (s[i].code < 0 || (n_segments > 0 && s[i].code >= n_segments))
      return ns_errorf(NS_ERR_RANGE, "training series %zu: segment code %d outside [0, %d)", i, s[i].code,
                       n_segments);
    for (size_t t = 0; t < s[i].T; t++)
      for (int m = 0; m < M; m++)
        if (!isfinite(s[i].x[t * M + m]))
          return ns_errorf(NS_ERR_NONFINITE, "training series %zu row %zu metric %d is %g", i, t, m,
                           (double)s[i].x[t * M + m]);
  }
  return NS_OK;
}

/* ---------------- evaluation ---------------- */

size_t ns_peer_trim(const float *score, const float *ref, size_t T, double rel, size_t min_run, uint8_t *skip) {
  size_t out = 0;
  if (min_run < 1) min_run = 1;
  for (size_t i = 0; i < T;) {
    if (!(isfinite(ref[i]) && score[i] > rel * ref[i])) {
      i++;
      continue;
    }
    size_t u = i + 1;
    while (u < T && isfinite(ref[u]) && score[u] > rel * ref[u]) u++;
    if (u - i >= min_run)
      for (size_t t = i; t < u; t++) out += !skip[t], skip[t] = 1;
    i = u;
  }
  return out;
}

/* The rule's peer step on the scores evaluate() just took: a run goes on
 * through points the series already skips (they are not counted twice). */
static ns_status peer_trim(const ns_train_series *s, size_t n, const float *score, const size_t *off, size_t maxT,
                           const ns_calib_rule *rule, uint8_t *use, size_t *cut) {
  if (!rule || !rule->peer_ref || !(rule->peer_relative > 0) || rule->min_run == 0) return NS_OK;
  uint8_t *mark = malloc(maxT ? maxT : 1);
  if (!mark) return ns_errorf(NS_ERR_NOMEM, "calibration peer step");
  for (size_t i = 0; i < n; i++) {
    if (!rule->peer_ref[i]) continue;
    if (s[i].skip) memcpy(mark, s[i].skip, s[i].T);
    else memset(mark, 0, s[i].T);
    *cut += ns_peer_trim(score + off[i], rule->peer_ref[i], s[i].T, rule->peer_relative, rule->min_run, mark);
    for (size_t t = 0; t < s[i].T; t++)
      if (mark[t]) use[off[i] + t] = 0;
  }
  free(mark);
  return NS_OK;
}

static ns_status evaluate(const ns_model *m, const ns_train_series *s, size_t n, const size_t *windows,
                         size_t n_windows, float *window_error, ns_score_stats *stats, const ns_calib_rule *rule,
                         size_t *trimmed) {
  if (!m) return ns_errorf(NS_ERR_INVAL, "ns_train_evaluate: NULL model");
  int M = m->sh.M, W = m->hp.window;
  ns_status st = check_data(s, n, M, m->hp.n_segments);
  if (st) return st;
  ns_train_window *wl = NULL;
  size_t nw = 0, maxT = 0, tot = 0;
  float *xh = NULL, *score = NULL;
  uint8_t *use = NULL;
  size_t *off = calloc(n + 1, sizeof(size_t));
  if (!off) return ns_errorf(NS_ERR_NOMEM, "evaluation");
  if ((st = ns_train_list_windows(s, n, W, &wl, &nw))) goto done;
  for (size_t i = 0; i < n; i++) {
    off[i + 1] = off[i] + s[i].T;
    maxT = s[i].T > maxT ? s[i].T : maxT;
  }
  tot = off[n];
  xh = malloc(maxT * M * sizeof(float));
  score = malloc(tot * sizeof(float));
  use = calloc(tot, 1);
  if (!xh || !score || !use) {
    st = ns_errorf(NS_ERR_NOMEM, "evaluation of %zu points", tot);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if ((st = ns_model_reconstruct(m, s[i].x, s[i].T, s[i].code, xh))) goto done;
    ns_model_score(m, s[i].x, xh, s[i].T, score + off[i], NULL);
  }
  if (window_error)
    for (size_t k = 0; k < nw; k++) {
      double a = 0;
      for (int t = 0; t < W; t++) a += score[off[wl[k].series] + wl[k].start + t];
      window_error[k] = (float)(a / W);
    }
  if (stats) {
    if (windows) {
      for (size_t j = 0; j < n_windows; j++) {
        if (windows[j] >= nw) {
          st = ns_errorf(NS_ERR_RANGE, "window index %zu >= %zu windows", windows[j], nw);
          goto done;
        }
        const ns_train_window *w = &wl[windows[j]];
        memset(use + off[w->series] + w->start, 1, (size_t)W);
      }
    } else {
      for (size_t k = 0; k < nw; k++) memset(use + off[wl[k].series] + wl[k].start, 1, (size_t)W);
    }
    for (size_t i = 0; i < n; i++)
      if (s[i].skip)
        for (size_t t = 0; t < s[i].T; t++) use[off[i] + t] &= (uint8_t)!s[i].skip[t];
    size_t pcut = 0;
    if ((st = peer_trim(s, n, score, off, maxT, rule, use, &pcut))) goto done;
    /* No rule: plain statistics of the selected points. */
    if ((st = ns_score_stats_calibrate(score, use, tot, off, n, rule, stats, trimmed))) goto done;
    if (trimmed) *trimmed += pcut;
  }
done:
  free(off);
  free(wl);
  free(xh);
  free(score);
  free(use);
  return st;
}

ns_status ns_train_evaluate(const ns_model *m, const ns_train_series *s, size_t n, const size_t *windows,
                            size_t n_windows, float *window_error, ns_score_stats *stats) {
  return evaluate(m, s, n, windows, n_windows, window_error, stats, NULL, NULL);
}

ns_status ns_train_calibrate(const ns_model *m, const ns_train_series *s, size_t n, const size_t *windows,
                             size_t n_windows, const ns_calib_rule *rule, ns_score_stats *stats, size_t *trimmed) {
  if (trimmed) *trimmed = 0;
  if (!stats) return ns_errorf(NS_ERR_INVAL, "ns_train_calibrate: NULL statistics");
  ns_calib_rule none = {0};
  return evaluate(m, s, n, windows, n_windows, NULL, stats, rule ? rule : &none, trimmed);
}

/* ---------------- trainer ---------------- */

typedef struct shard {
  ns_ws *ws;
  float *grads;
  int b0, nb;
  double loss;
} shard;

typedef struct trainer {
  ns_model *m;
  const ns_train_series *s;
  const ns_train_window *wl;
  int nthr, B, W, M;
  shard sh[NS_MAX_THREADS];
  float *grads, *am, *av; /* gradient, Adam moments */
  long step;
  float *xb, *cw, *auxg;  /* batch (B,W,M), closeness (B), aux gradient (L,E) */
  int *seg;
  uint64_t *wid;
  int nb;                 /* windows in the current batch */
  bool train;             /* current batch: training (dropout, backward) or validation */
  uint64_t drop_seed;
} trainer;

static void trainer_free(trainer *tr) {
  for (int i = 0; i < tr->nthr; i++) {
    ns_ws_free(tr->sh[i].ws);
    if (i > 0) free(tr->sh[i].grads);
  }
  free(tr->grads);
  free(tr->am);
  free(tr->av);
  free(tr->xb);
  free(tr->cw);
  free(tr->auxg);
  free(tr->seg);
  free(tr->wid);
}

static ns_status trainer_init(trainer *tr, ns_model *m, const ns_train_series *s, const ns_train_window *wl) {
  memset(tr, 0, sizeof *tr);
  tr->m = m;
  tr->s = s;
  tr->wl = wl;
  tr->B = m->hp.batch;
  tr->W = m->hp.window;
  tr->M = m->sh.M;
  int thr = m->hp.threads < 1 ? 1 : m->hp.threads;
  if (thr > NS_MAX_THREADS) thr = NS_MAX_THREADS;
  if (thr > tr->B) thr = tr->B;
  tr->nthr = thr;
  size_t np = m->n_params;
  tr->grads = calloc(np, sizeof(float));
  tr->am = calloc(np, sizeof(float));
  tr->av = calloc(np, sizeof(float));
  tr->xb = malloc((size_t)tr->B * tr->W * tr->M * sizeof(float));
  tr->cw = malloc((size_t)tr->B * sizeof(float));
  tr->auxg = calloc((size_t)m->sh.L * m->sh.E, sizeof(float));
  tr->seg = malloc((size_t)tr->B * sizeof(int));
  tr->wid = malloc((size_t)tr->B * sizeof(uint64_t));
  if (!tr->grads || !tr->am || !tr->av || !tr->xb || !tr->cw || !tr->auxg || !tr->seg || !tr->wid)
    return ns_errorf(NS_ERR_NOMEM, "trainer for %zu parameters", np);
  int per = (tr->B + thr - 1) / thr;
  tr->sh[0].grads = tr->grads;
  for (int i = 0; i < thr; i++) {
    ns_status st = ns_ws_create(m, per, tr->W, true, &tr->sh[i].ws);
    if (st) return st;
    if (i == 0) continue; // shard 0 accumulates straight into tr->grads
    if (!(tr->sh[i].grads = malloc(np * sizeof(float)))) return ns_errorf(NS_ERR_NOMEM, "shard gradients");
  }
  return NS_OK;
}

static void shard_fwd(void *arg, int i) {
  trainer *tr = arg;
  shard *sh = &tr->sh[i];
  if (sh->nb == 0) {
    sh->loss = 0;
    return;
  }
  size_t o = (size_t)sh->b0 * tr->W * tr->M;
  ns_model_fwd(tr->m, sh->ws, tr->xb + o, tr->seg + sh->b0, sh->nb, tr->W, tr->train, tr->drop_seed,
               tr->wid + sh->b0);
  sh->loss = ns_model_loss(tr->m, sh->ws, tr->xb + o, tr->cw + sh->b0, sh->nb, tr->W, tr->nb, tr->train);
}

static void shard_bwd(void *arg, int i) {
  trainer *tr = arg;
  shard *sh = &tr->sh[i];
  memset(sh->grads, 0, tr->m->n_params * sizeof(float));
  if (sh->nb == 0) return;
  size_t o = (size_t)sh->b0 * tr->W * tr->M;
  ns_model_bwd(tr->m, sh->ws, sh->grads, tr->xb + o, tr->seg + sh->b0, sh->nb, tr->W,
               tr->m->hp.moe && tr->m->hp.aux_weight > 0 ? tr->auxg : NULL);
}

/* Loads windows idx[0..nb) into the batch buffers and runs the forward
 * pass (and, when training, backward + AdamW). Returns the batch loss. */
static double run_batch(trainer *tr, const size_t *idx, int nb, bool train, int epoch) {
  ns_model *m = tr->m;
  int W = tr->W, M = tr->M;
  for (int b = 0; b < nb; b++) {
    const ns_train_window *w = &tr->wl[idx[b]];
    const ns_train_series *s = &tr->s[w->series];
    memcpy(tr->xb + (size_t)b * W * M, s->x + (size_t)w->start * M, (size_t)W * M * sizeof(float));
    tr->cw[b] = s->weight;
    tr->seg[b] = s->code;
    tr->wid[b] = ((uint64_t)(unsigned)epoch << 40) ^ (uint64_t)idx[b];
  }
  tr->nb = nb;
  tr->train = train;
  tr->drop_seed = m->hp.seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  int nthr = tr->nthr < nb ? tr->nthr : nb;
  for (int i = 0; i < tr->nthr; i++) {
    tr->sh[i].b0 = i < nthr ? nb * i / nthr : nb;
    tr->sh[i].nb = i < nthr ? nb * (i + 1) / nthr - tr->sh[i].b0 : 0;
  }
  ns_par_run(nthr, shard_fwd, tr);
  double loss = 0;
  for (int i = 0; i < nthr; i++) loss += tr->sh[i].loss;
  if (!train) return loss;

  const ns_shape *s = &m->sh;
  if (m->hp.moe && m->hp.aux_weight > 0) {
    // Switch-style balance loss per layer: E * sum_e f_e * mean_n p_ne; f held constant
    double ntok = (double)nb * W;
    for (int l = 0; l < s->L; l++)
      for (int e = 0; e < s->E; e++) {
        uint64_t r = 0;
        for (int i = 0; i < nthr; i++) r += tr->sh[i].ws->rows[(size_t)l * s->E + e];
        double f = (double)r / (ntok * s->K);
        tr->auxg[(size_t)l * s->E + e] = (float)(m->hp.aux_weight * s->E * f / ntok);
      }
  }
  ns_par_run(nthr, shard_bwd, tr); // shard 0 writes tr->grads itself
  size_t np = m->n_params;
  float *G = tr->grads;
  for (int i = 1; i < nthr; i++) {
    const float *g = tr->sh[i].grads;
#pragma omp simd
    for (size_t j = 0; j < np; j++) G[j] += g[j];
  }
  // global-norm clipping
  float scale = 1.0f;
  if (m->hp.grad_clip > 0) {
    double nn = 0;
    for (int t = 0, o = 0; t < NS_NPARAM; o += (int)m->sizes[t], t++) {
      float part = 0.0f; // per-tensor float partial sums keep the loop vectorised
#pragma omp simd reduction(+ : part)
      for (size_t j = (size_t)o; j < (size_t)o + m->sizes[t]; j++) part += G[j] * G[j];
      nn += part;
    }
    nn = sqrt(nn);
    if (nn > m->hp.grad_clip) scale = (float)(m->hp.grad_clip / nn);
  }
  // AdamW (decoupled decay on weight matrices only)
  tr->step++;
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  float lr = (float)m->hp.lr, wd = (float)m->hp.weight_decay;
  float c1 = 1.0f / (1.0f - powf(b1, (float)tr->step)), c2 = 1.0f / (1.0f - powf(b2, (float)tr->step));
  float *P = m->arena, *am = tr->am, *av = tr->av;
  size_t o = 0;
  for (int t = 0; t < NS_NPARAM; t++) {
    float dec = m->decay[t] ? wd : 0.0f;
#pragma omp simd
    for (size_t j = o; j < o + m->sizes[t]; j++) {
      float g = G[j] * scale;
      am[j] = b1 * am[j] + (1 - b1) * g;
      av[j] = b2 * av[j] + (1 - b2) * g * g;
      float mh = am[j] * c1, vh = av[j] * c2;
      P[j] -= lr * (mh / (sqrtf(vh) + eps) + dec * P[j]);
    }
    o += m->sizes[t];
  }
  return loss;
}

static void shuffle(size_t *v, size_t n, uint64_t *rng) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(ns_splitmix64(rng) % i);
    size_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The loop shared by training and fine-tuning; m is updated in place. */
static ns_status fit(ns_model *m, const ns_train_series *s, size_t n, const ns_train_opts *opts,
                     ns_train_result *res) {
  double t_start = now_s();
  ns_train_opts o = {0};
  if (opts) o = *opts;
  // the weights are about to change: a packed bf16 copy would go stale
  ns_bf16_free(m->bf16);
  m->bf16 = NULL;
  int W = m->hp.window, B = m->hp.batch;
  ns_train_window *wl = NULL;
  size_t nw = 0, *use = NULL, ntrain = 0, nval = 0;
  float *best = NULL;
  trainer tr;
  memset(&tr, 0, sizeof tr);
  ns_status st = check_data(s, n, m->sh.M, m->hp.n_segments);
  if (st) return st;
  ns_model_blas_init();
  if ((st = ns_train_list_windows(s, n, W, &wl, &nw))) return st;
  if (nw == 0) {
    st = ns_errorf(NS_ERR_TOO_SHORT, "training: every series is shorter than the window of %d points", W);
    goto done;
  }
  size_t nuse = o.windows ? o.n_windows : nw;
  if (nuse == 0) {
    st = ns_errorf(NS_ERR_EMPTY, "training: empty window list");
    goto done;
  }
  if (!(use = malloc(nuse * sizeof(size_t)))) {
    st = ns_errorf(NS_ERR_NOMEM, "window list");
    goto done;
  }
  for (size_t i = 0; i < nuse; i++) {
    use[i] = o.windows ? o.windows[i] : i;
    if (use[i] >= nw) {
      st = ns_errorf(NS_ERR_RANGE, "training: window index %zu >= %zu windows", use[i], nw);
      goto done;
    }
  }
  uint64_t rng = m->hp.seed ^ 0x5DEECE66DULL;
  shuffle(use, nuse, &rng);
  // held-out windows for early stopping: the tail of the shuffled list
  if (m->hp.patience > 0 && m->hp.val_fraction > 0 && nuse >= 4) {
    nval = (size_t)ceil(m->hp.val_fraction * (double)nuse);
    if (nval >= nuse) nval = nuse - 1;
  }
  ntrain = nuse - nval;
  if ((st = trainer_init(&tr, m, s, wl))) goto done;
  if (nval && !(best = malloc(m->n_params * sizeof(float)))) {
    st = ns_errorf(NS_ERR_NOMEM, "best-parameter copy");
    goto done;
  }
  if (best) memcpy(best, m->arena, m->n_params * sizeof(float)); // kept if validation never improves
  int epochs = o.epochs > 0 ? o.epochs : m->hp.epochs;
  double best_val = INFINITY, best_train = NAN, last_train = NAN;
  int best_epoch = 0, since = 0, ep;
  for (ep = 1; ep <= epochs; ep++) {
    shuffle(use, ntrain, &rng);
    double tl = 0;
    int nbat = 0;
    for (size_t b0 = 0; b0 < ntrain; b0 += (size_t)B) {
      int nb = (int)(ntrain - b0 < (size_t)B ? ntrain - b0 : (size_t)B);
      tl += run_batch(&tr, use + b0, nb, true, ep);
      nbat++;
    }
    last_train = tl / nbat;
    if (!isfinite(last_train)) {
      st = ns_errorf(NS_ERR_NONFINITE, "training diverged at epoch %d (loss %g); lower model_lr", ep, last_train);
      goto done;
    }
    double vl = NAN;
    if (nval) {
      double vs = 0;
      for (size_t b0 = ntrain; b0 < nuse; b0 += (size_t)B) {
        int nb = (int)(nuse - b0 < (size_t)B ? nuse - b0 : (size_t)B);
        vs += run_batch(&tr, use + b0, nb, false, ep) * nb;
      }
      vl = vs / (double)nval;
      if (vl < best_val) {
        best_val = vl;
        best_train = last_train;
        best_epoch = ep;
        since = 0;
        memcpy(best, m->arena, m->n_params * sizeof(float));
      } else {
        since++;
      }
    }
    if (o.progress) o.progress(o.progress_ctx, ep, last_train, vl);
    if (nval && since >= m->hp.patience) {
      ep++;
      break;
    }
  }
  int run = ep - 1;
  if (nval) {
    memcpy(m->arena, best, m->n_params * sizeof(float));
  } else {
    best_epoch = run;
    best_train = last_train;
    best_val = NAN;
  }
  ns_score_stats stats;
  float *werr = malloc(nw * sizeof(float));
  if (!werr) {
    st = ns_errorf(NS_ERR_NOMEM, "window errors");
    goto done;
  }
  // scores for thresholds in the precision the model will be scored in
  if ((st = ns_model_weights_changed(m))) goto done;
  // statistics over every window it was given (held-out ones included)
  if ((st = ns_train_evaluate(m, s, n, o.windows, o.windows ? o.n_windows : 0, werr, &stats))) {
    free(werr);
    goto done;
  }
  m->stats = stats;
  if (res) {
    res->epochs_run = run;
    res->best_epoch = best_epoch;
    res->train_loss = best_train;
    res->val_loss = best_val;
    res->steps = (int)tr.step;
    res->n_windows = nw;
    res->window_error = werr;
    res->stats = stats;
    res->seconds = now_s() - t_start;
  } else {
    free(werr);
  }
done:
  trainer_free(&tr);
  free(best);
  free(use);
  free(wl);
  return st;
}

ns_status ns_train_model(const ns_model_hparams *hp, const char *const *metric_names, const float *mac_weights,
                         const ns_train_series *s, size_t n, const ns_train_opts *opts, ns_model **out,
                         ns_train_result *res) {
  if (res) memset(res, 0, sizeof *res);
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_train_model: NULL output");
  *out = NULL;
  if (!hp) return ns_errorf(NS_ERR_INVAL, "ns_train_model: NULL hyperparameters");
  if (n == 0 || !s) return ns_errorf(NS_ERR_EMPTY, "training: no series");
  ns_model_hparams h = *hp;
  for (size_t i = 0; i < n; i++)
    if (s[i].code >= h.n_segments) h.n_segments = s[i].code + 1;
  ns_model *m = NULL;
  ns_status st = ns_model_create(&h, metric_names, mac_weights, &m);
  if (st) return st;
  if ((st = fit(m, s, n, opts, res))) {
    ns_model_free(m);
    return st;
  }
  *out = m;
  return NS_OK;
}

ns_status ns_train_finetune(ns_model *m, const ns_train_series *s, size_t n, const ns_train_opts *opts,
                            ns_train_result *res) {
  if (res) memset(res, 0, sizeof *res);
  if (!m) return ns_errorf(NS_ERR_INVAL, "ns_train_finetune: NULL model");
  return fit(m, s, n, opts, res);
}

/* Benchmark hook (ns_model_impl.h): time training steps on the first
 * windows of the data, after warm-up steps. */
ns_status ns_train_bench_steps(ns_model *m, const ns_train_series *s, size_t n, int nb, int steps,
                               double *sec_per_step, double *cpu_per_step) {
  *sec_per_step = *cpu_per_step = 0;
  ns_train_window *wl = NULL;
  size_t nw = 0;
  trainer tr;
  memset(&tr, 0, sizeof tr);
  ns_status st = check_data(s, n, m->sh.M, m->hp.n_segments);
  if (st) return st;
  ns_model_blas_init();
  if ((st = ns_train_list_windows(s, n, m->hp.window, &wl, &nw))) return st;
  if (nb > m->hp.batch || (size_t)nb > nw) {
    st = ns_errorf(NS_ERR_RANGE, "bench: %d windows per step, batch %d, %zu windows", nb, m->hp.batch, nw);
    goto done;
  }
  if ((st = trainer_init(&tr, m, s, wl))) goto done;
  size_t idx[4096];
  for (int i = 0; i < nb; i++) idx[i] = (size_t)i;
  for (int i = 0; i < 3; i++) run_batch(&tr, idx, nb, true, 1);
  struct timespec c0, c1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  double t0 = now_s();
  for (int i = 0; i < steps; i++) run_batch(&tr, idx, nb, true, 1);
  *sec_per_step = (now_s() - t0) / steps;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  *cpu_per_step = ((double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9) / steps;
  st = ns_model_weights_changed(m);
done:
  trainer_free(&tr);
  free(wl);
  return st;
}

/* Why relative: an anomaly stands out within its segment, while a regime the
 * model fits badly raises all of a segment's windows; ranking by absolute
 * error dropped the hard regimes and kept the contamination. */
ns_status ns_train_relative_error(const float *err, const ns_train_window *w, size_t nw, const size_t *cand,
                                  size_t ncand, size_t nseries, float *out) {
  size_t *cnt = calloc(nseries + 1, sizeof *cnt), *pos = malloc((nseries ? nseries : 1) * sizeof *pos);
  float *v = malloc((ncand ? ncand : 1) * sizeof *v), *med = malloc((nseries ? nseries : 1) * sizeof *med);
  ns_status s = NS_OK;
  if (!cnt || !pos || !v || !med) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  // candidates grouped by series (counting sort), then each group's median
  for (size_t i = 0; i < ncand; i++) cnt[w[cand[i]].series + 1]++;
  for (size_t j = 0; j < nseries; j++) cnt[j + 1] += cnt[j];
  memcpy(pos, cnt, nseries * sizeof *pos);
  for (size_t i = 0; i < ncand; i++) v[pos[w[cand[i]].series]++] = err[cand[i]];
  for (size_t j = 0; j < nseries; j++) {
    size_t m = cnt[j + 1] - cnt[j];
    med[j] = NAN;
    if (!m) continue;
    qsort(v + cnt[j], m, sizeof *v, ns_cmp_float);
    med[j] = v[cnt[j] + m / 2];
  }
  for (size_t i = 0; i < nw; i++) {
    float md = med[w[i].series];
    out[i] = isfinite(md) && md > 0 ? err[i] / md : err[i];
  }
done:
  free(cnt);
  free(pos);
  free(v);
  free(med);
  return s;
}
