/* Benchmark: the segment distance matrix from feature matrices (M metrics x
 * 134 features per segment), then HAC + silhouette selection on it.
 *   clust_dist [n=13379] [M=138] [threads=2]
 * Features are synthetic (12 noisy prototypes). Prints seconds and peak RSS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include "ns_clib.h"

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

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
static double peak_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 13379, M = argc > 2 ? strtoul(argv[2], NULL, 10) : 138;
  int threads = argc > 3 ? atoi(argv[3]) : 2;
  size_t len = M * NS_CLIB_NFEAT;
  ns_featset *fs = NULL;
  if (ns_featset_create(n, M, &fs)) return fprintf(stderr, "%s\n", ns_err_detail()), 1;
  float *proto = malloc(12 * len * sizeof *proto);
  for (size_t q = 0; q < 12 * len; q++) proto[q] = 2 * urandf();
  for (size_t i = 0; i < n; i++) {
    const float *p = proto + (i % 12) * len;
    for (size_t q = 0; q < len; q++) fs->f[i * len + q] = p[q] + 0.3f * urandf();
  }
  free(proto);
  double t0 = now_s(), c0 = cpu_s();
  float *D = NULL;
  ns_status st = ns_clib_distance_matrix(fs, NULL, n, threads, NULL, NULL, &D);
  if (st) return fprintf(stderr, "%s\n", ns_err_message(st)), 1;
  double t1 = now_s(), c1 = cpu_s();
  printf("clust_dist: n=%zu M=%zu features=%d threads=%d\n", n, M, NS_CLIB_NFEAT, threads);
  printf("clust_dist: distance matrix %.2f s wall, %.2f s CPU (%.2f M pairs/s), peak RSS %.1f MiB (features %.1f MiB + matrix %.1f MiB)\n",
         t1 - t0, c1 - c0, (double)ns_cond_size(n) / (t1 - t0) / 1e6, peak_mib(), (double)n * len * 4 / 1048576.0,
         (double)ns_cond_size(n) * 4 / 1048576.0);
  ns_featset_free(fs);
  ns_clust_opts o = {.linkage = NS_LINKAGE_COMPLETE, .k_min = 2, .k_max = 20, .min_size = 2, .threads = threads};
  ns_clust_result *r = NULL;
  if ((st = ns_clust_select(D, n, &o, &r))) return fprintf(stderr, "%s\n", ns_err_message(st)), 1;
  double t2 = now_s(), c2 = cpu_s();
  printf("clust_dist: hac + silhouette k=2..20 %.2f s wall, %.2f s CPU: k=%zu silhouette %.4f\n", t2 - t1, c2 - c1, r->k, r->sil_best);
  ns_clust_result_free(r);
  free(D);
  return 0;
}
