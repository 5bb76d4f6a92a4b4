#include "svc_harness.h"
#include "ns_hash.h"
#include <curl/curl.h>
#include <errno.h>
#include <munge.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ns_db.h"
#include "svc.h"

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

static bool wait_exists(const char *path, double sec) {
  for (int i = 0; i < (int)(sec * 100); i++) {
    if (access(path, F_OK) == 0) return true;
    usleep(10000);
  }
  return false;
}

static pid_t read_pid(const char *path) {
  FILE *f = fopen(path, "r");
  long p = 0;
  if (f) {
    if (fscanf(f, "%ld", &p) != 1) p = 0;
    fclose(f);
  }
  return (pid_t)p;
}

bool h_start(harness *h, const char *backend, const char *const *sets) {
  memset(h, 0, sizeof *h);
  const char *pg = getenv("NS_TEST_PG_URI");
  if (!strcmp(backend, "pg") && (!pg || !*pg)) return false;
  snprintf(h->dir, sizeof h->dir, "/tmp/nssvc.XXXXXX");
  if (!mkdtemp(h->dir)) return false;
  chmod(h->dir, 0755);
  char cmd[2048];
  snprintf(h->munge_sock, sizeof h->munge_sock, "%s/munge.socket", h->dir);
  /* munged runs as the munge user in a directory it owns (notes §1). */
  snprintf(cmd, sizeof cmd,
           "mungekey -c -k %s/munge.key >/dev/null 2>&1 && chown munge:munge %s %s/munge.key && chmod 0400 %s/munge.key "
           "&& runuser -u munge -- munged --socket=%s --key-file=%s/munge.key --pid-file=%s/munged.pid "
           "--log-file=%s/munged.log --seed-file=%s/munged.seed",
           h->dir, h->dir, h->dir, h->dir, h->munge_sock, h->dir, h->dir, h->dir, h->dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "harness: starting munged failed\n");
    return false;
  }
  char pidf[256];
  snprintf(pidf, sizeof pidf, "%s/munged.pid", h->dir);
  if (!wait_exists(pidf, 5)) return false;
  for (int i = 0; i < 200 && !(h->munged = read_pid(pidf)); i++) usleep(10000);
  if (!strcmp(backend, "pg")) {
    /* A private database per harness: suites share the server. */
    char name[64];
    snprintf(name, sizeof name, "nssvc_%d_%ld", (int)getpid(), (long)time(NULL) % 100000);
    ns_db *db = NULL;
    if (ns_db_open(pg, &db) != NS_OK) return false;
    snprintf(cmd, sizeof cmd, "DROP DATABASE IF EXISTS %s", name);
    ns_db_exec(db, cmd);
    snprintf(cmd, sizeof cmd, "CREATE DATABASE %s", name);
    ns_status st = ns_db_exec(db, cmd);
    ns_db_close(db);
    if (st) return false;
    /* Replace the database name (after the last '/') of the URI. */
    const char *slash = strrchr(pg, '/');
    const char *q = strchr(slash ? slash : pg, '?');
    snprintf(h->db, sizeof h->db, "%.*s/%s%s", (int)(slash ? slash - pg : (long)strlen(pg)), pg, name, q ? q : "");
  } else {
    snprintf(h->db, sizeof h->db, "sqlite:%s/nsentry.db", h->dir);
  }
  return h_start_daemon(h, sets);
}

bool h_start_daemon(harness *h, const char *const *sets) {
  const char *build = getenv("NS_BUILD_ROOT");
  char exe[512];
  snprintf(exe, sizeof exe, "%s/service/nsentryd", build ? build : ".");
  h->port = free_port();
  snprintf(h->log, sizeof h->log, "%s/nsentryd.log", h->dir);
  char port[32], sock[256], dbarg[600];
  snprintf(port, sizeof port, "listen_port=%d", h->port);
  snprintf(sock, sizeof sock, "munge_socket=%s", h->munge_sock);
  snprintf(dbarg, sizeof dbarg, "db=%s", h->db);
  const char *argv[64];
  int n = 0;
  argv[n++] = exe;
  argv[n++] = "-s";
  argv[n++] = port;
  argv[n++] = "-s";
  argv[n++] = sock;
  argv[n++] = "-s";
  argv[n++] = dbarg;
  argv[n++] = "-s";
  argv[n++] = "listen_addr=127.0.0.1";
  argv[n++] = "-s";
  argv[n++] = "verdict_field=none";
  for (int i = 0; sets && sets[i] && n < 60; i++) {
    argv[n++] = "-s";
    argv[n++] = sets[i];
  }
  argv[n] = NULL;
  pid_t p = fork();
  if (p == 0) {
    FILE *f = freopen(h->log, "a", stderr);
    (void)f;
    f = freopen(h->log, "a", stdout);
    (void)f;
    setenv("NSENTRY_CONF", "/dev/null", 1);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  h->daemon = p;
  char url[128];
  snprintf(url, sizeof url, "/healthz");
  for (int i = 0; i < 300; i++) {
    int status;
    if (waitpid(p, &status, WNOHANG) == p) {
      h->daemon = 0;
      return false;
    }
    resp r = h_req(h, "GET", url, NULL, 0, NULL, NULL);
    long code = r.code;
    resp_free(&r);
    if (code == 200) return true;
    usleep(20000);
  }
  return false;
}

void h_stop_daemon(harness *h, int sig) {
  if (h->daemon <= 0) return;
  kill(h->daemon, sig);
  for (int i = 0; i < 1000; i++) {
    int status;
    if (waitpid(h->daemon, &status, WNOHANG) == h->daemon) break;
    if (i == 500) kill(h->daemon, SIGKILL);
    usleep(10000);
  }
  h->daemon = 0;
}

void h_stop(harness *h) {
  h_stop_daemon(h, SIGTERM);
  if (h->munged > 0) {
    kill(h->munged, SIGTERM);
    for (int i = 0; i < 300 && kill(h->munged, 0) == 0; i++) usleep(10000);
  }
  h->munged = 0;
  if (h->dir[0] && strncmp(h->dir, "/tmp/nssvc.", 11) == 0) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", h->dir);
    if (system(cmd) != 0) fprintf(stderr, "harness: cleanup of %s failed\n", h->dir);
  }
}

char *h_cred(harness *h, const void *body, size_t n) {
  char hex[65];
  ns_sha256_hex(body ? body : "", n, hex);
  munge_ctx_t ctx = munge_ctx_create();
  munge_ctx_set(ctx, MUNGE_OPT_SOCKET, h->munge_sock);
  char *cred = NULL;
  munge_err_t e = munge_encode(&cred, ctx, hex, 64);
  munge_ctx_destroy(ctx);
  return e == EMUNGE_SUCCESS ? cred : NULL;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *u) {
  resp *r = u;
  size_t k = sz * nm;
  char *nb = realloc(r->body, r->n + k + 1);
  if (!nb) return 0;
  memcpy(nb + r->n, p, k);
  r->n += k;
  nb[r->n] = '\0';
  r->body = nb;
  return k;
}

resp h_req(harness *h, const char *method, const char *path, const void *body, size_t n, const char *cred,
           const char *const *headers) {
  resp r = {0};
  CURL *c = curl_easy_init();
  char url[512], hdr[1024];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h->port, path);
  struct curl_slist *hl = NULL;
  char *own = NULL;
  if (cred && !strcmp(cred, "auto")) cred = own = h_cred(h, body, n);
  if (cred) {
    snprintf(hdr, sizeof hdr, "X-Munge-Credential: %s", cred);
    hl = curl_slist_append(hl, hdr);
  }
  for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
  hl = curl_slist_append(hl, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body || !strcmp(method, "POST")) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
  free(own);
  if (!r.body) r.body = calloc(1, 1);
  return r;
}

void resp_free(resp *r) {
  free(r->body);
  r->body = NULL;
}

char *h_segment(const char *cluster, const char *job, const char *node, int job_nodes, int T, int M) {
  size_t cap = (size_t)T * (size_t)M * 12 + (size_t)M * 16 + 1024;
  char *b = malloc(cap), *p = b;
  p += sprintf(p,
               "{\"cluster\":\"%s\",\"job_id\":\"%s\",\"node\":\"%s\",\"job_nodes\":%d,\"start_ms\":1795344144000,"
               "\"end_ms\":%lld,\"interval_ms\":15000,\"metrics\":[",
               cluster, job, node, job_nodes, 1795344144000LL + (long long)(T - 1) * 15000);
  for (int m = 0; m < M; m++) p += sprintf(p, "%s\"m%03d\"", m ? "," : "", m);
  p += sprintf(p, "],\"values\":[");
  for (int t = 0; t < T; t++) {
    *p++ = t ? ',' : '[';
    if (t) *p++ = '[';
    for (int m = 0; m < M; m++) p += sprintf(p, "%s%.3g", m ? "," : "", (double)((t * 31 + m * 7) % 97) / 9.0);
    *p++ = ']';
  }
  p += sprintf(p, "],\"job\":{\"user\":\"alice\",\"partition\":\"debug\"}}");
  return b;
}
