/* Benchmark: HAC + silhouette selection of k on a synthetic condensed
 * distance matrix (Euclidean distances of a Gaussian mixture in 16-D).
 *   clust_hac [n=13379] [threads=2] [linkage=complete] [k_min=2] [k_max=20]
 * Prints seconds per stage and the peak RSS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "ns_clust.h"

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

static unsigned long long rng_state = 88172645463325252ull;
static double urand(void) {
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

#define DIM 16
typedef struct { const float *X; float *D; size_t n; } gen_ctx;
static void gen_rows(void *p, int tid) {
  gen_ctx *g = p;
  int nt = ns_clust_threads(2);
  // Interleave rows so both threads get similar work.
  for (size_t i = (size_t)tid; i < g->n; i += (size_t)nt)
    for (size_t k = i + 1; k < g->n; k++) {
      double s = 0;
      for (int d = 0; d < DIM; d++) {
        double t = g->X[i * DIM + d] - g->X[k * DIM + d];
        s += t * t;
      }
      g->D[ns_cond_index(g->n, i, k)] = (float)sqrt(s);
    }
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 13379;
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  ns_linkage link = NS_LINKAGE_COMPLETE;
  if (argc > 3 && ns_linkage_parse(argv[3], &link)) return fprintf(stderr, "bad linkage\n"), 2;
  size_t kmin = argc > 4 ? strtoul(argv[4], NULL, 10) : 2, kmax = argc > 5 ? strtoul(argv[5], NULL, 10) : 20;
  float *X = malloc(n * DIM * sizeof *X);
  float *D = malloc(ns_cond_size(n) * sizeof *D);
  if (!X || !D) return fprintf(stderr, "out of memory\n"), 1;
  double centres[12][DIM];
  for (int c = 0; c < 12; c++)
    for (int d = 0; d < DIM; d++) centres[c][d] = 8 * urand();
  for (size_t i = 0; i < n; i++) {
    int c = (int)(urand() * 12);
    for (int d = 0; d < DIM; d++) X[i * DIM + d] = (float)(centres[c][d] + nrand() * (0.5 + 0.1 * c));
  }
  double t0 = now_s();
  gen_ctx g = {X, D, n};
  ns_clust_parallel(2, gen_rows, &g);
  free(X);
  double t1 = now_s(), c1 = cpu_s();
  ns_merge *z = NULL;
  if (ns_clust_hac(D, n, link, NULL, NULL, &z)) return fprintf(stderr, "%s\n", ns_err_message(NS_ERR_INTERNAL)), 1;
  double t2 = now_s(), c2 = cpu_s();
  free(z);
  ns_clust_opts o = {.linkage = link, .k_min = kmin, .k_max = kmax, .min_size = 2, .threads = threads};
  ns_clust_result *r = NULL;
  ns_status st = ns_clust_select(D, n, &o, &r);
  if (st) return fprintf(stderr, "select: %s\n", ns_err_message(st)), 1;
  double t3 = now_s(), c3 = cpu_s();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("clust_hac: n=%zu linkage=%s threads=%d k=%zu..%zu\n", n, ns_linkage_name(link), threads, kmin, kmax);
  printf("clust_hac: synthetic matrix %.2f s (not part of the target)\n", t1 - t0);
  printf("clust_hac: hac alone %.2f s wall, %.2f s CPU\n", t2 - t1, c2 - c1);
  printf("clust_hac: hac + silhouette k=%zu..%zu + selection %.2f s wall, %.2f s CPU (k=%zu, silhouette %.4f, final k=%zu)\n",
         r->k_lo, r->k_hi, t3 - t2, c3 - c2, r->k_best, r->sil_best, r->k);
  printf("clust_hac: peak RSS %.1f MiB\n", ru.ru_maxrss / 1024.0);
  ns_clust_result_free(r);
  free(D);
  return 0;
}
