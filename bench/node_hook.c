/* Time the epilog hook adds to job end, over N jobs (default 100):
 *  1. the SPANK part: slurm_spank_job_epilog in the real plugin .so (end mark +
 *     double fork of nsentry-epilog), called through dlopen with this program
 *     supplying SPANK's entry points, as slurmstepd would;
 *  2. the whole hook: nsentry-epilog cutting a 60-sample window of 69 metrics
 *     from a spool and shipping it (to SERVICE_URL; if nothing answers there,
 *     this is the outbox path).
 * usage: node_hook PLUGIN.so NSENTRY-EPILOG [SERVICE_URL [MUNGE_SOCKET [N]]] */
#include <stdint.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <slurm/spank.h>
#include "ns_spool.h"

static uint32_t cur_job;

/* SPANK entry points, as slurmstepd provides them in job_script context. */
spank_err_t spank_get_item(spank_t sp, spank_item_t item, ...) {
  (void)sp;
  va_list ap;
  va_start(ap, item);
  spank_err_t rc = ESPANK_NOT_AVAIL;
  if (item == S_JOB_ID) {
    *va_arg(ap, uint32_t *) = cur_job;
    rc = ESPANK_SUCCESS;
  }
  va_end(ap);
  return rc;
}
spank_err_t spank_option_register(spank_t sp, struct spank_option *o) { (void)sp, (void)o; return ESPANK_SUCCESS; }
spank_err_t spank_option_getopt(spank_t sp, struct spank_option *o, char **a) {
  (void)sp, (void)o, (void)a;
  return ESPANK_ERROR; /* option not given */
}
spank_context_t spank_context(void) { return S_CTX_JOB_SCRIPT; }
spank_err_t spank_job_control_setenv(spank_t sp, const char *n, const char *v, int o) {
  (void)sp, (void)n, (void)v, (void)o;
  return ESPANK_SUCCESS;
}
void slurm_info(const char *fmt, ...) { (void)fmt; }
void slurm_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int dcmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void pct(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, dcmp);
  int i99 = (int)(0.99 * (n - 1) + 0.5);
  printf("%s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)\n", what, v[n / 2] * 1e3, v[i99] * 1e3, v[n - 1] * 1e3, n);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: node_hook PLUGIN.so NSENTRY-EPILOG [SERVICE_URL [MUNGE_SOCKET [N]]]\n");
    return 2;
  }
  const char *plugin = argv[1], *epilog = argv[2];
  const char *url = argc > 3 ? argv[3] : "http://127.0.0.1:9";
  const char *sock = argc > 4 ? argv[4] : "";
  int n = argc > 5 ? atoi(argv[5]) : 100;
  if (n < 2) n = 2;
  char dir[] = "/tmp/ns_bench_hook_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char conf[256];
  snprintf(conf, sizeof conf, "%s/nsentry.conf", dir);
  FILE *f = fopen(conf, "w");
  fprintf(f, "spool_dir = %s\nservice_url = %s\nsampler_interval = 1s\ncluster_name = bench\n", dir, url);
  if (*sock) fprintf(f, "munge_socket = %s\n", sock);
  fclose(f);

  /* 1. SPANK part */
  void *h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlopen %s: %s\n", plugin, dlerror());
    return 1;
  }
  int (*prolog)(spank_t, int, char **) = (int (*)(spank_t, int, char **))dlsym(h, "slurm_spank_job_prolog");
  int (*epi)(spank_t, int, char **) = (int (*)(spank_t, int, char **))dlsym(h, "slurm_spank_job_epilog");
  char a0[300], a1[300], a2[300];
  snprintf(a0, sizeof a0, "spool_dir=%s", dir);
  snprintf(a1, sizeof a1, "epilog=/bin/true"); /* the detached child's own work is measured in part 2 */
  snprintf(a2, sizeof a2, "conf=%s", conf);
  char *av[] = {a0, a1, a2};
  double *t = calloc((size_t)n, sizeof *t);
  for (int i = 0; i < n; i++) {
    cur_job = 1000 + (uint32_t)i;
    prolog(NULL, 3, av);
    double s = now_s();
    int rc = epi(NULL, 3, av);
    t[i] = now_s() - s;
    if (rc != 0) fprintf(stderr, "job_epilog returned %d\n", rc);
  }
  pct("SPANK job_epilog (mark + detach, on the node)", t, n);
  dlclose(h);

  /* 2. whole hook: 60 samples x 69 metrics per job */
  ns_spool_opts o = {.retention_ms = 48 * 3600000LL, .max_bytes = 256LL << 20};
  ns_spool *sp = NULL;
  if (ns_spool_open(dir, &o, &sp)) return 1;
  enum { M = 69 };
  char *names[M];
  float vals[M];
  for (int k = 0; k < M; k++) {
    names[k] = malloc(16);
    snprintf(names[k], 16, "metric_%02d", k);
    vals[k] = (float)k;
  }
  int64_t t0 = ns_spool_now_ms() - 120000;
  for (int s = 0; s < 61; s++) ns_spool_append(sp, t0 + s * 1000, M, names, vals);
  ns_spool_close(sp);
  for (int i = 0; i < n; i++) {
    char job[32], cmd[2048];
    snprintf(job, sizeof job, "%d", 5000 + i);
    ns_spool_mark(dir, job, "start", t0, "benchnode");
    ns_spool_mark(dir, job, "end", t0 + 60000, "benchnode");
    snprintf(cmd, sizeof cmd, "%s -c %s --job %s --node benchnode 2>>%s/epilog.log", epilog, conf, job, dir);
    double s = now_s();
    if (system(cmd) != 0) fprintf(stderr, "epilog failed\n");
    t[i] = now_s() - s;
  }
  ns_outbox_entry *e = NULL;
  size_t q = 0;
  ns_outbox_list(dir, &e, &q);
  free(e);
  char what[512];
  snprintf(what, sizeof what, "whole hook, cut + POST to %s (%zu of %d queued in the outbox)", url, q, n);
  pct(what, t, n);
  for (int k = 0; k < M; k++) free(names[k]);
  free(t);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}
