/* The durable queue, finalisation and the Slurm outbox at the database level,
 * on SQLite and PostgreSQL. Node verdicts here are written by the test with
 * svc_db_put_node_verdict (what a worker does after ns_detect_segment), since
 * what is under test is the bookkeeping, not the model. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ns_db.h"
#include "svc.h"

static char g_uri[512], g_dir[64];

static bool open_backend(const char *be) {
  if (!strcmp(be, "sqlite")) {
    snprintf(g_dir, sizeof g_dir, "/tmp/nssvcq.XXXXXX");
    cr_assert(mkdtemp(g_dir));
    snprintf(g_uri, sizeof g_uri, "sqlite:%s/q.db", g_dir);
    return true;
  }
  const char *pg = getenv("NS_TEST_PG_URI");
  if (!pg || !*pg) return false;
  char name[64], sql[128];
  snprintf(name, sizeof name, "nssvcq_%d_%ld", (int)getpid(), (long)(time(NULL) % 100000));
  ns_db *db = NULL;
  cr_assert_eq(ns_db_open(pg, &db), NS_OK);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  cr_assert_eq(ns_db_exec(db, sql), NS_OK, "%s", ns_err_detail());
  ns_db_close(db);
  const char *slash = strrchr(pg, '/');
  snprintf(g_uri, sizeof g_uri, "%.*s/%s", (int)(slash - pg), pg, name);
  return true;
}

static void cleanup(void) {
  if (g_dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) {}
  }
}

#define BOTH(name)                                                                          \
  static void name##_body(void);                                                            \
  Test(queue_sqlite, name, .fini = cleanup) {                                               \
    open_backend("sqlite");                                                                 \
    name##_body();                                                                          \
  }                                                                                         \
  Test(queue_pg, name, .fini = cleanup) {                                                   \
    if (!open_backend("pg")) cr_skip_test("NS_TEST_PG_URI not set (scripts/test-hooks/pg.up)"); \
    name##_body();                                                                          \
  }                                                                                         \
  static void name##_body(void)

static svc_ingest *mk(const char *job, const char *node, int nodes, const char *nodelist) {
  char b[1024];
  snprintf(b, sizeof b,
           "{\"cluster\":\"lab\",\"job_id\":\"%s\",\"node\":\"%s\",\"job_nodes\":%d,\"start_ms\":1000,"
           "\"end_ms\":31000,\"interval_ms\":15000,\"metrics\":[\"a\",\"b\"],\"values\":[[1,2],[3,4],[5,6]]%s%s%s}",
           job, node, nodes, nodelist ? ",\"job\":{\"nodelist\":\"" : "", nodelist ? nodelist : "",
           nodelist ? "\"}" : "");
  svc_limits lim = {1 << 20, 100, 100000};
  svc_ingest *in = NULL;
  cr_assert_eq(svc_ingest_parse(b, strlen(b), &lim, &in), NS_OK, "%s", ns_err_detail());
  return in;
}

static int64_t ingest(ns_store *s, const char *job, const char *node, int nodes, const char *nodelist) {
  svc_ingest *in = mk(job, node, nodes, nodelist);
  int64_t id = 0;
  bool dup = true;
  cr_assert_eq(svc_db_ingest(s, in, svc_now_ms(), &id, &dup), NS_OK, "%s", ns_err_detail());
  cr_assert_not(dup);
  svc_ingest_free(in);
  return id;
}

static void score_all(ns_store *s, double score_for_anomalous_node_cn2) {
  int64_t q, seg;
  while (svc_db_claim(s, "t", svc_now_ms(), 60000, &q, &seg) == NS_OK) {
    ns_segment *g = NULL;
    cr_assert_eq(ns_store_get_segment(s, seg, &g), NS_OK);
    bool anom = !strcmp(g->node, "cn2");
    ns_interval iv = {.start_ms = g->start_ms, .end_ms = g->end_ms, .score_max = score_for_anomalous_node_cn2,
                      .n_top = 1, .top_metric = {"a"}, .top_direction = {1}};
    ns_node_verdict v = {.anomalous = anom, .scored = true, .score_max = anom ? score_for_anomalous_node_cn2 : 0.5,
                         .score_mean = 0.1, .cluster = -1, .n_intervals = anom, .intervals = anom ? &iv : NULL};
    cr_assert_eq(svc_db_put_node_verdict(s, q, seg, g->cluster, g->job_id, g->node, &v, "r7", svc_now_ms()),
                 NS_OK, "%s", ns_err_detail());
    ns_segment_free(g);
  }
}

BOTH(duplicate_ingest_stores_nothing_twice) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(g_uri, &s), NS_OK, "%s", ns_err_detail());
  int64_t id = ingest(s, "1", "cn1", 1, NULL);
  svc_ingest *in = mk("1", "cn1", 1, NULL);
  int64_t id2 = 0;
  bool dup = false;
  cr_assert_eq(svc_db_ingest(s, in, svc_now_ms(), &id2, &dup), NS_OK);
  cr_assert(dup);
  cr_assert_eq(id2, id);
  svc_ingest_free(in);
  svc_db_stats st;
  cr_assert_eq(svc_db_stats_get(s, &st), NS_OK);
  cr_assert_eq(st.pending, 1);
  ns_store_close(s);
}

BOTH(job_final_when_all_nodes_scored) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(g_uri, &s), NS_OK, "%s", ns_err_detail());
  ingest(s, "10", "cn1", 2, NULL);
  int nf = 0, na = 0, nn = 0;
  cr_assert_eq(svc_db_finalise(s, svc_now_ms(), 600000, "admincomment", &nf, &na, &nn), NS_OK);
  cr_assert_eq(nf, 0, "one of two nodes: not final");
  score_all(s, 0);
  cr_assert_eq(svc_db_finalise(s, svc_now_ms(), 600000, "admincomment", &nf, &na, &nn), NS_OK);
  cr_assert_eq(nf, 0, "still waiting for cn2");
  ingest(s, "10", "cn2", 2, NULL);
  cr_assert_eq(svc_db_finalise(s, svc_now_ms(), 600000, "admincomment", &nf, &na, &nn), NS_OK);
  cr_assert_eq(nf, 0, "cn2 not scored yet");
  score_all(s, 4.7);
  cr_assert_eq(svc_db_finalise(s, svc_now_ms(), 600000, "admincomment", &nf, &na, &nn), NS_OK);
  cr_assert_eq(nf, 1);
  cr_assert_eq(na, 1);
  char *json = NULL;
  cr_assert_eq(svc_db_job_json(s, "lab", "10", true, &json), NS_OK);
  cr_assert(strstr(json, "\"status\":\"final\""), "%s", json);
  cr_assert(strstr(json, "\"verdict\":\"anomalous\""), "%s", json);
  cr_assert(strstr(json, "nsentry:v1;verdict=anomalous;score=4.7;nodes=cn2;model=r7"), "%s", json);
  cr_assert(strstr(json, "\"top_metrics\":[\"a\"]"), "%s", json);
  free(json);
  svc_outbox_row row;
  cr_assert_eq(svc_db_outbox_next(s, svc_now_ms(), &row), NS_OK);
  cr_assert_str_eq(row.job_id, "10");
  cr_assert_str_eq(row.token, "nsentry:v1;verdict=anomalous;score=4.7;nodes=cn2;model=r7");
  /* slurmdbd down: retried later, never dropped. */
  cr_assert_eq(svc_db_outbox_done(s, row.id, false, false, "slurmdbd unavailable", svc_now_ms() + 60000), NS_OK);
  cr_assert_eq(svc_db_outbox_next(s, svc_now_ms(), &row), NS_ERR_NOTFOUND);
  cr_assert_eq(svc_db_outbox_next(s, svc_now_ms() + 61000, &row), NS_OK);
  cr_assert_eq(row.attempts, 1);
  cr_assert_eq(svc_db_outbox_done(s, row.id, true, false, NULL, 0), NS_OK);
  cr_assert_eq(svc_db_outbox_next(s, svc_now_ms() + 999999999, &row), NS_ERR_NOTFOUND);
  char txt[64];
  cr_assert_eq(svc_db_anomaly_text(s, "lab", "10", txt, sizeof txt), NS_OK);
  cr_assert_str_eq(txt, "ANOMALOUS score=4.7");
  json = NULL;
  cr_assert_eq(svc_db_verdicts_json(s, 0, true, 10, &json), NS_OK);
  cr_assert(strstr(json, "\"job_id\":\"10\""), "%s", json);
  free(json);
  ns_store_close(s);
}

BOTH(grace_finalises_with_missing_nodes_named) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(g_uri, &s), NS_OK, "%s", ns_err_detail());
  ingest(s, "20", "cn1", 3, "cn[1-3]");
  score_all(s, 0);
  int nf = 0, na = 0, nn = 0;
  cr_assert_eq(svc_db_finalise(s, svc_now_ms(), 600000, "none", &nf, &na, &nn), NS_OK);
  cr_assert_eq(nf, 0);
  cr_assert_eq(svc_db_finalise(s, svc_now_ms() + 600001, 600000, "none", &nf, &na, &nn), NS_OK);
  cr_assert_eq(nf, 1);
  cr_assert_eq(nn, 1);
  char *json = NULL;
  cr_assert_eq(svc_db_job_json(s, "lab", "20", true, &json), NS_OK);
  cr_assert(strstr(json, "\"missing_nodes\":\"cn[2-3]\""), "%s", json);
  cr_assert(strstr(json, "missing=2"), "%s", json);
  free(json);
  svc_outbox_row row;
  cr_assert_eq(svc_db_outbox_next(s, svc_now_ms(), &row), NS_ERR_NOTFOUND, "verdict_field=none writes nothing");
  /* A late node re-opens the job; rescoring re-queues every node. */
  ingest(s, "20", "cn2", 3, "cn[1-3]");
  cr_assert_eq(svc_db_job_json(s, "lab", "20", true, &json), NS_OK);
  cr_assert(strstr(json, "\"status\":\"pending"), "%s", json);
  free(json);
  int n = 0;
  cr_assert_eq(svc_db_rescore(s, "lab", "20", svc_now_ms(), &n), NS_OK);
  cr_assert_eq(n, 2);
  cr_assert_eq(svc_db_rescore(s, "lab", "nope", svc_now_ms(), &n), NS_ERR_NOTFOUND);
  ns_store_close(s);
}

BOTH(without_library_entries_stay_pending) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(g_uri, &s), NS_OK, "%s", ns_err_detail());
  ingest(s, "30", "cn1", 1, NULL);
  int64_t q, seg;
  cr_assert_eq(svc_db_claim(s, "w", svc_now_ms(), 60000, &q, &seg), NS_OK);
  cr_assert_eq(svc_db_release(s, q, "no model library is active", 0, false), NS_OK);
  cr_assert_eq(svc_db_note_pending(s, "no model library is active"), NS_OK);
  int nf = 0, na = 0, nn = 0;
  cr_assert_eq(svc_db_finalise(s, svc_now_ms() + 86400000, 0, "admincomment", &nf, &na, &nn), NS_OK);
  cr_assert_eq(nf, 0, "an unscored job is never finalised");
  char *json = NULL;
  cr_assert_eq(svc_db_job_json(s, "lab", "30", false, &json), NS_OK);
  cr_assert(strstr(json, "\"status\":\"unscored: no model library\""), "%s", json);
  cr_assert(strstr(json, "\"verdict\":null"), "%s", json);
  free(json);
  char txt[64];
  cr_assert_eq(svc_db_anomaly_text(s, "lab", "30", txt, sizeof txt), NS_OK);
  cr_assert_str_eq(txt, "queued");
  /* An expired lease is taken over (crashed worker). */
  cr_assert_eq(svc_db_claim(s, "w1", svc_now_ms(), 1000, &q, &seg), NS_OK);
  cr_assert_eq(svc_db_claim(s, "w2", svc_now_ms(), 1000, &q, &seg), NS_ERR_NOTFOUND);
  cr_assert_eq(svc_db_claim(s, "w2", svc_now_ms() + 2000, 1000, &q, &seg), NS_OK);
  ns_store_close(s);
}

typedef struct claimer {
  const char *uri;
  int64_t got[400];
  int n;
} claimer;

static void *claim_loop(void *p) {
  claimer *c = p;
  ns_store *s = NULL;
  if (ns_store_open(c->uri, &s)) return NULL;
  int64_t q, seg;
  char id[32];
  snprintf(id, sizeof id, "c%p", p);
  for (;;) {
    ns_status st = svc_db_claim(s, id, svc_now_ms(), 600000, &q, &seg);
    if (st == NS_ERR_NOTFOUND) break;
    if (st == NS_ERR_BUSY) continue;
    if (st) break;
    c->got[c->n++] = q;
  }
  ns_store_close(s);
  return NULL;
}

Test(queue_pg, concurrent_claims_never_double, .fini = cleanup) {
  if (!open_backend("pg")) cr_skip_test("NS_TEST_PG_URI not set (scripts/test-hooks/pg.up)");
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(g_uri, &s), NS_OK, "%s", ns_err_detail());
  enum { N = 120 };
  for (int i = 0; i < N; i++) {
    char job[16];
    snprintf(job, sizeof job, "%d", 1000 + i);
    ingest(s, job, "cn1", 1, NULL);
  }
  claimer c[4];
  pthread_t t[4];
  memset(c, 0, sizeof c);
  for (int i = 0; i < 4; i++) c[i].uri = g_uri, pthread_create(&t[i], NULL, claim_loop, &c[i]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  int total = 0, seen[N + 1] = {0};
  for (int i = 0; i < 4; i++) {
    total += c[i].n;
    for (int k = 0; k < c[i].n; k++) {
      cr_assert(c[i].got[k] >= 1 && c[i].got[k] <= N);
      cr_assert_eq(seen[c[i].got[k]]++, 0, "entry %lld claimed twice", (long long)c[i].got[k]);
    }
  }
  cr_assert_eq(total, N);
  ns_store_close(s);
}
