/* Internals of the model shared by ns_model*.c, ns_train.c and the model
 * tests (gradient checks): the parameter arena with named views, the
 * activation workspace, and the layer forward/backward pairs. Not installed. */
#ifndef NS_MODEL_IMPL_H
#define NS_MODEL_IMPL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_model.h"

/* ---- parameters: one arena, named views (each view spans all layers) ---- */
#define NS_NPARAM 18
typedef struct ns_params {
  float *emb_w;   /* (d, M) */
  float *emb_b;   /* (d) */
  float *seg_emb; /* (S, d) */
  float *qkv_w;   /* (L, 3d, d)  rows [Wq; Wk; Wv] */
  float *qkv_b;   /* (L, 3d) */
  float *att_w;   /* (L, d, d) */
  float *att_b;   /* (L, d) */
  float *ln1_g;   /* (L, d) */
  float *ln1_b;   /* (L, d) */
  float *rt_w;    /* (L, E, d) router */
  float *w1;      /* (L, E, F, d) */
  float *b1;      /* (L, E, F) */
  float *w2;      /* (L, E, d, F) */
  float *b2;      /* (L, E, d) */
  float *ln2_g;   /* (L, d) */
  float *ln2_b;   /* (L, d) */
  float *dec_w;   /* (M, d) */
  float *dec_b;   /* (M) */
} ns_params;

typedef struct ns_shape {
  int M, d, L, H, E, K, F, S; /* E = 1, K = 1 when dense */
} ns_shape;

/* sizes[i] of tensor i; decay[i]: whether AdamW decays it. Returns total. */
size_t ns_params_layout(const ns_shape *s, size_t sizes[NS_NPARAM], bool decay[NS_NPARAM]);
void ns_params_point(ns_params *p, float *arena, const size_t sizes[NS_NPARAM]);
extern const char *const ns_param_names[NS_NPARAM];

struct ns_model {
  ns_model_hparams hp;
  ns_shape sh;
  char **metrics;       /* M names */
  float *mac;           /* M weights, sum 1 */
  ns_score_stats stats;
  size_t sizes[NS_NPARAM];
  bool decay[NS_NPARAM];
  size_t n_params;
  float *arena;
  ns_params p;
  float *pe;            /* (pe_len, d) sinusoidal table, grown on demand */
  int pe_len;
  uint64_t *expert_rows;/* E counters, atomic */
  struct ns_bf16_model *bf16;  /* packed bf16 weights while hp.precision is bf16 */
};

/* ---- activations: one arena per worker, sized for (B, T) ---- */
typedef struct ns_acts {
  /* per layer (layer stride = one layer's worth; 0 in inference) */
  float *qkv;     /* (N, 3d) */
  float *att;     /* (B, H, T, T) softmax probabilities */
  float *atty;    /* (N, d) attention output before projection */
  float *attp;    /* (N, d) after projection */
  float *mask1;   /* (N, d) dropout scale, training only */
  float *res1;    /* (N, d) */
  float *ln1;     /* (N, d) */
  float *mean1, *rstd1; /* (N) */
  float *prob;    /* (N, E) router softmax */
  float *G;       /* (N*K, d) tokens gathered per expert */
  float *Hh;      /* (N*K, F) expert hidden after ReLU */
  float *Y;       /* (N*K, d) expert outputs */
  float *moe;     /* (N, d) */
  float *mask2;   /* (N, d) */
  float *res2;    /* (N, d) */
  float *ln2;     /* (N, d) layer output */
  float *mean2, *rstd2;
  int *asg_tok;   /* (N*K) token of each gathered row, grouped by expert */
  int *asg_off;   /* (E+1) group offsets */
} ns_acts;

typedef struct ns_ws {
  int Bmax, T, nlay; /* nlay: layers stored (L training, 1 inference) */
  bool train;
  size_t N;          /* Bmax*T */
  float *farena;
  int *iarena;
  float *x0;         /* (N, d) embedded input */
  float *out;        /* (N, M) reconstruction */
  float *layer0;     /* first layer block; layer l at l*lstride_f */
  size_t n_asg;      /* N*K */
  size_t lstride_f, lstride_i;
  size_t off[24];    /* per-tensor offsets inside a layer block */
  /* gradient scratch (training) */
  float *dx, *dx2, *dqkv, *datt, *dattp, *dmoe, *dY, *dH, *dG, *dprob, *dout, *dS;
  uint64_t *rows;    /* E counts of this worker's last forward, per layer: (L, E) */
} ns_ws;

ns_status ns_ws_create(const ns_model *m, int Bmax, int T, bool train, ns_ws **out);
void ns_ws_free(ns_ws *w);
/* Layer l's activation views. */
void ns_ws_layer(const ns_ws *w, int l, ns_acts *a);

/* Grow m->pe to at least T positions (not thread-safe: call before sharing). */
ns_status ns_model_pe_reserve(ns_model *m, int T);

/* Forward over B windows of T points. train: dropout on with masks drawn from
 * (drop_seed, win_ids[b]) so results do not depend on how windows are split
 * between workers. */
void ns_model_fwd(const ns_model *m, ns_ws *w, const float *x, const int *seg, int B, int T, bool train,
                  uint64_t drop_seed, const uint64_t *win_ids);
/* Loss of the last forward: sum_b cw[b] * mean_t sum_m W_m (out - x)^2 / norm_B.
 * Writes dL/dout into w->dout when want_grad. Returns the loss contribution. */
double ns_model_loss(const ns_model *m, ns_ws *w, const float *x, const float *cw, int B, int T, double norm_B,
                     bool want_grad);
/* Backward of the last (training) forward; accumulates into grads (same
 * layout as the arena). aux_g: (L, E) dL_aux/dp per token (zero = no aux). */
void ns_model_bwd(const ns_model *m, ns_ws *w, float *grads, const float *x, const int *seg, int B, int T,
                  const float *aux_g);

/* ---- layers (shapes: N tokens, C in, OC out) ---- */
/* out (N,OC) = inp (N,C) W^T (OC,C) + b */
void ns_matmul_fwd(float *out, const float *inp, const float *W, const float *b, int N, int C, int OC);
/* dinp (N,C) (+)= dout W; dW += dout^T inp; db += colsum(dout) */
void ns_matmul_bwd(float *dinp, bool acc, float *dW, float *db, const float *dout, const float *inp,
                   const float *W, int N, int C, int OC);
void ns_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *g, const float *b,
                      int N, int C);
/* dinp += ...; dg, db += ... */
void ns_layernorm_bwd(float *dinp, float *dg, float *db, const float *dout, const float *inp, const float *g,
                      const float *mean, const float *rstd, int N, int C);
/* qkv (B,T,3C) -> out (B,T,C), att (B,H,T,T) */
void ns_attention_fwd(float *out, float *att, const float *qkv, int B, int T, int C, int H);
/* dqkv (B,T,3C) = ...; dS: (T,T) scratch */
void ns_attention_bwd(float *dqkv, float *dS, const float *dout, const float *qkv, const float *att, int B,
                      int T, int C, int H);
/* Embedding (B,T,M) -> (B,T,d) plus PE within (pe (T,d)) and between (seg_emb row seg[b]). */
void ns_embed_fwd(float *out, const float *x, const float *W, const float *b, const float *pe,
                  const float *seg_emb, const int *seg, int B, int T, int M, int d);
void ns_embed_bwd(float *dW, float *db, float *dseg, const float *dout, const float *x, const int *seg, int B,
                  int T, int M, int d);
/* MoE over N tokens of width d. Layer params: rt (E,d), w1 (E,F,d), b1 (E,F),
 * w2 (E,d,F), b2 (E,d). dense: E = K = 1, gate 1, no router. rows: E counters
 * (+= rows per expert). */
typedef struct ns_moe_p {
  const float *rt, *w1, *b1, *w2, *b2;
} ns_moe_p;
typedef struct ns_moe_g {
  float *rt, *w1, *b1, *w2, *b2;
} ns_moe_g;
/* Routing of N tokens with router probabilities prob (N,E) to their top-K
 * experts (ties to the lower index): expert e's tokens, in order, are
 * tok[off[e] .. off[e+1]). off: E+1, tok: N*K. Shared by both precisions. */
void ns_moe_route(const float *prob, int N, int E, int K, int *off, int *tok);
void ns_moe_fwd(float *out, ns_acts *a, const float *inp, const ns_moe_p *p, int N, int d, int F, int E, int K,
                bool dense, uint64_t *rows);
/* dinp += ...; grads += ...; aux_g (E): extra dL/dp per token and expert. */
void ns_moe_bwd(float *dinp, const ns_moe_g *g, const float *dout, const ns_acts *a, const float *inp,
                const ns_moe_p *p, float *dY, float *dH, float *dG, float *dprob, int N, int d, int F, int E,
                int K, bool dense, const float *aux_g);

/* deterministic RNG */
static inline uint64_t ns_splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static inline float ns_rand_unit(uint64_t *s) { /* [0,1) */
  return (float)(ns_splitmix64(s) >> 40) * (1.0f / 16777216.0f);
}

void ns_model_blas_init(void);
/* qsort comparator for float */
int ns_cmp_float(const void *a, const void *b);

/* ---- bf16 inference (ns_model_bf16.c) ---- */
typedef struct ns_bf16_model ns_bf16_model;
typedef struct ns_bf16_ws ns_bf16_ws;
bool ns_bf16_supported(void);
/* Round m's current weights to bf16 in the kernels' layout. */
ns_status ns_bf16_pack(const ns_model *m, ns_bf16_model **out);
void ns_bf16_free(ns_bf16_model *p);
ns_status ns_bf16_ws_create(const ns_model *m, int Bmax, int T, ns_bf16_ws **out);
void ns_bf16_ws_free(ns_bf16_ws *w);
/* Inference forward of B windows of T points with m->bf16; result in
 * ns_bf16_ws_out(w) (B*T, M). */
void ns_bf16_fwd(const ns_model *m, ns_bf16_ws *w, const float *x, const int *seg, int B, int T);
const float *ns_bf16_ws_out(const ns_bf16_ws *w);
/* m's weights changed (training, clone): repack if hp.precision is bf16. */
ns_status ns_model_weights_changed(ns_model *m);

/* Benchmark hook: wall and process-CPU seconds per training step (nb
 * windows, forward + backward + AdamW), after warm-up. */
struct ns_train_series;
ns_status ns_train_bench_steps(ns_model *m, const struct ns_train_series *s, size_t n, int nb, int steps,
                               double *sec_per_step, double *cpu_per_step);

#endif
