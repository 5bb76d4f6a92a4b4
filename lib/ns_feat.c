/* TSFEL 0.1.7 feature set (NodeSentry reference call pattern) in C.
 * Semantics follow numpy/scipy/statsmodels as used by TSFEL; where the
 * summation order decides a branch (numpy's pairwise sum) it is reproduced.
 * Shared intermediates are computed once per series: one sort, one rFFT of
 * the series, one Welch periodogram, one spectrogram, one 9-width Ricker CWT.
 * See docs/features.md for formulas, guards and measured errors. */
#include "ns_feat.h"
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- column layout (TSFEL's sorted column order) ---- */
enum {
  F_ABS_ENERGY = 0, F_AUC = 1, F_AUTOCORR = 2, F_AVG_POWER = 3, F_CENTROID = 4,
  F_ECDF_PCOUNT = 5, F_ECDF_PERC = 7, F_ECDF = 9, F_ENTROPY = 19, F_FFT_MEAN = 20,
  F_FUND_FREQ = 21, F_HIST = 22, F_HUMAN_RANGE = 32, F_IQR = 33, F_KURTOSIS = 34,
  F_LPCC = 35, F_MFCC = 47, F_MAX = 59, F_MAX_PSD = 60, F_MAX_FREQ = 61, F_MEAN = 62,
  F_MEAN_ABS_DEV = 63, F_MEAN_ABS_DIFF = 64, F_MEAN_DIFF = 65, F_MEDIAN = 66,
  F_MEDIAN_ABS_DEV = 67, F_MEDIAN_ABS_DIFF = 68, F_MEDIAN_DIFF = 69, F_MEDIAN_FREQ = 70,
  F_MIN = 71, F_NEG_TURNING = 72, F_NEIGH_PEAKS = 73, F_PK_PK = 74, F_POS_TURNING = 75,
  F_POWER_BW = 76, F_RMS = 77, F_SIG_DISTANCE = 78, F_SKEWNESS = 79, F_SLOPE = 80,
  F_SPEC_CENTROID = 81, F_SPEC_DECREASE = 82, F_SPEC_DISTANCE = 83, F_SPEC_ENTROPY = 84,
  F_SPEC_KURTOSIS = 85, F_SPEC_POS_TURNING = 86, F_SPEC_ROLL_OFF = 87, F_SPEC_ROLL_ON = 88,
  F_SPEC_SKEWNESS = 89, F_SPEC_SLOPE = 90, F_SPEC_SPREAD = 91, F_SPEC_VARIATION = 92,
  F_STD = 93, F_SUM_ABS_DIFF = 94, F_VARIANCE = 95, F_WAV_ABS_MEAN = 96, F_WAV_ENERGY = 105,
  F_WAV_ENTROPY = 114, F_WAV_STD = 115, F_WAV_VAR = 124, F_ZERO_CROSS = 133
};

static const char *const feat_names[NS_FEAT_N] = {
    "Absolute energy", "Area under the curve", "Autocorrelation", "Average power", "Centroid",
    "ECDF Percentile Count_0", "ECDF Percentile Count_1", "ECDF Percentile_0", "ECDF Percentile_1",
    "ECDF_0", "ECDF_1", "ECDF_2", "ECDF_3", "ECDF_4", "ECDF_5", "ECDF_6", "ECDF_7", "ECDF_8", "ECDF_9",
    "Entropy", "FFT mean coefficient", "Fundamental frequency",
    "Histogram_0", "Histogram_1", "Histogram_2", "Histogram_3", "Histogram_4", "Histogram_5",
    "Histogram_6", "Histogram_7", "Histogram_8", "Histogram_9",
    "Human range energy", "Interquartile range", "Kurtosis",
    "LPCC_0", "LPCC_1", "LPCC_10", "LPCC_11", "LPCC_2", "LPCC_3", "LPCC_4", "LPCC_5", "LPCC_6",
    "LPCC_7", "LPCC_8", "LPCC_9",
    "MFCC_0", "MFCC_1", "MFCC_10", "MFCC_11", "MFCC_2", "MFCC_3", "MFCC_4", "MFCC_5", "MFCC_6",
    "MFCC_7", "MFCC_8", "MFCC_9",
    "Max", "Max power spectrum", "Maximum frequency", "Mean", "Mean absolute deviation",
    "Mean absolute diff", "Mean diff", "Median", "Median absolute deviation", "Median absolute diff",
    "Median diff", "Median frequency", "Min", "Negative turning points", "Neighbourhood peaks",
    "Peak to peak distance", "Positive turning points", "Power bandwidth", "Root mean square",
    "Signal distance", "Skewness", "Slope", "Spectral centroid", "Spectral decrease",
    "Spectral distance", "Spectral entropy", "Spectral kurtosis", "Spectral positive turning points",
    "Spectral roll-off", "Spectral roll-on", "Spectral skewness", "Spectral slope", "Spectral spread",
    "Spectral variation", "Standard deviation", "Sum absolute diff", "Variance",
    "Wavelet absolute mean_0", "Wavelet absolute mean_1", "Wavelet absolute mean_2",
    "Wavelet absolute mean_3", "Wavelet absolute mean_4", "Wavelet absolute mean_5",
    "Wavelet absolute mean_6", "Wavelet absolute mean_7", "Wavelet absolute mean_8",
    "Wavelet energy_0", "Wavelet energy_1", "Wavelet energy_2", "Wavelet energy_3",
    "Wavelet energy_4", "Wavelet energy_5", "Wavelet energy_6", "Wavelet energy_7",
    "Wavelet energy_8", "Wavelet entropy",
    "Wavelet standard deviation_0", "Wavelet standard deviation_1", "Wavelet standard deviation_2",
    "Wavelet standard deviation_3", "Wavelet standard deviation_4", "Wavelet standard deviation_5",
    "Wavelet standard deviation_6", "Wavelet standard deviation_7", "Wavelet standard deviation_8",
    "Wavelet variance_0", "Wavelet variance_1", "Wavelet variance_2", "Wavelet variance_3",
    "Wavelet variance_4", "Wavelet variance_5", "Wavelet variance_6", "Wavelet variance_7",
    "Wavelet variance_8", "Zero crossing rate"};

#define MIN_LEN 12   /* TSFEL's lpc() rejects series shorter than its 12 coefficients */
#define N_WIDTHS 9   /* Ricker widths 1..9 */
#define MFCC_NFFT 512
#define MFCC_NFILT 40
#define N_CEPS 12
#define LPC_N 12
#define PAD 96      /* zeros around x for the CWT (>= longest kernel) */
/* Non-DC spectrum below this fraction of the DC magnitude is float32-level
 * flicker of a constant: Spectral decrease/kurtosis are then guarded to 0. */
#define FLAT_RATIO 1e-6

const char *ns_feat_name(int i) { return (i >= 0 && i < NS_FEAT_N) ? feat_names[i] : NULL; }
size_t ns_feat_min_length(void) { return MIN_LEN; }

/* ---- numpy-compatible reductions ---- */

/* numpy's pairwise summation (add.reduce on a contiguous double array). */
static double psum(const double *a, size_t n) {
  if (n < 8) {
    double r = 0.;
    for (size_t i = 0; i < n; i++) r += a[i];
    return r;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = a[j];
    size_t i;
    for (i = 8; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; j++) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return psum(a, n2) + psum(a + n2, n - n2);
}

static double np_sum(const double *a, size_t n) { return 0. + psum(a, n); }
static double np_mean(const double *a, size_t n) { return np_sum(a, n) / (double)n; }

/* ---- sorting and order statistics (no NaN here: input is checked) ---- */

/* LSD radix sort of doubles (no NaN) by their order-preserving bit keys;
 * byte positions where every key agrees (e.g. the low mantissa of float32
 * data) are skipped. k0, k1: scratch of n keys each. */
static void radix_sort_d(double *a, size_t n, uint64_t *k0, uint64_t *k1) {
  uint64_t vary = 0, first;
  memcpy(&first, &a[0], 8);
  first = (first >> 63) ? ~first : (first | (1ULL << 63));
  for (size_t i = 0; i < n; i++) {
    uint64_t u;
    memcpy(&u, &a[i], 8);
    u = (u >> 63) ? ~u : (u | (1ULL << 63));
    k0[i] = u;
    vary |= u ^ first;
  }
  uint64_t *src = k0, *dst = k1;
  size_t cnt[256];
  for (int b = 0; b < 8; b++) {
    if (!((vary >> (8 * b)) & 255)) continue; /* every key has the same byte */
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++) cnt[(src[i] >> (8 * b)) & 255]++;
    size_t sum = 0;
    for (int v = 0; v < 256; v++) {
      size_t t = cnt[v];
      cnt[v] = sum;
      sum += t;
    }
    for (size_t i = 0; i < n; i++) dst[cnt[(src[i] >> (8 * b)) & 255]++] = src[i];
    uint64_t *t = src;
    src = dst;
    dst = t;
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t u = src[i];
    u = (u >> 63) ? (u & ~(1ULL << 63)) : ~u;
    memcpy(&a[i], &u, 8);
  }
}

/* np.percentile(..., method='linear') on sorted data. */
static double percentile_sorted(const double *s, size_t n, double q) {
  double vi = (double)n * q + (1. + q * (1. - 1. - 1.)) - 1.;
  double prev = floor(vi);
  if (prev < 0) prev = 0;
  if (prev > (double)(n - 1)) prev = (double)(n - 1);
  size_t i0 = (size_t)prev, i1 = i0 + 1 < n ? i0 + 1 : n - 1;
  double g = vi - prev, a = s[i0], b = s[i1], d = b - a;
  return g >= 0.5 ? b - d * (1. - g) : a + d * g;
}

/* np.median(|s - center|) for sorted s: the distances form two sorted runs
 * around center; walk outward to the middle order statistics. */
static double median_abs_sorted(const double *s, size_t n, double center) {
  size_t r = 0;
  while (r < n && s[r] < center) r++;
  size_t l = r, want = n % 2 ? n / 2 : n / 2 - 1, got = 0, need = n % 2 ? 1 : 2;
  double v[2] = {0, 0};
  for (size_t step = 0; got < need && step < n; step++) {
    double dv;
    if (l > 0 && (r >= n || center - s[l - 1] <= s[r] - center)) dv = center - s[--l];
    else dv = s[r++] - center;
    if (step >= want) v[got++] = dv;
  }
  return need == 1 ? v[0] : (v[0] + v[1]) / 2.;
}

static double median_sorted(const double *s, size_t n) {
  return (n % 2) ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.;
}

/* ---- FFTW plan cache (planner calls are not thread-safe) ---- */

enum { PK_R2C = 0, PK_C2R = 1 };
typedef struct {
  int kind;
  size_t n;
  fftw_plan p;
  size_t refs;        /* global entry: workspaces holding it */
  bool owned;         /* workspace entry: plan outside the global cache */
  unsigned long used; /* LRU stamp */
} plan_ent;

/* Process-wide plans per (kind, length), reference-counted by the
 * workspaces that hold them. Segment lengths vary without bound, so the
 * cache is bounded: the least recently used unreferenced plan makes room,
 * and if every entry is in use the workspace plans privately. */
#define GLOBAL_PLANS 256
static pthread_mutex_t g_plan_mu = PTHREAD_MUTEX_INITIALIZER;
static plan_ent g_plans[GLOBAL_PLANS];
static size_t g_nplans;
static unsigned long g_plan_clock;

#define WS_PLANS 8

struct ns_feat_ws {
  size_t cap;        /* series buffers hold cap values (+ CWT padding) */
  size_t fcap;       /* FFT buffers hold fcap reals */
  double *xs, *dev, *d, *t1, *t2, *row, *fmag, *freq, *cum, *psd, *acc, *xpad;
  uint64_t *k0, *k1;  /* radix-sort keys */
  double *rin;       /* fftw_malloc: real FFT input, fcap */
  fftw_complex *cout; /* fftw_malloc: fcap/2+1 */
  plan_ent plans[WS_PLANS];
  int nplans;
  unsigned long plan_clock;
  /* cached per length */
  size_t win_n;      /* hann(n) and tukey(nperseg) for this n */
  double *hann, *tukey;
  double hann_ss, tukey_ss; /* sum of squares (pairwise) */
  size_t *fft_order;  /* lexicographic order of 0..nfreq-1 */
  size_t ker_n;       /* Ricker kernels for this n */
  double *ker[N_WIDTHS];
  size_t ker_len[N_WIDTHS];
  /* MFCC filterbank for this fs: sparse triangles */
  double mel_fs;
  int fb_lo[MFCC_NFILT], fb_hi[MFCC_NFILT];
  double fb_w[MFCC_NFILT][MFCC_NFFT / 2 + 1];
  bool dct_ready;
  double dct[N_CEPS][MFCC_NFILT]; /* ortho DCT-II rows 1..12 */
};

void ns_feat_cleanup(void) {
  pthread_mutex_lock(&g_plan_mu);
  size_t k = 0;
  for (size_t i = 0; i < g_nplans; i++) {
    if (g_plans[i].refs) g_plans[k++] = g_plans[i]; /* a live workspace holds it */
    else fftw_destroy_plan(g_plans[i].p);
  }
  g_nplans = k;
  pthread_mutex_unlock(&g_plan_mu);
}

/* Caller holds g_plan_mu. */
static void release_locked(const plan_ent *e) {
  if (e->owned) {
    fftw_destroy_plan(e->p);
    return;
  }
  for (size_t i = 0; i < g_nplans; i++)
    if (g_plans[i].p == e->p) {
      g_plans[i].refs--;
      return;
    }
}

static void ws_drop_plans(ns_feat_ws *ws) {
  pthread_mutex_lock(&g_plan_mu);
  for (int i = 0; i < ws->nplans; i++) release_locked(&ws->plans[i]);
  pthread_mutex_unlock(&g_plan_mu);
  ws->nplans = 0;
}

static fftw_plan get_plan(ns_feat_ws *ws, int kind, size_t n) {
  ws->plan_clock++;
  for (int i = 0; i < ws->nplans; i++)
    if (ws->plans[i].kind == kind && ws->plans[i].n == n) {
      ws->plans[i].used = ws->plan_clock;
      return ws->plans[i].p;
    }
  /* local slot: a free one, else the least recently used (never the plan
   * the caller fetched just before, which it may still be about to run) */
  int slot = ws->nplans;
  if (slot == WS_PLANS) {
    slot = 0;
    for (int i = 1; i < WS_PLANS; i++)
      if (ws->plans[i].used < ws->plans[slot].used) slot = i;
  }
  fftw_plan p = NULL;
  bool owned = false;
  pthread_mutex_lock(&g_plan_mu);
  if (slot < ws->nplans) release_locked(&ws->plans[slot]);
  g_plan_clock++;
  for (size_t i = 0; i < g_nplans && !p; i++)
    if (g_plans[i].kind == kind && g_plans[i].n == n) {
      p = g_plans[i].p;
      g_plans[i].refs++;
      g_plans[i].used = g_plan_clock;
    }
  if (!p) {
    /* FFTW_ESTIMATE never touches the arrays; new-array execution later
     * uses other fftw_malloc buffers of the same alignment. */
    if (kind == PK_R2C) p = fftw_plan_dft_r2c_1d((int)n, ws->rin, ws->cout, FFTW_ESTIMATE);
    else p = fftw_plan_dft_c2r_1d((int)n, ws->cout, ws->rin, FFTW_ESTIMATE);
    size_t g = g_nplans;
    if (p && g == GLOBAL_PLANS) { /* full: reuse the LRU unreferenced entry */
      for (size_t i = 0; i < GLOBAL_PLANS; i++)
        if (!g_plans[i].refs && (g == GLOBAL_PLANS || g_plans[i].used < g_plans[g].used)) g = i;
      if (g < GLOBAL_PLANS) fftw_destroy_plan(g_plans[g].p);
    }
    if (p && g < GLOBAL_PLANS) {
      g_plans[g] = (plan_ent){kind, n, p, 1, false, g_plan_clock};
      if (g == g_nplans) g_nplans++;
    } else {
      owned = p != NULL;
    }
  }
  pthread_mutex_unlock(&g_plan_mu);
  if (!p) { /* the released slot is gone */
    if (slot < ws->nplans) ws->plans[slot] = ws->plans[--ws->nplans];
    return NULL;
  }
  ws->plans[slot] = (plan_ent){kind, n, p, 0, owned, ws->plan_clock};
  if (slot == ws->nplans) ws->nplans++;
  return p;
}

/* ---- workspace ---- */

ns_status ns_feat_ws_create(ns_feat_ws **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_feat_ws_create: out is NULL");
  *out = calloc(1, sizeof **out);
  return *out ? NS_OK : NS_ERR_NOMEM;
}

static void ws_free_bufs(ns_feat_ws *ws) {
  double **b[] = {&ws->xs, &ws->dev, &ws->d, &ws->t1, &ws->t2, &ws->row, &ws->fmag, &ws->freq,
                  &ws->cum, &ws->psd, &ws->acc, &ws->hann, &ws->tukey, &ws->xpad};
  for (size_t i = 0; i < sizeof b / sizeof *b; i++) {
    free(*b[i]);
    *b[i] = NULL;
  }
  free(ws->fft_order);
  free(ws->k0);
  free(ws->k1);
  ws->fft_order = NULL;
  ws->k0 = ws->k1 = NULL;
  fftw_free(ws->rin);
  fftw_free(ws->cout);
  ws->rin = NULL;
  ws->cout = NULL;
  ws->cap = ws->fcap = 0;
  ws->win_n = 0;
}

void ns_feat_ws_free(ns_feat_ws *ws) {
  if (!ws) return;
  ws_drop_plans(ws);
  ws_free_bufs(ws);
  for (int w = 0; w < N_WIDTHS; w++) free(ws->ker[w]);
  free(ws);
}

static size_t good_fft_size(size_t m) {
  for (size_t s = m;; s++) {
    size_t r = s;
    while (r % 2 == 0) r /= 2;
    while (r % 3 == 0) r /= 3;
    while (r % 5 == 0) r /= 5;
    if (r == 1) return s;
  }
}

static ns_status ws_reserve(ns_feat_ws *ws, size_t n) {
  if (n <= ws->cap) return NS_OK;
  ws_free_bufs(ws);
  size_t cap = n;
  size_t fcap = good_fft_size(2 * n);
  if (fcap < MFCC_NFFT) fcap = MFCC_NFFT;
  double **b[] = {&ws->xs, &ws->dev, &ws->d, &ws->t1, &ws->t2, &ws->row, &ws->fmag, &ws->freq,
                  &ws->cum, &ws->psd, &ws->acc, &ws->hann, &ws->tukey, &ws->xpad};
  /* +2*PAD+16: zero padding around x for the CWT, CWT rows rounded up to 32 */
  for (size_t i = 0; i < sizeof b / sizeof *b; i++)
    if (!(*b[i] = malloc((cap + 2 * PAD + 16) * sizeof(double)))) goto fail;
  if (!(ws->fft_order = malloc(cap * sizeof(size_t)))) goto fail;
  if (!(ws->k0 = malloc(cap * sizeof(uint64_t))) || !(ws->k1 = malloc(cap * sizeof(uint64_t)))) goto fail;
  ws->rin = fftw_malloc(fcap * sizeof(double));
  ws->cout = fftw_malloc((fcap / 2 + 1) * sizeof(fftw_complex));
  if (!ws->rin || !ws->cout) goto fail;
  ws->cap = cap;
  ws->fcap = fcap;
  ws->win_n = 0;
  return NS_OK;
fail:
  ws_free_bufs(ws);
  return NS_ERR_NOMEM;
}

/* numpy linspace element i of num over [a, b]. */
static double linspace_at(double a, double b, size_t num, size_t i) {
  if (i == num - 1) return b;
  double step = (b - a) / (double)(num - 1);
  return (double)i * step + a;
}

static void lex_order(size_t *out, size_t *k, size_t v, size_t lim) {
  out[(*k)++] = v;
  if (v == 0) return;
  for (size_t c = 0; c < 10; c++) {
    size_t w = v * 10 + c;
    if (w >= lim) break;
    lex_order(out, k, w, lim);
  }
}

/* Windows and orders that depend only on n. */
static void ws_prepare_len(ns_feat_ws *ws, size_t n) {
  if (ws->win_n == n) return;
  /* periodic Hann(n) as scipy.signal.get_window('hann', n) */
  size_t M = n + 1;
  for (size_t i = 0; i < n; i++) {
    double fac = linspace_at(-M_PI, M_PI, M, i);
    ws->hann[i] = 0.5 + 0.5 * cos(fac);
  }
  for (size_t i = 0; i < n; i++) ws->t1[i] = ws->hann[i] * ws->hann[i];
  ws->hann_ss = np_sum(ws->t1, n);
  /* periodic Tukey(0.25) of nperseg = 2*nfreq-2 */
  size_t nfreq = n / 2 + 1;
  if (nfreq > 256) nfreq = 256;
  size_t nps = 2 * nfreq - 2;
  double alpha = 0.25;
  M = nps + 1;
  size_t width = (size_t)floor(alpha * (double)(M - 1) / 2.0);
  for (size_t i = 0; i < nps; i++) {
    double w;
    if (i <= width) w = 0.5 * (1 + cos(M_PI * (-1 + 2.0 * (double)i / alpha / (double)(M - 1))));
    else if (i < M - width - 1) w = 1.0;
    else w = 0.5 * (1 + cos(M_PI * (-2.0 / alpha + 1 + 2.0 * (double)i / alpha / (double)(M - 1))));
    ws->tukey[i] = w;
  }
  for (size_t i = 0; i < nps; i++) ws->t1[i] = ws->tukey[i] * ws->tukey[i];
  ws->tukey_ss = np_sum(ws->t1, nps);
  size_t k = 0;
  for (size_t v = 0; v < 10 && v < nfreq; v++) lex_order(ws->fft_order, &k, v, nfreq);
  ws->win_n = n;
}

/* Ricker kernels of scipy.signal.cwt: N = min(10*width, n). */
static ns_status ws_prepare_kernels(ns_feat_ws *ws, size_t n) {
  if (ws->ker_n == n) return NS_OK;
  for (int w = 0; w < N_WIDTHS; w++) {
    double a = (double)(w + 1);
    size_t N = 10 * (size_t)(w + 1);
    if (N > n) N = n;
    double *k = realloc(ws->ker[w], N * sizeof(double));
    if (!k) return NS_ERR_NOMEM;
    ws->ker[w] = k;
    ws->ker_len[w] = N;
    double A = 2 / (sqrt(3 * a) * pow(M_PI, 0.25));
    double wsq = a * a;
    for (size_t i = 0; i < N; i++) {
      double v = (double)i - ((double)N - 1.0) / 2;
      double xsq = v * v;
      double mod = 1 - xsq / wsq;
      double gauss = exp(-xsq / (2 * wsq));
      k[i] = A * mod * gauss;
    }
  }
  ws->ker_n = n;
  return NS_OK;
}

/* Mel filterbank of TSFEL's filterbank() for this fs (nfft 512, 40 filters). */
static void ws_prepare_mel(ns_feat_ws *ws, double fs) {
  if (ws->mel_fs == fs) return;
  double hz[MFCC_NFILT + 2], bin[MFCC_NFILT + 2];
  double high = 2595 * log10(1 + (fs / 2) / 700);
  for (int i = 0; i < MFCC_NFILT + 2; i++) {
    double mel = linspace_at(0, high, MFCC_NFILT + 2, (size_t)i);
    hz[i] = 700 * (pow(10, mel / 2595) - 1);
    bin[i] = floor((MFCC_NFFT + 1) * hz[i] / fs);
  }
  for (int m = 1; m <= MFCC_NFILT; m++) {
    double *row = ws->fb_w[m - 1];
    memset(row, 0, sizeof ws->fb_w[0]);
    int fm0 = (int)bin[m - 1], fm = (int)bin[m], fm1 = (int)bin[m + 1];
    for (int k = fm0; k < fm; k++) row[k] = ((double)k - bin[m - 1]) / (bin[m] - bin[m - 1]);
    for (int k = fm; k < fm1; k++) row[k] = (bin[m + 1] - (double)k) / (bin[m + 1] - bin[m]);
    double enorm = 2.0 / (hz[m + 1] - hz[m - 1]);
    int lo = MFCC_NFFT / 2 + 1, hi = 0;
    for (int k = 0; k <= MFCC_NFFT / 2; k++) {
      row[k] *= enorm;
      if (row[k] != 0) {
        if (k < lo) lo = k;
        hi = k + 1;
      }
    }
    ws->fb_lo[m - 1] = lo < hi ? lo : 0;
    ws->fb_hi[m - 1] = hi;
  }
  ws->mel_fs = fs;
}

/* ---- feature groups ---- */

/* statsmodels acf(adjusted=True): first lag whose ACF < 1/e (TSFEL 0.1.7). */
static double autocorr_feature(ns_feat_ws *ws, const double *dev, size_t n, bool is_const) {
  if (is_const) return 1.0; /* ACF is 0/0 = NaN: no crossing, TSFEL returns 1 */
  const double thr = 1 / M_E;
  double c0 = 0;
  for (size_t t = 0; t < n; t++) c0 += dev[t] * dev[t];
  c0 /= (double)n;
  if (!(c0 > 0)) return 1.0;
  size_t direct = n - 1 < 16 ? n - 1 : 16;
  for (size_t k = 1; k <= direct; k++) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t t = 0, e = n - k;
    for (; t + 4 <= e; t += 4) {
      s0 += dev[t] * dev[t + k];
      s1 += dev[t + 1] * dev[t + k + 1];
      s2 += dev[t + 2] * dev[t + k + 2];
      s3 += dev[t + 3] * dev[t + k + 3];
    }
    for (; t < e; t++) s0 += dev[t] * dev[t + k];
    double s = (s0 + s1) + (s2 + s3);
    if (s / (double)(n - k) / c0 < thr) return (double)k;
  }
  if (direct == n - 1) return 1.0;
  /* long correlation: all lags at once by FFT */
  size_t m = good_fft_size(2 * n - 1);
  if (m > ws->fcap) return 1.0; /* cannot happen: fcap >= good_fft_size(2n) */
  fftw_plan pf = get_plan(ws, PK_R2C, m), pb = get_plan(ws, PK_C2R, m);
  if (!pf || !pb) return NAN;
  memcpy(ws->rin, dev, n * sizeof(double));
  memset(ws->rin + n, 0, (m - n) * sizeof(double));
  fftw_execute_dft_r2c(pf, ws->rin, ws->cout);
  for (size_t k = 0; k < m / 2 + 1; k++) {
    double re = ws->cout[k][0], im = ws->cout[k][1];
    ws->cout[k][0] = re * re + im * im;
    ws->cout[k][1] = 0;
  }
  fftw_execute_dft_c2r(pb, ws->cout, ws->rin);
  double r0 = ws->rin[0];
  for (size_t k = direct + 1; k < n; k++)
    if ((ws->rin[k] / (double)(n - k)) / (r0 / (double)n) < thr) return (double)k;
  return 1.0;
}

/* LPC (Yule-Walker, TSFEL's float32 autocorrelation) -> LPCC. */
static void lpcc_feature(const double *x, size_t n, double out[LPC_N]) {
  const int order = LPC_N - 1;
  float r[LPC_N];
  for (int k = 0; k < LPC_N; k++) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t t = 0, e = n - (size_t)k;
    for (; t + 4 <= e; t += 4) {
      s0 += x[t] * x[t + k];
      s1 += x[t + 1] * x[t + k + 1];
      s2 += x[t + 2] * x[t + k + 2];
      s3 += x[t + 3] * x[t + k + 3];
    }
    for (; t < e; t++) s0 += x[t] * x[t + k];
    r[k] = (float)((s0 + s1) + (s2 + s3));
  }
  double S[LPC_N - 1][LPC_N], ssum = 0; /* augmented [S | -r1..] */
  for (int i = 0; i < order; i++) {
    for (int j = 0; j < order; j++) {
      S[i][j] = (double)r[abs(i - j)];
      ssum += S[i][j];
    }
    S[i][order] = -(double)r[i + 1];
  }
  double c[LPC_N];
  for (int i = 0; i < LPC_N; i++) out[i] = 0;
  if (ssum == 0) return; /* lpc() returns zeros, so does lpcc() */
  for (int col = 0; col < order; col++) {
    int piv = col;
    for (int i = col + 1; i < order; i++)
      if (fabs(S[i][col]) > fabs(S[piv][col])) piv = i;
    if (S[piv][col] == 0) { /* singular: numpy raises; report NaN */
      for (int i = 0; i < LPC_N; i++) out[i] = NAN;
      return;
    }
    if (piv != col)
      for (int j = 0; j <= order; j++) {
        double t = S[col][j];
        S[col][j] = S[piv][j];
        S[piv][j] = t;
      }
    for (int i = col + 1; i < order; i++) {
      double f = S[i][col] / S[col][col];
      if (f == 0) continue;
      for (int j = col; j <= order; j++) S[i][j] -= f * S[col][j];
    }
  }
  for (int i = order - 1; i >= 0; i--) {
    double s = S[i][order];
    for (int j = i + 1; j < order; j++) s -= S[i][j] * c[j + 1];
    c[i + 1] = s / S[i][i];
  }
  c[0] = 1.0;
  double cs = 0;
  for (int i = 0; i < LPC_N; i++) cs += c[i];
  if (cs == 0) return;
  double lps[LPC_N], ct[LPC_N], st[LPC_N];
  for (int q = 0; q < LPC_N; q++) {
    ct[q] = cos(2 * M_PI * q / LPC_N);
    st[q] = sin(2 * M_PI * q / LPC_N);
  }
  for (int k = 0; k < LPC_N; k++) {
    double re = 0, im = 0;
    for (int j = 0; j < LPC_N; j++) {
      int q = (j * k) % LPC_N;
      re += c[j] * ct[q];
      im -= c[j] * st[q];
    }
    double mag = hypot(re, im);
    lps[k] = log(mag * mag);
  }
  for (int m = 0; m < LPC_N; m++) {
    double re = 0, im = 0;
    for (int k = 0; k < LPC_N; k++) {
      int q = (k * m) % LPC_N;
      re += lps[k] * ct[q];
      im += lps[k] * st[q];
    }
    out[m] = hypot(re / LPC_N, im / LPC_N);
  }
}

/* TSFEL mfcc(): pre-emphasis, one 512-point frame, 40 mel filters, DCT-II
 * (ortho), coefficients 1..12, mean removal, lifter 22. */
static ns_status mfcc_feature(ns_feat_ws *ws, const double *x, size_t n, double fs, double out[N_CEPS]) {
  ws_prepare_mel(ws, fs);
  fftw_plan p = get_plan(ws, PK_R2C, MFCC_NFFT);
  if (!p) return NS_ERR_NOMEM;
  size_t m = n < MFCC_NFFT ? n : MFCC_NFFT;
  ws->rin[0] = x[0];
  for (size_t i = 1; i < m; i++) ws->rin[i] = x[i] - 0.97 * x[i - 1];
  for (size_t i = m; i < MFCC_NFFT; i++) ws->rin[i] = 0;
  fftw_execute_dft_r2c(p, ws->rin, ws->cout);
  double pw[MFCC_NFFT / 2 + 1];
  for (int k = 0; k <= MFCC_NFFT / 2; k++) {
    double re = ws->cout[k][0], im = ws->cout[k][1];
    pw[k] = (1.0 / MFCC_NFFT) * (re * re + im * im);
  }
  double fb[MFCC_NFILT];
  for (int j = 0; j < MFCC_NFILT; j++) {
    double s = 0;
    for (int k = ws->fb_lo[j]; k < ws->fb_hi[j]; k++) s += pw[k] * ws->fb_w[j][k];
    if (s == 0) s = 2.220446049250313e-16;
    fb[j] = 20 * log10(s);
  }
  double mc[N_CEPS];
  const double N = MFCC_NFILT, f1 = sqrt(1 / (2 * N));
  if (!ws->dct_ready) {
    for (int k = 1; k <= N_CEPS; k++)
      for (int i = 0; i < MFCC_NFILT; i++) ws->dct[k - 1][i] = cos(M_PI * k * (2 * i + 1) / (2 * N));
    ws->dct_ready = true;
  }
  for (int k = 0; k < N_CEPS; k++) {
    double s = 0;
    for (int i = 0; i < MFCC_NFILT; i++) s += fb[i] * ws->dct[k][i];
    mc[k] = 2 * s * f1;
  }
  double mean = np_mean(mc, N_CEPS) + 1e-8;
  for (int i = 0; i < N_CEPS; i++) {
    double lift = 1 + (22 / 2.0) * sin(M_PI * i / 22);
    out[i] = (mc[i] - mean) * lift;
  }
  return NS_OK;
}

typedef double v4d __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));

static inline v4d load4(const double *p) {
  v4d v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* 'same'-mode convolution of scipy.signal.convolve: out[i] = sum_j k[j] *
 * x[i + c - j], c = (N-1)/2. xp is x with PAD zeros on both sides, so the
 * terms outside x add exact zeros; out holds n rounded up to 32. Blocks of
 * 32 outputs stay in 8 independent vector accumulators (add latency). */
static void conv_same(const double *xp, size_t n, const double *k, size_t N, double *out) {
  size_t c = (N - 1) / 2;
  for (size_t i = 0; i < n; i += 32) {
    const double *base = xp + PAD + i + c;
    v4d z = {0, 0, 0, 0}, a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z;
    for (size_t j = 0; j < N; j++) {
      v4d kv = {k[j], k[j], k[j], k[j]};
      const double *p = base - j;
      a0 += kv * load4(p);
      a1 += kv * load4(p + 4);
      a2 += kv * load4(p + 8);
      a3 += kv * load4(p + 12);
      a4 += kv * load4(p + 16);
      a5 += kv * load4(p + 20);
      a6 += kv * load4(p + 24);
      a7 += kv * load4(p + 28);
    }
    double *o = out + i;
    memcpy(o, &a0, 32);
    memcpy(o + 4, &a1, 32);
    memcpy(o + 8, &a2, 32);
    memcpy(o + 12, &a3, 32);
    memcpy(o + 16, &a4, 32);
    memcpy(o + 20, &a5, 32);
    memcpy(o + 24, &a6, 32);
    memcpy(o + 28, &a7, 32);
  }
}

static void wavelet_features(ns_feat_ws *ws, const double *x, size_t n, double xsum, double *f) {
  double es[N_WIDTHS];
  double *row = ws->row, *xp = ws->xpad;
  memset(xp, 0, PAD * sizeof(double));
  memcpy(xp + PAD, x, n * sizeof(double));
  memset(xp + PAD + n, 0, (PAD + 8) * sizeof(double));
  for (int w = 0; w < N_WIDTHS; w++) {
    conv_same(xp, n, ws->ker[w], ws->ker_len[w], row);
    /* plain sums: nothing here decides a branch, numpy's order not needed */
    v4d s1 = {0, 0, 0, 0}, s2 = s1, sa = s1;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      v4d v = load4(row + i);
      s1 += v;
      s2 += v * v;
      v4i mask = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
      sa += (v4d)((v4i)v & mask);
    }
    double t1 = (s1[0] + s1[1]) + (s1[2] + s1[3]), t2 = (s2[0] + s2[1]) + (s2[2] + s2[3]);
    double ta = (sa[0] + sa[1]) + (sa[2] + sa[3]);
    for (; i < n; i++) {
      t1 += row[i];
      t2 += row[i] * row[i];
      ta += fabs(row[i]);
    }
    double mean = t1 / (double)n;
    f[F_WAV_ABS_MEAN + w] = fabs(mean);
    f[F_WAV_ENERGY + w] = sqrt(t2 / (double)n);
    v4d mv = {mean, mean, mean, mean}, sv = {0, 0, 0, 0};
    for (i = 0; i + 4 <= n; i += 4) {
      v4d d = load4(row + i) - mv;
      sv += d * d;
    }
    double var = (sv[0] + sv[1]) + (sv[2] + sv[3]);
    for (; i < n; i++) var += (row[i] - mean) * (row[i] - mean);
    var /= (double)n;
    f[F_WAV_VAR + w] = var;
    f[F_WAV_STD + w] = sqrt(var);
    es[w] = ta;
  }
  if (xsum == 0) {
    f[F_WAV_ENTROPY] = 0.0;
  } else {
    double tot = np_sum(es, N_WIDTHS), pl[N_WIDTHS];
    for (int w = 0; w < N_WIDTHS; w++) {
      double p = es[w] / tot;
      pl[w] = p * log(p);
    }
    f[F_WAV_ENTROPY] = -np_sum(pl, N_WIDTHS);
  }
}

/* scipy.signal.find_peaks(x, height=h): first (lowest-index) peak > 0, or 0. */
static size_t first_peak(const double *x, size_t m, double h) {
  size_t i = 1, imax = m - 1;
  while (i < imax) {
    if (x[i - 1] < x[i]) {
      size_t ia = i + 1;
      while (ia < imax && x[ia] == x[i]) ia++;
      if (x[ia] < x[i]) {
        size_t mid = (i + ia - 1) / 2;
        if (x[mid] >= h && mid != 0) return mid;
        i = ia;
      }
    }
    i++;
  }
  return 0;
}

static ns_status compute(ns_feat_ws *ws, const double *x, size_t n, double fs, double *f) {
  ns_status st = ws_reserve(ws, n);
  if (st) return st;
  ws_prepare_len(ws, n);
  if ((st = ws_prepare_kernels(ws, n))) return st;
  const double dn = (double)n;

  /* ---- moments ---- */
  double mx = x[0], mn = x[0];
  for (size_t i = 1; i < n; i++) {
    if (x[i] > mx) mx = x[i];
    if (x[i] < mn) mn = x[i];
  }
  const bool is_const = mx == mn;
  double xsum = np_sum(x, n);
  /* constant: the exact mean, so that x - mean is exactly 0 (numpy gets this
   * for 0.7 x 200 but not for every constant) */
  double mean = is_const ? x[0] : xsum / dn;
  double *dev = ws->dev, *t1 = ws->t1;
  for (size_t i = 0; i < n; i++) dev[i] = is_const ? 0.0 : x[i] - mean;
  for (size_t i = 0; i < n; i++) t1[i] = x[i] * x[i];
  double abs_energy = np_sum(t1, n);
  f[F_ABS_ENERGY] = abs_energy;
  f[F_RMS] = sqrt(abs_energy / dn);
  f[F_MAX] = mx;
  f[F_MIN] = mn;
  f[F_PK_PK] = fabs(mx - mn);
  f[F_MEAN] = mean;
  for (size_t i = 0; i < n; i++) t1[i] = dev[i] * dev[i];
  double m2 = np_sum(t1, n) / dn;
  f[F_VARIANCE] = m2;
  f[F_STD] = sqrt(m2);
  for (size_t i = 0; i < n; i++) t1[i] = fabs(dev[i]);
  f[F_MEAN_ABS_DEV] = np_sum(t1, n) / dn;
  for (size_t i = 0; i < n; i++) t1[i] = dev[i] * dev[i] * dev[i];
  double m3 = np_sum(t1, n) / dn;
  for (size_t i = 0; i < n; i++) {
    double s = dev[i] * dev[i];
    t1[i] = s * s;
  }
  double m4 = np_sum(t1, n) / dn;
  double guard = 1e-15 * mean;
  bool zero_m2 = m2 <= guard * guard; /* scipy.stats skew/kurtosis guard */
  f[F_KURTOSIS] = zero_m2 ? NAN : m4 / (m2 * m2) - 3;
  f[F_SKEWNESS] = zero_m2 ? NAN : m3 / pow(m2, 1.5);

  /* ---- order statistics ---- */
  double *xs = ws->xs;
  memcpy(xs, x, n * sizeof(double));
  radix_sort_d(xs, n, ws->k0, ws->k1);
  f[F_MEDIAN] = median_sorted(xs, n);
  f[F_IQR] = percentile_sorted(xs, n, 0.75) - percentile_sorted(xs, n, 0.25);
  f[F_MEDIAN_ABS_DEV] = median_abs_sorted(xs, n, f[F_MEDIAN]);
  for (int i = 0; i < 10; i++) f[F_ECDF + i] = (double)(i + 1) / dn;
  /* entropy over np.unique counts */
  {
    double *pl = ws->t2;
    size_t nu = 0, run = 1;
    for (size_t i = 1; i <= n; i++) {
      if (i < n && xs[i] == xs[i - 1]) {
        run++;
        continue;
      }
      double p = (double)run / dn;
      pl[nu++] = p * log2(p);
      run = 1;
    }
    double s = np_sum(pl, nu), l2n = log2(dn);
    if (l2n == 1) f[F_ENTROPY] = 0.0;
    else if (s / l2n == 0) f[F_ENTROPY] = 0.0;
    else f[F_ENTROPY] = -s / l2n;
  }

  /* ---- differences ---- */
  double *d = ws->d;
  size_t nd = n - 1;
  for (size_t i = 0; i < nd; i++) d[i] = x[i + 1] - x[i];
  double dsum = np_sum(d, nd);
  f[F_MEAN_DIFF] = dsum / (double)nd;
  for (size_t i = 0; i < nd; i++) t1[i] = fabs(d[i]);
  double sad = np_sum(t1, nd);
  f[F_SUM_ABS_DIFF] = sad;
  f[F_MEAN_ABS_DIFF] = sad / (double)nd;
  for (size_t i = 0; i < nd; i++) t1[i] = sqrt(1 + d[i] * d[i]);
  f[F_SIG_DISTANCE] = np_sum(t1, nd);
  {
    double *ds = ws->cum; /* free until the spectral part */
    memcpy(ds, d, nd * sizeof(double));
    radix_sort_d(ds, nd, ws->k0, ws->k1);
    f[F_MEDIAN_DIFF] = median_sorted(ds, nd);
    f[F_MEDIAN_ABS_DIFF] = median_abs_sorted(ds, nd, 0.0);
  }
  {
    size_t neg = 0, pos = 0;
    for (size_t i = 0; i + 1 < nd; i++) {
      if (d[i] < 0 && d[i + 1] > 0) neg++;
      if (d[i + 1] < 0 && d[i] > 0) pos++;
    }
    f[F_NEG_TURNING] = (double)neg;
    f[F_POS_TURNING] = (double)pos;
  }
  /* ECDF percentiles; TSFEL calls the series constant when np.sum(np.diff(x)) == 0 */
  {
    static const double pc[2] = {0.2, 0.8};
    for (int j = 0; j < 2; j++) {
      if (dsum == 0) {
        f[F_ECDF_PERC + j] = x[0];
        f[F_ECDF_PCOUNT + j] = x[0];
      } else {
        size_t cnt = 0;
        while (cnt < n && (double)(cnt + 1) / dn <= pc[j]) cnt++;
        f[F_ECDF_PERC + j] = cnt ? xs[cnt - 1] : NAN;
        f[F_ECDF_PCOUNT + j] = (double)cnt;
      }
    }
  }
  /* zero crossings: changes of np.sign */
  {
    size_t zc = 0;
    int ps = (x[0] > 0) - (x[0] < 0);
    for (size_t i = 1; i < n; i++) {
      int s = (x[i] > 0) - (x[i] < 0);
      if (s != ps) zc++;
      ps = s;
    }
    f[F_ZERO_CROSS] = (double)zc;
  }
  /* neighbourhood peaks, n = 10 */
  {
    /* strict peak over +-10 neighbours <=> x[i] > max of the 20 (no NaN):
     * branch-free passes the vectoriser handles */
    size_t np_ = 0;
    if (n > 20) {
      size_t cnt = n - 20;
      double *mxw = t1; /* mxw[i]: max over the neighbours of x[i + 10] */
      for (size_t i = 0; i < cnt; i++) mxw[i] = x[i + 9] > x[i + 11] ? x[i + 9] : x[i + 11];
      for (size_t k = 2; k <= 10; k++) {
        const double *lo = x + 10 - k, *hi = x + 10 + k;
        for (size_t i = 0; i < cnt; i++) {
          double a = lo[i] > hi[i] ? lo[i] : hi[i];
          mxw[i] = mxw[i] > a ? mxw[i] : a;
        }
      }
      for (size_t i = 0; i < cnt; i++) np_ += x[i + 10] > mxw[i];
    }
    f[F_NEIGH_PEAKS] = (double)np_;
  }
  /* histogram: np.histogram(x, 10, range=(-1, 1)) */
  {
    double edges[11];
    for (int i = 0; i < 11; i++) edges[i] = i == 10 ? 1.0 : (double)i * 0.2 + -1.0;
    double cnt[10] = {0};
    for (size_t i = 0; i < n; i++) {
      double v = x[i];
      if (!(v >= -1.0 && v <= 1.0)) continue;
      long b = (long)((v - -1.0) * 5.0);
      if (b == 10) b = 9;
      if (v < edges[b]) b--;
      else if (b != 9 && v >= edges[b + 1]) b++;
      cnt[b]++;
    }
    for (int i = 0; i < 10; i++) f[F_HIST + i] = cnt[i];
  }

  /* ---- time-axis features ---- */
  {
    double *tt = ws->t2;
    for (size_t i = 0; i < n; i++) tt[i] = (double)i / fs;
    for (size_t i = 0; i < nd; i++) t1[i] = 0.5 * (tt[i + 1] - tt[i]) * fabs(x[i] + x[i + 1]);
    f[F_AUC] = np_sum(t1, nd);
    f[F_AVG_POWER] = abs_energy / (tt[n - 1] - tt[0]);
    double te = 0;
    for (size_t i = 0; i < n; i++) te += tt[i] * (x[i] * x[i]);
    f[F_CENTROID] = (abs_energy == 0 || te == 0) ? 0 : te / abs_energy;
    /* np.polyfit(arange(n), x, 1)[0] */
    double tm = (dn - 1) / 2, sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
      double dt = (double)i - tm;
      sxx += dt * dt;
      sxy += dt * dev[i];
    }
    f[F_SLOPE] = sxy / sxx;
  }
  f[F_AUTOCORR] = autocorr_feature(ws, dev, n, is_const);

  /* ---- spectrum of x: one rFFT ---- */
  size_t m = n / 2 + 1;
  double *fmag = ws->fmag, *fr = ws->freq, *cum = ws->cum;
  {
    fftw_plan p = get_plan(ws, PK_R2C, n);
    if (!p) return NS_ERR_NOMEM;
    memcpy(ws->rin, x, n * sizeof(double));
    fftw_execute_dft_r2c(p, ws->rin, ws->cout);
    for (size_t k = 0; k < m; k++) {
      double re = ws->cout[k][0], im = ws->cout[k][1];
      fmag[k] = sqrt(re * re + im * im);
    }
    /* the exact spectrum of a constant is its DC bin alone */
    if (is_const)
      for (size_t k = 1; k < m; k++) fmag[k] = 0;
    double val = 1.0 / (dn * (1.0 / fs));
    for (size_t k = 0; k < m; k++) fr[k] = (double)k * val;
  }
  double fsum = np_sum(fmag, m);
  {
    double c = 0;
    for (size_t k = 0; k < m; k++) {
      c += fmag[k];
      cum[k] = c;
    }
  }
  /* centroid, spread, skewness, kurtosis */
  {
    double cen = 0, spread = 0;
    if (fsum != 0) {
      for (size_t k = 0; k < m; k++) cen += fr[k] * (fmag[k] / fsum);
      for (size_t k = 0; k < m; k++) {
        double dd = fr[k] - cen;
        spread += dd * dd * (fmag[k] / fsum);
      }
      spread = pow(spread, 0.5);
    }
    f[F_SPEC_CENTROID] = cen;
    f[F_SPEC_SPREAD] = spread;
    if (spread == 0) {
      f[F_SPEC_SKEWNESS] = 0;
      f[F_SPEC_KURTOSIS] = 0;
    } else {
      double *a = t1, *b = ws->t2;
      for (size_t k = 0; k < m; k++) {
        double dd = fr[k] - cen, p = fmag[k] / fsum;
        double d2 = dd * dd;
        a[k] = d2 * dd * p;
        b[k] = d2 * d2 * p;
      }
      f[F_SPEC_SKEWNESS] = np_sum(a, m) / pow(spread, 3);
      f[F_SPEC_KURTOSIS] = np_sum(b, m) / pow(spread, 4);
    }
  }
  /* decrease */
  double band = np_sum(fmag + 1, m - 1);
  const bool flat = band <= FLAT_RATIO * fabs(fmag[0]);
  {
    for (size_t k = 1; k < m; k++) t1[k - 1] = (fmag[k] - fmag[0]) / (double)k;
    double num = np_sum(t1, m - 1);
    f[F_SPEC_DECREASE] = band == 0 ? 0 : (1 / band) * num;
  }
  if (flat) { /* guard: DC / float flicker, see docs/features.md */
    f[F_SPEC_DECREASE] = 0;
    f[F_SPEC_KURTOSIS] = 0;
  }
  /* slope */
  {
    for (size_t k = 0; k < m; k++) t1[k] = fr[k] * fr[k];
    double dot_ff = np_sum(t1, m), sum_f = np_sum(fr, m), len_f = (double)m;
    for (size_t k = 0; k < m; k++) t1[k] = fr[k] * fmag[k];
    double sfm = np_sum(t1, m);
    double den = len_f * dot_ff - sum_f * sum_f;
    if (fsum == 0 || den == 0) f[F_SPEC_SLOPE] = 0;
    else f[F_SPEC_SLOPE] = ((1 / fsum) * (len_f * sfm - sum_f * fsum)) / den;
  }
  /* variation */
  {
    for (size_t k = 0; k + 1 < m; k++) t1[k] = fmag[k] * fmag[k + 1];
    double s1 = np_sum(t1, m - 1);
    for (size_t k = 0; k + 1 < m; k++) t1[k] = fmag[k + 1] * fmag[k + 1];
    double s2 = np_sum(t1, m - 1);
    for (size_t k = 0; k + 1 < m; k++) t1[k] = fmag[k] * fmag[k];
    double s3 = np_sum(t1, m - 1);
    f[F_SPEC_VARIATION] = (s2 == 0 || s3 == 0) ? 1 : 1 - (s1 / (pow(s2, 0.5) * pow(s3, 0.5)));
  }
  /* positive turning points of the magnitude */
  {
    size_t pos = 0;
    for (size_t k = 0; k + 2 < m; k++) {
      double a = fmag[k + 1] - fmag[k], b = fmag[k + 2] - fmag[k + 1];
      if (b < 0 && a > 0) pos++;
    }
    f[F_SPEC_POS_TURNING] = (double)pos;
  }
  /* roll-off / roll-on / max and median frequency */
  {
    double v95 = 0.95 * fsum, v05 = 0.05 * fsum, last = cum[m - 1];
    size_t ioff = m - 1, ion = m - 1, imax = SIZE_MAX, imed = SIZE_MAX;
    for (size_t k = m; k-- > 0;) {
      if (cum[k] >= v95) ioff = k;
      if (cum[k] >= v05) ion = k;
      if (cum[k] > last * 0.95) imax = k;
      if (cum[k] > last * 0.50) imed = k;
    }
    if (imax == SIZE_MAX || imed == SIZE_MAX) { /* np.argmax(cum) fallback */
      size_t am = 0;
      for (size_t k = 1; k < m; k++)
        if (cum[k] > cum[am]) am = k;
      if (imax == SIZE_MAX) imax = am;
      if (imed == SIZE_MAX) imed = am;
    }
    f[F_SPEC_ROLL_OFF] = fr[ioff];
    f[F_SPEC_ROLL_ON] = fr[ion];
    f[F_MAX_FREQ] = fr[imax];
    f[F_MEDIAN_FREQ] = fr[imed];
  }
  /* distance to the straight line of the cumulative magnitude */
  for (size_t k = 0; k < m; k++) t1[k] = linspace_at(0, cum[m - 1], m, k) - cum[k];
  f[F_SPEC_DISTANCE] = np_sum(t1, m);
  /* human range energy: bins [argmin|0.6-f|, argmin|2.5-f|) */
  {
    for (size_t k = 0; k < m; k++) t1[k] = fmag[k] * fmag[k];
    double all = np_sum(t1, m);
    if (all == 0) {
      f[F_HUMAN_RANGE] = 0;
    } else {
      size_t a = 0, b = 0;
      for (size_t k = 1; k < m; k++) {
        if (fabs(0.6 - fr[k]) < fabs(0.6 - fr[a])) a = k;
        if (fabs(2.5 - fr[k]) < fabs(2.5 - fr[b])) b = k;
      }
      f[F_HUMAN_RANGE] = (b > a ? np_sum(t1 + a, b - a) : 0.0) / all;
    }
  }
  /* spectrum of x - mean (fundamental frequency, spectral entropy): the same
   * bins except DC, which is exactly 0 in exact arithmetic */
  {
    double h = 0, *g = ws->t2;
    g[0] = 0;
    for (size_t k = 1; k < m; k++) {
      g[k] = fmag[k];
      if (fmag[k] > h) h = fmag[k];
    }
    size_t pk = first_peak(g, m, h * 0.3);
    f[F_FUND_FREQ] = (h > 0 && pk) ? fr[pk] : 0;
    double *pw = t1;
    for (size_t k = 1; k < m; k++) pw[k - 1] = fmag[k] * fmag[k];
    double tot = np_sum(pw, m - 1);
    if (tot == 0) {
      f[F_SPEC_ENTROPY] = 0.0;
    } else {
      /* numpy's DC bin of x - mean is rounding noise, nonzero for every
       * non-constant series: it counts in the normalisation */
      size_t cnt = 1;
      double *pl = ws->t2;
      size_t np_ = 0;
      pl[np_++] = 0.0;
      for (size_t k = 0; k + 1 < m; k++) {
        double p = pw[k] / tot;
        if (p != 0) {
          cnt++;
          pl[np_++] = p * log2(p);
        }
      }
      f[F_SPEC_ENTROPY] = cnt == 1 ? 0.0 : -np_sum(pl, np_) / log2((double)cnt);
    }
  }

  /* ---- Welch periodogram (one Hann segment of length n) on x / std ---- */
  {
    double *psd = ws->psd;
    if (is_const) {
      for (size_t k = 0; k < m; k++) psd[k] = 0;
    } else {
      /* No second FFT: the periodic Hann window has three DFT bins, so
       * FFT(hann * z)[k] = Z[k]/2 - (Z[k-1] + Z[k+1])/4 with Z the spectrum
       * of z = (x - mean)/std: X/std with DC 0. ws->cout still holds X. */
      const fftw_complex *X = ws->cout;
      double sd = f[F_STD], scale = 1.0 / (fs * ws->hann_ss);
      for (size_t k = 0; k < m; k++) {
        double zr[3], zi[3];
        for (int q = 0; q < 3; q++) {
          size_t idx = (k + n + (size_t)q - 1) % n;
          if (idx == 0) zr[q] = zi[q] = 0;
          else if (idx <= n / 2) zr[q] = X[idx][0] / sd, zi[q] = X[idx][1] / sd;
          else zr[q] = X[n - idx][0] / sd, zi[q] = -X[n - idx][1] / sd;
        }
        double re = 0.5 * zr[1] - 0.25 * (zr[0] + zr[2]), im = 0.5 * zi[1] - 0.25 * (zi[0] + zi[2]);
        double v = (re * re + im * im) * scale;
        bool edge = k == 0 || (n % 2 == 0 && k == m - 1);
        psd[k] = edge ? v : v * 2;
      }
    }
    double pmax = psd[0];
    for (size_t k = 1; k < m; k++)
      if (psd[k] > pmax) pmax = psd[k];
    f[F_MAX_PSD] = pmax;
    double tot = np_sum(psd, m);
    if (tot == 0) {
      f[F_POWER_BW] = 0.0;
    } else {
      double c = 0;
      for (size_t k = 0; k < m; k++) {
        c += psd[k];
        cum[k] = c;
      }
      double thr = cum[m - 1] * 0.95;
      size_t lo = 0, hi = 0;
      while (lo < m - 1 && !(cum[lo] >= thr)) lo++;
      c = 0;
      size_t j = 0;
      for (; j < m; j++) {
        c += psd[m - 1 - j];
        if (c >= thr) break;
      }
      if (j == m) j = m - 1;
      hi = m - 1 - j;
      f[F_POWER_BW] = fabs(fr[hi] - fr[lo]);
    }
  }

  /* ---- spectrogram (Tukey 0.25) -> mean over time, then over frequency ---- */
  {
    size_t nfreq = n / 2 + 1;
    if (nfreq > 256) nfreq = 256;
    size_t nps = 2 * nfreq - 2, nov = nps / 8, step = nps - nov;
    size_t nseg = (n - nps) / step + 1;
    double *acc = ws->acc;
    for (size_t k = 0; k < nfreq; k++) acc[k] = 0;
    if (!is_const) {
      fftw_plan p = get_plan(ws, PK_R2C, nps);
      if (!p) return NS_ERR_NOMEM;
      double scale = 1.0 / (fs * ws->tukey_ss);
      for (size_t s = 0; s < nseg; s++) {
        const double *seg = x + s * step;
        double sm = np_mean(seg, nps);
        for (size_t i = 0; i < nps; i++) ws->rin[i] = ws->tukey[i] * (seg[i] - sm);
        fftw_execute_dft_r2c(p, ws->rin, ws->cout);
        for (size_t k = 0; k < nfreq; k++) {
          double re = ws->cout[k][0], im = ws->cout[k][1];
          double v = (re * re + im * im) * scale;
          if (k != 0 && k != nfreq - 1) v *= 2;
          acc[k] += v;
        }
      }
      for (size_t k = 0; k < nfreq; k++) acc[k] /= (double)nseg;
    }
    double s = 0;
    for (size_t i = 0; i < nfreq; i++) s += acc[ws->fft_order[i]];
    f[F_FFT_MEAN] = s / (double)nfreq;
  }

  /* ---- MFCC, LPCC, wavelets ---- */
  {
    double mc[N_CEPS], lp[LPC_N];
    if ((st = mfcc_feature(ws, x, n, fs, mc))) return st;
    lpcc_feature(x, n, lp);
    /* column of coefficient k: 0, 1, 10, 11, 2..9 */
    for (int k = 0; k < 12; k++) {
      int col = k < 2 ? k : (k >= 10 ? k - 8 : k + 2);
      f[F_MFCC + col] = mc[k];
      f[F_LPCC + col] = lp[k];
    }
  }
  wavelet_features(ws, x, n, xsum, f);
  return NS_OK;
}

ns_status ns_feat_series_ws(ns_feat_ws *ws, const double *x, size_t n, double fs, double out[NS_FEAT_N]) {
  if (out)
    for (int i = 0; i < NS_FEAT_N; i++) out[i] = 0;
  if (!ws || !x || !out) return ns_errorf(NS_ERR_INVAL, "ns_feat_series: NULL argument");
  if (!(isfinite(fs) && fs > 0))
    return ns_errorf(NS_ERR_INVAL, "sampling frequency %g must be finite and > 0", fs);
  if (n < MIN_LEN)
    return ns_errorf(NS_ERR_TOO_SHORT, "series has %zu samples; features need at least %d", n, MIN_LEN);
  if (n > (size_t)INT32_MAX / 4) return ns_errorf(NS_ERR_RANGE, "series of %zu samples too long", n);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return ns_errorf(NS_ERR_NONFINITE, "sample %zu is %g", i, x[i]);
  ns_status st = compute(ws, x, n, fs, out);
  if (st == NS_ERR_NOMEM) return ns_errorf(st, "feature workspace for %zu samples", n);
  return st;
}

ns_status ns_feat_series(const double *x, size_t n, double fs, double out[NS_FEAT_N]) {
  ns_feat_ws *ws = NULL;
  ns_status st = ns_feat_ws_create(&ws);
  if (st) {
    if (out)
      for (int i = 0; i < NS_FEAT_N; i++) out[i] = 0;
    return st;
  }
  st = ns_feat_series_ws(ws, x, n, fs, out);
  ns_feat_ws_free(ws);
  return st;
}

void ns_feat_rowz(double f[NS_FEAT_N]) {
  /* a constant series' features are exact but meaningless as a shape */
  if (f[F_PK_PK] == 0) {
    for (int i = 0; i < NS_FEAT_N; i++) f[i] = 0;
    return;
  }
  /* pandas row mean/std over the 134 columns: naive left-to-right sums */
  double s = 0;
  int cnt = 0;
  for (int i = 0; i < NS_FEAT_N; i++)
    if (isfinite(f[i])) {
      s += f[i];
      cnt++;
    }
  double mean = cnt ? s / cnt : 0, ss = 0;
  for (int i = 0; i < NS_FEAT_N; i++)
    if (isfinite(f[i])) {
      double d = mean - f[i];
      ss += d * d;
    }
  double sd = cnt > 1 ? sqrt(ss / (cnt - 1)) : 0;
  for (int i = 0; i < NS_FEAT_N; i++) {
    if (!isfinite(f[i]) || !(sd > 0) || !isfinite(sd)) f[i] = 0;
    else {
      double z = (f[i] - mean) / sd;
      f[i] = isfinite(z) ? z : 0;
    }
  }
}

/* ---- segments ---- */

/* Work items are (segment, metric) pairs handed out by an atomic counter, so
 * one pool of threads serves one segment or many; every item is computed the
 * same way whichever thread takes it. */
typedef struct {
  const ns_segment *s;
  size_t t0, t1;
  float *out;
} seg_item;

typedef struct {
  const seg_item *segs;
  size_t nseg;
  const size_t *first; /* first item of each segment; first[nseg] = total */
  size_t nitems, maxn;
  double fs;
  atomic_size_t next;
  pthread_mutex_t mu;
  size_t bad_item; /* lowest failing item (SIZE_MAX: none) */
  ns_status bad_st;
  char detail[256];
} seg_pool;

static void pool_fail(seg_pool *p, size_t item, ns_status st, const char *detail) {
  pthread_mutex_lock(&p->mu);
  if (item < p->bad_item) {
    p->bad_item = item;
    p->bad_st = st;
    snprintf(p->detail, sizeof p->detail, "%s", detail);
  }
  pthread_mutex_unlock(&p->mu);
}

static void *seg_worker(void *arg) {
  seg_pool *p = arg;
  ns_feat_ws *ws = NULL;
  double *x = malloc(p->maxn * sizeof(double));
  ns_status st = ns_feat_ws_create(&ws);
  if (!st && !x) st = NS_ERR_NOMEM;
  if (st) { /* claim one item to report it; the other threads do the rest */
    size_t k = atomic_fetch_add(&p->next, 1);
    if (k < p->nitems) pool_fail(p, k, st, "feature workspace");
    goto done;
  }
  for (;;) {
    size_t k = atomic_fetch_add(&p->next, 1);
    if (k >= p->nitems) break;
    pthread_mutex_lock(&p->mu);
    bool skip = k > p->bad_item; /* only the lowest failure is reported */
    pthread_mutex_unlock(&p->mu);
    if (skip) continue;
    size_t lo = 0, hi = p->nseg; /* segment of item k: first[lo] <= k < first[lo+1] */
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (p->first[mid] <= k) lo = mid;
      else hi = mid;
    }
    const seg_item *it = &p->segs[lo];
    const ns_segment *s = it->s;
    size_t m = k - p->first[lo], n = it->t1 - it->t0, M = s->M;
    for (size_t t = 0; t < n; t++) x[t] = (double)s->x[(it->t0 + t) * M + m];
    double f[NS_FEAT_N];
    st = ns_feat_series_ws(ws, x, n, p->fs, f);
    if (st) {
      char d[200];
      size_t t = 0;
      while (st == NS_ERR_NONFINITE && t < n && isfinite(x[t])) t++;
      if (st == NS_ERR_NONFINITE && t < n) snprintf(d, sizeof d, "row %zu is %g", it->t0 + t, x[t]);
      else snprintf(d, sizeof d, "%s", ns_err_detail());
      pool_fail(p, k, st, d);
      continue;
    }
    ns_feat_rowz(f);
    for (int i = 0; i < NS_FEAT_N; i++) it->out[m * NS_FEAT_N + i] = (float)f[i];
  }
done:
  free(x);
  ns_feat_ws_free(ws);
  return NULL;
}

static ns_status check_rows(const ns_segment *s, size_t t0, size_t t1, const char *who) {
  if (!s || !s->x) return ns_errorf(NS_ERR_INVAL, "%s: NULL segment", who);
  const char *node = s->node ? s->node : "?";
  if (s->M == 0) return ns_errorf(NS_ERR_EMPTY, "%s: segment %s has no metrics", who, node);
  if (t0 > t1 || t1 > s->T)
    return ns_errorf(NS_ERR_RANGE, "%s: rows [%zu,%zu) outside segment %s of %zu rows", who, t0, t1, node, s->T);
  if (t1 - t0 < MIN_LEN)
    return ns_errorf(NS_ERR_TOO_SHORT, "%s: segment %s rows [%zu,%zu) give %zu samples; features need at least %d",
                     who, node, t0, t1, t1 - t0, MIN_LEN);
  if (s->M > SIZE_MAX / NS_FEAT_N / sizeof(float)) return ns_errorf(NS_ERR_RANGE, "%s: too many metrics", who);
  return NS_OK;
}

/* Runs the pool over items; outputs already allocated in segs[].out. */
static ns_status run_pool(const seg_item *segs, size_t nseg, double fs, int threads) {
  ns_status st = NS_OK;
  size_t *first = malloc((nseg + 1) * sizeof *first);
  if (!first) return NS_ERR_NOMEM;
  size_t maxn = 1;
  first[0] = 0;
  for (size_t i = 0; i < nseg; i++) {
    first[i + 1] = first[i] + segs[i].s->M;
    if (segs[i].t1 - segs[i].t0 > maxn) maxn = segs[i].t1 - segs[i].t0;
  }
  seg_pool p = {.segs = segs, .nseg = nseg, .first = first, .nitems = first[nseg], .maxn = maxn, .fs = fs,
                .bad_item = SIZE_MAX};
  atomic_init(&p.next, 0);
  pthread_mutex_init(&p.mu, NULL);
  long nt = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
  if (nt < 1) nt = 1;
  if ((size_t)nt > p.nitems) nt = (long)p.nitems;
  pthread_t *tid = calloc((size_t)nt, sizeof *tid);
  bool *started = calloc((size_t)nt, sizeof *started);
  if (!tid || !started) {
    st = NS_ERR_NOMEM;
    goto out;
  }
  for (long i = 1; i < nt; i++) started[i] = pthread_create(&tid[i], NULL, seg_worker, &p) == 0;
  seg_worker(&p); /* the caller works too; threads that failed to start just leave more items */
  for (long i = 1; i < nt; i++)
    if (started[i]) pthread_join(tid[i], NULL);
  if (p.bad_item != SIZE_MAX) {
    size_t lo = 0;
    while (lo + 1 < nseg && first[lo + 1] <= p.bad_item) lo++;
    const ns_segment *s = segs[lo].s;
    size_t m = p.bad_item - first[lo];
    const char *mname = s->metrics && s->metrics[m] ? s->metrics[m] : "?";
    st = ns_errorf(p.bad_st, "segment %s metric %zu (%s), rows [%zu,%zu): %s", s->node ? s->node : "?", m, mname,
                   segs[lo].t0, segs[lo].t1, p.detail);
  }
out:
  pthread_mutex_destroy(&p.mu);
  free(tid);
  free(started);
  free(first);
  return st;
}

ns_status ns_feat_segment(const ns_segment *s, size_t t0, size_t t1, double fs, int threads, float **out) {
  if (out) *out = NULL;
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_feat_segment: out is NULL");
  ns_status st = check_rows(s, t0, t1, "ns_feat_segment");
  if (st) return st;
  if (!(isfinite(fs) && fs > 0))
    return ns_errorf(NS_ERR_INVAL, "sampling frequency %g must be finite and > 0", fs);
  seg_item it = {s, t0, t1, malloc(s->M * NS_FEAT_N * sizeof(float))};
  if (!it.out) return ns_errorf(NS_ERR_NOMEM, "features of %zu metrics", s->M);
  if ((st = run_pool(&it, 1, fs, threads))) free(it.out);
  else *out = it.out;
  return st;
}

ns_status ns_feat_segments(const ns_segment *const *segs, size_t nseg, double fs, int threads, float **out) {
  if (out)
    for (size_t i = 0; i < nseg; i++) out[i] = NULL;
  if (!out || (!segs && nseg)) return ns_errorf(NS_ERR_INVAL, "ns_feat_segments: NULL argument");
  if (!(isfinite(fs) && fs > 0))
    return ns_errorf(NS_ERR_INVAL, "sampling frequency %g must be finite and > 0", fs);
  if (nseg == 0) return NS_OK;
  ns_status st = NS_OK;
  seg_item *it = calloc(nseg, sizeof *it);
  if (!it) return NS_ERR_NOMEM;
  for (size_t i = 0; i < nseg && !st; i++) {
    if ((st = check_rows(segs[i], 0, segs[i] ? segs[i]->T : 0, "ns_feat_segments"))) {
      char d[256];
      snprintf(d, sizeof d, "%s", ns_err_detail());
      ns_errorf(st, "segment #%zu: %s", i, d);
      break;
    }
    it[i] = (seg_item){segs[i], 0, segs[i]->T, malloc(segs[i]->M * NS_FEAT_N * sizeof(float))};
    if (!it[i].out) st = ns_errorf(NS_ERR_NOMEM, "features of segment #%zu", i);
  }
  if (!st) st = run_pool(it, nseg, fs, threads);
  for (size_t i = 0; i < nseg; i++) {
    if (st) free(it[i].out);
    else out[i] = it[i].out;
  }
  free(it);
  return st;
}
