/* Benchmark: online matching of one segment (features of its first hour +
 * nearest centroids + nearest representative) against a synthetic library.
 *   clust_match [clusters=30] [M=138] [reps=10] [T=240] [repeats=20]
 * Prints milliseconds per match, and for the distance part alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "ns_clib.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
static unsigned long long rs = 88172645463325252ull;
static float urandf(void) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return (float)((rs >> 40) * (1.0 / 16777216.0)) - 0.5f;
}

int main(int argc, char **argv) {
  size_t K = argc > 1 ? strtoul(argv[1], NULL, 10) : 30, M = argc > 2 ? strtoul(argv[2], NULL, 10) : 138;
  size_t R = argc > 3 ? strtoul(argv[3], NULL, 10) : 10, T = argc > 4 ? strtoul(argv[4], NULL, 10) : 240;
  int reps = argc > 5 ? atoi(argv[5]) : 20;
  size_t n = K * R, len = M * NS_CLIB_NFEAT;
  ns_featset *fs = NULL;
  if (ns_featset_create(n, M, &fs)) return fprintf(stderr, "%s\n", ns_err_detail()), 1;
  for (size_t i = 0; i < n; i++) {
    fs->ids[i] = (int64_t)i + 1;
    for (size_t q = 0; q < len; q++) fs->f[i * len + q] = (float)(i / R) + 0.1f * urandf();
  }
  char **names = malloc(M * sizeof *names);
  for (size_t m = 0; m < M; m++) {
    names[m] = malloc(24);
    snprintf(names[m], 24, "m%zu", m);
  }
  ns_clib_params p;
  ns_clib_params_default(&p);
  p.k_min = K, p.k_max = K, p.n_rep = R, p.threads = 1;
  ns_clib *lib = NULL;
  ns_status st = ns_clib_build(fs, (const char *const *)names, &p, NULL, NULL, &lib);
  if (st) return fprintf(stderr, "build: %s\n", ns_err_message(st)), 1;
  ns_segment *seg = NULL;
  ns_segment_create(T, M, &seg);
  ns_segment_set_metrics(seg, names);
  ns_segment_set_meta(seg, "c", "n", "1", 0, 15000);
  for (size_t q = 0; q < T * M; q++) seg->x[q] = (float)sin(0.1 * (double)(q / M) + (double)(q % M)) + 0.1f * urandf();
  ns_clib_match best[3];
  size_t k = 0;
  double t0 = now_s();
  for (int r = 0; r < reps; r++)
    if ((st = ns_clib_match_segment(lib, seg, best, 3, &k))) return fprintf(stderr, "match: %s\n", ns_err_message(st)), 1;
  double t1 = now_s();
  for (int r = 0; r < reps; r++) ns_clib_match_features(lib, NS_SEG_JOB, fs->f, best, 3, &k);
  double t2 = now_s();
  printf("clust_match: %zu clusters x %zu representatives, M=%zu, T=%zu (library threads %d)\n", lib->n_clusters, R, M, T,
         p.threads);
  printf("clust_match: match_segment %.2f ms (features + distances), match_features %.3f ms\n",
         (t1 - t0) / reps * 1e3, (t2 - t1) / reps * 1e3);
  ns_segment_free(seg);
  ns_clib_free(lib);
  ns_featset_free(fs);
  for (size_t m = 0; m < M; m++) free(names[m]);
  free(names);
  return 0;
}
