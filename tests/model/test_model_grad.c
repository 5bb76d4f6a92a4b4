/* Finite-difference gradient checks for every layer of the model and for the
 * whole model (loss, dropout, routing and the load-balancing term included).
 * Central differences in float with the loss accumulated in double; entries
 * whose perturbation flips an expert choice or a ReLU (the piecewise parts)
 * are skipped and counted. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ns_model.h"
#include "ns_model_impl.h"

static uint64_t rng_state = 12345;
static float frand(void) { return 2.0f * ns_rand_unit(&rng_state) - 1.0f; }
static float *rnd(size_t n, float scale) {
  float *v = malloc(n * sizeof(float));
  cr_assert(v);
  for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
  return v;
}
static double dot(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* loss(ctx) must recompute the scalar from the current parameter values;
 * routing(ctx) (may be NULL) returns a fingerprint of the expert choices. */
typedef double (*loss_fn)(void *ctx);
typedef uint64_t (*route_fn)(void *ctx);

/* Relative error ||a - n|| / max(||a||, ||n||) over (up to 64 sampled) entries. */
static double check(const char *name, float *p, size_t n, const float *ana, loss_fn f, route_fn r, void *ctx,
                    float eps) {
  size_t stride = n > 64 ? n / 64 : 1;
  double num2 = 0, ana2 = 0, diff2 = 0;
  int skipped = 0, used = 0;
  uint64_t r0 = r ? r(ctx) : 0;
  for (size_t i = 0; i < n; i += stride) {
    float save = p[i];
    p[i] = save + eps;
    double lp = f(ctx);
    uint64_t rp = r ? r(ctx) : 0;
    p[i] = save - eps;
    double lm = f(ctx);
    uint64_t rm = r ? r(ctx) : 0;
    p[i] = save;
    if (r && (rp != r0 || rm != r0)) {
      skipped++;
      continue;
    }
    double g = (lp - lm) / (2.0 * eps);
    num2 += g * g;
    ana2 += (double)ana[i] * ana[i];
    diff2 += (g - ana[i]) * (g - ana[i]);
    used++;
  }
  f(ctx);
  // a unit sitting near its kink flips for many entries of a shared input; keep most
  cr_assert(used >= 3 && skipped <= 2 * used, "%s: %d of %d entries flipped a routing/ReLU choice", name, skipped,
            used + skipped);
  double den = fmax(sqrt(num2), sqrt(ana2));
  double rel = den > 1e-12 ? sqrt(diff2) / den : 0.0;
  cr_assert(sqrt(ana2) > 0 || sqrt(num2) < 1e-6, "%s: analytic gradient is all zero", name);
  cr_assert(rel < 2e-2, "%s: relative gradient error %.3g (|ana| %.3g, |num| %.3g)", name, rel, sqrt(ana2),
            sqrt(num2));
  return rel;
}

/* ---------- matmul (decoder) ---------- */
typedef struct {
  int N, C, OC;
  float *inp, *W, *b, *out, *r;
} mm_ctx;
static double mm_loss(void *c) {
  mm_ctx *x = c;
  ns_matmul_fwd(x->out, x->inp, x->W, x->b, x->N, x->C, x->OC);
  return dot(x->out, x->r, (size_t)x->N * x->OC);
}
Test(grad, matmul) {
  mm_ctx c = {.N = 5, .C = 7, .OC = 3};
  c.inp = rnd(35, 1), c.W = rnd(21, 1), c.b = rnd(3, 1), c.out = rnd(15, 1), c.r = rnd(15, 1);
  float *dinp = calloc(35, 4), *dW = calloc(21, 4), *db = calloc(3, 4);
  mm_loss(&c);
  ns_matmul_bwd(dinp, false, dW, db, c.r, c.inp, c.W, 5, 7, 3);
  check("matmul.inp", c.inp, 35, dinp, mm_loss, NULL, &c, 1e-3f);
  check("matmul.W", c.W, 21, dW, mm_loss, NULL, &c, 1e-3f);
  check("matmul.b", c.b, 3, db, mm_loss, NULL, &c, 1e-3f);
  free(dinp), free(dW), free(db), free(c.inp), free(c.W), free(c.b), free(c.out), free(c.r);
}

/* ---------- layernorm ---------- */
typedef struct {
  int N, C;
  float *inp, *g, *b, *out, *mean, *rstd, *r;
} ln_ctx;
static double ln_loss(void *c) {
  ln_ctx *x = c;
  ns_layernorm_fwd(x->out, x->mean, x->rstd, x->inp, x->g, x->b, x->N, x->C);
  return dot(x->out, x->r, (size_t)x->N * x->C);
}
Test(grad, layernorm) {
  ln_ctx c = {.N = 4, .C = 6};
  c.inp = rnd(24, 2), c.g = rnd(6, 1), c.b = rnd(6, 1), c.out = rnd(24, 1), c.mean = rnd(4, 1), c.rstd = rnd(4, 1);
  c.r = rnd(24, 1);
  float *dinp = calloc(24, 4), *dg = calloc(6, 4), *db = calloc(6, 4);
  ln_loss(&c);
  ns_layernorm_bwd(dinp, dg, db, c.r, c.inp, c.g, c.mean, c.rstd, 4, 6);
  check("layernorm.inp", c.inp, 24, dinp, ln_loss, NULL, &c, 1e-3f);
  check("layernorm.g", c.g, 6, dg, ln_loss, NULL, &c, 1e-3f);
  check("layernorm.b", c.b, 6, db, ln_loss, NULL, &c, 1e-3f);
  free(dinp), free(dg), free(db), free(c.inp), free(c.g), free(c.b), free(c.out), free(c.mean), free(c.rstd);
  free(c.r);
}

/* ---------- attention ---------- */
typedef struct {
  int B, T, C, H;
  float *qkv, *out, *att, *r;
} at_ctx;
static double at_loss(void *c) {
  at_ctx *x = c;
  ns_attention_fwd(x->out, x->att, x->qkv, x->B, x->T, x->C, x->H);
  return dot(x->out, x->r, (size_t)x->B * x->T * x->C);
}
Test(grad, attention) {
  at_ctx c = {.B = 2, .T = 5, .C = 6, .H = 3};
  size_t nq = 2 * 5 * 18, no = 2 * 5 * 6;
  c.qkv = rnd(nq, 1), c.out = rnd(no, 1), c.att = rnd(2 * 3 * 25, 1), c.r = rnd(no, 1);
  float *dqkv = calloc(nq, 4), *dS = calloc(25, 4);
  at_loss(&c);
  ns_attention_bwd(dqkv, dS, c.r, c.qkv, c.att, 2, 5, 6, 3);
  check("attention.qkv", c.qkv, nq, dqkv, at_loss, NULL, &c, 1e-3f);
  free(dqkv), free(dS), free(c.qkv), free(c.out), free(c.att), free(c.r);
}

/* ---------- embedding with both positional parts ---------- */
typedef struct {
  int B, T, M, d;
  float *x, *W, *b, *pe, *seg_emb, *out, *r;
  int *seg;
} em_ctx;
static double em_loss(void *c) {
  em_ctx *e = c;
  ns_embed_fwd(e->out, e->x, e->W, e->b, e->pe, e->seg_emb, e->seg, e->B, e->T, e->M, e->d);
  return dot(e->out, e->r, (size_t)e->B * e->T * e->d);
}
Test(grad, embedding) {
  int seg[3] = {2, 0, 2};
  em_ctx c = {.B = 3, .T = 4, .M = 5, .d = 6};
  c.seg = seg;
  c.x = rnd(60, 1), c.W = rnd(30, 1), c.b = rnd(6, 1), c.pe = rnd(24, 1), c.seg_emb = rnd(18, 1);
  c.out = rnd(72, 1), c.r = rnd(72, 1);
  float *dW = calloc(30, 4), *db = calloc(6, 4), *ds = calloc(18, 4);
  em_loss(&c);
  ns_embed_bwd(dW, db, ds, c.r, c.x, seg, 3, 4, 5, 6);
  check("embed.W", c.W, 30, dW, em_loss, NULL, &c, 1e-3f);
  check("embed.b", c.b, 6, db, em_loss, NULL, &c, 1e-3f);
  check("embed.seg_emb", c.seg_emb, 18, ds, em_loss, NULL, &c, 1e-3f);
  for (int i = 6; i < 12; i++) cr_assert_eq(ds[i], 0.0f, "unused segment code got a gradient");
  free(dW), free(db), free(ds), free(c.x), free(c.W), free(c.b), free(c.pe), free(c.seg_emb), free(c.out);
  free(c.r);
}

/* ---------- MoE with routing (sparse top-k and dense) ---------- */
typedef struct {
  int N, d, F, E, K;
  bool dense;
  float *inp, *rt, *w1, *b1, *w2, *b2, *out, *r, *aux;
  ns_acts a;
} moe_ctx;
static double moe_loss(void *c) {
  moe_ctx *m = c;
  ns_moe_p p = {m->rt, m->w1, m->b1, m->w2, m->b2};
  ns_moe_fwd(m->out, &m->a, m->inp, &p, m->N, m->d, m->F, m->E, m->K, m->dense, NULL);
  double l = dot(m->out, m->r, (size_t)m->N * m->d);
  if (!m->dense)
    for (int n = 0; n < m->N; n++) l += dot(m->a.prob + (size_t)n * m->E, m->aux, (size_t)m->E);
  return l;
}
static uint64_t moe_route(void *c) {
  moe_ctx *m = c;
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < m->N * m->K; i++) h = (h ^ (uint64_t)m->a.asg_tok[i]) * 1099511628211ULL;
  for (int e = 0; e <= m->E; e++) h = (h ^ (uint64_t)m->a.asg_off[e]) * 1099511628211ULL;
  for (int i = 0; i < m->N * m->K * m->F; i++) h = (h ^ (uint64_t)(m->a.Hh[i] > 0)) * 1099511628211ULL;
  return h;
}
static void moe_case(int K, bool dense) {
  moe_ctx c = {.N = 12, .d = 6, .F = 5, .E = dense ? 1 : 3, .K = dense ? 1 : K, .dense = dense};
  int N = c.N, d = c.d, F = c.F, E = c.E;
  size_t NK = (size_t)N * c.K;
  c.inp = rnd((size_t)N * d, 1), c.rt = rnd((size_t)E * d, 2), c.w1 = rnd((size_t)E * F * d, 1);
  c.b1 = rnd((size_t)E * F, 0.5f), c.w2 = rnd((size_t)E * d * F, 1), c.b2 = rnd((size_t)E * d, 0.5f);
  c.out = rnd((size_t)N * d, 1), c.r = rnd((size_t)N * d, 1), c.aux = rnd((size_t)E, 1);
  c.a.prob = rnd((size_t)N * E, 1), c.a.G = rnd(NK * d, 1), c.a.Hh = rnd(NK * F, 1), c.a.Y = rnd(NK * d, 1);
  c.a.asg_tok = calloc(NK, sizeof(int)), c.a.asg_off = calloc((size_t)E + 1, sizeof(int));
  float *dinp = calloc((size_t)N * d, 4), *grt = calloc((size_t)E * d, 4), *gw1 = calloc((size_t)E * F * d, 4);
  float *gb1 = calloc((size_t)E * F, 4), *gw2 = calloc((size_t)E * d * F, 4), *gb2 = calloc((size_t)E * d, 4);
  float *dY = calloc(NK * d, 4), *dH = calloc(NK * F, 4), *dG = calloc(NK * d, 4), *dprob = calloc((size_t)N * E, 4);
  moe_loss(&c);
  if (!dense) {
    // every token went to exactly K experts, experts grouped
    cr_assert_eq(c.a.asg_off[E], N * c.K);
    int used = 0;
    for (int e = 0; e < E; e++) used += c.a.asg_off[e + 1] > c.a.asg_off[e];
    cr_assert(used >= 2, "test input routes every token to one expert; pick another seed");
  }
  ns_moe_p p = {c.rt, c.w1, c.b1, c.w2, c.b2};
  ns_moe_g g = {grt, gw1, gb1, gw2, gb2};
  ns_moe_bwd(dinp, &g, c.r, &c.a, c.inp, &p, dY, dH, dG, dprob, N, d, F, E, c.K, dense, dense ? NULL : c.aux);
  route_fn rf = moe_route;
  check("moe.inp", c.inp, (size_t)N * d, dinp, moe_loss, rf, &c, 1e-3f);
  if (!dense) check("moe.router", c.rt, (size_t)E * d, grt, moe_loss, rf, &c, 1e-3f);
  check("moe.w1", c.w1, (size_t)E * F * d, gw1, moe_loss, rf, &c, 1e-3f);
  check("moe.b1", c.b1, (size_t)E * F, gb1, moe_loss, rf, &c, 1e-3f);
  check("moe.w2", c.w2, (size_t)E * d * F, gw2, moe_loss, rf, &c, 1e-3f);
  check("moe.b2", c.b2, (size_t)E * d, gb2, moe_loss, rf, &c, 1e-3f);
  float *all[] = {c.inp, c.rt, c.w1, c.b1, c.w2, c.b2, c.out, c.r, c.aux, c.a.prob, c.a.G, c.a.Hh, c.a.Y,
                  dinp, grt, gw1, gb1, gw2, gb2, dY, dH, dG, dprob};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
  free(c.a.asg_tok), free(c.a.asg_off);
}
Test(grad, moe_top1) { moe_case(1, false); }
Test(grad, moe_top2) { moe_case(2, false); }
Test(grad, dense_ffn) { moe_case(1, true); }

/* ---------- loss (MAC-weighted, closeness-weighted) ---------- */
Test(grad, loss) {
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 4, hp.n_heads = 2, hp.window = 3, hp.n_layers = 1;
  const char *names[] = {"a", "b", "c", "d"};
  float mac[] = {0.1f, 0.4f, 0.0f, 0.5f};
  ns_model *m = NULL;
  cr_assert_eq(ns_model_create(&hp, names, mac, &m), NS_OK, "%s", ns_err_detail());
  ns_ws *w = NULL;
  cr_assert_eq(ns_ws_create(m, 2, 3, true, &w), NS_OK);
  float *x = rnd(24, 1), cw[2] = {0.3f, 1.0f};
  for (int i = 0; i < 24; i++) w->out[i] = frand();
  ns_model_loss(m, w, x, cw, 2, 3, 2.0, true);
  float *g = malloc(24 * 4);
  memcpy(g, w->dout, 24 * 4);
  double ref = 0;
  for (int i = 0; i < 24; i++) {
    float save = w->out[i];
    w->out[i] = save + 1e-3f;
    double lp = ns_model_loss(m, w, x, cw, 2, 3, 2.0, false);
    w->out[i] = save - 1e-3f;
    double lm = ns_model_loss(m, w, x, cw, 2, 3, 2.0, false);
    w->out[i] = save;
    double num = (lp - lm) / 2e-3;
    cr_assert(fabs(num - g[i]) < 1e-3 + 1e-2 * fabs(num), "dL/dout[%d]: %g vs %g", i, g[i], num);
    int b = i / 12, mm = i % 4;
    double e = w->out[i] - x[i];
    ref += cw[b] * mac[mm] * e * e / (2.0 * 3);
  }
  cr_assert(fabs(ns_model_loss(m, w, x, cw, 2, 3, 2.0, false) - ref) < 1e-6 * (1 + ref));
  for (int i = 2; i < 24; i += 4) cr_assert_eq(g[i], 0.0f, "a metric with MAC weight 0 got a gradient");
  free(g), free(x);
  ns_ws_free(w);
  ns_model_free(m);
}

/* ---------- the whole model ---------- */
typedef struct {
  ns_model *m;
  ns_ws *w;
  float *x, *cw, *auxg;
  int *seg;
  uint64_t *wid;
  int B, T;
} full_ctx;
static double full_loss(void *c) {
  full_ctx *f = c;
  const ns_shape *s = &f->m->sh;
  ns_model_fwd(f->m, f->w, f->x, f->seg, f->B, f->T, true, 777, f->wid);
  double l = ns_model_loss(f->m, f->w, f->x, f->cw, f->B, f->T, f->B, false);
  if (f->m->hp.moe)
    for (int layer = 0; layer < s->L; layer++) {
      ns_acts a;
      ns_ws_layer(f->w, layer, &a);
      for (int n = 0; n < f->B * f->T; n++)
        l += dot(a.prob + (size_t)n * s->E, f->auxg + (size_t)layer * s->E, (size_t)s->E);
    }
  return l;
}
static uint64_t full_route(void *c) {
  full_ctx *f = c;
  const ns_shape *s = &f->m->sh;
  uint64_t h = 1469598103934665603ULL;
  for (int layer = 0; layer < s->L; layer++) {
    ns_acts a;
    ns_ws_layer(f->w, layer, &a);
    for (int i = 0; i < f->B * f->T * s->K; i++) h = (h ^ (uint64_t)a.asg_tok[i]) * 1099511628211ULL;
    for (int e = 0; e <= s->E; e++) h = (h ^ (uint64_t)a.asg_off[e]) * 1099511628211ULL;
    for (int i = 0; i < f->B * f->T * s->K * s->F; i++) h = (h ^ (uint64_t)(a.Hh[i] > 0)) * 1099511628211ULL;
  }
  return h;
}
static void full_case(bool moe, bool between, float dropout, int K) {
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = 5; // not a multiple of the heads: d_model = 6
  hp.n_heads = 2, hp.n_layers = 2, hp.n_experts = 3, hp.top_k = K, hp.d_ff = 7, hp.n_segments = 3;
  hp.window = 4, hp.dropout = dropout, hp.moe = moe, hp.between_pos = between, hp.seed = 5;
  const char *names[] = {"m0", "m1", "m2", "m3", "m4"};
  float mac[] = {0.1f, 0.3f, 0.2f, 0.15f, 0.25f};
  full_ctx c = {0};
  c.B = 3, c.T = 4;
  rng_state = 5150; // fixed instance, its ReLUs and routes clear of their kinks
  cr_assert_eq(ns_model_create(&hp, names, mac, &c.m), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(c.m->hp.d_model, 6);
  // larger LayerNorm gains/biases and segment rows than the init, so their gradients are visible
  for (size_t i = 0; i < c.m->n_params; i++) c.m->arena[i] += 0.1f * frand();
  cr_assert_eq(ns_ws_create(c.m, c.B, c.T, true, &c.w), NS_OK);
  int seg[3] = {2, 0, 1};
  uint64_t wid[3] = {10, 11, 12};
  float cw[3] = {1.0f, 0.5f, 0.8f};
  c.seg = seg, c.wid = wid, c.cw = cw;
  c.x = rnd((size_t)c.B * c.T * 5, 1.5f);
  c.auxg = rnd((size_t)c.m->sh.L * c.m->sh.E, 0.05f);
  float *g = calloc(c.m->n_params, sizeof(float));
  full_loss(&c);
  ns_model_loss(c.m, c.w, c.x, c.cw, c.B, c.T, c.B, true);
  ns_model_bwd(c.m, c.w, g, c.x, c.seg, c.B, c.T, moe ? c.auxg : NULL);
  size_t o = 0;
  for (int t = 0; t < NS_NPARAM; t++) {
    size_t n = c.m->sizes[t];
    bool unused = (!moe && t == 9) || (!between && t == 2);
    if (unused) {
      for (size_t i = 0; i < n; i++) cr_assert_eq(g[o + i], 0.0f, "%s: gradient on an unused tensor", ns_param_names[t]);
    } else {
      check(ns_param_names[t], c.m->arena + o, n, g + o, full_loss, full_route, &c, 1e-3f);
    }
    o += n;
  }
  free(g), free(c.x), free(c.auxg);
  ns_ws_free(c.w);
  ns_model_free(c.m);
}
Test(grad, whole_model_moe_top1_dropout) { full_case(true, true, 0.2f, 1); }
Test(grad, whole_model_moe_top2) { full_case(true, true, 0.0f, 2); }
Test(grad, whole_model_dense_no_between) { full_case(false, false, 0.1f, 1); }
