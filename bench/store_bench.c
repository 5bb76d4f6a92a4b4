/* Store throughput: put_segment (batched and autocommit), put_raw of week-long
 * node series, and the matching reads, on SQLite (a file under /tmp) and on
 * PostgreSQL when NS_TEST_PG_URI is set (a scratch database, dropped after).
 *   store_bench [SCALE]    SCALE multiplies the work (default 1) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ns_db.h"
#include "ns_store.h"

#define M_METRICS 82
#define T_SEG 240      /* one hour at 15 s */
#define T_RAW 40320    /* one week at 15 s */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, ns_status st) {
  fprintf(stderr, "store_bench: %s: %s\n", what, ns_err_message(st));
  exit(1);
}

static char **metric_names(void) {
  static char *names[M_METRICS];
  static char buf[M_METRICS][32];
  for (int m = 0; m < M_METRICS; m++) {
    snprintf(buf[m], sizeof buf[m], "metric_%02d", m);
    names[m] = buf[m];
  }
  return names;
}

static void bench(const char *label, const char *uri, int scale) {
  ns_store *s = NULL;
  ns_status st = ns_store_open(uri, &s);
  if (st) die("open", st);
  char **names = metric_names();
  ns_segment *g = NULL;
  if ((st = ns_segment_create(T_SEG, M_METRICS, &g)) || (st = ns_segment_set_metrics(g, names))) die("segment", st);
  for (size_t i = 0; i < (size_t)T_SEG * M_METRICS; i++) g->x[i] = (float)sin((double)i * 0.01);

  /* 1. put_segment in import-sized transactions. */
  int nseg = 2000 * scale, batch = 500;
  double t0 = now_s();
  for (int i = 0; i < nseg; i++) {
    if (i % batch == 0 && (st = ns_store_begin(s))) die("begin", st);
    char node[16];
    snprintf(node, sizeof node, "cn%04d", i % 1294);
    char job[16];
    snprintf(job, sizeof job, "%d", 1000 + i);
    if ((st = ns_segment_set_meta(g, "bench", node, job, 1795000000000LL + (int64_t)i * 3600000, 15000)))
      die("meta", st);
    int64_t id;
    if ((st = ns_store_put_segment(s, g, "train", &id))) die("put_segment", st);
    if ((i % batch == batch - 1 || i == nseg - 1) && (st = ns_store_commit(s))) die("commit", st);
  }
  double dt = now_s() - t0;
  double pts = (double)nseg * T_SEG * M_METRICS;
  printf("%-10s put_segment batched   %6d segs %3dx%d: %8.0f segs/s %7.1f Mpoints/s %6.1f MB/s\n", label, nseg,
         T_SEG, M_METRICS, nseg / dt, pts / dt / 1e6, pts * 4 / dt / 1e6);

  /* 2. put_segment one transaction each (the service path). */
  int nauto = 300 * scale;
  t0 = now_s();
  for (int i = 0; i < nauto; i++) {
    if ((st = ns_segment_set_meta(g, "bench", "cnauto", NULL, 1795000000000LL + (int64_t)i * 3600000, 15000)))
      die("meta", st);
    int64_t id;
    if ((st = ns_store_put_segment(s, g, NULL, &id))) die("put_segment", st);
  }
  dt = now_s() - t0;
  pts = (double)nauto * T_SEG * M_METRICS;
  printf("%-10s put_segment autocommit %6d segs %3dx%d: %8.0f segs/s %7.1f Mpoints/s\n", label, nauto, T_SEG,
         M_METRICS, nauto / dt, pts / dt / 1e6);

  /* 3. get_segment. */
  int64_t *ids = NULL;
  size_t n = 0;
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.split = "train";
  if ((st = ns_store_list_segments(s, &f, &ids, &n))) die("list", st);
  t0 = now_s();
  for (size_t i = 0; i < n; i++) {
    ns_segment *r = NULL;
    if ((st = ns_store_get_segment(s, ids[i], &r))) die("get_segment", st);
    ns_segment_free(r);
  }
  dt = now_s() - t0;
  printf("%-10s get_segment           %6zu segs: %8.0f segs/s %7.1f Mpoints/s\n", label, n, n / dt,
         (double)n * T_SEG * M_METRICS / dt / 1e6);
  free(ids);
  ns_segment_free(g);

  /* 4. put_raw: week-long node series, one transaction per node (an import). */
  int nodes = 8 * scale;
  ns_mts *m = NULL;
  if ((st = ns_mts_create("x", M_METRICS, names, &m))) die("mts", st);
  double row[M_METRICS];
  for (int t = 0; t < T_RAW; t++) {
    for (int k = 0; k < M_METRICS; k++) row[k] = (k % 7 == 3 && t % 97 == 0) ? NAN : t * 0.25 + k;
    if ((st = ns_mts_append(m, 1795000000000LL + (int64_t)t * 15000, row))) die("append", st);
  }
  t0 = now_s();
  for (int i = 0; i < nodes; i++) {
    free(m->node);
    char node[16];
    snprintf(node, sizeof node, "rn%04d", i);
    m->node = strdup(node);
    if ((st = ns_store_put_raw(s, "bench", m, "bench"))) die("put_raw", st);
  }
  dt = now_s() - t0;
  pts = (double)nodes * T_RAW * M_METRICS;
  printf("%-10s put_raw               %6d nodes %dx%d: %7.1f Mpoints/s (107 M points: %.0f s)\n", label, nodes, T_RAW,
         M_METRICS, pts / dt / 1e6, 107e6 / (pts / dt));
  t0 = now_s();
  for (int i = 0; i < nodes; i++) {
    char node[16];
    snprintf(node, sizeof node, "rn%04d", i);
    ns_mts *r = NULL;
    if ((st = ns_store_get_raw(s, "bench", node, 0, 0, &r))) die("get_raw", st);
    if (r->T != T_RAW) die("get_raw rows", NS_ERR_INTERNAL);
    ns_mts_free(r);
  }
  dt = now_s() - t0;
  printf("%-10s get_raw               %6d nodes: %7.1f Mpoints/s\n", label, nodes, pts / dt / 1e6);
  ns_mts_free(m);
  ns_store_close(s);
}

static void pg_admin(const char *base, const char *sql) {
  ns_db *db = NULL;
  ns_status st = ns_db_open(base, &db);
  if (!st) st = ns_db_exec(db, sql);
  ns_db_close(db);
  if (st) die(sql, st);
}

int main(int argc, char **argv) {
  int scale = argc > 1 ? atoi(argv[1]) : 1;
  if (scale < 1) scale = 1;
  char dir[] = "/tmp/ns_store_bench_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char uri[600];
  snprintf(uri, sizeof uri, "sqlite:%s/bench.db", dir);
  bench("sqlite", uri, scale);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "store_bench: could not remove %s\n", dir);

  const char *base = getenv("NS_TEST_PG_URI");
  if (!base || !*base) {
    printf("postgres   skipped: NS_TEST_PG_URI not set\n");
    return 0;
  }
  const char *slash = strrchr(base, '/');
  char sql[128];
  snprintf(sql, sizeof sql, "CREATE DATABASE ns_bench_%d", (int)getpid());
  pg_admin(base, sql);
  snprintf(uri, sizeof uri, "%.*s/ns_bench_%d", (int)(slash - base), base, (int)getpid());
  bench("postgres", uri, scale);
  snprintf(sql, sizeof sql, "DROP DATABASE ns_bench_%d WITH (FORCE)", (int)getpid());
  pg_admin(base, sql);
  return 0;
}
