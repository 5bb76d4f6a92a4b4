/* End-to-end scoring time of one long job-node segment with a trained model
 * library: preprocessing of the raw window, cluster matching on the first
 * match_len, reconstruction, scores, thresholds and verdict.
 *   detect_bench --db URI [--cluster C] [--hours 24] [--reps 20] [--precision fp32|bf16|auto]
 * The database needs an active library trained from raw data (`nsentry prep`
 * + `nsentry train`, e.g. the D2 set of bench/accuracy.sh). The raw window is
 * cut from a stored node's raw telemetry, repeated to the requested length. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_config.h"
#include "ns_detect.h"
#include "ns_store.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(ns_status s, const char *what) {
  if (!s) return;
  fprintf(stderr, "detect_bench: %s: %s\n", what, ns_err_message(s));
  exit(1);
}

int main(int argc, char **argv) {
  const char *db = NULL, *cluster = "d2", *prec = "fp32";
  double hours = 24;
  int reps = 20, c;
  static const struct option opts[] = {{"db", required_argument, 0, 'd'}, {"cluster", required_argument, 0, 'c'},
                                       {"hours", required_argument, 0, 'H'}, {"reps", required_argument, 0, 'r'},
                                       {"precision", required_argument, 0, 'p'}, {0, 0, 0, 0}};
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'd') db = optarg;
    else if (c == 'c') cluster = optarg;
    else if (c == 'H') hours = atof(optarg);
    else if (c == 'r') reps = atoi(optarg);
    else if (c == 'p') prec = optarg;
    else return 2;
  }
  if (!db || hours <= 0 || reps < 1) {
    fprintf(stderr, "usage: detect_bench --db URI [--cluster C] [--hours 24] [--reps 20] [--precision fp32|bf16|auto]\n");
    return 2;
  }
  ns_store *st = NULL;
  ns_config *cfg = NULL;
  ns_library *lib = NULL;
  die(ns_store_open(db, &st), db);
  die(ns_config_create(&cfg), "config");
  die(ns_config_set(cfg, "model_precision", prec), "model_precision");
  ns_precision p;
  die(ns_precision_from_config(cfg, &p), "model_precision");
  die(ns_library_load_active(st, &lib), "library");
  die(ns_library_set_precision(lib, p), "model_precision");
  char **nodes = NULL;
  size_t nn = 0;
  die(ns_store_list_raw_nodes(st, cluster, &nodes, &nn), "raw nodes");
  if (nn == 0) die(ns_errorf(NS_ERR_EMPTY, "no raw telemetry for cluster %s", cluster), "raw nodes");
  ns_mts *raw = NULL;
  die(ns_store_get_raw(st, cluster, nodes[0], 0, 0, &raw), "raw data");
  int64_t iv = raw->T > 1 ? (raw->ts_ms[raw->T - 1] - raw->ts_ms[0]) / (int64_t)(raw->T - 1) : 15000;
  iv = (iv + 500) / 1000 * 1000;  /* sampler jitter aside, the interval is whole seconds */
  size_t T = (size_t)(hours * 3600000.0 / (double)iv);
  ns_segment *seg = NULL;
  die(ns_segment_create(T, raw->M, &seg), "segment");
  die(ns_segment_set_metrics(seg, raw->metrics), "segment");
  die(ns_segment_set_meta(seg, cluster, nodes[0], "bench", raw->ts_ms[0], iv), "segment");
  for (size_t t = 0; t < T; t++)
    for (size_t m = 0; m < raw->M; m++) seg->x[t * raw->M + m] = (float)raw->x[(t % raw->T) * raw->M + m];
  double *ms = malloc((size_t)reps * sizeof *ms);
  ns_node_verdict *v = NULL;
  die(ns_detect_segment(lib, seg, cfg, &v), "warm-up");  /* FFTW plans, caches */
  ns_node_verdict_free(v);
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    die(ns_detect_segment(lib, seg, cfg, &v), "detect");
    ms[r] = (now_s() - t0) * 1e3;
    if (r + 1 < reps) ns_node_verdict_free(v);
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmp_d);
  printf("detect_bench: %zu points x %zu raw metrics (%zu after preprocessing), library %s, %s\n", T, raw->M,
         ns_library_n_metrics(lib), ns_library_version(lib), p == NS_PREC_BF16 ? "bf16" : "fp32");
  printf("  end-to-end score of one segment: median %.1f ms, min %.1f ms, max %.1f ms over %d runs "
         "(verdict %s, %zu intervals)\n",
         ms[reps / 2], ms[0], ms[reps - 1], reps, v->anomalous ? "anomalous" : "normal", v->n_intervals);
  ns_node_verdict_free(v);
  free(ms);
  ns_segment_free(seg);
  ns_mts_free(raw);
  ns_strings_free(nodes, nn);
  ns_library_free(lib);
  ns_config_free(cfg);
  ns_store_close(st);
  return 0;
}
