/* Preprocessing throughput on one core: raw values per second through
 * ns_prep_apply (clean, reduce, standardise, clip), through
 * ns_prep_apply_segment (a shipped job segment), and ns_prep_fit.
 * usage: prep_apply [NODES] [DAYS] [METRICS] [REPEATS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "ns_prep.h"
#include "ns_synth.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(ns_status st, const char *what) {
  if (!st) return;
  fprintf(stderr, "prep_apply: %s: %s\n", what, ns_err_message(st));
  exit(1);
}

int main(int argc, char **argv) {
  ns_synth_opts o;
  ns_synth_opts_default(&o);
  o.nodes = argc > 1 ? atoi(argv[1]) : 8;
  o.days = argc > 2 ? atof(argv[2]) : 2;
  o.metrics = argc > 3 ? atoi(argv[3]) : 82;
  int reps = argc > 4 ? atoi(argv[4]) : 5;
  ns_synth *s = NULL;
  die(ns_synth_create(&o, &s), "synth");
  size_t N = ns_synth_n_nodes(s);
  ns_mts **raw = calloc(N, sizeof *raw);
  size_t points = 0;
  for (size_t i = 0; i < N; i++) {
    die(ns_synth_node_mts(s, i, 0, 0, &raw[i]), "generate");
    points += raw[i]->T * raw[i]->M;
  }
  ns_prep_opts po;
  ns_prep_opts_default(&po);
  double t0 = now();
  ns_prep_fit *f = NULL;
  die(ns_prep_fit_begin(&po, &f), "fit");
  for (size_t i = 0; i < N; i++) die(ns_prep_fit_add(f, raw[i], NULL), "fit");
  ns_prep_params *p = NULL;
  die(ns_prep_fit_end(f, &p), "fit");
  double tf = now() - t0;
  printf("data: %zu nodes x %.3g days, %d metrics in, %zu out, %zu raw values\n", N, o.days, o.metrics,
         ns_prep_n_outputs(p), points);
  printf("fit:            %.3f s  %6.1f M values/s\n", tf, (double)points / tf / 1e6);
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    t0 = now();
    for (size_t i = 0; i < N; i++) {
      ns_mts *out = NULL;
      die(ns_prep_apply(p, raw[i], &out, NULL), "apply");
      ns_mts_free(out);
    }
    double t = now() - t0;
    if (t < best) best = t;
  }
  printf("apply:          %.3f s  %6.1f M values/s (best of %d)\n", best, (double)points / best / 1e6, reps);
  /* Shipped segments: 4 h job windows, counters already rates. */
  size_t T = (size_t)(4 * 3600000 / o.interval_ms), M = ns_synth_n_metrics(s);
  ns_segment *seg = NULL;
  die(ns_segment_create(T, M, &seg), "segment");
  die(ns_segment_set_meta(seg, "c", ns_synth_node_name(s, 0), "1", raw[0]->ts_ms[0] / 15000 * 15000, o.interval_ms),
      "segment");
  die(ns_segment_set_metrics(seg, ns_synth_metric_names(s)), "segment");
  for (size_t t = 0; t < T; t++)
    for (size_t m = 0; m < M; m++) seg->x[t * M + m] = (float)(raw[0]->x[(t % raw[0]->T) * M + m] * 1e-3);
  best = 1e30;
  int nseg = 50;
  for (int r = 0; r < reps; r++) {
    t0 = now();
    for (int k = 0; k < nseg; k++) {
      ns_segment **out = NULL;
      size_t n = 0;
      die(ns_prep_apply_segment(p, seg, &out, &n, NULL), "apply_segment");
      ns_prep_segments_free(out, n);
    }
    double t = now() - t0;
    if (t < best) best = t;
  }
  printf("apply_segment:  %.3f ms per %zu x %zu segment  %6.1f M values/s\n", best / nseg * 1e3, T, M,
         (double)(T * M) * nseg / best / 1e6);
  ns_segment_free(seg);
  for (size_t i = 0; i < N; i++) ns_mts_free(raw[i]);
  free(raw);
  ns_prep_params_free(p);
  ns_synth_free(s);
  return 0;
}
