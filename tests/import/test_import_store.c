/* Store-backed imports: one transaction each, idempotent NodeSentry import,
 * the public NodeSentry sample (skipped when ../shared is absent). Each
 * IMPORT_TEST runs on SQLite and, when NS_TEST_PG_URI is set, PostgreSQL. */
#include <math.h>
#include <stdint.h>
#include "helpers.h"
#include "ns_csv.h"
#include "ns_db.h"
#include "ns_import.h"
#include "ns_log.h"
#include "ns_store.h"

typedef struct {
  char uri[512], dir[64], dbname[64];
} backend;

static void pg_admin(const char *sql) {
  ns_db *db = NULL;
  cr_assert_eq(ns_db_open(getenv("NS_TEST_PG_URI"), &db), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_exec(db, sql), NS_OK, "%s: %s", sql, ns_err_detail());
  ns_db_close(db);
}

static void backend_init(backend *b, bool pg, const char *name) {
  memset(b, 0, sizeof *b);
  ns_log_set_level(NS_LOG_ERROR);
  if (!pg) {
    snprintf(b->dir, sizeof b->dir, "/tmp/ns_impdb_XXXXXX");
    cr_assert_not_null(mkdtemp(b->dir));
    snprintf(b->uri, sizeof b->uri, "sqlite:%s/t.db", b->dir);
    return;
  }
  const char *base = getenv("NS_TEST_PG_URI");
  if (!base || !*base) cr_skip("PostgreSQL tests skipped: NS_TEST_PG_URI is not set (scripts/test.sh starts a server)");
  static int seq;
  snprintf(b->dbname, sizeof b->dbname, "ns_imp_%d_%d_%.20s", (int)getpid(), ++seq, name);
  char sql[160];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", b->dbname);
  pg_admin(sql);
  const char *slash = strrchr(base, '/');
  cr_assert_not_null(slash);
  snprintf(b->uri, sizeof b->uri, "%.*s/%s", (int)(slash - base), base, b->dbname);
}

static void backend_fini(backend *b) {
  if (b->dir[0]) rm_rf(b->dir);
  if (b->dbname[0]) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", b->dbname);
    pg_admin(sql);
  }
}

static ns_store *open_store(const backend *b) {
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(b->uri, &s), NS_OK, "%s: %s", b->uri, ns_err_detail());
  return s;
}

#define IMPORT_TEST(name)                \
  static void name##_body(ns_store *s);  \
  Test(sqlite, name) {                   \
    backend b;                           \
    backend_init(&b, false, #name);      \
    ns_store *s = open_store(&b);        \
    name##_body(s);                      \
    ns_store_close(s);                   \
    backend_fini(&b);                    \
  }                                      \
  Test(postgres, name) {                 \
    backend b;                           \
    backend_init(&b, true, #name);       \
    ns_store *s = open_store(&b);        \
    name##_body(s);                      \
    ns_store_close(s);                   \
    backend_fini(&b);                    \
  }                                      \
  static void name##_body(ns_store *s)

static size_t count_segments(ns_store *s, const char *split, const char *node) {
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.split = split;
  f.node = node;
  int64_t *ids = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(s, &f, &ids, &n), NS_OK, "%s", ns_err_detail());
  free(ids);
  return n;
}

static size_t count_jobs(ns_store *s, const char *cluster) {
  ns_job *v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_jobs(s, cluster, 0, 0, &v, &n), NS_OK, "%s", ns_err_detail());
  ns_jobs_free(v, n);
  return n;
}

static size_t count_labels(ns_store *s, const char *cluster, const char *node) {
  ns_label *v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_labels(s, cluster, node, 0, 0, &v, &n), NS_OK, "%s", ns_err_detail());
  ns_labels_free(v, n);
  return n;
}

static void note_progress(void *ctx, int64_t done, int64_t total) {
  int64_t *p = ctx;
  cr_assert(done >= p[0] && done <= total);
  p[0] = done;
  p[1] = total;
}

/* A copy of the NodeSentry fixture to break in place. */
static void copy_fixture(char *dir) {
  strcpy(dir, "/tmp/ns_nsdir_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'/", fx("nodesentry"), dir);
  cr_assert_eq(system(cmd), 0);
}

IMPORT_TEST(nodesentry_fixture) {
  ns_import_report rep = {0};
  ns_status st = ns_import_nodesentry(fx("nodesentry"), s, "ns", NULL, &rep);
  cr_assert_eq(st, NS_OK, "%s", ns_err_detail());
  cr_assert_eq(rep.jobs, 3);
  cr_assert_eq(rep.segments, 3);
  cr_assert_eq(rep.rows, 12);
  cr_assert_eq(rep.points, 36);
  cr_assert_eq(rep.labels, 3); /* runs 0,0 | 1,1 | 0 */
  cr_assert_eq(rep.nodes, 2);
  cr_assert_eq(count_segments(s, "train", NULL), 2);
  cr_assert_eq(count_segments(s, "test", NULL), 1);
  cr_assert_eq(count_jobs(s, "ns"), 3);
  ns_job *j = NULL;
  cr_assert_eq(ns_store_get_job(s, "ns", "1", &j), NS_OK);
  cr_assert_str_eq(j->tag, "train");
  cr_assert_eq(j->nnodes, 2);
  ns_job_free(j);

  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.split = "test";
  int64_t *ids = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(s, &f, &ids, &n), NS_OK);
  ns_segment *g = NULL;
  cr_assert_eq(ns_store_get_segment(s, ids[0], &g), NS_OK, "%s", ns_err_detail());
  free(ids);
  cr_assert_str_eq(g->node, "n2");
  cr_assert_str_eq(g->job_id, "2");
  cr_assert_eq(g->T, 5);
  cr_assert_eq(g->interval_ms, 15000);
  cr_assert_eq(g->x[2 * 3 + 0], 4.5f);
  cr_assert_not_null(g->labels);
  cr_assert_eq(g->labels[2], 1);
  ns_segment_free(g);

  ns_label *l = NULL;
  cr_assert_eq(ns_store_list_labels(s, "ns", "n2", 0, 0, &l, &n), NS_OK);
  cr_assert_eq(n, 3);
  int anomalous = 0;
  for (size_t i = 0; i < n; i++) {
    cr_assert_str_eq(l[i].source, "import");
    cr_assert_str_eq(l[i].job_id, "2");
    if (l[i].label == 1) {
      anomalous++;
      int64_t t0;
      cr_assert_eq(ns_parse_time_ms("2024-07-15 11:40:00", 19, false, &t0), NS_OK);
      cr_assert_eq(l[i].start_ms, t0);
      cr_assert_eq(l[i].end_ms, t0 + 15000);
    }
  }
  cr_assert_eq(anomalous, 1);
  ns_labels_free(l, n);

  /* Importing again changes nothing; progress covers the whole folder. */
  memset(&rep, 0, sizeof rep);
  int64_t pr[2] = {-1, -1};
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.progress = note_progress;
  o.progress_ctx = pr;
  cr_assert_eq(ns_import_nodesentry(fx("nodesentry"), s, "ns", &o, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(rep.labels, 0);
  cr_assert(pr[1] > 0 && pr[0] == pr[1], "progress %lld of %lld", (long long)pr[0], (long long)pr[1]);
  cr_assert_eq(count_segments(s, NULL, NULL), 3);
  cr_assert_eq(count_labels(s, "ns", NULL), 3);
}

static void ns_bad(ns_store *s, void (*breakit)(const char *dir), ns_status want, const char *detail) {
  char dir[64];
  copy_fixture(dir);
  breakit(dir);
  ns_import_report rep = {0};
  ns_status st = ns_import_nodesentry(dir, s, "ns", NULL, &rep);
  cr_assert_eq(st, want, "got %s: %s", ns_status_name(st), ns_err_detail());
  assert_detail_has(detail);
  /* one transaction: nothing at all was stored */
  cr_assert_eq(count_segments(s, NULL, NULL), 0);
  cr_assert_eq(count_jobs(s, "ns"), 0);
  cr_assert_eq(count_labels(s, "ns", NULL), 0);
  rm_rf(dir);
}

static void unknown_job(const char *d) { put_file(d, "Test/n2_Job-9.csv", "timestamp,M\n2024-07-15 11:39:30,1\n"); }
static void wrong_node(const char *d) {
  put_file(d, "Train/n3/n3_Job-1.csv", "timestamp,M1\n2024-07-15 11:39:30,1\n2024-07-15 11:39:45,1\n");
}
static void bad_value(const char *d) {
  put_file(d, "Test/n3_Job-3.csv", "timestamp,Metric1,Label\n2024-07-16 00:00:00,1,0\n2024-07-16 00:00:15,x,0\n");
}
static void bad_name(const char *d) { put_file(d, "Train/n1/other.csv", "timestamp,M1\n"); }
static void no_job_file(const char *d) {
  char p[128];
  snprintf(p, sizeof p, "%s/Job", d);
  unlink(p);
}
static void bad_job_line(const char *d) { put_file(d, "Job", "JobID|NodeList|Start|End|Tag\n1|n[1-|x|y|z\n"); }

IMPORT_TEST(nodesentry_bad_dir_imports_nothing) {
  ns_bad(s, unknown_job, NS_ERR_NOTFOUND, "n2_Job-9.csv: job 'Job-9' is not in the Job file");
  ns_bad(s, wrong_node, NS_ERR_NOTFOUND, "n3_Job-1.csv: node 'n3' is not in job 1's node list 'n1,n2'");
  ns_bad(s, bad_value, NS_ERR_PARSE, "n3_Job-3.csv:3:21: bad number 'x'");
  ns_bad(s, bad_name, NS_ERR_FORMAT, "other.csv: name is not <node>_<job>.csv");
  ns_bad(s, no_job_file, NS_ERR_IO, "/Job");
  ns_bad(s, bad_job_line, NS_ERR_PARSE, "Job:2:3");
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_nodesentry("/nonexistent", s, "ns", NULL, &rep), NS_ERR_IO);
  cr_assert_eq(ns_import_nodesentry(fx("sacct"), s, "ns", NULL, &rep), NS_ERR_FORMAT);
  assert_detail_has("neither Train/ nor Test/");
}

IMPORT_TEST(sacct_store) {
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_sacct_store(s, fx("sacct/basic.txt"), "lab", NULL, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(count_jobs(s, "lab"), 7);
  ns_job *j = NULL;
  cr_assert_eq(ns_store_get_job(s, "lab", "102_4", &j), NS_OK);
  cr_assert_eq(j->nnodes, 2);
  ns_job_free(j);
  cr_assert_eq(ns_store_get_job(s, "lab", "105", &j), NS_OK);
  cr_assert(j->shared);
  ns_job_free(j);
  /* a bad file stores nothing */
  const char *p = tmp_file("sacct.txt", "900|n1|2026-01-01T00:00:00|Unknown|RUNNING\n901|n1|bad|Unknown|RUNNING\n");
  cr_assert_eq(ns_import_sacct_store(s, p, "lab2", NULL, &rep), NS_ERR_PARSE);
  assert_detail_has("sacct.txt:2:8: bad start time");
  cr_assert_eq(count_jobs(s, "lab2"), 0);
  rm_tmp_file(p);
}

IMPORT_TEST(ldms_store_and_known_nodes) {
  char *paths[] = {(char *)fx("ldms/ok")};
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms_store(s, paths, 1, "lab", NULL, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(rep.nodes, 2);
  char **nodes = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_raw_nodes(s, "lab", &nodes, &n), NS_OK);
  cr_assert_eq(n, 2);
  ns_strings_free(nodes, n);
  ns_mts *m = NULL;
  cr_assert_eq(ns_store_get_raw(s, "lab", "nid00001", 0, 0, &m), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(m->T, 4);
  cr_assert_eq(m->M, 10);
  long k = -1;
  for (size_t i = 0; i < m->M; i++)
    if (strcmp(m->metrics[i], "vmstat.pgfault") == 0) k = (long)i;
  cr_assert(k >= 0);
  cr_assert_eq(m->x[2 * m->M + (size_t)k], 1250);
  cr_assert(m->is_counter[k]);
  ns_mts_free(m);

  /* now the cluster has telemetry: a job on another node is refused */
  cr_assert_eq(ns_import_sacct_store(s, fx("sacct/noheader.txt"), "lab", NULL, &rep), NS_ERR_NOTFOUND);
  assert_detail_has("unknown node 'n1'");
  cr_assert_eq(count_jobs(s, "lab"), 0);
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.allow_unknown_nodes = true;
  memset(&rep, 0, sizeof rep);
  cr_assert_eq(ns_import_sacct_store(s, fx("sacct/noheader.txt"), "lab", &o, &rep), NS_OK);
  cr_assert_eq(rep.unknown_nodes, 3);
  cr_assert_eq(count_jobs(s, "lab"), 2);

  /* one bad file among good ones: nothing of the import is stored */
  char dir[] = "/tmp/ns_ldmsbad_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  put_file(dir, "meminfo", "#Time,Time_usec,ProducerName,a\n1.0,0,x1,5\n");
  put_file(dir, "vmstat", "#Time,Time_usec,ProducerName,b\n1.0,0,x1,5\n2.0,0,x1\n");
  paths[0] = dir;
  cr_assert_eq(ns_import_ldms_store(s, paths, 1, "other", NULL, &rep), NS_ERR_PARSE);
  assert_detail_has("vmstat:3:");
  cr_assert_eq(ns_store_list_raw_nodes(s, "other", &nodes, &n), NS_OK);
  cr_assert_eq(n, 0);
  ns_strings_free(nodes, n);
  rm_rf(dir);
}

IMPORT_TEST(csv_store) {
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_csv_store(s, fx("csv/wide.csv"), "cn9", "lab", NULL, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(rep.nodes, 1);
  ns_mts *m = NULL;
  cr_assert_eq(ns_store_get_raw(s, "lab", "cn9", 0, 0, &m), NS_OK);
  cr_assert_eq(m->T, 4);
  cr_assert_eq(m->M, 3);
  cr_assert(isnan(m->x[1 * 3 + 2]));
  ns_mts_free(m);
  cr_assert_eq(ns_import_csv_store(s, "/nonexistent.csv", "cn9", "lab", NULL, &rep), NS_ERR_IO);
}

/* ---- the public NodeSentry sample ---- */

static const char *sample_dir(void) {
  static char p[1024];
  const char *sh = getenv("NS_SHARED");
  if (!sh) cr_skip("NS_SHARED not set");
  snprintf(p, sizeof p, "%s/data/nodesentry-sample", sh);
  struct stat sb;
  if (stat(p, &sb) != 0) cr_skip("%s absent", p);
  return p;
}

static int64_t segment_rows(ns_store *s, const char *split, size_t *nseg) {
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.split = split;
  int64_t *ids = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(s, &f, &ids, &n), NS_OK);
  int64_t rows = 0;
  for (size_t i = 0; i < n; i++) {
    ns_segment *g = NULL;
    cr_assert_eq(ns_store_get_segment(s, ids[i], &g), NS_OK);
    cr_assert_eq(g->M, 138);
    cr_assert_eq(g->interval_ms, 15000);
    rows += (int64_t)g->T;
    ns_segment_free(g);
  }
  free(ids);
  *nseg = n;
  return rows;
}

static ns_segment *get_seg(ns_store *s, const char *node, const char *job) {
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.node = node;
  f.job_id = job;
  int64_t *ids = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(s, &f, &ids, &n), NS_OK);
  cr_assert_eq(n, 1, "%s/%s", node, job);
  ns_segment *g = NULL;
  cr_assert_eq(ns_store_get_segment(s, ids[0], &g), NS_OK);
  free(ids);
  return g;
}

Test(sample, nodesentry_complete) {
  const char *dir = sample_dir();
  backend b;
  backend_init(&b, false, "sample");
  ns_store *s = open_store(&b);
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_nodesentry(dir, s, "nodesentry", NULL, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(rep.jobs, 17);
  cr_assert_eq(rep.segments, 19);
  cr_assert_eq(rep.rows, 13805 + 1635);
  cr_assert_eq(rep.points, (int64_t)(13805 + 1635) * 138);
  cr_assert_eq(rep.nodes, 7);
  cr_assert_eq(ns_import_repairs(&rep), 0);
  size_t ntrain, ntest;
  cr_assert_eq(segment_rows(s, "train", &ntrain), 13805);
  cr_assert_eq(ntrain, 16);
  cr_assert_eq(segment_rows(s, "test", &ntest), 1635);
  cr_assert_eq(ntest, 3);
  cr_assert_eq(count_jobs(s, "nodesentry"), 17);

  /* spot checks against the files */
  ns_segment *g = get_seg(s, "Node-1", "13");
  cr_assert_eq(g->T, 208);
  int64_t t0;
  cr_assert_eq(ns_parse_time_ms("2024-07-15 11:39:30", 19, false, &t0), NS_OK);
  cr_assert_eq(g->start_ms, t0);
  cr_assert_eq(g->x[0], 5.0f);
  cr_assert_eq(g->x[2], (float)-1.503917487121528);
  cr_assert_eq(g->x[1 * 138 + 2], (float)1.9395910232828704);
  cr_assert_str_eq(g->metrics[137], "Metric138");
  cr_assert_eq(g->x[207 * 138 + 136], (float)0.2521476124380116); /* last row: ...,0.2521476124380116,-5.0,0 */
  cr_assert_eq(g->x[207 * 138 + 137], -5.0f);
  for (size_t t = 0; t < g->T; t++) cr_assert_eq(g->labels[t], t == 202, "row %zu", t);
  ns_segment_free(g);
  g = get_seg(s, "Node-2", "14");
  cr_assert_eq(g->T, 1018);
  for (size_t t = 0; t < g->T; t++) cr_assert_eq(g->labels[t], t == 242 || t == 522, "row %zu", t);
  ns_segment_free(g);
  g = get_seg(s, "Node-3", "15");
  cr_assert_eq(g->T, 409);
  ns_segment_free(g);
  g = get_seg(s, "Node-7", "12");
  cr_assert_eq(g->T, 452);
  cr_assert_null(g->labels);
  float lo = 0, hi = 0;
  for (size_t i = 0; i < g->T * g->M; i++) {
    lo = fminf(lo, g->x[i]);
    hi = fmaxf(hi, g->x[i]);
  }
  cr_assert(lo == -5.0f && hi == 5.0f);
  ns_segment_free(g);

  /* 4 anomalous points, each its own label row */
  ns_label *l = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_labels(s, "nodesentry", NULL, 0, 0, &l, &n), NS_OK);
  int anomalous = 0;
  for (size_t i = 0; i < n; i++)
    if (l[i].label == 1) {
      anomalous++;
      cr_assert_eq(l[i].start_ms, l[i].end_ms);
    }
  cr_assert_eq(anomalous, 4);
  cr_assert_eq(n, 4 + 7); /* 0-runs around them: 2 + 3 + 2 */
  ns_labels_free(l, n);

  ns_job *j = NULL;
  cr_assert_eq(ns_store_get_job(s, "nodesentry", "8", &j), NS_OK);
  cr_assert_eq(j->nnodes, 3);
  cr_assert_str_eq(j->tag, "train");
  ns_job_free(j);
  ns_store_close(s);
  backend_fini(&b);
}
