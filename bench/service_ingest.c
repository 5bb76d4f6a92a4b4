/* Load benchmark for nsentryd ingest: S segments (default 2000; 1 h at 15 s
 * x 116 metrics each) posted by C concurrent clients (default 64) over
 * loopback to a real nsentryd (started here with a private munged) on SQLite
 * or PostgreSQL. Prints total time, acknowledgement latency percentiles,
 * rejects/losses (every 201 must be in the DB afterwards) and the service's
 * peak RSS.
 *   service_ingest [--backend sqlite|pg] [--segments N] [--clients N] [-s KEY=VALUE]...
 * pg uses NS_TEST_PG_URI (a server from scripts/test-hooks/pg.up). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ns_build_config.h"
#include "svc_harness.h"

static harness H;
static int n_seg = 2000, n_cli = 64, T = 240, M = 116;
static char **bodies, **creds;
static double *lat;
static long *codes;
static atomic_int next_i;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
static size_t sink(char *p, size_t s, size_t n, void *u) {
  (void)p, (void)u;
  return s * n;
}

static void *client(void *arg) {
  (void)arg;
  CURL *c = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/segments", H.port);
  for (;;) {
    int i = atomic_fetch_add(&next_i, 1);
    if (i >= n_seg) break;
    char hdr[1024];
    snprintf(hdr, sizeof hdr, "X-Munge-Credential: %s", creds[i]);
    struct curl_slist *hl = curl_slist_append(NULL, hdr);
    hl = curl_slist_append(hl, "Expect:");
    hl = curl_slist_append(hl, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, bodies[i]);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(bodies[i]));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    double t0 = now_s();
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    lat[i] = now_s() - t0;
    codes[i] = code;
    curl_slist_free_all(hl);
  }
  curl_easy_cleanup(c);
  return NULL;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *backend = "sqlite";
  const char *sets[32] = {0};
  int ns = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else if (!strcmp(argv[i], "--segments") && i + 1 < argc) n_seg = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--clients") && i + 1 < argc) n_cli = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-s") && i + 1 < argc && ns < 31) sets[ns++] = argv[++i];
    else {
      fprintf(stderr, "usage: service_ingest [--backend sqlite|pg] [--segments N] [--clients N] [-s KEY=VALUE]...\n");
      return 2;
    }
  }
  if (!getenv("NS_BUILD_ROOT")) setenv("NS_BUILD_ROOT", NS_BUILD_ROOT, 0);
  curl_global_init(CURL_GLOBAL_ALL);
  if (!h_start(&H, backend, sets)) {
    fprintf(stderr, "service_ingest: could not start nsentryd on %s%s\n", backend,
            !strcmp(backend, "pg") ? " (is NS_TEST_PG_URI set?)" : "");
    h_stop(&H);
    return 1;
  }
  printf("service_ingest: backend %s, %d segments of %d x %d, %d clients\n", backend, n_seg, T, M, n_cli);
  bodies = calloc((size_t)n_seg, sizeof *bodies);
  creds = calloc((size_t)n_seg, sizeof *creds);
  lat = calloc((size_t)n_seg, sizeof *lat);
  codes = calloc((size_t)n_seg, sizeof *codes);
  size_t bytes = 0;
  for (int i = 0; i < n_seg; i++) {
    char job[32], node[32];
    snprintf(job, sizeof job, "%d", 500000 + i / 4);
    snprintf(node, sizeof node, "cn%03d", i % 4);
    bodies[i] = h_segment("bench", job, node, 4, T, M);
    creds[i] = h_cred(&H, bodies[i], strlen(bodies[i]));
    bytes += strlen(bodies[i]);
    if (!creds[i]) {
      fprintf(stderr, "service_ingest: munge encode failed\n");
      return 1;
    }
  }
  printf("service_ingest: %.1f MB of JSON prepared\n", bytes / 1e6);
  pthread_t *t = calloc((size_t)n_cli, sizeof *t);
  double t0 = now_s();
  for (int i = 0; i < n_cli; i++) pthread_create(&t[i], NULL, client, NULL);
  for (int i = 0; i < n_cli; i++) pthread_join(t[i], NULL);
  double total = now_s() - t0;
  int ok = 0;
  for (int i = 0; i < n_seg; i++) ok += codes[i] == 201;
  /* Zero lost: every acknowledged segment is in the database. */
  int lost = 0;
  for (int i = 0; i < n_seg; i += 1) {
    if (codes[i] != 201 || (i % 4) != 0) continue;
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/bench/%d", 500000 + i / 4);
    resp r = h_req(&H, "GET", path, NULL, 0, NULL, NULL);
    int nodes = 0;
    for (char *p = r.body; (p = strstr(p, "\"node\":")); p++) nodes++;
    int expect = 0;
    for (int k = i; k < i + 4 && k < n_seg; k++) expect += codes[k] == 201;
    if (r.code != 200 || nodes != expect) lost += expect - (r.code == 200 ? nodes : 0);
    resp_free(&r);
  }
  qsort(lat, (size_t)n_seg, sizeof *lat, cmp_d);
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)H.daemon);
  long hwm = 0, rss = 0;
  FILE *f = fopen(path, "r");
  while (f && fgets(line, sizeof line, f)) {
    sscanf(line, "VmHWM: %ld", &hwm);
    sscanf(line, "VmRSS: %ld", &rss);
  }
  if (f) fclose(f);
  printf("service_ingest: accepted %d/%d, lost %d, total %.2f s (%.0f segments/s, %.1f MB/s)\n", ok, n_seg, lost,
         total, n_seg / total, bytes / 1e6 / total);
  printf("service_ingest: ack latency p50 %.3f s, p90 %.3f s, p99 %.3f s, max %.3f s\n", lat[n_seg / 2],
         lat[(int)(n_seg * 0.9)], lat[(int)(n_seg * 0.99)], lat[n_seg - 1]);
  printf("service_ingest: nsentryd RSS %.1f MB now, peak %.1f MB (no model library loaded)\n", rss / 1024.0,
         hwm / 1024.0);
  h_stop(&H);
  return ok == n_seg && lost == 0 ? 0 : 1;
}
