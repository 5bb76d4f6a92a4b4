/* Test harness for the service suites: a private munged, a real nsentryd
 * child on 127.0.0.1, and libcurl requests. Everything lives in a temp dir
 * and is stopped by PID. */
#ifndef SVC_HARNESS_H
#define SVC_HARNESS_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct harness {
  char dir[128];
  char munge_sock[200];
  pid_t munged, daemon;
  int port;
  char db[512];
  char log[256];
} harness;

/* backend: "sqlite" or "pg" (needs NS_TEST_PG_URI; returns false to skip). */
bool h_start(harness *h, const char *backend, const char *const *sets);
/* Start (again) nsentryd on h->db with the given -s settings. */
bool h_start_daemon(harness *h, const char *const *sets);
void h_stop_daemon(harness *h, int sig);
void h_stop(harness *h);

/* Credential whose payload binds it to body. Caller frees. */
char *h_cred(harness *h, const void *body, size_t n);

typedef struct resp {
  long code;
  char *body;
  size_t n;
} resp;
/* cred: NULL = none; "auto" = a fresh credential for this body. */
resp h_req(harness *h, const char *method, const char *path, const void *body, size_t n, const char *cred,
           const char *const *headers);
void resp_free(resp *r);
/* Build a segment body: T rows x M metrics of deterministic values. */
char *h_segment(const char *cluster, const char *job, const char *node, int job_nodes, int T, int M);
#endif
