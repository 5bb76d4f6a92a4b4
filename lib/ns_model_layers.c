/* Layer forward/backward pairs of the model (llm.c style). Row-major
 * activations (N tokens, C features); weights stored (out, in) as in PyTorch,
 * so a linear layer is one sgemm with the weight transposed. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "ns_model_impl.h"

void ns_matmul_fwd(float *out, const float *inp, const float *W, const float *b, int N, int C, int OC) {
  // out (N,OC) = inp (N,C) . W^T (C,OC) + b (OC)
  float beta = 0.0f;
  if (b) {
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, W, C, beta, out, OC);
}

void ns_matmul_bwd(float *dinp, bool acc, float *dW, float *db, const float *dout, const float *inp,
                   const float *W, int N, int C, int OC) {
  // dinp (N,C) = dout (N,OC) . W (OC,C)
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, W, C, acc ? 1.0f : 0.0f,
                dinp, C);
  // dW (OC,C) += dout^T (OC,N) . inp (N,C)
  if (dW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dW, C);
  if (db)
    for (int n = 0; n < N; n++) {
      const float *r = dout + (size_t)n * OC;
      for (int o = 0; o < OC; o++) db[o] += r[o];
    }
}

void ns_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *g, const float *b,
                      int N, int C) {
  // (N,C) -> (N,C), statistics (N)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    float *y = out + (size_t)n * C;
    float m = 0.0f;
#pragma omp simd reduction(+ : m)
    for (int i = 0; i < C; i++) m += x[i];
    m /= (float)C;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
    v /= (float)C;
    float s = 1.0f / sqrtf(v + 1e-5f);
#pragma omp simd
    for (int i = 0; i < C; i++) y[i] = (x[i] - m) * s * g[i] + b[i];
    mean[n] = m;
    rstd[n] = s;
  }
}

void ns_layernorm_bwd(float *dinp, float *dg, float *db, const float *dout, const float *inp, const float *g,
                      const float *mean, const float *rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *dy = dout + (size_t)n * C, *x = inp + (size_t)n * C;
    float *dx = dinp + (size_t)n * C;
    float m = mean[n], s = rstd[n];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
    for (int i = 0; i < C; i++) {
      float xh = (x[i] - m) * s, dn = g[i] * dy[i];
      dnorm_mean += dn;
      dnorm_norm_mean += dn * xh;
    }
    dnorm_mean /= (float)C;
    dnorm_norm_mean /= (float)C;
#pragma omp simd
    for (int i = 0; i < C; i++) {
      float xh = (x[i] - m) * s, dn = g[i] * dy[i];
      db[i] += dy[i];
      dg[i] += xh * dy[i];
      dx[i] += (dn - dnorm_mean - xh * dnorm_norm_mean) * s;
    }
  }
}

/* exp for softmax, 8 lanes at a time with GCC vector extensions (libm's
 * expf does not vectorise without -ffast-math): 2^(x log2 e) = 2^n 2^f,
 * f in [-0.5, 0.5], degree-6 Taylor polynomial, relative error ~2e-7.
 * Inputs are <= 0 (row maximum subtracted); below -87 they are clamped. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f exp8(v8f x) {
  const v8f lo = {-87, -87, -87, -87, -87, -87, -87, -87};
  v8i small = x < lo;
  x = (v8f)(((v8i)x & ~small) | ((v8i)lo & small));
  v8f t = x * 1.44269504088896341f + 0.5f;
  v8i n = __builtin_convertvector(t, v8i); // truncation; make it floor
  n += __builtin_convertvector(n, v8f) > t;  // true is -1
  v8f f = t - 0.5f - __builtin_convertvector(n, v8f);
  v8f p = f * 1.5403530e-4f + 1.3333558e-3f;
  p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f;
  p = p * f + 2.4022651e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  return p * (v8f)((n + 127) << 23);
}

static void softmax_row(float *r, int n) {
  float mx = r[0];
#pragma omp simd reduction(max : mx)
  for (int i = 1; i < n; i++) mx = r[i] > mx ? r[i] : mx;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v;
    memcpy(&v, r + i, sizeof v);
    v = exp8(v - mx);
    memcpy(r + i, &v, sizeof v);
  }
  if (i < n) {
    v8f v = {0};
    memcpy(&v, r + i, (size_t)(n - i) * sizeof(float));
    v = exp8(v - mx);
    memcpy(r + i, &v, (size_t)(n - i) * sizeof(float));
  }
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int k = 0; k < n; k++) s += r[k];
  float inv = 1.0f / s;
#pragma omp simd
  for (int k = 0; k < n; k++) r[k] *= inv;
}

void ns_attention_fwd(float *out, float *att, const float *qkv, int B, int T, int C, int H) {
  // qkv (B,T,3C) -> att (B,H,T,T), out (B,T,C); bidirectional, no mask
  int hs = C / H, C3 = 3 * C;
  float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + h * hs, *K = Q + C, *V = Q + 2 * C;
      float *P = att + ((size_t)b * H + h) * T * T;
      // S (T,T) = scale Q K^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, Q, C3, K, C3, 0.0f, P, T);
      for (int t = 0; t < T; t++) softmax_row(P + (size_t)t * T, T);
      // out_h (T,hs) = P V
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, P, T, V, C3, 0.0f,
                  out + (size_t)b * T * C + h * hs, C);
    }
}

void ns_attention_bwd(float *dqkv, float *dS, const float *dout, const float *qkv, const float *att, int B,
                      int T, int C, int H) {
  int hs = C / H, C3 = 3 * C;
  float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + h * hs, *K = Q + C, *V = Q + 2 * C;
      float *dQ = dqkv + (size_t)b * T * C3 + h * hs, *dK = dQ + C, *dV = dQ + 2 * C;
      const float *P = att + ((size_t)b * H + h) * T * T;
      const float *dO = dout + (size_t)b * T * C + h * hs;
      // dP (T,T) = dO V^T ; dV (T,hs) = P^T dO
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dO, C, V, C3, 0.0f, dS, T);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, P, T, dO, C, 0.0f, dV, C3);
      // softmax backward, then the scale of S
      for (int t = 0; t < T; t++) {
        float *r = dS + (size_t)t * T;
        const float *p = P + (size_t)t * T;
        float dot = 0.0f;
        for (int j = 0; j < T; j++) dot += r[j] * p[j];
        for (int j = 0; j < T; j++) r[j] = p[j] * (r[j] - dot) * scale;
      }
      // dQ = dS K ; dK = dS^T Q
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dS, T, K, C3, 0.0f, dQ, C3);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dS, T, Q, C3, 0.0f, dK, C3);
    }
}

void ns_embed_fwd(float *out, const float *x, const float *W, const float *b, const float *pe,
                  const float *seg_emb, const int *seg, int B, int T, int M, int d) {
  // (B,T,M) -> (B,T,d)
  ns_matmul_fwd(out, x, W, b, B * T, M, d);
  for (int bb = 0; bb < B; bb++) {
    const float *se = seg_emb ? seg_emb + (size_t)seg[bb] * d : NULL;
    for (int t = 0; t < T; t++) {
      float *o = out + ((size_t)bb * T + t) * d;
      const float *p = pe + (size_t)t * d;
      if (se)
        for (int i = 0; i < d; i++) o[i] += p[i] + se[i];
      else
        for (int i = 0; i < d; i++) o[i] += p[i];
    }
  }
}

void ns_embed_bwd(float *dW, float *db, float *dseg, const float *dout, const float *x, const int *seg, int B,
                  int T, int M, int d) {
  ns_matmul_bwd(NULL, false, dW, db, dout, x, NULL, B * T, M, d);
  if (!dseg) return;
  for (int bb = 0; bb < B; bb++) {
    float *ds = dseg + (size_t)seg[bb] * d;
    for (int t = 0; t < T; t++) {
      const float *g = dout + ((size_t)bb * T + t) * d;
      for (int i = 0; i < d; i++) ds[i] += g[i];
    }
  }
}

/* The K largest of p[0..E), ties to the lower index. */
static void topk(const float *p, int E, int K, int *idx) {
  for (int k = 0; k < K; k++) {
    int best = -1;
    for (int e = 0; e < E; e++) {
      bool used = false;
      for (int j = 0; j < k; j++) used |= idx[j] == e;
      if (!used && (best < 0 || p[e] > p[best])) best = e;
    }
    idx[k] = best;
  }
}

void ns_moe_route(const float *prob, int N, int E, int K, int *off, int *tok) {
  // counting sort of (token, expert) pairs by expert, tokens in order
  int cnt[E + 1];
  memset(cnt, 0, sizeof cnt);
  int sel[K > 0 ? K : 1];
  for (int n = 0; n < N; n++) {
    topk(prob + (size_t)n * E, E, K, sel);
    for (int k = 0; k < K; k++) cnt[sel[k] + 1]++;
  }
  for (int e = 0; e < E; e++) cnt[e + 1] += cnt[e];
  memcpy(off, cnt, (size_t)(E + 1) * sizeof(int));
  for (int n = 0; n < N; n++) {
    topk(prob + (size_t)n * E, E, K, sel);
    for (int k = 0; k < K; k++) tok[cnt[sel[k]]++] = n;
  }
}

void ns_moe_fwd(float *out, ns_acts *a, const float *inp, const ns_moe_p *p, int N, int d, int F, int E, int K,
                bool dense, uint64_t *rows) {
  // inp (N,d) -> out (N,d); router prob (N,E); G (N*K,d), Hh (N*K,F), Y (N*K,d)
  int *off = a->asg_off, *tok = a->asg_tok;
  if (dense) {
    off[0] = 0;
    off[1] = N;
    for (int n = 0; n < N; n++) tok[n] = n;
  } else {
    ns_matmul_fwd(a->prob, inp, p->rt, NULL, N, d, E);
    for (int n = 0; n < N; n++) softmax_row(a->prob + (size_t)n * E, E);
    ns_moe_route(a->prob, N, E, K, off, tok);
  }
  memset(out, 0, (size_t)N * d * sizeof(float));
  for (int e = 0; e < E; e++) {
    int r0 = off[e], ne = off[e + 1] - off[e];
    if (rows) rows[e] += (uint64_t)ne;
    if (ne == 0) continue; // an expert no token chose is not computed
    float *G = a->G + (size_t)r0 * d, *Hh = a->Hh + (size_t)r0 * F, *Y = a->Y + (size_t)r0 * d;
    for (int r = 0; r < ne; r++) memcpy(G + (size_t)r * d, inp + (size_t)tok[r0 + r] * d, (size_t)d * sizeof(float));
    // (ne,d) -> (ne,F) -> ReLU -> (ne,d)
    ns_matmul_fwd(Hh, G, p->w1 + (size_t)e * F * d, p->b1 + (size_t)e * F, ne, d, F);
    for (size_t i = 0; i < (size_t)ne * F; i++) Hh[i] = Hh[i] > 0.0f ? Hh[i] : 0.0f;
    ns_matmul_fwd(Y, Hh, p->w2 + (size_t)e * d * F, p->b2 + (size_t)e * d, ne, F, d);
    for (int r = 0; r < ne; r++) {
      int n = tok[r0 + r];
      float gate = dense ? 1.0f : a->prob[(size_t)n * E + e];
      float *o = out + (size_t)n * d;
      const float *y = Y + (size_t)r * d;
      for (int i = 0; i < d; i++) o[i] += gate * y[i];
    }
  }
}

void ns_moe_bwd(float *dinp, const ns_moe_g *g, const float *dout, const ns_acts *a, const float *inp,
                const ns_moe_p *p, float *dY, float *dH, float *dG, float *dprob, int N, int d, int F, int E,
                int K, bool dense, const float *aux_g) {
  const int *off = a->asg_off, *tok = a->asg_tok;
  if (!dense) {
    for (int n = 0; n < N; n++)
      for (int e = 0; e < E; e++) dprob[(size_t)n * E + e] = aux_g ? aux_g[e] : 0.0f;
  }
  for (int e = 0; e < E; e++) {
    int r0 = off[e], ne = off[e + 1] - off[e];
    if (ne == 0) continue;
    const float *G = a->G + (size_t)r0 * d, *Hh = a->Hh + (size_t)r0 * F, *Y = a->Y + (size_t)r0 * d;
    float *dYe = dY + (size_t)r0 * d, *dHe = dH + (size_t)r0 * F, *dGe = dG + (size_t)r0 * d;
    // dY = gate * dout; dgate = <dout, Y>
    for (int r = 0; r < ne; r++) {
      int n = tok[r0 + r];
      const float *go = dout + (size_t)n * d, *y = Y + (size_t)r * d;
      float *dy = dYe + (size_t)r * d;
      float gate = dense ? 1.0f : a->prob[(size_t)n * E + e];
      float dot = 0.0f;
      for (int i = 0; i < d; i++) {
        dy[i] = gate * go[i];
        dot += go[i] * y[i];
      }
      if (!dense) dprob[(size_t)n * E + e] += dot;
    }
    ns_matmul_bwd(dHe, false, g->w2 + (size_t)e * d * F, g->b2 + (size_t)e * d, dYe, Hh, p->w2 + (size_t)e * d * F,
                  ne, F, d);
    for (size_t i = 0; i < (size_t)ne * F; i++)
      if (Hh[i] <= 0.0f) dHe[i] = 0.0f;
    ns_matmul_bwd(dGe, false, g->w1 + (size_t)e * F * d, g->b1 + (size_t)e * F, dHe, G, p->w1 + (size_t)e * F * d,
                  ne, d, F);
    for (int r = 0; r < ne; r++) {
      float *di = dinp + (size_t)tok[r0 + r] * d;
      const float *s = dGe + (size_t)r * d;
      for (int i = 0; i < d; i++) di[i] += s[i];
    }
  }
  if (dense) return;
  // softmax backward in place: dlogit = p (dp - <p, dp>)
  for (int n = 0; n < N; n++) {
    const float *pr = a->prob + (size_t)n * E;
    float *dp = dprob + (size_t)n * E, dot = 0.0f;
    for (int e = 0; e < E; e++) dot += pr[e] * dp[e];
    for (int e = 0; e < E; e++) dp[e] = pr[e] * (dp[e] - dot);
  }
  ns_matmul_bwd(dinp, true, g->rt, NULL, dprob, inp, p->rt, N, d, E);
}
