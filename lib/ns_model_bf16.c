/* bf16 inference path of the model (forward only, model_precision = bf16).
 *
 * Why: at the reference size the forward is 0.76 MFLOP of linear layers per
 * point; fp32 GEMM on one core tops out near 95 GFLOP/s, which caps the
 * forward near 100 k points/s. With AVX512-BF16 (vdpbf16ps: bf16 inputs, fp32
 * accumulation) the same core does ~200 GFLOP/s. Weights are rounded to bf16
 * once and packed into the kernel's layout; activations are rounded when they
 * enter a linear layer; everything else (residual stream, LayerNorm,
 * attention, softmax, router, the loss-side score) stays fp32. Training never
 * uses this path.
 *
 * Layout of a packed linear layer (out N, in K): 16 output columns per block,
 * input taken in pairs (KP = ceil(K/2)): w[nb][kp][16 lanes][2]. A bf16
 * activation row has 2*KP elements, the pad element zero. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ns_model_impl.h"

#if defined(__x86_64__) && ((defined(__GNUC__) && __GNUC__ >= 10) || defined(__clang__))
#define NS_BF16_KERNELS 1
#include <immintrin.h>
#define NS_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

typedef struct bf16_lin {
  uint16_t *w; /* (NB, KP, 32) */
  float *b;    /* (NB*16), zero past N */
  int KP, N, NB; /* input pairs, outputs, 16-column blocks */
} bf16_lin;

struct ns_bf16_model {
  int L, E; /* layers, experts per layer: sizes of the arrays below */
  bf16_lin emb, dec;
  bf16_lin *qkv, *att; /* L each */
  bf16_lin *w1, *w2;   /* L*E each */
};

struct ns_bf16_ws {
  uint16_t *xb;   /* (N, 2KP(M)) */
  float *h;       /* (N, d) layer input / output, fp32 residual stream */
  uint16_t *hb;   /* (N, 2KP(d)) the same in bf16 */
  float *qkv;     /* (N, 3d) */
  float *KT;      /* (hs, T) keys of one head, transposed */
  float *P;       /* (T, T) attention of one head */
  float *atty;    /* (N, d) */
  uint16_t *attyb;/* (N, 2KP(d)) */
  float *attp;    /* (N, d) */
  float *ln1;     /* (N, d) */
  uint16_t *ln1b; /* (N, 2KP(d)) */
  float *prob;    /* (N, E) */
  uint16_t *G;    /* (NK, 2KP(d)) tokens gathered per expert */
  uint16_t *Hb;   /* (NK, 2KP(F)) expert hidden after ReLU */
  float *Y;       /* (NK, d) */
  float *moe;     /* (N, d) */
  float *out;     /* (N, M) */
  int *tok;       /* (NK) */
  int *off;       /* (E+1) */
  uint64_t *rows; /* (L, E) */
};

static inline uint16_t f2bf(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);                                           /* nearest, ties to even */
  return (uint16_t)(u >> 16);
}

bool ns_bf16_supported(void) {
#ifdef NS_BF16_KERNELS
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

/* ---- packing ---- */

static ns_status lin_pack(bf16_lin *L, const float *W, const float *b, int N, int K) {
  L->N = N;
  L->KP = (K + 1) / 2;
  L->NB = (N + 15) / 16;
  size_t nw = (size_t)L->NB * L->KP * 32;
  L->w = calloc(nw, sizeof *L->w);
  L->b = calloc((size_t)L->NB * 16, sizeof *L->b);
  if (!L->w || !L->b) return NS_ERR_NOMEM;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      L->w[((size_t)(n / 16) * L->KP + k / 2) * 32 + (size_t)(n % 16) * 2 + (k & 1)] = f2bf(W[(size_t)n * K + k]);
  if (b) memcpy(L->b, b, (size_t)N * sizeof *b);
  return NS_OK;
}

static void lin_free(bf16_lin *L) {
  if (!L) return;
  free(L->w);
  free(L->b);
}

void ns_bf16_free(ns_bf16_model *p) {
  if (!p) return;
  lin_free(&p->emb);
  lin_free(&p->dec);
  for (int l = 0; p->qkv && l < p->L; l++) lin_free(&p->qkv[l]);
  for (int l = 0; p->att && l < p->L; l++) lin_free(&p->att[l]);
  for (int i = 0; p->w1 && i < p->L * p->E; i++) lin_free(&p->w1[i]);
  for (int i = 0; p->w2 && i < p->L * p->E; i++) lin_free(&p->w2[i]);
  free(p->qkv);
  free(p->att);
  free(p->w1);
  free(p->w2);
  free(p);
}

ns_status ns_bf16_pack(const ns_model *m, ns_bf16_model **out) {
  *out = NULL;
  if (!ns_bf16_supported())
    return ns_errorf(NS_ERR_UNSUPPORTED, "model_precision = bf16 needs a CPU with AVX512-BF16; this one has none");
  const ns_shape *s = &m->sh;
  const ns_params *p = &m->p;
  ns_bf16_model *b = calloc(1, sizeof *b);
  if (!b) return NS_ERR_NOMEM;
  b->L = s->L, b->E = s->E;
  size_t d = (size_t)s->d, E = (size_t)s->E, F = (size_t)s->F;
  ns_status st = NS_ERR_NOMEM;
  if (!(b->qkv = calloc((size_t)s->L, sizeof *b->qkv)) || !(b->att = calloc((size_t)s->L, sizeof *b->att)) ||
      !(b->w1 = calloc((size_t)s->L * E, sizeof *b->w1)) || !(b->w2 = calloc((size_t)s->L * E, sizeof *b->w2)))
    goto fail;
  if ((st = lin_pack(&b->emb, p->emb_w, p->emb_b, s->d, s->M))) goto fail;
  if ((st = lin_pack(&b->dec, p->dec_w, p->dec_b, s->M, s->d))) goto fail;
  for (size_t l = 0; l < (size_t)s->L; l++) {
    if ((st = lin_pack(&b->qkv[l], p->qkv_w + l * 3 * d * d, p->qkv_b + l * 3 * d, 3 * s->d, s->d))) goto fail;
    if ((st = lin_pack(&b->att[l], p->att_w + l * d * d, p->att_b + l * d, s->d, s->d))) goto fail;
    for (size_t e = 0; e < E; e++) {
      size_t le = l * E + e;
      if ((st = lin_pack(&b->w1[le], p->w1 + le * F * d, p->b1 + le * F, s->F, s->d))) goto fail;
      if ((st = lin_pack(&b->w2[le], p->w2 + le * d * F, p->b2 + le * d, s->d, s->F))) goto fail;
    }
  }
  *out = b;
  return NS_OK;
fail:
  ns_bf16_free(b);
  return st;
}

/* ---- workspace ---- */

void ns_bf16_ws_free(ns_bf16_ws *w) {
  if (!w) return;
  free(w->xb), free(w->h), free(w->hb), free(w->qkv), free(w->KT), free(w->P), free(w->atty), free(w->attyb);
  free(w->attp), free(w->ln1), free(w->ln1b), free(w->prob), free(w->G), free(w->Hb), free(w->Y);
  free(w->moe), free(w->out), free(w->tok), free(w->off), free(w->rows);
  free(w);
}

ns_status ns_bf16_ws_create(const ns_model *m, int Bmax, int T, ns_bf16_ws **out) {
  *out = NULL;
  const ns_shape *s = &m->sh;
  ns_bf16_ws *w = calloc(1, sizeof *w);
  if (!w) return NS_ERR_NOMEM;
  size_t N = (size_t)Bmax * T, NK = N * (size_t)s->K, d = (size_t)s->d;
  size_t M2 = 2 * (((size_t)s->M + 1) / 2), d2 = 2 * ((d + 1) / 2), F2 = 2 * (((size_t)s->F + 1) / 2);
  /* calloc: the pad element of every bf16 row must read as zero */
  w->xb = calloc(N * M2, sizeof *w->xb);
  w->h = calloc(N * d, sizeof *w->h);
  w->hb = calloc(N * d2, sizeof *w->hb);
  w->qkv = calloc(N * 3 * d, sizeof *w->qkv);
  w->KT = calloc((size_t)(s->d / s->H) * T, sizeof *w->KT);
  w->P = calloc((size_t)T * T, sizeof *w->P);
  w->atty = calloc(N * d, sizeof *w->atty);
  w->attyb = calloc(N * d2, sizeof *w->attyb);
  w->attp = calloc(N * d, sizeof *w->attp);
  w->ln1 = calloc(N * d, sizeof *w->ln1);
  w->ln1b = calloc(N * d2, sizeof *w->ln1b);
  w->prob = calloc(N * (size_t)s->E, sizeof *w->prob);
  w->G = calloc(NK * d2, sizeof *w->G);
  w->Hb = calloc(NK * F2, sizeof *w->Hb);
  w->Y = calloc(NK * d, sizeof *w->Y);
  w->moe = calloc(N * d, sizeof *w->moe);
  w->out = calloc(N * (size_t)s->M, sizeof *w->out);
  w->tok = calloc(NK, sizeof *w->tok);
  w->off = calloc((size_t)s->E + 1, sizeof *w->off);
  w->rows = calloc((size_t)s->L * s->E, sizeof *w->rows);
  if (!w->xb || !w->h || !w->hb || !w->qkv || !w->KT || !w->P || !w->atty || !w->attyb || !w->attp || !w->ln1 ||
      !w->ln1b || !w->prob || !w->G || !w->Hb || !w->Y || !w->moe || !w->out || !w->tok || !w->off || !w->rows) {
    ns_bf16_ws_free(w);
    return NS_ERR_NOMEM;
  }
  *out = w;
  return NS_OK;
}

const float *ns_bf16_ws_out(const ns_bf16_ws *w) { return w->out; }

#ifdef NS_BF16_KERNELS
/* Lanes of a 16-wide vector holding the first n (may be <= 0 or > 16) valid elements. */
static inline __mmask16 tail_mask(int n) {
  return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
}

/* o[0..K) = bf16(s[0..K)), nearest-even (the same rounding as f2bf for
 * finite values) */
NS_TARGET_BF16 static void row_bf16(uint16_t *o, const float *s, int K) {
  int k = 0;
  for (; k + 16 <= K; k += 16)
    _mm256_storeu_si256((__m256i *)(o + k), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s + k)));
  if (k < K) {
    __mmask16 mk = tail_mask(K - k);
    _mm256_mask_storeu_epi16(o + k, mk, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, s + k)));
  }
}

/* rows (N, K) fp32 with leading dimension ld -> bf16 (N, 2KP), pad zero */
static void to_bf16(uint16_t *dst, const float *src, size_t N, int K, size_t ld) {
  int K2 = 2 * ((K + 1) / 2);
  for (size_t n = 0; n < N; n++) {
    uint16_t *o = dst + n * (size_t)K2;
    row_bf16(o, src + n * ld, K);
    if (K2 > K) o[K] = 0;
  }
}

/* ---- the GEMM: C (rows, N) = A (rows, 2KP) . W^T + b ---- */

enum { OUT_F32, OUT_BF16_RELU };

/* R rows x CZ column blocks of 16; everything unrolled (R, CZ, mode constant). */
NS_TARGET_BF16 static inline __attribute__((always_inline)) void
micro(const uint16_t *A, size_t lda, const uint16_t *W, int KP, const float *bias, int nvalid, int R, int CZ,
      int mode, float *C, size_t ldc, uint16_t *Cb, size_t ldcb) {
  __m512 acc[12][2];
  for (int c = 0; c < CZ; c++) {
    __m512 bv = _mm512_loadu_ps(bias + 16 * c);
    for (int r = 0; r < R; r++) acc[r][c] = bv;
  }
  for (int kp = 0; kp < KP; kp++) {
    __m512bh wv[2];
    for (int c = 0; c < CZ; c++) wv[c] = (__m512bh)_mm512_loadu_si512(W + ((size_t)c * KP + kp) * 32);
    for (int r = 0; r < R; r++) {
      int32_t pair;
      memcpy(&pair, A + (size_t)r * lda + 2 * (size_t)kp, sizeof pair);
      __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
      for (int c = 0; c < CZ; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], av, wv[c]);
    }
  }
  for (int c = 0; c < CZ; c++) {
    __mmask16 mk = tail_mask(nvalid - 16 * c);
    for (int r = 0; r < R; r++) {
      if (mode == OUT_F32) {
        _mm512_mask_storeu_ps(C + (size_t)r * ldc + 16 * c, mk, acc[r][c]);
      } else {
        __m512 v = _mm512_max_ps(acc[r][c], _mm512_setzero_ps());
        __m256bh hv = _mm512_cvtneps_pbh(v);
        _mm256_mask_storeu_epi16(Cb + (size_t)r * ldcb + 16 * c, mk, (__m256i)hv);
      }
    }
  }
}

#define MICRO_CASES(R_, MODE_)                                                             \
  do {                                                                                     \
    if (cz == 2)                                                                           \
      micro(Am, lda, Wn, L->KP, bn, nv, R_, 2, MODE_, Cm, (size_t)ldc, Cbm, (size_t)ldcb); \
    else                                                                                   \
      micro(Am, lda, Wn, L->KP, bn, nv, R_, 1, MODE_, Cm, (size_t)ldc, Cbm, (size_t)ldcb); \
  } while (0)

NS_TARGET_BF16 static void lin_fwd_mode(const bf16_lin *L, const uint16_t *A, int rows, int mode, float *C, int ldc,
                                        uint16_t *Cb, int ldcb) {
  size_t lda = 2 * (size_t)L->KP;
  for (int nb = 0; nb < L->NB; nb += 2) {
    int cz = L->NB - nb < 2 ? L->NB - nb : 2;
    const uint16_t *Wn = L->w + (size_t)nb * L->KP * 32;
    const float *bn = L->b + nb * 16;
    int nv = L->N - nb * 16;
    for (int r = 0; r < rows;) {
      int R = rows - r >= 12 ? 12 : rows - r >= 4 ? 4 : 1;
      const uint16_t *Am = A + (size_t)r * lda;
      float *Cm = C ? C + (size_t)r * ldc + nb * 16 : NULL;
      uint16_t *Cbm = Cb ? Cb + (size_t)r * ldcb + nb * 16 : NULL;
#define MICRO_ROWS(R_)                     \
  do {                                     \
    if (mode == OUT_F32)                   \
      MICRO_CASES(R_, OUT_F32);            \
    else                                   \
      MICRO_CASES(R_, OUT_BF16_RELU);      \
  } while (0)
      if (R == 12)
        MICRO_ROWS(12);
      else if (R == 4)
        MICRO_ROWS(4);
      else
        MICRO_ROWS(1);
#undef MICRO_ROWS
      r += R;
    }
  }
}

/* ---- attention, fp32 (AVX-512) ----
 * Per window and head: S = scale Q K^T (T,T), row softmax, O = P V (T,hs).
 * Both products are "broadcast a row of A, multiply rows of B": one micro
 * kernel, R rows x CZ vectors of 16 columns, masked at the right edge. */

NS_TARGET_BF16 static inline __attribute__((always_inline)) void
fma_rows(const float *A, size_t lda, const float *Bm, size_t ldb, int Kn, int nvalid, int R, int CZ, float scale,
         float *C, size_t ldc) {
  __m512 acc[4][4];
  __mmask16 mk[4];
  for (int c = 0; c < CZ; c++) {
    mk[c] = tail_mask(nvalid - 16 * c);
    for (int r = 0; r < R; r++) acc[r][c] = _mm512_setzero_ps();
  }
  for (int k = 0; k < Kn; k++) {
    __m512 bv[4];
    for (int c = 0; c < CZ; c++) bv[c] = _mm512_maskz_loadu_ps(mk[c], Bm + (size_t)k * ldb + 16 * c);
    for (int r = 0; r < R; r++) {
      __m512 av = _mm512_set1_ps(A[(size_t)r * lda + k]);
      for (int c = 0; c < CZ; c++) acc[r][c] = _mm512_fmadd_ps(av, bv[c], acc[r][c]);
    }
  }
  __m512 sv = _mm512_set1_ps(scale);
  for (int r = 0; r < R; r++)
    for (int c = 0; c < CZ; c++) _mm512_mask_storeu_ps(C + (size_t)r * ldc + 16 * c, mk[c], _mm512_mul_ps(acc[r][c], sv));
}

/* C (rows, ncol) = scale A (rows, Kn) B (Kn, ncol); B rows ldb apart */
NS_TARGET_BF16 static void gemm_rows(const float *A, size_t lda, const float *Bm, size_t ldb, int rows, int Kn,
                                     int ncol, float scale, float *C, size_t ldc) {
  for (int c0 = 0; c0 < ncol; c0 += 64) {
    int nv = ncol - c0, cz = nv >= 64 ? 4 : (nv + 15) / 16;
    const float *Bc = Bm + c0;
    float *Cc = C + c0;
    int r = 0;
#define FMA_CASES(R_)                                                              \
  switch (cz) {                                                                    \
  case 4: fma_rows(A + (size_t)r * lda, lda, Bc, ldb, Kn, nv, R_, 4, scale, Cc + (size_t)r * ldc, ldc); break; \
  case 3: fma_rows(A + (size_t)r * lda, lda, Bc, ldb, Kn, nv, R_, 3, scale, Cc + (size_t)r * ldc, ldc); break; \
  case 2: fma_rows(A + (size_t)r * lda, lda, Bc, ldb, Kn, nv, R_, 2, scale, Cc + (size_t)r * ldc, ldc); break; \
  default: fma_rows(A + (size_t)r * lda, lda, Bc, ldb, Kn, nv, R_, 1, scale, Cc + (size_t)r * ldc, ldc); \
  }
    for (; r + 4 <= rows; r += 4) FMA_CASES(4)
    for (; r < rows; r++) FMA_CASES(1)
#undef FMA_CASES
  }
}

/* 2^f e^... : e^x for 16 lanes, x <= 0 here (softmax after the max) */
NS_TARGET_BF16 static inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(t, n); // [-0.5, 0.5]
  __m512 p = _mm512_fmadd_ps(f, _mm512_set1_ps(1.5403530e-4f), _mm512_set1_ps(1.3333558e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

NS_TARGET_BF16 static void softmax_rows(float *P, size_t ld, int rows, int n) {
  for (int t = 0; t < rows; t++) {
    float *r = P + (size_t)t * ld;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
      __mmask16 mk = tail_mask(n - i);
      mx = _mm512_mask_max_ps(mx, mk, mx, _mm512_maskz_loadu_ps(mk, r + i));
    }
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
      __mmask16 mk = tail_mask(n - i);
      __m512 e = _mm512_maskz_mov_ps(mk, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, r + i), m)));
      sum = _mm512_add_ps(sum, e);
      _mm512_mask_storeu_ps(r + i, mk, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int i = 0; i < n; i += 16) {
      __mmask16 mk = tail_mask(n - i);
      _mm512_mask_storeu_ps(r + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, r + i), inv));
    }
  }
}

/* qkv (B,T,3C) -> out (B,T,C); KT (hs, T) and P (T, T) scratch */
NS_TARGET_BF16 static void attention_fwd(float *out, const float *qkv, int B, int T, int C, int H, float *KT,
                                         float *P) {
  int hs = C / H;
  size_t C3 = 3 * (size_t)C;
  float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *K = Q + C, *V = Q + 2 * (size_t)C;
      for (int j = 0; j < hs; j++) // strided reads, contiguous writes: the cheaper way round
        for (int t = 0; t < T; t++) KT[(size_t)j * T + t] = K[(size_t)t * C3 + j];
      gemm_rows(Q, C3, KT, (size_t)T, T, hs, T, scale, P, (size_t)T); // S (T,T)
      softmax_rows(P, (size_t)T, T, T);
      gemm_rows(P, (size_t)T, V, C3, T, T, hs, 1.0f, out + (size_t)b * T * C + (size_t)h * hs, (size_t)C); // (T,hs)
    }
}

/* C (rows, N) fp32 = A . W^T + b */
static void lin_f32(const bf16_lin *L, const uint16_t *A, int rows, float *C) {
  lin_fwd_mode(L, A, rows, OUT_F32, C, L->N, NULL, 0);
}

/* Cb (rows, 2KP(N)) bf16 = ReLU(A . W^T + b) */
static void lin_relu_bf16(const bf16_lin *L, const uint16_t *A, int rows, uint16_t *Cb) {
  lin_fwd_mode(L, A, rows, OUT_BF16_RELU, NULL, 0, Cb, 2 * ((L->N + 1) / 2));
}

/* out = LayerNorm(a + b) in fp32 and, rounded, in bf16 (N, 2KP(C)) */
NS_TARGET_BF16 static void add_layernorm(float *out, uint16_t *outb, const float *a, const float *b, const float *g,
                                         const float *beta, size_t N, int C) {
  int C2 = 2 * ((C + 1) / 2);
  for (size_t n = 0; n < N; n++) {
    const float *x = a + n * C, *y = b + n * C;
    float *o = out + n * C;
    uint16_t *ob = outb + n * (size_t)C2;
    __m512 sum = _mm512_setzero_ps();
    for (int i = 0; i < C; i += 16) {
      __mmask16 mk = tail_mask(C - i);
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, x + i), _mm512_maskz_loadu_ps(mk, y + i));
      _mm512_mask_storeu_ps(o + i, mk, v);
      sum = _mm512_add_ps(sum, v);
    }
    __m512 mv = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / (float)C), var = _mm512_setzero_ps();
    for (int i = 0; i < C; i += 16) {
      __mmask16 mk = tail_mask(C - i);
      __m512 dv = _mm512_maskz_sub_ps(mk, _mm512_maskz_loadu_ps(mk, o + i), mv);
      var = _mm512_fmadd_ps(dv, dv, var);
    }
    __m512 rs = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(var) / (float)C + 1e-5f));
    for (int i = 0; i < C; i += 16) {
      __mmask16 mk = tail_mask(C - i);
      __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, o + i), mv), rs);
      v = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(mk, g + i), _mm512_maskz_loadu_ps(mk, beta + i));
      _mm512_mask_storeu_ps(o + i, mk, v);
      _mm256_mask_storeu_epi16(ob + i, mk, (__m256i)_mm512_cvtneps_pbh(v));
    }
  }
}

NS_TARGET_BF16 static float dot(const float *a, const float *b, int n) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    __mmask16 mk = tail_mask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a + i), _mm512_maskz_loadu_ps(mk, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

/* MoE on ln1 (N, d): router in fp32, experts in bf16. out (N, d). */
static void moe_fwd(const ns_model *m, const ns_bf16_model *pk, ns_bf16_ws *w, int l, size_t N, uint64_t *rows) {
  const ns_shape *s = &m->sh;
  int d = s->d, E = s->E, K = s->K, d2 = 2 * ((d + 1) / 2);
  bool dense = !m->hp.moe;
  int *off = w->off, *tok = w->tok;
  if (dense) {
    off[0] = 0, off[1] = (int)N;
    for (size_t n = 0; n < N; n++) tok[n] = (int)n;
  } else {
    const float *rt = m->p.rt_w + (size_t)l * E * d;
    for (size_t n = 0; n < N; n++) {
      const float *x = w->ln1 + n * d;
      float *pr = w->prob + n * E, mx = -INFINITY, sum = 0.0f;
      for (int e = 0; e < E; e++) {
        float z = dot(rt + (size_t)e * d, x, d);
        pr[e] = z;
        mx = z > mx ? z : mx;
      }
      for (int e = 0; e < E; e++) sum += pr[e] = expf(pr[e] - mx);
      for (int e = 0; e < E; e++) pr[e] /= sum;
    }
    ns_moe_route(w->prob, (int)N, E, K, off, tok); // the fp32 path's choice rule
  }
  if (K > 1) memset(w->moe, 0, N * d * sizeof(float)); // K = 1: every token is written once
  for (int e = 0; e < E; e++) {
    int r0 = off[e], ne = off[e + 1] - off[e];
    rows[e] += (uint64_t)ne;
    if (ne == 0) continue; // an expert no token chose is not computed
    uint16_t *G = w->G + (size_t)r0 * d2;
    if (dense) {
      G = w->ln1b; // every token, in order: no gather
    } else {
      for (int r = 0; r < ne; r++)
        memcpy(G + (size_t)r * d2, w->ln1b + (size_t)tok[r0 + r] * d2, (size_t)d2 * sizeof *G);
    }
    const bf16_lin *L1 = &pk->w1[(size_t)l * E + e], *L2 = &pk->w2[(size_t)l * E + e];
    int F2 = 2 * ((L1->N + 1) / 2);
    uint16_t *Hh = w->Hb + (size_t)r0 * F2;
    float *Y = w->Y + (size_t)r0 * d;
    lin_relu_bf16(L1, G, ne, Hh); // (ne,d) -> (ne,F), ReLU
    lin_f32(L2, Hh, ne, Y);       // (ne,F) -> (ne,d)
    for (int r = 0; r < ne; r++) {
      int n = tok[r0 + r];
      float gate = dense ? 1.0f : w->prob[(size_t)n * E + e];
      float *o = w->moe + (size_t)n * d;
      const float *y = Y + (size_t)r * d;
      if (K > 1) {
#pragma omp simd
        for (int i = 0; i < d; i++) o[i] += gate * y[i];
      } else {
#pragma omp simd
        for (int i = 0; i < d; i++) o[i] = gate * y[i];
      }
    }
  }
}

void ns_bf16_fwd(const ns_model *m, ns_bf16_ws *w, const float *x, const int *seg, int B, int T) {
  const ns_bf16_model *pk = m->bf16;
  const ns_shape *s = &m->sh;
  const ns_params *p = &m->p;
  int d = s->d;
  size_t N = (size_t)B * T;
  memset(w->rows, 0, (size_t)s->L * s->E * sizeof *w->rows);
  // (B,T,M) -> (B,T,d), plus position within and between segments
  to_bf16(w->xb, x, N, s->M, (size_t)s->M);
  lin_f32(&pk->emb, w->xb, (int)N, w->h);
  for (int b = 0; b < B; b++) {
    const float *se = m->hp.between_pos ? p->seg_emb + (size_t)seg[b] * d : NULL;
    for (int t = 0; t < T; t++) {
      float *o = w->h + ((size_t)b * T + t) * d;
      const float *pe = m->pe + (size_t)t * d;
      if (se) {
#pragma omp simd
        for (int i = 0; i < d; i++) o[i] += pe[i] + se[i];
      } else {
#pragma omp simd
        for (int i = 0; i < d; i++) o[i] += pe[i];
      }
    }
  }
  to_bf16(w->hb, w->h, N, d, (size_t)d);
  for (int l = 0; l < s->L; l++) {
    size_t ld = (size_t)l * d;
    lin_f32(&pk->qkv[l], w->hb, (int)N, w->qkv);          // (N,3d)
    attention_fwd(w->atty, w->qkv, B, T, d, s->H, w->KT, w->P); // (N,d), fp32
    to_bf16(w->attyb, w->atty, N, d, (size_t)d);
    lin_f32(&pk->att[l], w->attyb, (int)N, w->attp); // (N,d)
    add_layernorm(w->ln1, w->ln1b, w->h, w->attp, p->ln1_g + ld, p->ln1_b + ld, N, d);
    moe_fwd(m, pk, w, l, N, w->rows + (size_t)l * s->E); // (N,d)
    add_layernorm(w->h, w->hb, w->ln1, w->moe, p->ln2_g + ld, p->ln2_b + ld, N, d);
  }
  lin_f32(&pk->dec, w->hb, (int)N, w->out); // (N,M)
  for (int l = 0; l < s->L; l++)
    for (int e = 0; e < s->E; e++)
      __atomic_fetch_add(&m->expert_rows[e], w->rows[(size_t)l * s->E + e], __ATOMIC_RELAXED);
}
#else
/* Without the kernels ns_bf16_pack refuses, so no model reaches here. */
void ns_bf16_fwd(const ns_model *m, ns_bf16_ws *w, const float *x, const int *seg, int B, int T) {
  (void)m, (void)w, (void)x, (void)seg, (void)B, (void)T;
}
#endif
