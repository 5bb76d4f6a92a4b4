/* Import throughput: writes a large LDMS-like store_csv set and a
 * NodeSentry-like wide CSV under /tmp, imports them (parse only, then parse +
 * SQLite store) and prints points/s. Also the bare number parser.
 *   import_bench [SCALE]   (SCALE 1 = about 9 M LDMS and 7 M CSV points) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "ns_csv.h"
#include "ns_import.h"
#include "ns_log.h"
#include "ns_store.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The build machine is shared: CPU time of this process is the steadier
 * figure, wall time the one a user sees. Both are printed. */
static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  double w, c;
} stamp;
static stamp mark(void) { return (stamp){now(), cpu()}; }

static void report(const char *what, int64_t points, stamp t0, const char *extra) {
  double w = now() - t0.w, c = cpu() - t0.c;
  printf("%-40s %10lld points  wall %6.2f s = %6.1f M points/s   cpu %6.2f s = %6.1f M points/s%s%s\n", what,
         (long long)points, w, (double)points / w / 1e6, c, (double)points / c / 1e6, extra ? "  " : "",
         extra ? extra : "");
}

static void die(const char *what, ns_status st) {
  fprintf(stderr, "import_bench: %s: %s\n", what, ns_err_message(st));
  exit(1);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static off_t fsize(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 ? sb.st_size : 0;
}

/* Three sampler files, P producers, S samples each, integer counters/gauges. */
static int64_t write_ldms(const char *dir, int P, int S) {
  static const struct {
    const char *name;
    int M;
  } sch[] = {{"meminfo", 40}, {"vmstat", 60}, {"procstat", 40}};
  int64_t points = 0;
  for (int k = 0; k < 3; k++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, sch[k].name);
    FILE *f = fopen(path, "w");
    if (!f) {
      perror(path);
      exit(1);
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fputs("#Time,Time_usec,ProducerName,component_id,job_id,app_id", f);
    for (int m = 0; m < sch[k].M; m++) fprintf(f, ",m%d", m);
    fputc('\n', f);
    uint64_t *acc = calloc((size_t)P * (size_t)sch[k].M, sizeof *acc);
    for (int s = 0; s < S; s++)
      for (int p = 0; p < P; p++) {
        int usec = 1000 + 997 * k + p;
        fprintf(f, "%d.%06d,%d,nid%05d,%d,0,0", 1700000000 + s, usec, usec, p, p);
        char line[4096], *w = line;
        for (int m = 0; m < sch[k].M; m++) {
          uint64_t *a = &acc[(size_t)p * (size_t)sch[k].M + (size_t)m];
          *a += rnd() % 100000;
          w += sprintf(w, ",%llu", (unsigned long long)*a);
        }
        *w++ = '\n';
        fwrite(line, 1, (size_t)(w - line), f);
        points += sch[k].M;
      }
    free(acc);
    fclose(f);
  }
  return points;
}

/* NodeSentry-like: timestamp + 138 standardised values, 15 s apart. */
static int64_t write_wide(const char *path, int rows) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  setvbuf(f, NULL, _IOFBF, 1 << 20);
  fputs("timestamp", f);
  for (int m = 1; m <= 138; m++) fprintf(f, ",Metric%d", m);
  fputc('\n', f);
  int64_t t0 = INT64_C(1720566825000);
  for (int r = 0; r < rows; r++) {
    char ts[40];
    ns_format_time_ms(t0 + (int64_t)r * 15000, ts, sizeof ts);
    ts[10] = ' ';
    ts[19] = '\0';
    fputs(ts, f);
    for (int m = 0; m < 138; m++) {
      double v = ((double)(rnd() >> 11) / 9007199254740992.0 - 0.5) * 10.0;
      fprintf(f, ",%.16g", v);
    }
    fputc('\n', f);
  }
  fclose(f);
  return (int64_t)rows * 138;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  if (scale <= 0) scale = 1;
  ns_log_set_level(NS_LOG_ERROR);
  char dir[] = "/tmp/ns_importbench_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  int P = 32, S = (int)(2000 * scale), rows = (int)(50000 * scale);
  printf("import_bench: scale %.2f, data in %s\n", scale, dir);

  /* bare number parser */
  {
    enum { N = 2000000 };
    char *buf = malloc((size_t)N * 24);
    size_t *off = malloc((N + 1) * sizeof *off);
    size_t pos = 0;
    for (int i = 0; i < N; i++) {
      off[i] = pos;
      pos += (size_t)sprintf(buf + pos, "%.16g", ((double)(rnd() >> 11) / 9007199254740992.0 - 0.5) * 10.0);
    }
    off[N] = pos;
    double t = cpu(), sum = 0, v;
    for (int i = 0; i < N; i++) {
      ns_parse_double(buf + off[i], off[i + 1] - off[i], &v);
      sum += v;
    }
    double el = cpu() - t;
    char tmp[32];
    t = cpu();
    double sum2 = 0;
    for (int i = 0; i < N; i++) {
      size_t l = off[i + 1] - off[i];
      memcpy(tmp, buf + off[i], l);
      tmp[l] = '\0';
      sum2 += strtod(tmp, NULL);
    }
    double el2 = cpu() - t;
    printf("number parser (cpu time): ns_parse_double %.1f M values/s, strtod %.1f M values/s (16-17 digits; same sums %d)\n",
           N / el / 1e6, N / el2 / 1e6, sum == sum2);
    free(buf);
    free(off);
  }

  /* LDMS */
  char ldir[600];
  snprintf(ldir, sizeof ldir, "%s/ldms", dir);
  mkdir(ldir, 0755);
  double t = now();
  int64_t lpoints = write_ldms(ldir, P, S);
  char p1[700], p2[700], p3[700];
  snprintf(p1, sizeof p1, "%s/meminfo", ldir);
  snprintf(p2, sizeof p2, "%s/vmstat", ldir);
  snprintf(p3, sizeof p3, "%s/procstat", ldir);
  double mb = (double)(fsize(p1) + fsize(p2) + fsize(p3)) / 1048576.0;
  printf("ldms: wrote %lld points (%d producers x %d samples x 140 metrics, 3 files, %.0f MiB) in %.1f s\n",
         (long long)lpoints, P, S, mb, now() - t);
  char *paths[] = {ldir};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  stamp t0 = mark();
  ns_status st = ns_import_ldms(paths, 1, NULL, &v, &n, &rep);
  if (st) die("ldms", st);
  char extra[128];
  snprintf(extra, sizeof extra, "(%zu nodes x %zu rows)", n, v[0]->T);
  report("ldms parse + join (ns_import_ldms)", rep.points, t0, extra);
  ns_import_mts_free(v, n);

  char uri[700];
  snprintf(uri, sizeof uri, "sqlite:%s/bench.db", dir);
  ns_store *s = NULL;
  if ((st = ns_store_open(uri, &s))) die("store", st);
  memset(&rep, 0, sizeof rep);
  t0 = mark();
  if ((st = ns_import_ldms_store(s, paths, 1, "bench", NULL, &rep))) die("ldms store", st);
  report("ldms import into SQLite (file)", rep.points, t0, NULL);

  /* NodeSentry-like wide CSV */
  char wpath[700];
  snprintf(wpath, sizeof wpath, "%s/Node-1_Job-1.csv", dir);
  t = now();
  int64_t wpoints = write_wide(wpath, rows);
  mb = (double)fsize(wpath) / 1048576.0;
  printf("csv: wrote %lld points (%d rows x 138 metrics, %.0f MiB) in %.1f s\n", (long long)wpoints, rows, mb,
         now() - t);
  ns_mts *m = NULL;
  memset(&rep, 0, sizeof rep);
  t0 = mark();
  if ((st = ns_import_csv_wide(wpath, "Node-1", NULL, &m, &rep))) die("csv", st);
  report("wide csv parse (ns_import_csv_wide)", rep.points, t0, NULL);
  ns_mts_free(m);
  ns_segment *g = NULL;
  memset(&rep, 0, sizeof rep);
  t0 = mark();
  if ((st = ns_nodesentry_read_segment(wpath, "bench", "Node-1", "1", NULL, &g, &rep))) die("segment", st);
  report("nodesentry segment parse", rep.points, t0, NULL);
  int64_t id;
  t0 = mark();
  if ((st = ns_store_put_segment(s, g, "train", &id))) die("put_segment", st);
  report("nodesentry segment store (put_segment)", (int64_t)(g->T * g->M), t0, NULL);
  ns_segment_free(g);
  ns_store_close(s);

  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "import_bench: could not remove %s\n", dir);
  return 0;
}
