/* Feature extraction speed: one segment of T rows x 138 metrics through
 * ns_feat_segment (134 TSFEL features per metric + row z-score), fs = 100.
 * Prints the median and best of R runs for 1 and 2 threads, then a batch of
 * 16 segments (lengths 1000..1105) through ns_feat_segments.
 *   feat_bench [reps [T]]    (default 30 runs; T = only that length) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_feat.h"
#include "ns_mts.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A preprocessed-looking segment: random walks, periodic load, noise,
 * step changes and a few constant metrics (about 1 in 8, as in the sample). */
static ns_segment *make_segment(size_t T, size_t M) {
  ns_segment *s = NULL;
  if (ns_segment_create(T, M, &s)) return NULL;
  unsigned r = 12345;
  for (size_t m = 0; m < M; m++) {
    double w = 0;
    for (size_t t = 0; t < T; t++) {
      r = r * 1664525u + 1013904223u;
      double u = ((r >> 8) & 0xffff) / 65536.0 - 0.5;
      w += 0.2 * u;
      double v;
      switch (m % 8) {
      case 0: v = w; break;
      case 1: v = sin(2 * M_PI * t / (20.0 + m)) + 0.2 * u; break;
      case 2: v = u; break;
      case 3: v = (t > T / 3 ? 1.5 : -0.5) + 0.05 * u; break;
      case 4: v = 0.3 * w + 0.5 * sin(0.05 * t); break;
      case 5: v = (t % 37) / 18.5 - 1; break;
      case 6: v = round(4 * u) / 2; break;
      default: v = 0.7; break;
      }
      s->x[t * M + m] = (float)v;
    }
  }
  return s;
}

static void run(size_t T, size_t M, int threads, int reps) {
  ns_segment *s = make_segment(T, M);
  if (!s) {
    fprintf(stderr, "feat_bench: out of memory\n");
    exit(1);
  }
  float *out = NULL;
  if (ns_feat_segment(s, 0, T, 100, threads, &out)) { /* warm-up: FFTW plans */
    fprintf(stderr, "feat_bench: %s\n", ns_err_message(NS_ERR_INTERNAL));
    exit(1);
  }
  free(out);
  double *ms = malloc(reps * sizeof *ms), *cpu = malloc(reps * sizeof *cpu);
  for (int i = 0; i < reps; i++) {
    double t0 = now_ms(), c0 = cpu_ms();
    ns_status st = ns_feat_segment(s, 0, T, 100, threads, &out);
    ms[i] = now_ms() - t0;
    cpu[i] = cpu_ms() - c0;
    if (st) {
      fprintf(stderr, "feat_bench: %s\n", ns_err_message(st));
      exit(1);
    }
    free(out);
  }
  qsort(ms, reps, sizeof *ms, cmp_d);
  qsort(cpu, reps, sizeof *cpu, cmp_d);
  /* CPU time (all threads) is robust against other load on the machine */
  printf("features %4zux%zu threads=%d: wall median %.2f ms, best %.2f ms; cpu median %.2f ms (%d runs)\n", T, M,
         threads, ms[reps / 2], ms[0], cpu[reps / 2], reps);
  free(ms);
  free(cpu);
  ns_segment_free(s);
}

/* Offline stage: nseg whole segments through ns_feat_segments (one pool). */
static void run_batch(size_t nseg, size_t T, size_t M, int threads, int reps) {
  ns_segment **segs = calloc(nseg, sizeof *segs);
  float **out = calloc(nseg, sizeof *out);
  for (size_t i = 0; i < nseg; i++)
    if (!(segs[i] = make_segment(T + 7 * i, M))) exit(1);
  double *ms = malloc(reps * sizeof *ms), *cpu = malloc(reps * sizeof *cpu);
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    double t0 = now_ms(), c0 = cpu_ms();
    ns_status st = ns_feat_segments((const ns_segment *const *)segs, nseg, 100, threads, out);
    if (r >= 0) ms[r] = now_ms() - t0, cpu[r] = cpu_ms() - c0;
    if (st) {
      fprintf(stderr, "feat_bench: %s\n", ns_err_message(st));
      exit(1);
    }
    for (size_t i = 0; i < nseg; i++) free(out[i]);
  }
  qsort(ms, reps, sizeof *ms, cmp_d);
  qsort(cpu, reps, sizeof *cpu, cmp_d);
  printf("batch %zu segments of ~%zux%zu threads=%d: wall median %.1f ms, best %.1f ms; cpu median %.1f ms\n", nseg,
         T, M, threads, ms[reps / 2], ms[0], cpu[reps / 2]);
  for (size_t i = 0; i < nseg; i++) ns_segment_free(segs[i]);
  free(segs), free(out), free(ms), free(cpu);
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 30;
  if (reps < 1) reps = 1;
  const size_t Ts[] = {1000, 200};
  size_t only = argc > 2 ? (size_t)atol(argv[2]) : 0;
  for (size_t i = 0; i < 2; i++)
    if (!only || only == Ts[i])
    for (int th = 1; th <= 2; th++) run(Ts[i], 138, th, reps);
  if (!only)
    for (int th = 1; th <= 2; th++) run_batch(16, 1000, 138, th, reps / 5 > 3 ? reps / 5 : 3);
  ns_feat_cleanup();
  return 0;
}
