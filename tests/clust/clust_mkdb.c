/* Test helper: a SQLite store with 3 job patterns x 5 segments and 2 idle
 * patterns x 3 (split "train"), plus CSV files of two segments.
 *   clust_mkdb DB_PATH CSV_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "ns_store.h"

#define M 4
static char *mnames[M] = {"cpu", "mem", "net", "io"};

static ns_segment *pattern(int g, int seed, size_t T, const char *job) {
  ns_segment *s = NULL;
  if (ns_segment_create(T, M, &s) || ns_segment_set_metrics(s, mnames) ||
      ns_segment_set_meta(s, "lab", "cn01", job, 1700000000000LL + seed * 86400000LL, 15000))
    exit(1);
  unsigned st = (unsigned)seed * 2654435761u + 1;
  for (size_t t = 0; t < T; t++)
    for (size_t m = 0; m < M; m++) {
      st = st * 1103515245u + 12345u;
      double noise = ((st >> 8) & 0xffff) / 65536.0 - 0.5, v;
      if (g == 0) v = sin(2 * M_PI * t / 12.0 + m) + 0.1 * noise;
      else if (g == 1) v = (double)t / T * (m + 1) + 0.1 * noise;
      else v = ((t / 10) % 2 ? 1.0 : -1.0) * (m + 1) + 0.1 * noise;
      s->x[t * M + m] = (float)v;
    }
  return s;
}

static void write_csv(const ns_segment *s, const char *path, int with_time) {
  FILE *f = fopen(path, "w");
  if (!f) exit(1);
  if (with_time) fprintf(f, "timestamp,");
  // Columns in another order than the library's: the reader maps by name.
  fprintf(f, "io,net,mem,cpu\n");
  for (size_t t = 0; t < s->T; t++) {
    if (with_time) fprintf(f, "%lld,", (long long)(s->start_ms + (int64_t)t * s->interval_ms));
    fprintf(f, "%.9g,%.9g,%.9g,%.9g\n", s->x[t * M + 3], s->x[t * M + 2], s->x[t * M + 1], s->x[t * M + 0]);
  }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 3) return fprintf(stderr, "usage: clust_mkdb DB CSV_DIR\n"), 2;
  char uri[1024], path[1024];
  snprintf(uri, sizeof uri, "sqlite:%s", argv[1]);
  ns_store *st = NULL;
  if (ns_store_open(uri, &st)) return fprintf(stderr, "open: %s\n", ns_err_detail()), 1;
  int n = 0;
  for (int g = 0; g < 3; g++)
    for (int k = 0; k < 5; k++, n++) {
      char job[16];
      snprintf(job, sizeof job, "%d", 100 + n);
      ns_segment *s = pattern(g, n, 240 + k, job);
      int64_t id;
      if (ns_store_put_segment(st, s, "train", &id)) return fprintf(stderr, "put: %s\n", ns_err_detail()), 1;
      printf("job %d group %d id %lld\n", n, g, (long long)id);
      ns_segment_free(s);
    }
  for (int g = 0; g < 2; g++)
    for (int k = 0; k < 3; k++, n++) {
      ns_segment *s = pattern(g + 1, n, 150, NULL);
      int64_t id;
      if (ns_store_put_segment(st, s, "train", &id)) return fprintf(stderr, "put: %s\n", ns_err_detail()), 1;
      ns_segment_free(s);
    }
  // A fresh sine segment (not stored) and a too-short one, as CSV.
  ns_segment *s = pattern(0, 777, 300, "777");
  snprintf(path, sizeof path, "%s/sine.csv", argv[2]);
  write_csv(s, path, 1);
  ns_segment_free(s);
  s = pattern(0, 778, 6, "778");
  snprintf(path, sizeof path, "%s/short.csv", argv[2]);
  write_csv(s, path, 0);
  ns_segment_free(s);
  ns_store_close(st);
  return 0;
}
