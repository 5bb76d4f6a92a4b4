/* Store tests. Each STORE_TEST body runs twice: sqlite/<name> on a fresh
 * file, postgres/<name> in a fresh database created on NS_TEST_PG_URI (and
 * dropped afterwards), so parallel runs never collide. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ns_db.h"
#include "ns_sql.h"
#include "ns_store.h"

typedef struct {
  ns_db_kind kind;
  char uri[512];
  char dir[64];    /* sqlite: temp dir */
  char dbname[64]; /* postgres: temp database */
} backend;

static void db_exec_admin(const char *sql) {
  ns_db *db = NULL;
  cr_assert_eq(ns_db_open(getenv("NS_TEST_PG_URI"), &db), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_exec(db, sql), NS_OK, "%s: %s", sql, ns_err_detail());
  ns_db_close(db);
}

static void backend_init(backend *b, ns_db_kind kind, const char *test) {
  memset(b, 0, sizeof *b);
  b->kind = kind;
  if (kind == NS_DB_SQLITE) {
    snprintf(b->dir, sizeof b->dir, "/tmp/ns_store_XXXXXX");
    cr_assert_not_null(mkdtemp(b->dir));
    snprintf(b->uri, sizeof b->uri, "sqlite:%s/t.db", b->dir);
    return;
  }
  const char *base = getenv("NS_TEST_PG_URI");
  if (!base || !*base) cr_skip("PostgreSQL tests skipped: NS_TEST_PG_URI is not set (scripts/test.sh starts a server)");
  static int seq;
  snprintf(b->dbname, sizeof b->dbname, "ns_t_%d_%d_%.20s", (int)getpid(), ++seq, test);
  char sql[128];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", b->dbname);
  db_exec_admin(sql);
  const char *slash = strrchr(base, '/');
  cr_assert(slash && slash > base + 12, "NS_TEST_PG_URI must be postgresql://user@host:port/dbname");
  snprintf(b->uri, sizeof b->uri, "%.*s/%s", (int)(slash - base), base, b->dbname);
}

static void backend_fini(backend *b) {
  if (b->kind == NS_DB_SQLITE && b->dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", b->dir);
    cr_expect_eq(system(cmd), 0);
  } else if (b->dbname[0]) {
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", b->dbname);
    db_exec_admin(sql);
  }
}

static ns_store *open_store(const backend *b) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(b->uri, &s), NS_OK, "open %s: %s", b->uri, ns_err_detail());
  return s;
}

/* Each test runs in its own process: one backend per process, removed by the
 * fini hook even when an assertion ends the test early. */
static backend g_b, g_b2;
static void g_fini(void) {
  if (g_b.dir[0] || g_b.dbname[0]) backend_fini(&g_b);
  if (g_b2.dir[0] || g_b2.dbname[0]) backend_fini(&g_b2);
  memset(&g_b, 0, sizeof g_b);
  memset(&g_b2, 0, sizeof g_b2);
}

#define STORE_TEST(name)                                          \
  static void name##_body(backend *b);                            \
  Test(sqlite, name, .fini = g_fini) {                            \
    backend_init(&g_b, NS_DB_SQLITE, #name);                      \
    name##_body(&g_b);                                            \
  }                                                               \
  Test(postgres, name, .fini = g_fini) {                          \
    backend_init(&g_b, NS_DB_POSTGRES, #name);                    \
    name##_body(&g_b);                                            \
  }                                                               \
  static void name##_body(backend *b)

static int64_t count_rows(ns_store *s, const char *table) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
  ns_db_stmt *q = NULL;
  bool row = false;
  cr_assert_eq(ns_db_prepare(ns_store_db(s), sql, &q), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_step(q, &row), NS_OK, "%s", ns_err_detail());
  cr_assert(row);
  int64_t n = ns_db_col_int64(q, 0);
  ns_db_finalize(q);
  return n;
}

static const char *names3[] = {"cpu_user", "mem_used", "net_rx"};

static ns_segment *make_seg(const char *node, const char *job, int64_t start, size_t T, bool labels) {
  ns_segment *g = NULL;
  cr_assert_eq(ns_segment_create(T, 3, &g), NS_OK);
  cr_assert_eq(ns_segment_set_meta(g, "lab", node, job, start, 15000), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(g, (char *const *)names3), NS_OK);
  for (size_t i = 0; i < T * 3; i++) g->x[i] = (float)(i * 0.37 + (double)start * 1e-9);
  if (labels) {
    cr_assert_eq(ns_segment_alloc_labels(g), NS_OK);
    for (size_t t = 0; t < T; t++) g->labels[t] = (uint8_t)(t % 3 == 0);
  }
  return g;
}

/* ---------------- schema ---------------- */

STORE_TEST(open_migrates_all_tables) {
  ns_store *s = open_store(b);
  cr_assert_eq(ns_store_schema_version(s), ns_sql_latest_version());
  cr_assert_geq(ns_sql_latest_version(), 1);
  cr_assert_eq(ns_db_kind_of(ns_store_db(s)), b->kind);
  const char *tables[] = {"schema_version", "nodes", "jobs", "metrics", "metric_sets", "metric_set_members",
                          "raw_chunks", "segments", "prep_params", "labels", "artifacts", "model_libraries",
                          "clusters", "cluster_members", "models", "verdicts", "job_verdicts", "score_queue",
                          "slurm_outbox"};
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
    int64_t n = count_rows(s, tables[i]);
    cr_assert_eq(n, strcmp(tables[i], "schema_version") ? 0 : ns_sql_latest_version(), "%s", tables[i]);
  }
  ns_store_close(s);
  /* Reopening applies nothing new. */
  s = open_store(b);
  cr_assert_eq(count_rows(s, "schema_version"), ns_sql_latest_version());
  ns_store_close(s);
  ns_store_close(NULL);
}

STORE_TEST(newer_schema_refused) {
  ns_store *s = open_store(b);
  cr_assert_eq(ns_db_exec(ns_store_db(s), "INSERT INTO schema_version (version, name, applied_ms) VALUES (999, 'future', 0)"),
               NS_OK, "%s", ns_err_detail());
  ns_store_close(s);
  s = NULL;
  ns_status st = ns_store_open(b->uri, &s);
  cr_assert_eq(st, NS_ERR_VERSION, "%s", ns_err_message(st));
  cr_assert_null(s);
  cr_assert(strstr(ns_err_detail(), "999") && strstr(ns_err_detail(), "newer"), "%s", ns_err_detail());
}

STORE_TEST(migrate_stepwise) {
  ns_db *db = NULL;
  cr_assert_eq(ns_db_open(b->uri, &db), NS_OK, "%s", ns_err_detail());
  int v = -1;
  cr_assert_eq(ns_sql_current_version(db, &v), NS_OK);
  cr_assert_eq(v, 0);
  cr_assert_eq(ns_sql_migrate(db, 1, &v), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(v, 1);
  cr_assert_eq(ns_sql_migrate(db, 0, &v), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(v, ns_sql_latest_version());
  size_t n = 0;
  const ns_sql_migration *m = ns_sql_migrations(b->kind, &n);
  cr_assert_geq(n, 1);
  cr_assert_eq(m[0].version, 1);
  cr_assert(strstr(m[0].sql, "CREATE TABLE segments"));
  ns_db_close(db);
}

STORE_TEST(failed_migration_changes_nothing) {
  /* A table in the way makes 001 fail half-way: nothing of it may remain. */
  ns_db *db = NULL;
  cr_assert_eq(ns_db_open(b->uri, &db), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_exec(db, "CREATE TABLE labels (x INTEGER)"), NS_OK, "%s", ns_err_detail());
  ns_db_close(db);
  ns_store *s = NULL;
  ns_status st = ns_store_open(b->uri, &s);
  cr_assert_eq(st, NS_ERR_DB, "%s", ns_err_message(st));
  cr_assert_null(s);
  cr_assert(strstr(ns_err_detail(), "001_init.sql") && strstr(ns_err_detail(), "labels"), "%s", ns_err_detail());
  cr_assert_eq(ns_db_open(b->uri, &db), NS_OK);
  int v = -1;
  cr_assert_eq(ns_sql_current_version(db, &v), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(v, 0);
  /* Tables created before the failing statement were rolled back too. */
  cr_assert_neq(ns_db_exec(db, "SELECT count(*) FROM nodes"), NS_OK);
  cr_assert_eq(ns_db_exec(db, "SELECT x FROM labels"), NS_OK, "%s", ns_err_detail());
  ns_db_close(db);
}

/* ---------------- segments ---------------- */

STORE_TEST(segment_roundtrip_exact_bits) {
  ns_store *s = open_store(b);
  ns_segment *g = make_seg("cn001", "123_4", 1795344144000, 7, true);
  /* Values a lossy encoding would change. */
  g->x[0] = -0.0f;
  g->x[1] = FLT_MIN / 4; /* subnormal */
  g->x[2] = FLT_MAX;
  g->x[3] = 1.0f / 3.0f;
  g->x[4] = nanf("0x12345");
  g->x[5] = -INFINITY;
  int64_t id = 0;
  cr_assert_eq(ns_store_put_segment(s, g, "train", &id), NS_OK, "%s", ns_err_detail());
  cr_assert_gt(id, 0);
  ns_segment *r = NULL;
  cr_assert_eq(ns_store_get_segment(s, id, &r), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(r->id, id);
  cr_assert_str_eq(r->cluster, "lab");
  cr_assert_str_eq(r->node, "cn001");
  cr_assert_str_eq(r->job_id, "123_4");
  cr_assert_eq(r->kind, NS_SEG_JOB);
  cr_assert_eq(r->start_ms, g->start_ms);
  cr_assert_eq(r->end_ms, g->start_ms + 6 * 15000);
  cr_assert_eq(r->interval_ms, 15000);
  cr_assert_eq(r->T, 7);
  cr_assert_eq(r->M, 3);
  for (size_t m = 0; m < 3; m++) cr_assert_str_eq(r->metrics[m], names3[m]);
  cr_assert_eq(memcmp(r->x, g->x, 7 * 3 * sizeof(float)), 0, "float bits changed");
  cr_assert_not_null(r->labels);
  cr_assert_eq(memcmp(r->labels, g->labels, 7), 0);
  ns_segment_free(r);

  /* Without labels, and idle. */
  ns_segment *idle = make_seg("cn001", NULL, 1795344000000, 4, false);
  int64_t id2 = 0;
  cr_assert_eq(ns_store_put_segment(s, idle, NULL, &id2), NS_OK, "%s", ns_err_detail());
  cr_assert_neq(id2, id);
  cr_assert_eq(ns_store_get_segment(s, id2, &r), NS_OK);
  cr_assert_null(r->job_id);
  cr_assert_eq(r->kind, NS_SEG_IDLE);
  cr_assert_null(r->labels);
  cr_assert_eq(memcmp(r->x, idle->x, 4 * 3 * sizeof(float)), 0);
  ns_segment_free(r);

  /* Identical metric sets are shared. */
  cr_assert_eq(count_rows(s, "metric_sets"), 1);
  cr_assert_eq(count_rows(s, "metrics"), 3);
  cr_assert_eq(count_rows(s, "metric_set_members"), 3);
  cr_assert_eq(count_rows(s, "nodes"), 1);

  cr_assert_eq(ns_store_get_segment(s, 987654, &r), NS_ERR_NOTFOUND);
  cr_assert_null(r);
  ns_segment_free(g);
  ns_segment_free(idle);
  ns_store_close(s);
}

STORE_TEST(segment_put_is_idempotent) {
  ns_store *s = open_store(b);
  ns_segment *g = make_seg("cn002", "77", 1000000, 5, false);
  int64_t a = 0, c = 0, d = 0, e = 0, f = 0;
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &a), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &c), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(a, c);
  cr_assert_eq(count_rows(s, "segments"), 1);
  /* Same key inside a transaction too. */
  cr_assert_eq(ns_store_begin(s), NS_OK);
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &d), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_commit(s), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(a, d);
  /* The split is part of the key: a derived copy of the window coexists. */
  int64_t d2 = 0, d3 = 0;
  cr_assert_eq(ns_store_put_segment(s, g, "test", &d2), NS_OK, "%s", ns_err_detail());
  cr_assert_neq(d2, a);
  cr_assert_eq(ns_store_put_segment(s, g, "test", &d3), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(d2, d3);
  cr_assert_eq(ns_store_delete_segment(s, d2), NS_OK);
  /* Idle at the same start is a different key; so is another start. */
  ns_segment *idle = make_seg("cn002", NULL, 1000000, 5, false);
  cr_assert_eq(ns_store_put_segment(s, idle, NULL, &e), NS_OK);
  cr_assert_neq(e, a);
  int64_t e2 = 0;
  cr_assert_eq(ns_store_put_segment(s, idle, NULL, &e2), NS_OK);
  cr_assert_eq(e, e2, "idle segments must be idempotent too");
  g->start_ms += 15000;
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &f), NS_OK);
  cr_assert_neq(f, a);
  cr_assert_eq(count_rows(s, "segments"), 3);
  ns_segment_free(g);
  ns_segment_free(idle);
  ns_store_close(s);
}

STORE_TEST(segment_bad_input_rejected) {
  ns_store *s = open_store(b);
  ns_segment *g = make_seg("cn003", "5", 0, 3, false);
  int64_t id = 99;
  free(g->node);
  g->node = NULL;
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_ERR_INVAL);
  cr_assert_eq(id, 0);
  g->node = strdup("cn003");
  g->kind = NS_SEG_IDLE; /* idle with a job id */
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "idle"), "%s", ns_err_detail());
  g->kind = NS_SEG_JOB;
  g->interval_ms = 0;
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_ERR_INVAL);
  g->interval_ms = 15000;
  free(g->metrics[2]);
  g->metrics[2] = strdup("cpu_user");
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "cpu_user"), "%s", ns_err_detail());
  free(g->metrics[2]);
  g->metrics[2] = strdup("bad\nname");
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_ERR_INVAL);
  cr_assert_eq(count_rows(s, "segments"), 0);
  ns_segment *empty = NULL;
  cr_assert_eq(ns_segment_create(0, 3, &empty), NS_OK);
  cr_assert_eq(ns_segment_set_meta(empty, "lab", "cn003", "5", 0, 15000), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(empty, (char *const *)names3), NS_OK);
  cr_assert_eq(ns_store_put_segment(s, empty, NULL, &id), NS_ERR_EMPTY);
  ns_segment_free(empty);
  ns_segment_free(g);
  ns_store_close(s);
}

STORE_TEST(list_segments_filters) {
  ns_store *s = open_store(b);
  int64_t ids[6];
  struct { const char *node, *job, *split; int64_t start; } spec[6] = {
      {"cn1", "10", "train", 100000}, {"cn2", "10", "train", 100000}, {"cn1", NULL, "train", 400000},
      {"cn1", "11", "test", 700000},  {"cn2", "12", NULL, 50000},      {"cn3", "11", "test", 700000},
  };
  for (int i = 0; i < 6; i++) {
    ns_segment *g = make_seg(spec[i].node, spec[i].job, spec[i].start, 10, false); /* spans 135 s */
    cr_assert_eq(ns_store_put_segment(s, g, spec[i].split, &ids[i]), NS_OK, "%s", ns_err_detail());
    ns_segment_free(g);
  }
  int64_t *v = NULL;
  size_t n = 0;
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  cr_assert_eq(ns_store_list_segments(s, &f, &v, &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 6);
  /* Ordered by (start, node). */
  int64_t want_all[6] = {ids[4], ids[0], ids[1], ids[2], ids[3], ids[5]};
  for (size_t i = 0; i < n; i++) cr_assert_eq(v[i], want_all[i], "position %zu", i);
  free(v);
  /* Spans: the same rows in the same order, with node and time span. */
  ns_seg_span *sp = NULL;
  cr_assert_eq(ns_store_list_spans(s, &f, &sp, &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 6);
  for (size_t i = 0; i < n; i++) cr_assert_eq(sp[i].id, want_all[i], "position %zu", i);
  cr_assert_str_eq(sp[0].node, "cn2");
  cr_assert_eq(sp[0].start_ms, 50000);
  cr_assert_eq(sp[0].end_ms, 185000);
  ns_seg_spans_free(sp, n);
  f.split = "nope";
  cr_assert_eq(ns_store_list_spans(s, &f, &sp, &n), NS_OK);
  cr_assert_eq(n, 0);
  cr_assert_null(sp);
  f.split = NULL;
  f.node = "cn1";
  cr_assert_eq(ns_store_list_segments(s, &f, &v, &n), NS_OK);
  cr_assert_eq(n, 3);
  free(v);
  f.kind = NS_SEG_IDLE;
  cr_assert_eq(ns_store_list_segments(s, &f, &v, &n), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert_eq(v[0], ids[2]);
  free(v);
  f = NS_SEG_FILTER_ALL;
  f.job_id = "11";
  f.split = "test";
  cr_assert_eq(ns_store_list_segments(s, &f, &v, &n), NS_OK);
  cr_assert_eq(n, 2);
  free(v);
  f = NS_SEG_FILTER_ALL;
  f.from_ms = 200000; /* overlap: [50000,185000] and [100000,235000] */
  f.to_ms = 450000;
  cr_assert_eq(ns_store_list_segments(s, &f, &v, &n), NS_OK);
  cr_assert_eq(n, 3, "got %zu", n);
  cr_assert_eq(v[0], ids[0]);
  cr_assert_eq(v[2], ids[2]);
  free(v);
  f = NS_SEG_FILTER_ALL;
  f.cluster = "other";
  cr_assert_eq(ns_store_list_segments(s, &f, &v, &n), NS_OK);
  cr_assert_eq(n, 0);
  free(v);
  f = NS_SEG_FILTER_ALL;
  f.kind = 7;
  cr_assert_eq(ns_store_list_segments(s, &f, &v, &n), NS_ERR_INVAL);
  cr_assert_eq(ns_store_list_segments(s, NULL, &v, &n), NS_OK);
  cr_assert_eq(n, 6);
  free(v);
  /* Delete, then it is gone and a second delete says so. */
  cr_assert_eq(ns_store_delete_segment(s, ids[3]), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_delete_segment(s, ids[3]), NS_ERR_NOTFOUND);
  cr_assert_eq(count_rows(s, "segments"), 5);
  ns_store_close(s);
}

/* ---------------- transactions ---------------- */

STORE_TEST(rollback_leaves_nothing) {
  ns_store *s = open_store(b);
  cr_assert_eq(ns_store_begin(s), NS_OK, "%s", ns_err_detail());
  ns_segment *g = make_seg("cn9", "1", 5000, 4, true);
  int64_t id;
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_OK, "%s", ns_err_detail());
  ns_job j = {.cluster = "lab", .job_id = "1", .nnodes = 1};
  cr_assert_eq(ns_store_put_job(s, &j), NS_OK, "%s", ns_err_detail());
  ns_label l = {.cluster = "lab", .node = "cn9", .start_ms = 1, .end_ms = 2, .label = 1};
  cr_assert_eq(ns_store_put_label(s, &l, &id), NS_OK, "%s", ns_err_detail());
  int64_t ver;
  cr_assert_eq(ns_store_put_artifact(s, "prep", "p", "abc", 3, &ver), NS_OK, "%s", ns_err_detail());
  /* A bad item fails without touching what is already in the transaction... */
  ns_label bad = l;
  bad.end_ms = 0;
  cr_assert_eq(ns_store_put_label(s, &bad, &id), NS_ERR_RANGE);
  /* ...and the importer rolls the whole file back. */
  cr_assert_eq(ns_store_rollback(s), NS_OK, "%s", ns_err_detail());
  const char *tables[] = {"segments", "jobs", "labels", "artifacts", "metric_sets", "metrics", "nodes"};
  for (size_t i = 0; i < 7; i++) cr_assert_eq(count_rows(s, tables[i]), 0, "%s", tables[i]);
  /* The store forgot the rolled-back metric set: storing again works. */
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(count_rows(s, "segments"), 1);
  cr_assert_eq(count_rows(s, "nodes"), 1);
  cr_assert_eq(ns_store_commit(s), NS_ERR_STATE);
  cr_assert_eq(ns_store_rollback(s), NS_ERR_STATE);
  ns_segment_free(g);
  ns_store_close(s);
}

STORE_TEST(failed_statement_poisons_commit_or_rolls_back) {
  ns_store *s = open_store(b);
  ns_db *db = ns_store_db(s);
  cr_assert_eq(ns_store_begin(s), NS_OK);
  ns_segment *g = make_seg("cn8", "2", 5000, 4, false);
  int64_t id;
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_OK, "%s", ns_err_detail());
  ns_status st = ns_db_exec(db, "INSERT INTO no_such_table VALUES (1)");
  cr_assert_eq(st, NS_ERR_DB);
  cr_assert(strstr(ns_err_detail(), "no_such_table"), "%s", ns_err_detail());
  cr_assert(strstr(ns_db_errmsg(db), "no_such_table"), "%s", ns_db_errmsg(db));
  if (b->kind == NS_DB_POSTGRES) {
    /* PostgreSQL aborted the transaction: commit must report it, not pretend. */
    cr_assert_eq(ns_store_commit(s), NS_ERR_DB);
    cr_assert(strstr(ns_err_detail(), "rolled back"), "%s", ns_err_detail());
    cr_assert_eq(count_rows(s, "segments"), 0);
  } else {
    cr_assert_eq(ns_store_rollback(s), NS_OK);
    cr_assert_eq(count_rows(s, "segments"), 0);
  }
  /* Nested begin is a savepoint: the inner failure is undone, the outer survives. */
  cr_assert_eq(ns_store_begin(s), NS_OK);
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_tx_depth(db), 1);
  cr_assert_eq(ns_db_begin(db), NS_OK);
  cr_assert_eq(ns_db_tx_depth(db), 2);
  cr_assert_eq(ns_db_exec(db, "INSERT INTO no_such_table VALUES (1)"), NS_ERR_DB);
  cr_assert_eq(ns_db_rollback(db), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_commit(s), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_tx_depth(db), 0);
  cr_assert_eq(count_rows(s, "segments"), 1);
  ns_segment_free(g);
  ns_store_close(s);
}

/* ---------------- jobs ---------------- */

STORE_TEST(jobs_roundtrip_upsert_list) {
  ns_store *s = open_store(b);
  ns_job full = {.cluster = "lab", .job_id = "100", .submit_ms = 1000, .start_ms = 2000, .end_ms = 9000,
                 .nnodes = 2, .nodelist = "cn[01-02]", .user = "alice", .partition = "debug",
                 .account = "acct", .state = "COMPLETED", .tag = "t1", .exit_code = 3, .shared = true};
  cr_assert_eq(ns_store_put_job(s, &full), NS_OK, "%s", ns_err_detail());
  ns_job sparse = {.cluster = "lab", .job_id = "101", .start_ms = 5000}; /* running: end unknown, strings NULL */
  cr_assert_eq(ns_store_put_job(s, &sparse), NS_OK, "%s", ns_err_detail());
  ns_job other = {.cluster = "other", .job_id = "100", .start_ms = 1, .end_ms = 2};
  cr_assert_eq(ns_store_put_job(s, &other), NS_OK, "%s", ns_err_detail());

  ns_job *j = NULL;
  cr_assert_eq(ns_store_get_job(s, "lab", "100", &j), NS_OK, "%s", ns_err_detail());
  cr_assert_str_eq(j->nodelist, "cn[01-02]");
  cr_assert_str_eq(j->user, "alice");
  cr_assert_str_eq(j->partition, "debug");
  cr_assert_str_eq(j->account, "acct");
  cr_assert_str_eq(j->state, "COMPLETED");
  cr_assert_str_eq(j->tag, "t1");
  cr_assert_eq(j->submit_ms, 1000);
  cr_assert_eq(j->end_ms, 9000);
  cr_assert_eq(j->nnodes, 2);
  cr_assert_eq(j->exit_code, 3);
  cr_assert(j->shared);
  ns_job_free(j);
  cr_assert_eq(ns_store_get_job(s, "lab", "101", &j), NS_OK);
  cr_assert_null(j->user);
  cr_assert_null(j->nodelist);
  cr_assert_eq(j->end_ms, 0);
  cr_assert_eq(j->submit_ms, 0);
  cr_assert(!j->shared);
  ns_job_free(j);

  /* Upsert: the running job ends; unknown fields keep what was known. */
  ns_job upd = {.cluster = "lab", .job_id = "101", .end_ms = 8000, .user = "bob", .state = "FAILED", .exit_code = 1};
  cr_assert_eq(ns_store_put_job(s, &upd), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_get_job(s, "lab", "101", &j), NS_OK);
  cr_assert_eq(j->start_ms, 5000);
  cr_assert_eq(j->end_ms, 8000);
  cr_assert_str_eq(j->user, "bob");
  cr_assert_eq(j->exit_code, 1);
  ns_job_free(j);
  cr_assert_eq(count_rows(s, "jobs"), 3);

  ns_job *v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_jobs(s, "lab", 0, 0, &v, &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_str_eq(v[0].job_id, "100");
  cr_assert_str_eq(v[1].job_id, "101");
  ns_jobs_free(v, n);
  cr_assert_eq(ns_store_list_jobs(s, "lab", 8500, 0, &v, &n), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(v[0].job_id, "100");
  ns_jobs_free(v, n);
  cr_assert_eq(ns_store_list_jobs(s, "lab", 0, 3000, &v, &n), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(v[0].job_id, "100");
  ns_jobs_free(v, n);
  cr_assert_eq(ns_store_list_jobs(s, "none", 0, 0, &v, &n), NS_OK);
  cr_assert_eq(n, 0);
  ns_jobs_free(v, n);

  cr_assert_eq(ns_store_get_job(s, "lab", "nope", &j), NS_ERR_NOTFOUND);
  cr_assert(strstr(ns_err_detail(), "nope"));
  ns_job bad = {.cluster = "lab"};
  cr_assert_eq(ns_store_put_job(s, &bad), NS_ERR_INVAL);
  ns_job bad2 = {.cluster = "lab", .job_id = "9", .start_ms = 10, .end_ms = 5};
  cr_assert_eq(ns_store_put_job(s, &bad2), NS_ERR_RANGE);
  ns_store_close(s);
}

/* ---------------- labels ---------------- */

STORE_TEST(labels_overlap) {
  ns_store *s = open_store(b);
  ns_label l[4] = {
      {.cluster = "lab", .node = "cn1", .start_ms = 100, .end_ms = 200, .label = 1, .author = "ann", .source = "expert",
       .note = "memory leak", .created_ms = 42},
      {.cluster = "lab", .node = "cn1", .job_id = "7", .start_ms = 300, .end_ms = 400, .label = 0, .source = "import"},
      {.cluster = "lab", .node = "cn2", .start_ms = 150, .end_ms = 350, .label = 1},
      {.cluster = "x", .node = "cn1", .start_ms = 0, .end_ms = 1000, .label = 1},
  };
  int64_t ids[4];
  for (int i = 0; i < 4; i++) cr_assert_eq(ns_store_put_label(s, &l[i], &ids[i]), NS_OK, "%s", ns_err_detail());
  ns_label *v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_labels(s, "lab", "cn1", 0, 0, &v, &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_eq(v[0].id, ids[0]);
  cr_assert_str_eq(v[0].author, "ann");
  cr_assert_str_eq(v[0].source, "expert");
  cr_assert_str_eq(v[0].note, "memory leak");
  cr_assert_eq(v[0].created_ms, 42);
  cr_assert_null(v[0].job_id);
  cr_assert_str_eq(v[1].job_id, "7");
  cr_assert_null(v[1].author);
  cr_assert_gt(v[1].created_ms, 0);
  ns_labels_free(v, n);
  /* Touching at the edge counts as overlap. */
  cr_assert_eq(ns_store_list_labels(s, "lab", NULL, 200, 300, &v, &n), NS_OK);
  cr_assert_eq(n, 3);
  ns_labels_free(v, n);
  cr_assert_eq(ns_store_list_labels(s, "lab", NULL, 201, 299, &v, &n), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(v[0].node, "cn2");
  ns_labels_free(v, n);
  cr_assert_eq(ns_store_list_labels(s, NULL, "cn1", 500, 0, &v, &n), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(v[0].cluster, "x");
  ns_labels_free(v, n);
  cr_assert_eq(ns_store_delete_label(s, ids[2]), NS_OK);
  cr_assert_eq(ns_store_delete_label(s, ids[2]), NS_ERR_NOTFOUND);
  ns_label bad = {.cluster = "lab", .node = "cn1", .start_ms = 5, .end_ms = 4, .label = 1};
  cr_assert_eq(ns_store_put_label(s, &bad, NULL), NS_ERR_RANGE);
  bad.end_ms = 6;
  bad.label = 2;
  cr_assert_eq(ns_store_put_label(s, &bad, NULL), NS_ERR_RANGE);
  bad.label = 1;
  bad.node = NULL;
  cr_assert_eq(ns_store_put_label(s, &bad, NULL), NS_ERR_INVAL);
  cr_assert_eq(count_rows(s, "labels"), 3);
  ns_store_close(s);
}

/* ---------------- artifacts ---------------- */

STORE_TEST(artifact_versions) {
  ns_store *s = open_store(b);
  int64_t v1, v2, v3, vo;
  unsigned char bin[300];
  for (int i = 0; i < 300; i++) bin[i] = (unsigned char)(i * 7);
  cr_assert_eq(ns_store_put_artifact(s, "prep", "lab", "one", 3, &v1), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_put_artifact(s, "prep", "lab", bin, sizeof bin, &v2), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_put_artifact(s, "prep", "other", "x", 1, &vo), NS_OK);
  cr_assert_eq(ns_store_put_artifact(s, "prep", "lab", NULL, 0, &v3), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(v1, 1);
  cr_assert_eq(v2, 2);
  cr_assert_eq(v3, 3);
  cr_assert_eq(vo, 1);
  void *d = NULL;
  size_t n = 99;
  int64_t got = 0;
  cr_assert_eq(ns_store_get_artifact(s, "prep", "lab", 0, &d, &n, &got), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(got, 3);
  cr_assert_eq(n, 0);
  free(d);
  cr_assert_eq(ns_store_get_artifact(s, "prep", "lab", 2, &d, &n, &got), NS_OK);
  cr_assert_eq(got, 2);
  cr_assert_eq(n, sizeof bin);
  cr_assert_eq(memcmp(d, bin, n), 0);
  free(d);
  cr_assert_eq(ns_store_get_artifact(s, "prep", "lab", 1, &d, &n, NULL), NS_OK);
  cr_assert_eq(n, 3);
  cr_assert_eq(memcmp(d, "one", 3), 0);
  free(d);
  cr_assert_eq(ns_store_get_artifact(s, "prep", "lab", 9, &d, &n, &got), NS_ERR_NOTFOUND);
  cr_assert_null(d);
  cr_assert_eq(ns_store_get_artifact(s, "model", "lab", 0, &d, &n, &got), NS_ERR_NOTFOUND);
  cr_assert_eq(ns_store_put_artifact(s, "", "lab", "x", 1, &got), NS_ERR_INVAL);
  ns_store_close(s);
}

/* ---------------- raw telemetry ---------------- */

static ns_mts *make_mts(const char *node, size_t M, const char *const *names, int64_t t0, size_t T, double base) {
  ns_mts *m = NULL;
  cr_assert_eq(ns_mts_create(node, M, (char *const *)names, &m), NS_OK);
  double row[8];
  for (size_t t = 0; t < T; t++) {
    for (size_t k = 0; k < M; k++) row[k] = base + (double)t * 0.5 + (double)k;
    cr_assert_eq(ns_mts_append(m, t0 + (int64_t)t * 15000, row), NS_OK);
  }
  return m;
}

STORE_TEST(raw_roundtrip_chunks_and_merge) {
  ns_store *s = open_store(b);
  const char *n2[] = {"cpu", "bytes_in"};
  ns_mts *a = make_mts("cn1", 2, n2, 0, 10000, 1.0); /* > one chunk */
  a->is_counter[1] = 1;
  a->x[1] = 123456789012345.0; /* a counter needs all its bits */
  a->x[2] = NAN;               /* missing sample */
  cr_assert_eq(ns_mts_enable_labels(a), NS_OK);
  a->labels[5] = 1;
  cr_assert_eq(ns_store_put_raw(s, "lab", a, "csv"), NS_OK, "%s", ns_err_detail());
  cr_assert_geq(count_rows(s, "raw_chunks"), 3);
  ns_mts *r = NULL;
  cr_assert_eq(ns_store_get_raw(s, "lab", "cn1", 0, 0, &r), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(r->T, 10000);
  cr_assert_eq(r->M, 2);
  cr_assert_str_eq(r->metrics[0], "cpu");
  cr_assert_str_eq(r->metrics[1], "bytes_in");
  cr_assert_eq(r->is_counter[1], 1);
  cr_assert_eq(r->is_counter[0], 0);
  cr_assert_eq(r->x[1], 123456789012345.0);
  cr_assert(isnan(r->x[2]));
  cr_assert_not_null(r->labels);
  cr_assert_eq(r->labels[5], 1);
  cr_assert_eq(r->labels[6], 0);
  for (size_t t = 1; t < 10000; t++) {
    cr_assert_eq(r->ts_ms[t], (int64_t)t * 15000);
    cr_assert_eq(r->x[t * 2 + 1], a->x[t * 2 + 1]);
  }
  ns_mts_free(r);

  /* Range query keeps rows in [from, to] only. */
  cr_assert_eq(ns_store_get_raw(s, "lab", "cn1", 15000 * 100, 15000 * 199, &r), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(r->T, 100);
  cr_assert_eq(r->ts_ms[0], 15000 * 100);
  ns_mts_free(r);

  /* Re-importing the same data does not duplicate it. */
  int64_t chunks = count_rows(s, "raw_chunks");
  cr_assert_eq(ns_store_put_raw(s, "lab", a, "csv"), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(count_rows(s, "raw_chunks"), chunks);
  ns_mts_free(a);
  ns_store_close(s);
}

STORE_TEST(raw_union_of_metric_sets) {
  ns_store *s = open_store(b);
  const char *na[] = {"cpu", "mem"};
  const char *nb[] = {"mem", "gpu"};
  /* a: t = 0..4 ; b: t = 3..7 (overlap at 3,4), values float32-exact. */
  ns_mts *a = make_mts("cn5", 2, na, 0, 5, 10.0);
  ns_mts *bb = make_mts("cn5", 2, nb, 3 * 15000, 5, 100.0);
  bb->x[1 * 2 + 0] = NAN; /* b lacks mem at t=4: a's value must survive */
  cr_assert_eq(ns_store_put_raw(s, "lab", a, "ldms"), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_put_raw(s, "lab", bb, "ldms"), NS_OK, "%s", ns_err_detail());
  ns_mts *r = NULL;
  cr_assert_eq(ns_store_get_raw(s, "lab", "cn5", 0, 0, &r), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(r->M, 3);
  cr_assert_str_eq(r->metrics[0], "cpu");
  cr_assert_str_eq(r->metrics[1], "mem");
  cr_assert_str_eq(r->metrics[2], "gpu");
  cr_assert_eq(r->T, 8, "rows with one stamp merge: got %zu", r->T);
  cr_assert_null(r->labels);
  for (size_t t = 0; t < 8; t++) cr_assert_eq(r->ts_ms[t], (int64_t)t * 15000);
  /* t=1: only a. */
  cr_assert_eq(r->x[1 * 3 + 0], 10.5);
  cr_assert_eq(r->x[1 * 3 + 1], 11.5);
  cr_assert(isnan(r->x[1 * 3 + 2]));
  /* t=3: both; b (stored later) wins mem. */
  cr_assert_eq(r->x[3 * 3 + 0], 11.5);
  cr_assert_eq(r->x[3 * 3 + 1], 100.0);
  cr_assert_eq(r->x[3 * 3 + 2], 101.0);
  /* t=4: b's mem is missing, so a's stays. */
  cr_assert_eq(r->x[4 * 3 + 1], 13.0);
  cr_assert_eq(r->x[4 * 3 + 2], 101.5);
  /* t=7: only b. */
  cr_assert(isnan(r->x[7 * 3 + 0]));
  cr_assert_eq(r->x[7 * 3 + 1], 102.0);
  ns_mts_free(r);

  /* Unsorted input is stored in time order. */
  ns_mts *u = make_mts("cn6", 2, na, 0, 4, 0.0);
  int64_t tmp = u->ts_ms[0];
  u->ts_ms[0] = u->ts_ms[3];
  u->ts_ms[3] = tmp;
  cr_assert_eq(ns_store_put_raw(s, "lab", u, NULL), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_get_raw(s, "lab", "cn6", 0, 0, &r), NS_OK);
  cr_assert_eq(r->T, 4);
  for (size_t t = 1; t < 4; t++) cr_assert_lt(r->ts_ms[t - 1], r->ts_ms[t]);
  cr_assert_eq(r->x[0], 1.5); /* the row stamped 0 was row 3 */
  ns_mts_free(r);

  char **nodes = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_raw_nodes(s, "lab", &nodes, &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_str_eq(nodes[0], "cn5");
  cr_assert_str_eq(nodes[1], "cn6");
  ns_strings_free(nodes, n);
  cr_assert_eq(ns_store_list_raw_nodes(s, "nope", &nodes, &n), NS_OK);
  cr_assert_eq(n, 0);
  ns_strings_free(nodes, n);

  cr_assert_eq(ns_store_get_raw(s, "lab", "cn404", 0, 0, &r), NS_ERR_NOTFOUND);
  cr_assert(strstr(ns_err_detail(), "cn404"));
  cr_assert_eq(ns_store_get_raw(s, "lab", "cn5", 15000 * 100, 15000 * 200, &r), NS_ERR_NOTFOUND);
  ns_mts *empty = NULL;
  cr_assert_eq(ns_mts_create("cn7", 2, (char *const *)na, &empty), NS_OK);
  cr_assert_eq(ns_store_put_raw(s, "lab", empty, NULL), NS_ERR_EMPTY);
  cr_assert_eq(ns_store_put_raw(s, "", a, NULL), NS_ERR_INVAL);
  ns_mts_free(empty);
  ns_mts_free(a);
  ns_mts_free(bb);
  ns_mts_free(u);
  ns_store_close(s);
}

/* ---------------- driver ---------------- */

STORE_TEST(driver_types_and_placeholders) {
  ns_db *db = NULL;
  cr_assert_eq(ns_db_open(b->uri, &db), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_exec(db, "CREATE TABLE t (i BIGINT, d DOUBLE PRECISION, s TEXT, b BYTEA)"), NS_OK,
               "%s", ns_err_detail());
  ns_db_stmt *q = NULL;
  /* A '?' inside a literal is not a parameter. */
  cr_assert_eq(ns_db_prepare(db, "INSERT INTO t (i, d, s, b) VALUES (?1, ?2, COALESCE(?3, 'what?'), ?4)", &q), NS_OK,
               "%s", ns_err_detail());
  unsigned char blob[256];
  for (int i = 0; i < 256; i++) blob[i] = (unsigned char)i;
  struct { int64_t i; double d; const char *s; size_t bn; } rows[] = {
      {INT64_MIN, -DBL_MAX, "ünïcødé ✓", 256}, {INT64_MAX, DBL_MIN, NULL, 0}, {0, 0.1, "", 1},
  };
  for (int r = 0; r < 3; r++) {
    cr_assert_eq(ns_db_bind_int64(q, 1, rows[r].i), NS_OK);
    cr_assert_eq(ns_db_bind_double(q, 2, rows[r].d), NS_OK);
    cr_assert_eq(ns_db_bind_text(q, 3, rows[r].s), NS_OK);
    cr_assert_eq(ns_db_bind_blob(q, 4, blob, rows[r].bn), NS_OK);
    bool row = true;
    cr_assert_eq(ns_db_step(q, &row), NS_OK, "%s", ns_err_detail());
    cr_assert(!row);
    cr_assert_eq(ns_db_changes(q), 1);
    cr_assert_eq(ns_db_reset(q), NS_OK);
  }
  cr_assert_eq(ns_db_bind_int64(q, 5, 1), NS_ERR_RANGE);
  ns_db_finalize(q);
  cr_assert_eq(ns_db_prepare(db, "SELECT i, d, s, b FROM t ORDER BY i", &q), NS_OK);
  cr_assert_eq(ns_db_column_count(q), 4);
  int r = 0;
  bool row;
  int order[3] = {0, 2, 1};
  while (ns_db_step(q, &row) == NS_OK && row) {
    int k = order[r++];
    cr_assert_eq(ns_db_col_int64(q, 0), rows[k].i);
    cr_assert_eq(ns_db_col_double(q, 1), rows[k].d, "row %d: %.17g", k, ns_db_col_double(q, 1));
    cr_assert_str_eq(ns_db_col_text(q, 2), rows[k].s ? rows[k].s : "what?");
    size_t bn = 99;
    const void *p = ns_db_col_blob(q, 3, &bn);
    cr_assert_eq(bn, rows[k].bn);
    cr_assert(!ns_db_col_is_null(q, 3), "an empty blob is not NULL");
    if (bn) cr_assert_eq(memcmp(p, blob, bn), 0);
  }
  cr_assert_eq(r, 3);
  ns_db_finalize(q);
  /* Syntax errors come back at prepare with the driver's text. */
  cr_assert_eq(ns_db_prepare(db, "SELEKT 1", &q), NS_ERR_DB);
  cr_assert_null(q);
  cr_assert(strstr(ns_err_detail(), "SELEKT") || strstr(ns_err_detail(), "syntax"), "%s", ns_err_detail());
  /* Statements prepared per call are reused after finalize: results stay right
   * across many texts (beyond the reuse pool) and repeated bindings. */
  for (int round = 0; round < 3; round++)
    for (int k = 0; k < 70; k++) {
      char sql[96];
      snprintf(sql, sizeof sql, "SELECT ?1 + %d, count(*) FROM t WHERE i > ?2", k);
      cr_assert_eq(ns_db_prepare(db, sql, &q), NS_OK, "%s", ns_err_detail());
      cr_assert_eq(ns_db_bind_int64(q, 1, round), NS_OK);
      cr_assert_eq(ns_db_bind_int64(q, 2, 0), NS_OK);
      bool rw = false;
      cr_assert_eq(ns_db_step(q, &rw), NS_OK, "%s", ns_err_detail());
      cr_assert(rw);
      cr_assert_eq(ns_db_col_int64(q, 0), round + k);
      cr_assert_eq(ns_db_col_int64(q, 1), 1); /* only INT64_MAX > 0 */
      ns_db_finalize(q);
    }
  /* Every column type reads back through every accessor (PostgreSQL: binary
   * decoding for int2/int4/float4/bool, text fallback for numeric). */
  cr_assert_eq(ns_db_prepare(db, "SELECT CAST(7 AS SMALLINT), CAST(-8 AS INTEGER), CAST(2.5 AS REAL), 1 = 1,"
                                  " 'txt', CAST(NULL AS TEXT)", &q), NS_OK, "%s", ns_err_detail());
  bool rw = false;
  cr_assert_eq(ns_db_step(q, &rw), NS_OK, "%s", ns_err_detail());
  cr_assert(rw);
  cr_assert_eq(ns_db_column_count(q), 6);
  cr_assert_eq(ns_db_col_int64(q, 0), 7);
  cr_assert_str_eq(ns_db_col_text(q, 0), "7");
  cr_assert_eq(ns_db_col_double(q, 1), -8.0);
  cr_assert_eq(ns_db_col_int64(q, 1), -8);
  cr_assert_eq(ns_db_col_double(q, 2), 2.5);
  cr_assert_eq(ns_db_col_int64(q, 3), 1);
  cr_assert_str_eq(ns_db_col_text(q, 4), "txt");
  cr_assert(ns_db_col_is_null(q, 5));
  cr_assert_null(ns_db_col_text(q, 5));
  cr_assert_eq(ns_db_col_int64(q, 5), 0);
  ns_db_finalize(q);
  cr_assert_eq(ns_db_prepare(db, "SELECT SUM(i / 4), AVG(d) FROM t WHERE i = 0", &q), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_step(q, &rw), NS_OK, "%s", ns_err_detail());
  cr_assert(rw);
  cr_assert_eq(ns_db_col_int64(q, 0), 0);
  cr_assert_str_eq(ns_db_col_text(q, 0), "0");
  cr_assert_float_eq(ns_db_col_double(q, 1), 0.1, 1e-12);
  ns_db_finalize(q);
  /* One statement per prepare, on both backends. */
  cr_assert_neq(ns_db_prepare(db, "SELECT 1; SELECT 2", &q), NS_OK);
  cr_assert_null(q);
  cr_assert_eq(ns_db_prepare(db, "SELECT 1;  ", &q), NS_OK, "%s", ns_err_detail());
  ns_db_finalize(q);
  ns_db_finalize(NULL);
  ns_db_close(db);
  ns_db_close(NULL);
}

static void run_children(int nproc, void (*fn)(const char *uri, int k), const char *uri) {
  pid_t pids[8];
  for (int k = 0; k < nproc; k++) {
    pids[k] = fork();
    cr_assert_geq(pids[k], 0);
    if (pids[k] == 0) {
      fn(uri, k);
      _exit(0);
    }
  }
  for (int k = 0; k < nproc; k++) {
    int wst = 0;
    cr_assert_eq(waitpid(pids[k], &wst, 0), pids[k]);
    cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "child %d failed (status %d)", k, wst);
  }
}

static void writer_child(const char *uri, int k) {
  ns_store *s = NULL;
  if (ns_store_open(uri, &s)) {
    fprintf(stderr, "child %d: open: %s\n", k, ns_err_detail());
    _exit(1);
  }
  /* Small transactions interleaved with autocommit puts: writers contend for the lock. */
  for (int i = 0; i < 60; i++) {
    char node[16];
    snprintf(node, sizeof node, "w%d", k);
    ns_segment *g = make_seg(node, NULL, (int64_t)i * 1000000, 8, false);
    bool tx = i % 2 == 0;
    int64_t id;
    ns_status st = tx ? ns_store_begin(s) : NS_OK;
    if (!st) st = ns_store_put_segment(s, g, NULL, &id);
    if (!st && tx) st = ns_store_commit(s);
    ns_segment_free(g);
    if (st) {
      fprintf(stderr, "child %d: put %d: %s\n", k, i, ns_err_message(st));
      _exit(1);
    }
  }
  ns_store_close(s);
}

STORE_TEST(concurrent_writers) {
  /* Two processes each create the schema on first open, then write together. */
  run_children(3, writer_child, b->uri);
  ns_store *s = open_store(b);
  cr_assert_eq(count_rows(s, "segments"), 180);
  cr_assert_eq(count_rows(s, "metric_sets"), 1);
  cr_assert_eq(count_rows(s, "schema_version"), ns_sql_latest_version());
  ns_store_close(s);
}

STORE_TEST(writer_waits_for_a_held_lock) {
  ns_store *s = open_store(b);
  int go[2];
  cr_assert_eq(pipe(go), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    /* Hold a write transaction for half a second, then commit. */
    ns_store *c = NULL;
    if (ns_store_open(b->uri, &c) || ns_store_begin(c)) _exit(1);
    ns_segment *g = make_seg("holder", "1", 0, 4, false);
    int64_t id;
    if (ns_store_put_segment(c, g, NULL, &id)) _exit(2);
    if (write(go[1], "x", 1) != 1) _exit(3);
    usleep(500000);
    if (ns_store_commit(c)) _exit(4);
    ns_segment_free(g);
    ns_store_close(c);
    _exit(0);
  }
  char x;
  cr_assert_eq(read(go[0], &x, 1), 1);
  /* SQLite: this waits on busy_timeout instead of failing with "database is locked". */
  ns_segment *g = make_seg("waiter", "2", 0, 4, false);
  int64_t id;
  cr_assert_eq(ns_store_begin(s), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_put_segment(s, g, NULL, &id), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_commit(s), NS_OK, "%s", ns_err_detail());
  int wst = 0;
  cr_assert_eq(waitpid(pid, &wst, 0), pid);
  cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "holder failed: %d", wst);
  cr_assert_eq(count_rows(s, "segments"), 2);
  close(go[0]);
  close(go[1]);
  ns_segment_free(g);
  ns_store_close(s);
}

static void artifact_child(const char *uri, int k) {
  ns_store *s = NULL;
  if (ns_store_open(uri, &s)) _exit(1);
  for (int i = 0; i < 20; i++) {
    int64_t v;
    if (ns_store_put_artifact(s, "lib", "shared", &k, sizeof k, &v)) {
      fprintf(stderr, "child %d: %s\n", k, ns_err_detail());
      _exit(1);
    }
  }
  ns_store_close(s);
}

STORE_TEST(concurrent_artifact_versions) {
  ns_store *s = open_store(b);
  ns_store_close(s);
  run_children(3, artifact_child, b->uri);
  s = open_store(b);
  cr_assert_eq(count_rows(s, "artifacts"), 60);
  void *d;
  size_t n;
  int64_t v;
  cr_assert_eq(ns_store_get_artifact(s, "lib", "shared", 0, &d, &n, &v), NS_OK);
  cr_assert_eq(v, 60);
  free(d);
  ns_store_close(s);
}

/* ---------------- open failures (no server needed) ---------------- */

Test(open, bad_uris_say_what_is_wrong) {
  ns_store *s = NULL;
  ns_status st = ns_store_open("mysql://root@localhost/x", &s);
  cr_assert_eq(st, NS_ERR_INVAL);
  cr_assert_null(s);
  cr_assert(strstr(ns_err_detail(), "mysql://") && strstr(ns_err_detail(), "sqlite:"), "%s", ns_err_detail());
  cr_assert_eq(ns_store_open("", &s), NS_ERR_INVAL);
  cr_assert_eq(ns_store_open(NULL, &s), NS_ERR_INVAL);
  cr_assert_eq(ns_store_open("sqlite:", &s), NS_ERR_INVAL);
  st = ns_store_open("postgresql://u:pw@127.0.0.1/db?no_such_option=1", &s);
  cr_assert_eq(st, NS_ERR_INVAL, "%s", ns_err_message(st));
  cr_assert(strstr(ns_err_detail(), "no_such_option") && !strstr(ns_err_detail(), ":pw@"), "%s", ns_err_detail());
}

Test(open, sqlite_unwritable_path) {
  ns_store *s = NULL;
  ns_status st = ns_store_open("sqlite:/nonexistent-dir/nsentry/x.db", &s);
  cr_assert_eq(st, NS_ERR_IO, "%s", ns_err_message(st));
  cr_assert_null(s);
  cr_assert(strstr(ns_err_detail(), "/nonexistent-dir/nsentry/x.db"), "%s", ns_err_detail());
  /* /proc refuses new files even to root. */
  st = ns_store_open("sqlite:/proc/nsentry-test.db", &s);
  cr_assert_eq(st, NS_ERR_IO, "%s", ns_err_message(st));
  cr_assert(strstr(ns_err_detail(), "/proc/nsentry-test.db"), "%s", ns_err_detail());
}

Test(open, sqlite_not_a_database) {
  char path[] = "/tmp/ns_store_bad_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  char junk[4096];
  memset(junk, 'x', sizeof junk);
  cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
  close(fd);
  char uri[64];
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  ns_store *s = NULL;
  ns_status st = ns_store_open(uri, &s);
  unlink(path);
  cr_assert_eq(st, NS_ERR_CORRUPT, "%s", ns_err_message(st));
  cr_assert(strstr(ns_err_detail(), path), "%s", ns_err_detail());
}

Test(open, sqlite_memory) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open("sqlite::memory:", &s), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_store_schema_version(s), ns_sql_latest_version());
  ns_store_close(s);
}

Test(open, postgres_unreachable) {
  ns_store *s = NULL;
  /* Port 1 on loopback: nothing listens; the password must not leak. */
  ns_status st = ns_store_open("postgresql://nsentry:s3cret@127.0.0.1:1/nsentry?connect_timeout=3", &s);
  cr_assert_eq(st, NS_ERR_NET, "%s", ns_err_message(st));
  cr_assert_null(s);
  cr_assert(strstr(ns_err_detail(), "127.0.0.1"), "%s", ns_err_detail());
  cr_assert(!strstr(ns_err_detail(), "s3cret"), "%s", ns_err_detail());
  st = ns_store_open("host=127.0.0.1 port=1 password=s3cret connect_timeout=3", &s);
  cr_assert_eq(st, NS_ERR_NET);
  cr_assert(!strstr(ns_err_detail(), "s3cret"), "%s", ns_err_detail());
}

Test(postgres_only, lost_connection_is_a_network_error, .fini = g_fini) {
  backend_init(&g_b, NS_DB_POSTGRES, "lost_conn");
  ns_store *s = open_store(&g_b);
  ns_db_stmt *q = NULL;
  bool row = false;
  cr_assert_eq(ns_db_prepare(ns_store_db(s), "SELECT pg_backend_pid()", &q), NS_OK);
  cr_assert_eq(ns_db_step(q, &row), NS_OK);
  cr_assert(row);
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long)ns_db_col_int64(q, 0));
  ns_db_finalize(q);
  db_exec_admin(sql);
  ns_job j = {.cluster = "lab", .job_id = "1"};
  ns_status st = ns_store_put_job(s, &j);
  cr_assert_eq(st, NS_ERR_NET, "%s", ns_err_message(st));
  cr_assert(strstr(ns_err_detail(), g_b.dbname), "%s", ns_err_detail());
  ns_store_close(s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "table.column" of every column, sorted. */
static size_t schema_columns(const char *uri, const char *sql, char **out, size_t cap) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(uri, &s), NS_OK, "%s", ns_err_detail());
  ns_db_stmt *q = NULL;
  cr_assert_eq(ns_db_prepare(ns_store_db(s), sql, &q), NS_OK, "%s", ns_err_detail());
  bool row;
  size_t n = 0;
  while (ns_db_step(q, &row) == NS_OK && row) {
    cr_assert_lt(n, cap);
    char buf[160];
    snprintf(buf, sizeof buf, "%s.%s", ns_db_col_text(q, 0), ns_db_col_text(q, 1));
    out[n++] = strdup(buf);
  }
  ns_db_finalize(q);
  ns_store_close(s);
  qsort(out, n, sizeof *out, cmp_str);
  return n;
}

Test(postgres_only, dialects_have_the_same_columns, .fini = g_fini) {
  backend_init(&g_b, NS_DB_POSTGRES, "parity");
  backend_init(&g_b2, NS_DB_SQLITE, "parity");
  const backend *sq = &g_b2, *pg = &g_b;
  static char *a[1024], *c[1024];
  size_t na = schema_columns(sq->uri,
                             "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p"
                             " WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
                             a, 1024);
  size_t nc = schema_columns(pg->uri,
                             "SELECT table_name::text, column_name::text FROM information_schema.columns"
                             " WHERE table_schema = current_schema()",
                             c, 1024);
  cr_assert_gt(na, 50);
  for (size_t i = 0; i < na && i < nc; i++) cr_assert_str_eq(a[i], c[i], "column %zu differs", i);
  cr_assert_eq(na, nc);
  for (size_t i = 0; i < na; i++) free(a[i]);
  for (size_t i = 0; i < nc; i++) free(c[i]);
}

Test(open, postgres_missing_database) {
  const char *base = getenv("NS_TEST_PG_URI");
  if (!base) cr_skip("PostgreSQL tests skipped: NS_TEST_PG_URI is not set");
  char uri[512];
  const char *slash = strrchr(base, '/');
  snprintf(uri, sizeof uri, "%.*s/ns_no_such_db", (int)(slash - base), base);
  ns_store *s = NULL;
  ns_status st = ns_store_open(uri, &s);
  cr_assert_neq(st, NS_OK);
  cr_assert(strstr(ns_err_detail(), "ns_no_such_db"), "%s", ns_err_detail());
}
