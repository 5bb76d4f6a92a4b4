/* Baselines on synthetic data shaped like one NodeSentry cluster: training
 * time of the z-score and the dense autoencoder (default options) and their
 * scoring throughput (reconstruct + score, one thread).
 *   baseline_bench [M] [SERIES] [ROWS]   (defaults 138 10 2000) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "ns_baseline.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  size_t M = argc > 1 ? (size_t)atol(argv[1]) : 138, S = argc > 2 ? (size_t)atol(argv[2]) : 10,
         T = argc > 3 ? (size_t)atol(argv[3]) : 2000;
  if (M < 1 || S < 1 || T < 1) {
    fprintf(stderr, "usage: baseline_bench [M] [SERIES] [ROWS]\n");
    return 2;
  }
  // 8 latent sines mixed into M metrics plus noise.
  float *x = malloc(S * T * M * sizeof *x), *mix = malloc(8 * M * sizeof *mix);
  char **names = malloc(M * sizeof *names);
  ns_train_series *s = malloc(S * sizeof *s);
  unsigned r = 1;
#define RND() (r = r * 1103515245u + 12345u, ((r >> 8) & 0xffff) / 65536.0 - 0.5)
  for (size_t q = 0; q < 8 * M; q++) mix[q] = (float)RND();
  for (size_t m = 0; m < M; m++) {
    names[m] = malloc(24);
    snprintf(names[m], 24, "m%zu", m);
  }
  for (size_t i = 0; i < S; i++) {
    for (size_t t = 0; t < T; t++)
      for (size_t m = 0; m < M; m++) {
        double v = 0;
        for (int k = 0; k < 8; k++) v += mix[k * M + m] * sin(2 * M_PI * (t + 37.0 * i) / (13.0 + 7 * k));
        x[(i * T + t) * M + m] = (float)(v + 0.05 * RND());
      }
    s[i] = (ns_train_series){x + i * T * M, T, 1.0f, (int)i, NULL};
  }
  float *xh = malloc(T * M * sizeof *xh), *sc = malloc(T * sizeof *sc), *me = malloc(T * M * sizeof *me);
  for (int kind = 0; kind < NS_BASELINE_COUNT_; kind++) {
    ns_baseline *b = NULL;
    double t0 = now_s();
    ns_status st = ns_baseline_train((ns_baseline_kind)kind, (const char *const *)names, M, NULL, s, S, NULL, &b);
    double tt = now_s() - t0;
    if (st) {
      fprintf(stderr, "baseline_bench: %s\n", ns_err_message(st));
      return 1;
    }
    int reps = 20;
    t0 = now_s();
    for (int k = 0; k < reps; k++) {
      ns_baseline_reconstruct(b, s[k % S].x, T, xh);
      ns_baseline_score(b, s[k % S].x, xh, T, sc, me);
    }
    double ts = now_s() - t0;
    const ns_score_stats *ss = ns_baseline_score_stats(b);
    printf("%-7s M=%zu series=%zu rows=%zu: train %.3f s, score %.0f points/s, train score mean %.4g p99 %.4g\n",
           ns_baseline_kind_name((ns_baseline_kind)kind), M, S, T, tt, reps * (double)T / ts, ss->mean,
           ns_score_stats_quantile(ss, 0.99));
    ns_baseline_free(b);
  }
  for (size_t m = 0; m < M; m++) free(names[m]);
  free(names), free(x), free(mix), free(s), free(xh), free(sc), free(me);
  return 0;
}
