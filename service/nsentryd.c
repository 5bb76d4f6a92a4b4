/* nsentryd: the scoring service. HTTP API (libmicrohttpd) for segment ingest
 * and verdicts, a durable scoring queue in the database, scoring workers,
 * job finalisation and the Slurm accounting writer. docs/service.md. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "ns_build_config.h"
#include "ns_cli.h"
#include "ns_config.h"
#include "ns_detect.h"
#include "ns_log.h"
#include "ns_store.h"
#include "svc.h"

#define LEASE_MS 600000          /* a crashed worker's entry is retaken after this */
#define MAX_SCORE_ATTEMPTS 5
#define NO_LIBRARY_REASON "no model library is active"

static const double k_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (sizeof k_buckets / sizeof k_buckets[0])

typedef struct metrics {
  atomic_llong received, duplicate, rej_bad, rej_large, rej_auth, rej_forbidden, rej_unavail;
  atomic_llong db_errors, node_anom, node_norm, job_anom, job_norm, score_fail;
  atomic_llong slurm_ok, slurm_retry, slurm_failed, http_requests;
  atomic_llong lat_count, lat_bucket[NBUCKETS];
  atomic_llong lat_sum_us;
} metrics;

typedef struct service {
  ns_config *cfg;
  char *db_uri;
  bool sqlite;
  svc_limits lim;
  svc_auth *auth;
  metrics m;
  /* store pool for HTTP threads */
  pthread_mutex_t pool_mu;
  pthread_cond_t pool_cv;
  ns_store **pool;
  int pool_n, pool_free;
  /* SQLite allows one writer: serialise our writes instead of spinning in busy handlers. */
  pthread_mutex_t write_mu;
  /* model library, shared read-only by workers; swapped under the write lock */
  pthread_rwlock_t lib_lock;
  ns_library *lib;
  ns_precision precision; /* model_precision, resolved on this CPU */
  char lib_version[64];
  char lib_error[256];
  atomic_int reload;
  atomic_int stopping;
  atomic_int inflight;
  pthread_mutex_t wake_mu;
  pthread_cond_t wake_cv;
  char worker_id[128];
} service;

static service G;

static void db_lock(void) {
  if (G.sqlite) pthread_mutex_lock(&G.write_mu);
}
static void db_unlock(void) {
  if (G.sqlite) pthread_mutex_unlock(&G.write_mu);
}
static void count_db_error(ns_status st) {
  if (st == NS_ERR_DB || st == NS_ERR_BUSY || st == NS_ERR_IO) atomic_fetch_add(&G.m.db_errors, 1);
}

static void wake_workers(void) {
  pthread_mutex_lock(&G.wake_mu);
  pthread_cond_broadcast(&G.wake_cv);
  pthread_mutex_unlock(&G.wake_mu);
}
static void nap(int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&G.wake_mu);
  if (!atomic_load(&G.stopping)) pthread_cond_timedwait(&G.wake_cv, &G.wake_mu, &ts);
  pthread_mutex_unlock(&G.wake_mu);
}

/* SQLite: one connection shared by every thread under write_mu (recursive).
 * SQLite has one writer anyway, and a single connection never works on a
 * stale snapshot. PostgreSQL: a pool for HTTP threads, one per worker. */
static ns_store *pool_get(void) {
  if (G.sqlite) {
    pthread_mutex_lock(&G.write_mu);
    return G.pool[0];
  }
  pthread_mutex_lock(&G.pool_mu);
  while (G.pool_free == 0) pthread_cond_wait(&G.pool_cv, &G.pool_mu);
  ns_store *s = G.pool[--G.pool_free];
  pthread_mutex_unlock(&G.pool_mu);
  return s;
}
static void pool_put(ns_store *s) {
  if (G.sqlite) {
    pthread_mutex_unlock(&G.write_mu);
    return;
  }
  pthread_mutex_lock(&G.pool_mu);
  G.pool[G.pool_free++] = s;
  pthread_cond_signal(&G.pool_cv);
  pthread_mutex_unlock(&G.pool_mu);
}

/* ---------------------------------------------------------------- library */

static void library_reload(ns_store *st) {
  ns_library *lib = NULL;
  db_lock();
  ns_status rc = ns_library_load_active(st, &lib);
  db_unlock();
  if (!rc && (rc = ns_library_set_precision(lib, G.precision))) {
    ns_library_free(lib);
    lib = NULL;
  }
  if (rc) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", rc == NS_ERR_NOTFOUND ? NO_LIBRARY_REASON : ns_err_message(rc));
    pthread_rwlock_wrlock(&G.lib_lock);
    bool changed = strcmp(msg, G.lib_error) != 0;
    snprintf(G.lib_error, sizeof G.lib_error, "%s", msg);
    /* A failed reload keeps serving with the library already loaded. */
    pthread_rwlock_unlock(&G.lib_lock);
    if (changed) ns_warn("model library: %s%s", msg, G.lib ? " (keeping the loaded one)" : "");
    return;
  }
  pthread_rwlock_wrlock(&G.lib_lock);
  ns_library *old = G.lib;
  bool same = old && ns_library_id(old) == ns_library_id(lib);
  if (same) {
    pthread_rwlock_unlock(&G.lib_lock);
    ns_library_free(lib);
    return;
  }
  G.lib = lib;
  snprintf(G.lib_version, sizeof G.lib_version, "%s", ns_library_version(lib));
  G.lib_error[0] = '\0';
  pthread_rwlock_unlock(&G.lib_lock);
  ns_library_free(old);
  ns_info("model library %s loaded", G.lib_version);
  wake_workers();
}

/* ---------------------------------------------------------------- workers */

static void observe_latency(double sec) {
  atomic_fetch_add(&G.m.lat_count, 1);
  atomic_fetch_add(&G.m.lat_sum_us, (long long)(sec * 1e6));
  for (size_t b = 0; b < NBUCKETS; b++)
    if (sec <= k_buckets[b]) atomic_fetch_add(&G.m.lat_bucket[b], 1);
}

/* Score one claimed entry. Returns false if nothing was done (no library). */
static void score_entry(ns_store *st, int64_t qid, int64_t seg_id, int attempts_hint) {
  ns_segment *seg = NULL;
  ns_node_verdict *v = NULL;
  db_lock();
  ns_status rc = ns_store_get_segment(st, seg_id, &seg);
  db_unlock();
  if (rc) {
    count_db_error(rc);
    char why[300];
    snprintf(why, sizeof why, "segment %lld unreadable: %s", (long long)seg_id, ns_err_message(rc));
    db_lock();
    svc_db_release(st, qid, why, svc_now_ms() + 5000, rc == NS_ERR_NOTFOUND);
    db_unlock();
    return;
  }
  pthread_rwlock_rdlock(&G.lib_lock);
  if (!G.lib) {
    pthread_rwlock_unlock(&G.lib_lock);
    db_lock();
    svc_db_release(st, qid, NO_LIBRARY_REASON, 0, false);
    db_unlock();
    ns_segment_free(seg);
    return;
  }
  double t0 = ns_now_s();
  rc = ns_detect_segment(G.lib, seg, G.cfg, &v);
  char model[64];
  snprintf(model, sizeof model, "%s", G.lib_version);
  pthread_rwlock_unlock(&G.lib_lock);
  double dt = ns_now_s() - t0;
  if (rc) {
    atomic_fetch_add(&G.m.score_fail, 1);
    char why[300];
    snprintf(why, sizeof why, "scoring failed: %s", ns_err_message(rc));
    ns_warn("job %s node %s: %s", seg->job_id, seg->node, why);
    /* Bad data will not get better; transient errors get a few more tries. */
    bool permanent = rc == NS_ERR_INVAL || rc == NS_ERR_SCHEMA || rc == NS_ERR_TOO_SHORT || rc == NS_ERR_EMPTY ||
                     rc == NS_ERR_NONFINITE || attempts_hint >= MAX_SCORE_ATTEMPTS;
    db_lock();
    svc_db_release(st, qid, why, svc_now_ms() + 10000, permanent);
    db_unlock();
    goto done;
  }
  observe_latency(dt);
  if (!v->scored) {
    /* Nothing long enough to score: record why, never a verdict. */
    char why[300];
    snprintf(why, sizeof why, "not scored: %s", v->note[0] ? v->note : "no scorable data");
    db_lock();
    svc_db_release(st, qid, why, 0, true);
    db_unlock();
    goto done;
  }
  db_lock();
  rc = svc_db_put_node_verdict(st, qid, seg_id, seg->cluster, seg->job_id, seg->node, v, model, svc_now_ms());
  db_unlock();
  if (rc) {
    count_db_error(rc);
    ns_warn("job %s node %s: storing the verdict: %s", seg->job_id, seg->node, ns_err_message(rc));
  } else {
    atomic_fetch_add(v->anomalous ? &G.m.node_anom : &G.m.node_norm, 1);
  }
done:

  ns_node_verdict_free(v);
  ns_segment_free(seg);
}

typedef struct worker_arg {
  int idx;
  ns_store *st;
} worker_arg;

static void *worker_main(void *p) {
  worker_arg *wa = p;
  char wid[160];
  snprintf(wid, sizeof wid, "%s/w%d", G.worker_id, wa->idx);
  while (!atomic_load(&G.stopping)) {
    pthread_rwlock_rdlock(&G.lib_lock);
    bool have = G.lib != NULL;
    pthread_rwlock_unlock(&G.lib_lock);
    if (!have) {
      nap(1000);
      continue;
    }
    int64_t qid = 0, seg_id = 0;
    db_lock();
    ns_status rc = svc_db_claim(wa->st, wid, svc_now_ms(), LEASE_MS, &qid, &seg_id);
    db_unlock();
    if (rc == NS_ERR_NOTFOUND) {
      nap(500);
      continue;
    }
    if (rc) {
      count_db_error(rc);
      ns_warn("queue claim: %s", ns_err_message(rc));
      nap(1000);
      continue;
    }
    score_entry(wa->st, qid, seg_id, svc_db_last_attempts());
  }
  return NULL;
}

/* Finalisation, library (re)loading, the no-library note. */
static void *maint_main(void *p) {
  ns_store *st = p;
  int64_t grace = ns_cfg_int(G.cfg, NS_CFG_job_grace);
  const char *field = ns_cfg_str(G.cfg, NS_CFG_verdict_field);
  int64_t last_load = 0;
  while (!atomic_load(&G.stopping)) {
    int64_t now = svc_now_ms();
    if (atomic_exchange(&G.reload, 0) || (!G.lib && now - last_load > 30000)) {
      library_reload(st);
      last_load = now;
    }
    pthread_rwlock_rdlock(&G.lib_lock);
    bool have = G.lib != NULL;
    pthread_rwlock_unlock(&G.lib_lock);
    db_lock();
    if (!have) svc_db_note_pending(st, NO_LIBRARY_REASON);
    int nf = 0, na = 0, nn = 0;
    ns_status rc = svc_db_finalise(st, now, grace, field, &nf, &na, &nn);
    db_unlock();
    if (rc) {
      count_db_error(rc);
      ns_warn("finalising jobs: %s", ns_err_message(rc));
    }
    atomic_fetch_add(&G.m.job_anom, na);
    atomic_fetch_add(&G.m.job_norm, nn);
    if (nf == 0) nap(500);
  }
  return NULL;
}

/* The Slurm accounting writer: drains slurm_outbox with backoff. */
static void *slurm_main(void *p) {
  ns_store *st = p;
  const char *field = ns_cfg_str(G.cfg, NS_CFG_verdict_field);
  svc_slurm *sl = NULL;
  ns_status rc = svc_slurm_create(ns_cfg_str(G.cfg, NS_CFG_slurm_conf), &sl);
  if (rc) {
    ns_error("verdict writer disabled: %s (verdicts stay queued in slurm_outbox)", ns_err_message(rc));
    return NULL;
  }
  while (!atomic_load(&G.stopping)) {
    svc_outbox_row row;
    db_lock();
    rc = svc_db_outbox_next(st, svc_now_ms(), &row);
    db_unlock();
    if (rc == NS_ERR_NOTFOUND) {
      nap(1000);
      continue;
    }
    if (rc) {
      count_db_error(rc);
      nap(2000);
      continue;
    }
    rc = svc_slurm_write(sl, row.cluster, row.job_id, field, row.token);
    /* Unsafe foreign content and missing privileges need a human; the rest is retried. */
    bool permanent = rc == NS_ERR_INVAL || rc == NS_ERR_FORBIDDEN;
    int64_t backoff = (int64_t)1000 << (row.attempts < 9 ? row.attempts : 9); /* 1 s .. 8.5 min */
    char err[300] = "";
    if (rc) snprintf(err, sizeof err, "%s", ns_err_message(rc));
    if (rc == NS_OK)
      atomic_fetch_add(&G.m.slurm_ok, 1);
    else if (permanent)
      atomic_fetch_add(&G.m.slurm_failed, 1);
    else
      atomic_fetch_add(&G.m.slurm_retry, 1);
    if (rc) ns_warn("slurm %s %s: %s%s", row.cluster, row.job_id, err, permanent ? " (parked)" : " (will retry)");
    db_lock();
    ns_status r2 = svc_db_outbox_done(st, row.id, rc == NS_OK, permanent, rc ? err : NULL, svc_now_ms() + backoff);
    db_unlock();
    if (r2) count_db_error(r2);
  }
  svc_slurm_free(sl);
  return NULL;
}

/* ---------------------------------------------------------------- HTTP */

typedef struct req {
  char *buf;
  size_t len, cap;
  bool too_big;
} req;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned code, const char *ctype, char *body) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", ctype);
  enum MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!s) return MHD_NO;
  return send_text(c, code, "application/json", s);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *error, const char *detail) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "error", error);
  if (detail && *detail) cJSON_AddStringToObject(o, "detail", detail);
  return send_json(c, code, o);
}

static unsigned status_http(ns_status st) {
  switch (st) {
  case NS_ERR_AUTH: return MHD_HTTP_UNAUTHORIZED;
  case NS_ERR_FORBIDDEN: return MHD_HTTP_FORBIDDEN;
  case NS_ERR_LIMIT: return MHD_HTTP_CONTENT_TOO_LARGE;
  case NS_ERR_NOTFOUND: return MHD_HTTP_NOT_FOUND;
  case NS_ERR_NOMEM: case NS_ERR_INTERNAL: return MHD_HTTP_INTERNAL_SERVER_ERROR;
  case NS_ERR_NET: case NS_ERR_DB: case NS_ERR_BUSY: case NS_ERR_IO: case NS_ERR_TIMEOUT:
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  default: return MHD_HTTP_BAD_REQUEST;
  }
}

static enum MHD_Result send_status(struct MHD_Connection *c, ns_status st) {
  return send_error(c, status_http(st), ns_strerror(st), ns_err_detail());
}

static void count_rejection(ns_status st) {
  switch (status_http(st)) {
  case MHD_HTTP_UNAUTHORIZED: atomic_fetch_add(&G.m.rej_auth, 1); break;
  case MHD_HTTP_FORBIDDEN: atomic_fetch_add(&G.m.rej_forbidden, 1); break;
  case MHD_HTTP_CONTENT_TOO_LARGE: atomic_fetch_add(&G.m.rej_large, 1); break;
  case MHD_HTTP_SERVICE_UNAVAILABLE: atomic_fetch_add(&G.m.rej_unavail, 1); break;
  default: atomic_fetch_add(&G.m.rej_bad, 1); break;
  }
}

static ns_status check_auth(struct MHD_Connection *c, const req *r, bool admin) {
  const char *cred = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Munge-Credential");
  return svc_auth_check(G.auth, cred, r->buf ? r->buf : "", r->len, admin, NULL);
}

static enum MHD_Result handle_ingest(struct MHD_Connection *c, req *r) {
  ns_status st = check_auth(c, r, false);
  svc_ingest *in = NULL;
  char *plain = NULL;
  if (st) goto reject;
  const char *body = r->buf ? r->buf : "";
  size_t n = r->len;
  const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
  if (enc && strcasecmp(enc, "gzip") == 0) {
    if ((st = svc_gunzip(body, n, (size_t)G.lim.max_body, &plain, &n))) goto reject;
    body = plain;
  } else if (enc && *enc && strcasecmp(enc, "identity") != 0) {
    st = ns_errorf(NS_ERR_UNSUPPORTED, "Content-Encoding '%s' is not supported (gzip or none)", enc);
    goto reject;
  }
  if ((st = svc_ingest_parse(body, n, &G.lim, &in))) goto reject;
  free(plain);
  plain = NULL;
  ns_store *s = pool_get();
  int64_t id = 0;
  bool dup = false;
  db_lock();
  st = svc_db_ingest(s, in, svc_now_ms(), &id, &dup);
  db_unlock();
  pool_put(s);
  if (st) {
    count_db_error(st);
    ns_warn("ingest %s/%s/%s: %s", in->job.cluster, in->job.job_id, in->seg->node, ns_err_message(st));
    if (st == NS_ERR_DB || st == NS_ERR_BUSY) st = ns_errorf(NS_ERR_DB, "%s", ns_err_detail());
    goto reject;
  }
  atomic_fetch_add(dup ? &G.m.duplicate : &G.m.received, 1);
  if (!dup) wake_workers();
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "segment_id", (double)id);
  cJSON_AddStringToObject(o, "cluster", in->job.cluster);
  cJSON_AddStringToObject(o, "job_id", in->job.job_id);
  cJSON_AddStringToObject(o, "node", in->seg->node);
  cJSON_AddBoolToObject(o, "duplicate", dup);
  svc_ingest_free(in);
  return send_json(c, MHD_HTTP_CREATED, o);
reject:
  count_rejection(st);
  {
    char detail[1024];
    snprintf(detail, sizeof detail, "%s", ns_err_detail());
    svc_ingest_free(in);
    free(plain);
    return send_error(c, status_http(st), ns_strerror(st), detail);
  }
}

/* "/v1/jobs/{cluster}/{jobid}[/rescore]" */
static bool split_job_path(const char *url, char *cluster, char *job, bool *rescore) {
  const char *p = url + strlen("/v1/jobs/");
  const char *s1 = strchr(p, '/');
  if (!s1 || s1 == p || (size_t)(s1 - p) >= 128) return false;
  const char *j = s1 + 1, *s2 = strchr(j, '/');
  size_t jl = s2 ? (size_t)(s2 - j) : strlen(j);
  if (jl == 0 || jl >= 64) return false;
  *rescore = false;
  if (s2) {
    if (strcmp(s2, "/rescore") != 0) return false;
    *rescore = true;
  }
  memcpy(cluster, p, (size_t)(s1 - p));
  cluster[s1 - p] = '\0';
  memcpy(job, j, jl);
  job[jl] = '\0';
  return true;
}

static bool have_library(char *ver, size_t n) {
  pthread_rwlock_rdlock(&G.lib_lock);
  bool have = G.lib != NULL;
  if (ver) snprintf(ver, n, "%s", have ? G.lib_version : "");
  pthread_rwlock_unlock(&G.lib_lock);
  return have;
}

static enum MHD_Result handle_job(struct MHD_Connection *c, const char *url, const char *method, req *r) {
  char cluster[128], job[64];
  bool rescore = false;
  if (!split_job_path(url, cluster, job, &rescore)) return send_error(c, 404, "not found", url);
  ns_store *s = NULL;
  if (rescore) {
    if (strcmp(method, "POST") != 0) return send_error(c, 405, "method not allowed", "use POST");
    ns_status st = check_auth(c, r, true);
    if (st) return send_status(c, st);
    int n = 0;
    s = pool_get();
    db_lock();
    st = svc_db_rescore(s, cluster, job, svc_now_ms(), &n);
    db_unlock();
    pool_put(s);
    if (st) {
      count_db_error(st);
      return send_status(c, st);
    }
    wake_workers();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "cluster", cluster);
    cJSON_AddStringToObject(o, "job_id", job);
    cJSON_AddNumberToObject(o, "requeued", n);
    return send_json(c, MHD_HTTP_ACCEPTED, o);
  }
  if (strcmp(method, "GET") != 0) return send_error(c, 405, "method not allowed", "use GET");
  char *json = NULL;
  s = pool_get();
  ns_status st = svc_db_job_json(s, cluster, job, have_library(NULL, 0), &json);
  pool_put(s);
  if (st) {
    count_db_error(st);
    return send_status(c, st);
  }
  return send_text(c, MHD_HTTP_OK, "application/json", json);
}

static enum MHD_Result handle_verdicts(struct MHD_Connection *c) {
  const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
  const char *anom = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "anomalous");
  const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
  int64_t since_ms = 0, limit = 1000;
  char *end = NULL;
  if (since && *since) {
    since_ms = strtoll(since, &end, 10);
    if (*end || since_ms < 0) return send_error(c, 400, "invalid argument", "since must be milliseconds since the epoch");
  }
  if (lim && *lim) {
    limit = strtoll(lim, &end, 10);
    if (*end || limit < 1 || limit > 100000) return send_error(c, 400, "invalid argument", "limit must be 1-100000");
  }
  if (anom && strcmp(anom, "0") != 0 && strcmp(anom, "1") != 0)
    return send_error(c, 400, "invalid argument", "anomalous must be 0 or 1");
  char *json = NULL;
  ns_store *s = pool_get();
  ns_status st = svc_db_verdicts_json(s, since_ms, anom && strcmp(anom, "1") == 0, (int)limit, &json);
  pool_put(s);
  if (st) {
    count_db_error(st);
    return send_status(c, st);
  }
  return send_text(c, MHD_HTTP_OK, "application/json", json);
}

static enum MHD_Result handle_labels(struct MHD_Connection *c, req *r) {
  ns_status st = check_auth(c, r, true);
  if (st) return send_status(c, st);
  cJSON *o = cJSON_ParseWithLength(r->buf ? r->buf : "", r->len);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return send_error(c, 400, "parse error", "body must be a JSON object");
  }
  static const char *const keys[] = {"cluster", "node", "job_id", "start_ms", "end_ms", "label", "author", "note", NULL};
  for (cJSON *k = o->child; k; k = k->next) {
    bool ok = false;
    for (const char *const *a = keys; *a; a++) ok |= strcmp(k->string, *a) == 0;
    if (!ok) {
      char d[160];
      snprintf(d, sizeof d, "unknown field '%s'", k->string);
      cJSON_Delete(o);
      return send_error(c, 400, "invalid argument", d);
    }
  }
  cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "cluster"), *nd = cJSON_GetObjectItemCaseSensitive(o, "node");
  cJSON *jb = cJSON_GetObjectItemCaseSensitive(o, "job_id"), *s0 = cJSON_GetObjectItemCaseSensitive(o, "start_ms");
  cJSON *s1 = cJSON_GetObjectItemCaseSensitive(o, "end_ms"), *lb = cJSON_GetObjectItemCaseSensitive(o, "label");
  cJSON *au = cJSON_GetObjectItemCaseSensitive(o, "author"), *nt = cJSON_GetObjectItemCaseSensitive(o, "note");
  const char *bad = NULL;
  if (!cJSON_IsString(cl) || !cJSON_IsString(nd)) bad = "cluster and node must be strings";
  else if (jb && !cJSON_IsString(jb)) bad = "job_id must be a string";
  else if (!cJSON_IsNumber(s0) || !cJSON_IsNumber(s1) || s1->valuedouble < s0->valuedouble)
    bad = "start_ms and end_ms must be numbers with end_ms >= start_ms";
  else if (!cJSON_IsNumber(lb) || (lb->valueint != 0 && lb->valueint != 1)) bad = "label must be 0 or 1";
  else if ((au && !cJSON_IsString(au)) || (nt && !cJSON_IsString(nt))) bad = "author and note must be strings";
  if (bad) {
    cJSON_Delete(o);
    return send_error(c, 400, "invalid argument", bad);
  }
  ns_label l = {0};
  l.cluster = cl->valuestring;
  l.node = nd->valuestring;
  l.job_id = jb ? jb->valuestring : NULL;
  l.start_ms = (int64_t)s0->valuedouble;
  l.end_ms = (int64_t)s1->valuedouble;
  l.label = lb->valueint;
  l.author = au ? au->valuestring : NULL;
  l.source = "expert";
  l.note = nt ? nt->valuestring : NULL;
  l.created_ms = svc_now_ms();
  int64_t id = 0;
  ns_store *s = pool_get();
  db_lock();
  st = ns_store_put_label(s, &l, &id);
  db_unlock();
  pool_put(s);
  cJSON_Delete(o);
  if (st) {
    count_db_error(st);
    return send_status(c, st);
  }
  cJSON *res = cJSON_CreateObject();
  cJSON_AddNumberToObject(res, "label_id", (double)id);
  return send_json(c, MHD_HTTP_CREATED, res);
}

static enum MHD_Result handle_health(struct MHD_Connection *c) {
  svc_db_stats stats;
  ns_store *s = pool_get();
  ns_status st = svc_db_stats_get(s, &stats);
  pool_put(s);
  char ver[64];
  bool have = have_library(ver, sizeof ver);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", st ? "degraded" : "ok");
  cJSON_AddStringToObject(o, "db", st ? ns_err_message(st) : "ok");
  if (have)
    cJSON_AddStringToObject(o, "library", ver);
  else
    cJSON_AddNullToObject(o, "library");
  if (!have) {
    pthread_rwlock_rdlock(&G.lib_lock);
    cJSON_AddStringToObject(o, "library_status", G.lib_error[0] ? G.lib_error : "loading");
    pthread_rwlock_unlock(&G.lib_lock);
  }
  cJSON_AddNumberToObject(o, "queue_pending", (double)stats.pending);
  cJSON_AddStringToObject(o, "version", NS_VERSION);
  return send_json(c, st ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, o);
}

typedef struct tbuf {
  char *p;
  size_t n, cap;
} tbuf;
static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->p && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + (size_t)k + 1) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) return;
    b->p = np;
    b->cap = cap;
  }
}

static enum MHD_Result handle_metrics(struct MHD_Connection *c) {
  svc_db_stats stats;
  ns_store *s = pool_get();
  ns_status st = svc_db_stats_get(s, &stats);
  pool_put(s);
  if (st) count_db_error(st);
  metrics *m = &G.m;
  tbuf b = {0};
#define CTR(name, help) tb_printf(&b, "# HELP " name " " help "\n# TYPE " name " counter\n")
  CTR("nsentry_segments_received_total", "Segments accepted and committed (201, first time).");
  tb_printf(&b, "nsentry_segments_received_total %lld\n", atomic_load(&m->received));
  CTR("nsentry_segments_duplicate_total", "Retried segments answered from the stored copy.");
  tb_printf(&b, "nsentry_segments_duplicate_total %lld\n", atomic_load(&m->duplicate));
  CTR("nsentry_segments_rejected_total", "Ingest requests rejected, by reason; nothing was stored.");
  tb_printf(&b, "nsentry_segments_rejected_total{reason=\"bad_request\"} %lld\n", atomic_load(&m->rej_bad));
  tb_printf(&b, "nsentry_segments_rejected_total{reason=\"too_large\"} %lld\n", atomic_load(&m->rej_large));
  tb_printf(&b, "nsentry_segments_rejected_total{reason=\"unauthenticated\"} %lld\n", atomic_load(&m->rej_auth));
  tb_printf(&b, "nsentry_segments_rejected_total{reason=\"forbidden\"} %lld\n", atomic_load(&m->rej_forbidden));
  tb_printf(&b, "nsentry_segments_rejected_total{reason=\"unavailable\"} %lld\n", atomic_load(&m->rej_unavail));
  tb_printf(&b, "# HELP nsentry_queue_depth Scoring queue entries by state (whole database).\n"
                "# TYPE nsentry_queue_depth gauge\n");
  tb_printf(&b, "nsentry_queue_depth{state=\"pending\"} %lld\n", (long long)stats.pending);
  tb_printf(&b, "nsentry_queue_depth{state=\"leased\"} %lld\n", (long long)stats.running);
  tb_printf(&b, "nsentry_queue_depth{state=\"failed\"} %lld\n", (long long)stats.failed);
  tb_printf(&b, "# HELP nsentry_scoring_seconds Time to score one node segment.\n"
                "# TYPE nsentry_scoring_seconds histogram\n");
  for (size_t i = 0; i < NBUCKETS; i++)
    tb_printf(&b, "nsentry_scoring_seconds_bucket{le=\"%g\"} %lld\n", k_buckets[i], atomic_load(&m->lat_bucket[i]));
  tb_printf(&b, "nsentry_scoring_seconds_bucket{le=\"+Inf\"} %lld\n", atomic_load(&m->lat_count));
  tb_printf(&b, "nsentry_scoring_seconds_sum %.6f\n", (double)atomic_load(&m->lat_sum_us) / 1e6);
  tb_printf(&b, "nsentry_scoring_seconds_count %lld\n", atomic_load(&m->lat_count));
  CTR("nsentry_node_verdicts_total", "Node verdicts by outcome.");
  tb_printf(&b, "nsentry_node_verdicts_total{outcome=\"anomalous\"} %lld\n", atomic_load(&m->node_anom));
  tb_printf(&b, "nsentry_node_verdicts_total{outcome=\"normal\"} %lld\n", atomic_load(&m->node_norm));
  tb_printf(&b, "nsentry_node_verdicts_total{outcome=\"error\"} %lld\n", atomic_load(&m->score_fail));
  CTR("nsentry_job_verdicts_total", "Finalised job verdicts by outcome.");
  tb_printf(&b, "nsentry_job_verdicts_total{outcome=\"anomalous\"} %lld\n", atomic_load(&m->job_anom));
  tb_printf(&b, "nsentry_job_verdicts_total{outcome=\"normal\"} %lld\n", atomic_load(&m->job_norm));
  CTR("nsentry_slurm_writes_total", "Verdict writes to Slurm accounting by result.");
  tb_printf(&b, "nsentry_slurm_writes_total{result=\"ok\"} %lld\n", atomic_load(&m->slurm_ok));
  tb_printf(&b, "nsentry_slurm_writes_total{result=\"retry\"} %lld\n", atomic_load(&m->slurm_retry));
  tb_printf(&b, "nsentry_slurm_writes_total{result=\"parked\"} %lld\n", atomic_load(&m->slurm_failed));
  CTR("nsentry_db_errors_total", "Database errors seen by the service.");
  tb_printf(&b, "nsentry_db_errors_total %lld\n", atomic_load(&m->db_errors));
  tb_printf(&b, "# HELP nsentry_library_loaded 1 when a model library is loaded.\n# TYPE nsentry_library_loaded gauge\n");
  tb_printf(&b, "nsentry_library_loaded %d\n", have_library(NULL, 0) ? 1 : 0);
#undef CTR
  if (!b.p) return MHD_NO;
  return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)cls;
  (void)version;
  req *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    *con_cls = r;
    atomic_fetch_add(&G.inflight, 1);
    atomic_fetch_add(&G.m.http_requests, 1);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoll(cl, NULL, 10) > G.lim.max_body) {
      r->too_big = true;
      /* With Expect: 100-continue the client has not sent the body yet: answer now. */
      const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
      if (ex && strcasecmp(ex, "100-continue") == 0) {
        if (strcmp(url, "/v1/segments") == 0) atomic_fetch_add(&G.m.rej_large, 1);
        char d[128];
        snprintf(d, sizeof d, "body of %s bytes exceeds max_body (%lld)", cl, (long long)G.lim.max_body);
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, ns_strerror(NS_ERR_LIMIT), d);
      }
    }
    return MHD_YES;
  }
  if (*upload_size) {
    if (!r->too_big) {
      if (r->len + *upload_size > (size_t)G.lim.max_body) {
        r->too_big = true;
        free(r->buf);
        r->buf = NULL;
        r->len = r->cap = 0;
      } else {
        if (r->len + *upload_size + 1 > r->cap) {
          size_t cap = r->cap ? r->cap : 65536;
          while (cap < r->len + *upload_size + 1) cap *= 2;
          char *nb = realloc(r->buf, cap);
          if (!nb) return MHD_NO;
          r->buf = nb;
          r->cap = cap;
        }
        memcpy(r->buf + r->len, upload, *upload_size);
        r->len += *upload_size;
        r->buf[r->len] = '\0';
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->too_big) {
    if (strcmp(url, "/v1/segments") == 0) atomic_fetch_add(&G.m.rej_large, 1);
    char d[128];
    snprintf(d, sizeof d, "body exceeds max_body (%lld bytes)", (long long)G.lim.max_body);
    return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, ns_strerror(NS_ERR_LIMIT), d);
  }
  ns_err_clear();
  if (strcmp(url, "/v1/segments") == 0) {
    if (strcmp(method, "POST") != 0) return send_error(c, 405, "method not allowed", "use POST");
    return handle_ingest(c, r);
  }
  if (strncmp(url, "/v1/jobs/", 9) == 0) return handle_job(c, url, method, r);
  if (strcmp(url, "/v1/verdicts") == 0) {
    if (strcmp(method, "GET") != 0) return send_error(c, 405, "method not allowed", "use GET");
    return handle_verdicts(c);
  }
  if (strcmp(url, "/v1/labels") == 0) {
    if (strcmp(method, "POST") != 0) return send_error(c, 405, "method not allowed", "use POST");
    return handle_labels(c, r);
  }
  if (strcmp(url, "/healthz") == 0) return handle_health(c);
  if (strcmp(url, "/metrics") == 0) return handle_metrics(c);
  return send_error(c, MHD_HTTP_NOT_FOUND, "not found", url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
  (void)cls;
  (void)c;
  (void)t;
  req *r = *con_cls;
  if (!r) return;
  free(r->buf);
  free(r);
  *con_cls = NULL;
  atomic_fetch_sub(&G.inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  while (n && buf[n - 1] == '\n') buf[--n] = '\0';
  ns_warn("http: %s", buf);
}

/* ---------------------------------------------------------------- main */

static int sig_fds[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char c = (unsigned char)sig;
  ssize_t w = write(sig_fds[1], &c, 1);
  (void)w;
  errno = saved;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: nsentryd [-c FILE] [--db URI] [-s KEY=VALUE]... [--munge-socket PATH] [-v]\n"
          "       nsentryd --dump-config [-c FILE] [-s KEY=VALUE]...\n\n"
          "  -c, --config FILE     configuration file (default $NSENTRY_CONF, then /etc/nsentry/nsentry.conf)\n"
          "      --db URI          database (overrides db=)\n"
          "  -s, --set KEY=VALUE   override one configuration key\n"
          "      --dump-config     print the effective configuration and exit\n"
          "  -v, --verbose         debug logging\n"
          "signals: SIGHUP reloads the active model library; SIGTERM/SIGINT stop after in-flight requests.\n");
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"db", required_argument, 0, 'D'},
                                       {"set", required_argument, 0, 's'},    {"dump-config", no_argument, 0, 'd'},
                                       {"verbose", no_argument, 0, 'v'},      {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},      {0, 0, 0, 0}};
  const char *conf_path = getenv("NSENTRY_CONF"), *db = NULL;
  char *sets[256];
  int nsets = 0, c, dump = 0, verbose = 0;
  ns_log_set_ident("nsentryd");
  while ((c = getopt_long(argc, argv, "c:s:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': conf_path = optarg; break;
    case 'D': db = optarg; break;
    case 's':
      if (nsets == 256) ns_cli_die(2, "too many --set options");
      sets[nsets++] = optarg;
      break;
    case 'd': dump = 1; break;
    case 'v': verbose = 1; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("nsentryd %s\n", NS_VERSION); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    usage(stderr);
    return 2;
  }
  ns_config *cfg = NULL;
  ns_cli_check(ns_config_create(&cfg), "config");
  if (!conf_path && access("/etc/nsentry/nsentry.conf", R_OK) == 0) conf_path = "/etc/nsentry/nsentry.conf";
  if (conf_path) ns_cli_check(ns_config_load_file(cfg, conf_path), conf_path);
  ns_cli_check(ns_config_apply_args(cfg, nsets, sets), "--set");
  if (db) ns_cli_check(ns_config_set(cfg, "db", db), "--db");
  if (dump) {
    int rc = ns_config_dump(cfg, stdout) ? 1 : 0;
    ns_config_free(cfg);
    return rc;
  }
  ns_log_level lvl = NS_LOG_INFO;
  ns_log_parse_level(ns_cfg_str(cfg, NS_CFG_log_level), &lvl);
  ns_log_set_level(verbose ? NS_LOG_DEBUG : lvl);
  ns_log_use_syslog(ns_cfg_bool(cfg, NS_CFG_log_syslog));

  /* Signals: a handler writes the number to a self-pipe that main() reads.
   * Threads we create block them; threads created by libraries before main()
   * (OpenBLAS, sanitizers) do not, so a handler (never the default action)
   * must be installed for the case the kernel picks one of those. */
  if (pipe(sig_fds) != 0) ns_cli_die(1, "pipe: %s", strerror(errno));
  struct sigaction sa_sig;
  memset(&sa_sig, 0, sizeof sa_sig);
  sa_sig.sa_handler = on_signal;
  sa_sig.sa_flags = SA_RESTART;
  sigemptyset(&sa_sig.sa_mask);
  sigaction(SIGTERM, &sa_sig, NULL);
  sigaction(SIGINT, &sa_sig, NULL);
  sigaction(SIGHUP, &sa_sig, NULL);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  memset(&G, 0, sizeof G);
  G.cfg = cfg;
  G.db_uri = strdup(ns_cfg_str(cfg, NS_CFG_db));
  G.sqlite = strncmp(G.db_uri, "sqlite:", 7) == 0;
  G.lim.max_body = ns_cfg_int(cfg, NS_CFG_max_body);
  G.lim.max_metrics = ns_cfg_int(cfg, NS_CFG_max_metrics);
  G.lim.max_points = ns_cfg_int(cfg, NS_CFG_max_points);
  pthread_mutex_init(&G.pool_mu, NULL);
  pthread_cond_init(&G.pool_cv, NULL);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&G.write_mu, &ma);
  pthread_rwlock_init(&G.lib_lock, NULL);
  pthread_mutex_init(&G.wake_mu, NULL);
  pthread_cond_init(&G.wake_cv, NULL);
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  snprintf(G.worker_id, sizeof G.worker_id, "%s:%d", host, (int)getpid());
  snprintf(G.lib_error, sizeof G.lib_error, "loading");

  // model_precision = bf16 on a CPU without it is a configuration error: say so now
  ns_cli_check(ns_precision_from_config(cfg, &G.precision), "model_precision");
  ns_status st = svc_auth_create(ns_cfg_str(cfg, NS_CFG_munge_socket), ns_cfg_str(cfg, NS_CFG_ingest_uids),
                                 ns_cfg_str(cfg, NS_CFG_admin_uids), &G.auth);
  ns_cli_check(st, "munge");

  int workers = (int)ns_cfg_int(cfg, NS_CFG_workers), http_threads = (int)ns_cfg_int(cfg, NS_CFG_http_threads);
  bool writer = strcmp(ns_cfg_str(cfg, NS_CFG_verdict_field), "none") != 0;
  /* Stores: HTTP pool + one per worker + maintenance + Slurm writer. Opening the
   * first one migrates the schema. */
  int n_stores = http_threads + workers + 2;
  ns_store **stores = calloc((size_t)n_stores, sizeof *stores);
  if (!stores) ns_cli_die(1, "out of memory");
  for (int i = 0; i < n_stores; i++) {
    if (G.sqlite && i > 0) {
      stores[i] = stores[0];
      continue;
    }
    st = ns_store_open(G.db_uri, &stores[i]);
    if (st) ns_cli_die(1, "database %s: %s", ns_cfg_str(cfg, NS_CFG_db), ns_err_message(st));
  }
  G.pool = stores;
  G.pool_n = G.pool_free = http_threads;

  /* Entries leased by an earlier run of this process on a private SQLite
   * file are free now; on a shared database leases expire instead. */
  if (G.sqlite) {
    ns_db *d = ns_store_db(stores[0]);
    ns_db_exec(d, "UPDATE score_queue SET state = 'pending', lease_owner = NULL, lease_until = NULL "
                  "WHERE state = 'leased'");
  }
  library_reload(stores[http_threads + workers]);

  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)ns_cfg_int(cfg, NS_CFG_listen_port));
  if (inet_pton(AF_INET, ns_cfg_str(cfg, NS_CFG_listen_addr), &sa.sin_addr) != 1)
    ns_cli_die(1, "listen_addr '%s' is not an IPv4 address", ns_cfg_str(cfg, NS_CFG_listen_addr));
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)http_threads,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)512,
      MHD_OPTION_END);
  if (!d)
    ns_cli_die(1, "cannot listen on %s:%lld: %s", ns_cfg_str(cfg, NS_CFG_listen_addr),
               (long long)ns_cfg_int(cfg, NS_CFG_listen_port), strerror(errno));

  pthread_t *wt = calloc((size_t)workers, sizeof *wt), mt, slt;
  worker_arg *wa = calloc((size_t)workers, sizeof *wa);
  if (!wt || !wa) ns_cli_die(1, "out of memory");
  for (int i = 0; i < workers; i++) {
    wa[i].idx = i;
    wa[i].st = stores[http_threads + i];
    pthread_create(&wt[i], NULL, worker_main, &wa[i]);
  }
  pthread_create(&mt, NULL, maint_main, stores[http_threads + workers]);
  if (writer) pthread_create(&slt, NULL, slurm_main, stores[http_threads + workers + 1]);
  ns_info("listening on %s:%lld (db %s, %d workers, %d http threads, verdict field %s)",
          ns_cfg_str(cfg, NS_CFG_listen_addr), (long long)ns_cfg_int(cfg, NS_CFG_listen_port),
          G.sqlite ? "sqlite" : "postgresql", workers, http_threads, ns_cfg_str(cfg, NS_CFG_verdict_field));
  printf("nsentryd: ready\n");
  fflush(stdout);

  pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
  for (;;) {
    unsigned char sc = 0;
    ssize_t got = read(sig_fds[0], &sc, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got != 1) break;
    int sig = sc;
    if (sig == SIGHUP) {
      ns_info("SIGHUP: reloading the active model library");
      atomic_store(&G.reload, 1);
      wake_workers();
      continue;
    }
    break;
  }
  ns_info("shutting down: finishing in-flight requests");
  /* Stop accepting, let requests in progress complete, then stop threads. */
  MHD_socket lfd = MHD_quiesce_daemon(d);
  for (int i = 0; i < 300 && atomic_load(&G.inflight) > 0; i++) usleep(100000);
  MHD_stop_daemon(d);
  if (lfd != MHD_INVALID_SOCKET) close(lfd);
  atomic_store(&G.stopping, 1);
  wake_workers();
  for (int i = 0; i < workers; i++) pthread_join(wt[i], NULL);
  pthread_join(mt, NULL);
  if (writer) pthread_join(slt, NULL);
  for (int i = 0; i < (G.sqlite ? 1 : n_stores); i++) ns_store_close(stores[i]);
  free(stores);
  free(wt);
  free(wa);
  ns_library_free(G.lib);
  svc_auth_free(G.auth);
  free(G.db_uri);
  ns_config_free(cfg);
  ns_info("stopped");
  return 0;
}
