/* Synthetic cluster throughput: generation alone (values/s), and writing
 * the LDMS layout, the NodeSentry layout or a database.
 * usage: synth_gen [NODES] [DAYS] [METRICS] [ldms DIR | nodesentry DIR | db URI] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "ns_synth.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  ns_synth_opts o;
  ns_synth_opts_default(&o);
  o.nodes = argc > 1 ? atoi(argv[1]) : 32;
  o.days = argc > 2 ? atof(argv[2]) : 1;
  o.metrics = argc > 3 ? atoi(argv[3]) : 82;
  ns_synth *s = NULL;
  double t0 = now();
  ns_status st = ns_synth_create(&o, &s);
  if (st) return fprintf(stderr, "synth_gen: %s\n", ns_err_message(st)), 1;
  size_t nj, nl;
  ns_synth_jobs(s, &nj);
  ns_synth_labels(s, &nl);
  printf("schedule: %zu nodes, %zu jobs, %zu anomalies in %.3f s\n", ns_synth_n_nodes(s), nj, nl, now() - t0);
  size_t M = ns_synth_n_metrics(s);
  double *row = malloc(M * sizeof *row);
  size_t rows = 0;
  t0 = now();
  for (size_t i = 0; i < ns_synth_n_nodes(s); i++) {
    ns_synth_gen *g = NULL;
    if ((st = ns_synth_gen_create(s, i, &g))) return 1;
    int64_t ts;
    uint8_t lab;
    while (ns_synth_gen_next(g, &ts, row, &lab)) rows++;
    ns_synth_gen_free(g);
  }
  double t = now() - t0;
  printf("generate: %zu rows, %zu values in %.3f s  %.1f M values/s\n", rows, rows * M, t, (double)(rows * M) / t / 1e6);
  free(row);
  if (argc > 5) {
    ns_synth_report rep = {0};
    t0 = now();
    if (!strcmp(argv[4], "ldms")) st = ns_synth_write_ldms(s, argv[5], &rep);
    else if (!strcmp(argv[4], "nodesentry")) {
      ns_prep_opts po;
      ns_prep_opts_default(&po);
      st = ns_synth_write_nodesentry(s, argv[5], &po, &rep);
    } else if (!strcmp(argv[4], "db")) {
      ns_store *db = NULL;
      if (!(st = ns_store_open(argv[5], &db))) st = ns_synth_write_store(s, db, &rep);
      ns_store_close(db);
    } else return fprintf(stderr, "synth_gen: unknown format %s\n", argv[4]), 2;
    if (st) return fprintf(stderr, "synth_gen: %s\n", ns_err_message(st)), 1;
    t = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("write %s: %lld values in %.2f s  %.1f M values/s, peak RSS %ld MB\n", argv[4], (long long)rep.points, t,
           (double)rep.points / t / 1e6, ru.ru_maxrss / 1024);
  }
  ns_synth_free(s);
  return 0;
}
