/* Importers without a database: sacct, LDMS, wide CSV, NodeSentry files,
 * every bad-input case of docs/import.md. */
#include <math.h>
#include <stdint.h>
#include <time.h>
#include "helpers.h"
#include "ns_csv.h"
#include "ns_import.h"
#include "ns_log.h"

static int64_t T(const char *iso) {
  int64_t v;
  cr_assert_eq(ns_parse_time_ms(iso, strlen(iso), false, &v), NS_OK);
  return v;
}

static void free_jobs(ns_job *j, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(j[i].cluster), free(j[i].job_id), free(j[i].nodelist), free(j[i].user), free(j[i].partition);
    free(j[i].account), free(j[i].state), free(j[i].tag);
  }
  free(j);
}

static const ns_job *job(const ns_job *v, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].job_id, id) == 0) return &v[i];
  cr_assert_fail("job %s missing", id);
  return NULL;
}

static void init(void) { ns_log_set_level(NS_LOG_ERROR); }
TestSuite(sacct, .init = init);
TestSuite(ldms, .init = init);
TestSuite(csv_wide, .init = init);
TestSuite(nodesentry, .init = init);
TestSuite(rules, .init = init);
TestSuite(report, .init = init);

/* ---- sacct ---- */

Test(sacct, basic_arrays_het_unknown_overlap) {
  ns_job *v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  ns_status st = ns_import_sacct_file(fx("sacct/basic.txt"), "lab", NULL, &v, &n, &rep);
  cr_assert_eq(st, NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 7);
  cr_assert_eq(rep.jobs, 7);
  cr_assert_eq(rep.skipped_jobs, 1); /* 104_[5-9%2] pending */
  const ns_job *j = job(v, n, "100");
  cr_assert_str_eq(j->cluster, "lab");
  cr_assert_eq(j->nnodes, 5);
  cr_assert_str_eq(j->nodelist, "cn[001-004,010]");
  cr_assert_eq(j->start_ms, T("2026-01-05T10:00:00Z"));
  cr_assert_eq(j->end_ms, T("2026-01-05T11:00:00Z"));
  cr_assert_str_eq(j->state, "COMPLETED");
  cr_assert(j->shared); /* overlaps 105 on cn003 */
  cr_assert(job(v, n, "105")->shared);
  cr_assert_str_eq(job(v, n, "105")->state, "CANCELLED by 0");
  cr_assert_eq(rep.shared_jobs, 2);
  cr_assert_eq(job(v, n, "101")->end_ms, 0); /* Unknown = running */
  cr_assert(!job(v, n, "101")->shared);
  cr_assert_eq(job(v, n, "102_4")->nnodes, 2);
  cr_assert(!job(v, n, "103+0")->shared);
  cr_assert(!job(v, n, "103+1")->shared);
  cr_assert_eq(job(v, n, "106")->start_ms, job(v, n, "106")->end_ms);
  free_jobs(v, n);
}

Test(sacct, no_header_and_extra_columns) {
  ns_job *v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_sacct_file(fx("sacct/noheader.txt"), "c", NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_eq(job(v, n, "200")->nnodes, 2);
  free_jobs(v, n);
  /* four columns, and a header in another order */
  const char *p = tmp_file("s.txt", "7|n1|2026-02-01T00:00:00|Unknown\n");
  cr_assert_eq(ns_import_sacct_file(p, "c", NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert(n == 1 && v[0].state == NULL && v[0].end_ms == 0);
  free_jobs(v, n);
  rm_tmp_file(p);
  p = tmp_file("s.txt", "State|End|Start|NodeList|JobID\nRUNNING|Unknown|2026-02-01T00:00:00|n[1-3]|8_1\n");
  cr_assert_eq(ns_import_sacct_file(p, "c", NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert(n == 1 && v[0].nnodes == 3 && strcmp(v[0].job_id, "8_1") == 0 && strcmp(v[0].state, "RUNNING") == 0);
  free_jobs(v, n);
  rm_tmp_file(p);
  memset(&rep, 0, sizeof rep);
  cr_assert_eq(ns_import_sacct_file(fx("sacct/extra_columns.txt"), "c", NULL, &v, &n, &rep), NS_OK, "%s",
               ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_eq(rep.dup_rows, 1);      /* 300 listed twice: later wins */
  cr_assert_eq(rep.skipped_jobs, 1);  /* 300.batch */
  const ns_job *j = job(v, n, "300");
  cr_assert_eq(j->start_ms, T("2026-03-01T10:10:00Z"));
  cr_assert_eq(j->submit_ms, T("2026-03-01T09:59:00Z"));
  cr_assert_str_eq(j->user, "alice");
  cr_assert_str_eq(j->partition, "debug");
  j = job(v, n, "301");
  cr_assert_eq(j->exit_code, 2);
  cr_assert_str_eq(j->state, "FAILED");
  free_jobs(v, n);
}

static void sacct_bad(const char *text, ns_status want, const char *detail) {
  const char *p = tmp_file("sacct.txt", text);
  ns_job *v = (ns_job *)1;
  size_t n = 5;
  ns_import_report rep = {0};
  ns_status st = ns_import_sacct_file(p, "c", NULL, &v, &n, &rep);
  cr_assert_eq(st, want, "%s: got %s (%s)", text, ns_status_name(st), ns_err_detail());
  cr_assert_null(v);
  cr_assert_eq(n, 0);
  assert_detail_has(detail);
  rm_tmp_file(p);
}

Test(sacct, bad_input) {
  sacct_bad("1|n1|2026-13-01T00:00:00|Unknown|RUNNING\n", NS_ERR_PARSE, "sacct.txt:1:6: bad start time");
  sacct_bad("1|n1|2026-01-01T00:00:00|yesterday|RUNNING\n", NS_ERR_PARSE, ":1:26: bad end time");
  sacct_bad("1|n[1-|2026-01-01T00:00:00|Unknown|RUNNING\n", NS_ERR_PARSE, ":1:3: hostlist");
  sacct_bad("1|n1|2026-01-01T00:00:00\n", NS_ERR_PARSE, "expected 5 fields, got 3");
  sacct_bad("1|n1|2026-01-01T00:00:00|Unknown|RUNNING|x|y\n", NS_ERR_PARSE, "expected 5 fields, got 7");
  sacct_bad("1|n1|2026-01-01T10:00:00|2026-01-01T09:00:00|COMPLETED\n", NS_ERR_RANGE, "ends");
  sacct_bad("ab1|n1|2026-01-01T10:00:00|Unknown|RUNNING\n", NS_ERR_PARSE, "bad job id 'ab1'");
  sacct_bad("1_x|n1|2026-01-01T10:00:00|Unknown|RUNNING\n", NS_ERR_PARSE, "bad job id");
  sacct_bad("JobID|State\n1|RUNNING\n", NS_ERR_FORMAT, "lacks the NodeList column");
  sacct_bad("1|n1|2026-01-01T10:00:00|2026-01-01T11:00:00|COMPLETED\n2|n2|2026-01-01T10:00:00|2026-01-01T11:00:00|COMPLE",
            NS_ERR_FORMAT, "sacct.txt:2:46: last line has no newline (truncated file?)");
  sacct_bad("JobID|NodeList|Start|End|Start\n", NS_ERR_FORMAT, "appears twice");
  sacct_bad("2|n1|2026-01-01T10:00:00|Unknown|RUNNING\n1|n1|2026-01-01T10:00:00|Unknown|RUNNING|\n3|n\x01|a|b|c\n",
            NS_ERR_PARSE, ":3:3: hostlist");
}

Test(sacct, unknown_nodes) {
  char *known[] = {"cn001", "cn002", "cn003", "cn004", "cn010", "cn005", "gpu1", "gpu2", "cn006", "gpu3", "cn003"};
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.known_nodes = known;
  o.n_known_nodes = 11;
  ns_job *v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_sacct_file(fx("sacct/basic.txt"), "c", &o, &v, &n, &rep), NS_ERR_NOTFOUND);
  assert_detail_has("basic.txt:9:5: job 106: unknown node 'cn007'");
  cr_assert_null(v);
  o.allow_unknown_nodes = true;
  cr_assert_eq(ns_import_sacct_file(fx("sacct/basic.txt"), "c", &o, &v, &n, &rep), NS_OK);
  cr_assert_eq(n, 7);
  cr_assert_eq(rep.unknown_nodes, 1);
  free_jobs(v, n);
}

Test(sacct, local_time_and_empty) {
  setenv("TZ", "Asia/Tokyo", 1);
  tzset();
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.local_time = true;
  ns_job *v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_sacct_file(fx("sacct/noheader.txt"), "c", &o, &v, &n, &rep), NS_OK);
  cr_assert_eq(job(v, n, "200")->start_ms, T("2026-01-31T15:00:00Z"));
  free_jobs(v, n);
  setenv("TZ", "UTC", 1);
  tzset();
  const char *p = tmp_file("empty.txt", "");
  cr_assert_eq(ns_import_sacct_file(p, "c", NULL, &v, &n, &rep), NS_OK);
  cr_assert_eq(n, 0);
  free(v);
  rm_tmp_file(p);
  cr_assert_eq(ns_import_sacct_file("/nonexistent/sacct.txt", "c", NULL, &v, &n, &rep), NS_ERR_IO);
}

Test(sacct, mark_overlaps_api) {
  ns_job j[3] = {0};
  j[0] = (ns_job){.job_id = "a", .nodelist = "n[1-2]", .start_ms = 0, .end_ms = 100};
  j[1] = (ns_job){.job_id = "b", .nodelist = "n2", .start_ms = 100, .end_ms = 200}; /* back to back: fine */
  j[2] = (ns_job){.job_id = "c", .nodelist = "n1", .start_ms = 50, .end_ms = 0};    /* running, overlaps a */
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_mark_overlaps(j, 3, &rep), NS_OK);
  cr_assert(j[0].shared && !j[1].shared && j[2].shared);
  cr_assert_eq(rep.shared_jobs, 2);
}

/* ---- counter rules ---- */

Test(rules, defaults_and_custom) {
  struct {
    const char *schema, *metric;
    bool counter;
  } cases[] = {
      {"procstat", "user", true},          {"procstat", "procs_running", false}, {"procstat", "per_core_user3", true},
      {"procstat", "cpu_enabled", false},  {"vmstat", "pgfault", true},          {"vmstat", "nr_free_pages", false},
      {"vmstat", "nr_dirtied", true},      {"meminfo", "MemFree", false},        {"procnetdev", "rx_bytes#eth0", true},
      {"procdiskstats", "reads_comp#sda", true}, {"procdiskstats", "ios_in_progress#sda", false},
      {"custom", "bytes_total", true},     {"custom", "temp", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    bool c;
    cr_assert_eq(ns_import_is_counter(NULL, cases[i].schema, cases[i].metric, &c), NS_OK);
    cr_assert_eq(c, cases[i].counter, "%s:%s", cases[i].schema, cases[i].metric);
  }
  bool c;
  cr_assert_eq(ns_import_is_counter("!meminfo:Mem*, meminfo:*", "meminfo", "Active", &c), NS_OK);
  cr_assert(c);
  cr_assert_eq(ns_import_is_counter("!meminfo:Mem*, meminfo:*", "meminfo", "MemFree", &c), NS_OK);
  cr_assert(!c);
  cr_assert_eq(ns_import_is_counter("a:*,,b:*", "c", "d", &c), NS_ERR_INVAL);
  cr_assert_eq(ns_import_is_counter("!", "c", "d", &c), NS_ERR_INVAL);
}

/* ---- LDMS ---- */

static ns_mts *by_node(ns_mts **v, size_t n, const char *node) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i]->node, node) == 0) return v[i];
  cr_assert_fail("node %s missing", node);
  return NULL;
}

static long midx(const ns_mts *m, const char *name) {
  for (size_t i = 0; i < m->M; i++)
    if (strcmp(m->metrics[i], name) == 0) return (long)i;
  cr_assert_fail("metric %s missing", name);
  return -1;
}

#define X(m, t, name) ((m)->x[(t) * (m)->M + (size_t)midx((m), (name))])

Test(ldms, join_counters_repairs) {
  char *paths[] = {(char *)fx("ldms/ok")};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  ns_status st = ns_import_ldms(paths, 1, NULL, &v, &n, &rep);
  cr_assert_eq(st, NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_str_eq(v[0]->node, "nid00001"); /* sorted by producer */
  cr_assert_eq(rep.files, 3);
  cr_assert_eq(rep.rows, 14);
  cr_assert_eq(rep.points, 44);
  cr_assert_eq(rep.nodes, 2);
  cr_assert_eq(rep.dup_rows, 1);
  cr_assert_eq(rep.truncated_lines, 1);
  cr_assert_eq(rep.repeated_headers, 1);
  cr_assert_eq(rep.missing_values, 1);
  ns_mts *a = by_node(v, n, "nid00001");
  cr_assert_eq(a->M, 10);
  cr_assert_str_eq(a->metrics[0], "meminfo.MemTotal"); /* schema order meminfo, procstat, vmstat */
  cr_assert_str_eq(a->metrics[3], "procstat.user");
  cr_assert_eq(a->T, 4);
  cr_assert_eq(a->ts_ms[0], INT64_C(1700000000001));
  cr_assert_eq(a->ts_ms[3], INT64_C(1700000003050));
  cr_assert_eq(X(a, 0, "meminfo.MemFree"), 600);
  cr_assert_eq(X(a, 0, "procstat.user"), 100);
  cr_assert_eq(X(a, 0, "vmstat.pgfault"), 1000);
  cr_assert(isnan(X(a, 1, "procstat.user")));
  cr_assert_eq(X(a, 1, "vmstat.pgfault"), 1100);
  cr_assert(isnan(X(a, 2, "meminfo.Active")));
  cr_assert_eq(X(a, 2, "vmstat.pgfault"), 1250);
  cr_assert_eq(X(a, 3, "procstat.user"), 300);
  cr_assert(isnan(X(a, 3, "meminfo.MemFree")));
  cr_assert(a->is_counter[midx(a, "procstat.user")]);
  cr_assert(!a->is_counter[midx(a, "procstat.procs_running")]);
  cr_assert(a->is_counter[midx(a, "vmstat.pgfault")]);
  cr_assert(!a->is_counter[midx(a, "vmstat.nr_free_pages")]);
  cr_assert(!a->is_counter[midx(a, "meminfo.MemFree")]);
  ns_mts *b = by_node(v, n, "nid00002");
  cr_assert_eq(b->M, 6); /* no procstat rows for it */
  cr_assert_eq(b->T, 3);
  cr_assert_eq(X(b, 2, "meminfo.Active"), 70);
  cr_assert_eq(X(b, 2, "vmstat.pgmajfault"), 22);

  /* rates */
  ns_import_report r2 = {0};
  cr_assert_eq(ns_import_counters_to_rates(b, &r2), NS_OK);
  cr_assert(isnan(X(b, 0, "vmstat.pgfault")));
  cr_assert_float_eq(X(b, 1, "vmstat.pgfault"), 100.0, 1e-9); /* joined rows carry the earliest time */
  cr_assert_eq(X(b, 1, "meminfo.MemFree"), 690); /* gauges untouched */
  cr_assert(!b->is_counter[midx(b, "vmstat.pgfault")]);
  ns_import_mts_free(v, n);
}

Test(ldms, window_and_files_list) {
  char *paths[] = {(char *)fx("ldms/ok/meminfo"), (char *)fx("ldms/ok/vmstat")};
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.join_window_ms = 10; /* too narrow: vmstat rows become their own rows */
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 2, &o, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(by_node(v, n, "nid00001")->T, 6);
  ns_import_mts_free(v, n);
}

Test(ldms, node_and_window_filter) {
  char *paths[] = {(char *)fx("ldms/ok")};
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.only_node = "nid00002";
  o.from_ms = INT64_C(1700000001000);
  o.to_ms = INT64_C(1700000002500);
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, &o, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 1);
  cr_assert_str_eq(v[0]->node, "nid00002");
  cr_assert_eq(v[0]->T, 2);
  cr_assert_eq(v[0]->ts_ms[0], INT64_C(1700000001002));
  cr_assert_eq(rep.rows, 4);
  ns_import_mts_free(v, n);
  o.only_node = "nobody";
  cr_assert_eq(ns_import_ldms(paths, 1, &o, &v, &n, &rep), NS_ERR_EMPTY);
}

typedef struct {
  ns_mts *v[64];
  size_t n;
} pieces;

static ns_status keep_piece(void *ctx, ns_mts *m) {
  pieces *p = ctx;
  cr_assert(p->n < 64);
  p->v[p->n++] = m;
  return NS_OK;
}

/* Schema B starts half-way; small budgets cut the output into pieces. */
Test(ldms, streaming_pieces_and_late_schema) {
  char dir[] = "/tmp/ns_ldmss_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char a[8192] = "#Time,Time_usec,ProducerName,x\n", b[8192] = "#Time,Time_usec,ProducerName,y\n";
  for (int t = 0; t <= 3600; t += 60) {
    char l[128];
    snprintf(l, sizeof l, "%d.0,0,n1,%d\n", 1700000000 + t, t);
    strcat(a, l);
    if (t >= 1800) {
      snprintf(l, sizeof l, "%d.2,200000,n1,%d\n", 1700000000 + t, -t);
      strcat(b, l);
    }
  }
  put_file(dir, "aaa", a);
  put_file(dir, "bbb", b);
  char *paths[] = {dir};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 1);
  ns_mts *m = v[0];
  cr_assert_eq(m->M, 2);
  cr_assert_eq(m->T, 61);
  cr_assert_str_eq(m->metrics[1], "bbb.y");
  cr_assert(isnan(m->x[0 * 2 + 1]));          /* before bbb starts: missing */
  cr_assert_eq(m->x[30 * 2 + 0], 1800);
  cr_assert_eq(m->x[30 * 2 + 1], -1800);       /* joined within the window */
  cr_assert_eq(m->ts_ms[60], INT64_C(1700003600000));

  pieces pc = {0};
  ns_import_report r2 = {0};
  cr_assert_eq(ns_import_ldms_stream(paths, 1, NULL, 10, keep_piece, &pc, &r2), NS_OK, "%s", ns_err_detail());
  cr_assert(pc.n >= 4, "%zu pieces", pc.n);
  size_t rows = 0;
  int64_t last = INT64_MIN;
  for (size_t i = 0; i < pc.n; i++) {
    cr_assert_str_eq(pc.v[i]->node, "n1");
    cr_assert(pc.v[i]->ts_ms[0] > last);
    for (size_t t = 0; t < pc.v[i]->T; t++) {
      size_t row = rows + t;
      cr_assert_eq(pc.v[i]->ts_ms[t], m->ts_ms[row]);
      cr_assert_eq(pc.v[i]->x[t * pc.v[i]->M], m->x[row * 2]);
      if (pc.v[i]->M == 2 && row >= 30) cr_assert_eq(pc.v[i]->x[t * 2 + 1], m->x[row * 2 + 1]);
    }
    last = pc.v[i]->ts_ms[pc.v[i]->T - 1];
    rows += pc.v[i]->T;
  }
  cr_assert_eq(rows, 61);
  cr_assert_eq(pc.v[0]->M, 1);        /* the first pieces only know aaa */
  cr_assert_eq(pc.v[pc.n - 1]->M, 2);
  cr_assert_eq(r2.rows, rep.rows);
  cr_assert_eq(r2.nodes, 1);
  for (size_t i = 0; i < pc.n; i++) ns_mts_free(pc.v[i]);
  ns_import_mts_free(v, n);

  /* A row far behind its file's time order cannot be joined any more. */
  char c[16384] = "#Time,Time_usec,ProducerName,y\n";
  for (int t = 0; t <= 3000; t += 60) {
    char l[128];
    snprintf(l, sizeof l, "%d.0,0,n2,%d\n", 1700000000 + t, t);
    strcat(c, l);
  }
  strcat(c, "1700000100.0,0,n1,5\n");
  put_file(dir, "bbb", c);
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_ERR_PARSE);
  assert_detail_has("bbb:53:1: time 1700000100.000 of n1 lies behind rows already joined");
  rm_rf(dir);
}

/* A window in a big file is found by binary search instead of a full read. */
Test(ldms, window_seek_in_big_file) {
  char dir[] = "/tmp/ns_ldmsw_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/meminfo", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("#Time,Time_usec,ProducerName,component_id,job_id,app_id,MemFree,Cached\n", f);
  for (int t = 0; t < 60000; t++)
    for (int p = 1; p <= 2; p++) fprintf(f, "%d.%06d,%d,n%d,%d,0,0,%d,%d\n", 1700000000 + t, 1000 * p, 1000 * p, p, p, t, p);
  fclose(f);
  char *paths[] = {dir};
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.only_node = "n2";
  o.from_ms = INT64_C(1700050000000);
  o.to_ms = INT64_C(1700050100000);
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, &o, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 1);
  cr_assert_eq(v[0]->T, 100);                       /* 50000.002 .. 50099.002 */
  cr_assert_eq(v[0]->ts_ms[0], INT64_C(1700050000002));
  cr_assert_eq(v[0]->x[0], 50000);
  cr_assert_eq(v[0]->x[99 * 2], 50099);
  cr_assert_eq(v[0]->x[1], 2);
  cr_assert(rep.rows < 5000, "read %lld rows: the seek did not happen", (long long)rep.rows);
  ns_import_mts_free(v, n);
  /* a bad line after the seek point: the message says where counting starts */
  f = fopen(path, "a");
  fputs("1700060000.0,0,n1,1,0,0,x\n", f);
  fclose(f);
  o.to_ms = 0;
  cr_assert_eq(ns_import_ldms(paths, 1, &o, &v, &n, &rep), NS_ERR_PARSE);
  assert_detail_has("(lines counted from byte ");
  assert_detail_has("expected 8 fields, got 7");
  rm_rf(dir);
}

Test(ldms, alt_header_file) {
  char *paths[] = {(char *)fx("ldms/altheader")};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 1);
  cr_assert_eq(rep.files, 1); /* the .HEADER file is not data */
  cr_assert_str_eq(v[0]->metrics[1], "meminfo.Cached");
  cr_assert_eq(v[0]->T, 2);
  cr_assert_eq(v[0]->ts_ms[1], INT64_C(1700000005000));
  ns_import_mts_free(v, n);
}

static const char *HDR = "#Time,Time_usec,ProducerName,component_id,job_id,app_id,a,b\n";

static void ldms_bad(const char *body, ns_status want, const char *detail) {
  char text[4096];
  snprintf(text, sizeof text, "%s%s", HDR, body);
  const char *p = tmp_file("vmstat", text);
  char *paths[] = {(char *)p};
  ns_mts **v = (ns_mts **)1;
  size_t n = 3;
  ns_import_report rep = {0};
  ns_status st = ns_import_ldms(paths, 1, NULL, &v, &n, &rep);
  cr_assert_eq(st, want, "%s: got %s (%s)", body, ns_status_name(st), ns_err_detail());
  cr_assert_null(v);
  cr_assert_eq(n, 0);
  assert_detail_has(detail);
  rm_tmp_file(p);
}

Test(ldms, bad_input) {
  ldms_bad("1.0,0,n1,1,0,0,1\n", NS_ERR_PARSE, "vmstat:2:16: expected 8 fields, got 7");
  ldms_bad("1.0,0,n1,1,0,0,1,2,3\n", NS_ERR_PARSE, "expected 8 fields, got 9");
  ldms_bad("1.0,0,n1,1,0,0,1,x2\n", NS_ERR_PARSE, "vmstat:2:18: bad number 'x2' (metric b)");
  ldms_bad("1.0,0,n1,1,0,0,1,inf\n", NS_ERR_NONFINITE, ":2:18: infinite");
  ldms_bad("2.0,0,n1,1,0,0,1,2\n1.0,0,n1,1,0,0,1,2\n", NS_ERR_PARSE, "vmstat:3:1: time 1.000 of n1 is before line 2");
  ldms_bad("2.0,0,n1,1,0,0,1,2\n2.0,0,n1,1,0,0,1,3\n", NS_ERR_PARSE, "the same as (with different values) line 2");
  ldms_bad("abc,0,n1,1,0,0,1,2\n", NS_ERR_PARSE, ":2:1: bad time");
  ldms_bad("1.0,99999999,n1,1,0,0,1,2\n", NS_ERR_PARSE, "bad time");
  ldms_bad("1.0,0,,1,0,0,1,2\n", NS_ERR_PARSE, "empty ProducerName");
  ldms_bad("1.0,0,n1,1,0,0,1,2\n#Time,Time_usec,ProducerName,a\n", NS_ERR_FORMAT, "header changed");
  ldms_bad("# comment\n", NS_ERR_FORMAT, "unexpected '#' line");
  ldms_bad("", NS_ERR_EMPTY, "no LDMS data rows");
  ldms_bad("1.0,0,n1,1,0,0,1,2", NS_ERR_EMPTY, "no LDMS data rows"); /* only a truncated line */

  const char *p = tmp_file("meminfo", "1.0,0,n1,1,0,0,1,2\n");
  char *paths[] = {(char *)p};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_ERR_FORMAT);
  assert_detail_has("no '#Time,...' header line");
  rm_tmp_file(p);
  p = tmp_file("meminfo", "#Time,Time_usec,ProducerName,a,a\n");
  paths[0] = (char *)p;
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_ERR_FORMAT);
  assert_detail_has("column 'a' appears twice");
  rm_tmp_file(p);
  p = tmp_file("meminfo", "#Time,Time_usec,a,b\n");
  paths[0] = (char *)p;
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_ERR_FORMAT);
  assert_detail_has("needs #Time first and ProducerName");
  rm_tmp_file(p);
  paths[0] = "/nonexistent/ldms";
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_ERR_IO);
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.counter_rules = "a:*,,";
  paths[0] = (char *)fx("ldms/ok");
  cr_assert_eq(ns_import_ldms(paths, 1, &o, &v, &n, &rep), NS_ERR_INVAL);
}

Test(ldms, same_schema_different_header) {
  char dir[] = "/tmp/ns_ldmsd_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  put_file(dir, "meminfo.1700000000", "#Time,Time_usec,ProducerName,a\n1.0,0,n1,5\n");
  put_file(dir, "meminfo.1700000100", "#Time,Time_usec,ProducerName,b\n2.0,0,n1,5\n");
  char *paths[] = {dir};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_ERR_SCHEMA);
  assert_detail_has("header differs");
  /* Rollover files of one schema continue each other; an overlapping exact row is a duplicate. */
  put_file(dir, "meminfo.1700000100", "#Time,Time_usec,ProducerName,a\n1.0,0,n1,5\n2.0,0,n1,6\n");
  memset(&rep, 0, sizeof rep);
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(v[0]->T, 2);
  cr_assert_eq(rep.dup_rows, 1);
  ns_import_mts_free(v, n);
  rm_rf(dir);
}

/* ---- wide CSV ---- */

Test(csv_wide, values_missing_duplicates) {
  ns_mts *m = NULL;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_csv_wide(fx("csv/wide.csv"), "cn1", NULL, &m, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_str_eq(m->node, "cn1");
  cr_assert_eq(m->M, 3);
  cr_assert_eq(m->T, 4);
  cr_assert_null(m->labels);
  cr_assert_eq(rep.dup_rows, 1);
  cr_assert_eq(rep.missing_values, 2);
  cr_assert_eq(rep.rows, 4);
  cr_assert_eq(rep.points, 12);
  cr_assert_eq(m->ts_ms[3], T("2026-01-05T10:00:45Z"));
  cr_assert_eq(m->x[3 * 3 + 0], 1.25);
  cr_assert_eq(m->x[3 * 3 + 1], 1030);
  cr_assert(isnan(m->x[1 * 3 + 2]));
  cr_assert(isnan(m->x[2 * 3 + 0]));
  ns_mts_free(m);
  cr_assert_eq(ns_import_csv_wide(fx("csv/epoch_label.csv"), "cn1", NULL, &m, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(m->M, 2);
  cr_assert_not_null(m->labels);
  cr_assert_eq(m->labels[1], 1);
  cr_assert_eq(m->ts_ms[1], INT64_C(1700000015500));
  cr_assert_eq(m->ts_ms[2], INT64_C(1700000031000));
  ns_mts_free(m);
  cr_assert_eq(ns_import_csv_wide(fx("csv/wide.csv"), "", NULL, &m, &rep), NS_ERR_INVAL);
}

Test(csv_wide, stream_pieces) {
  pieces pc = {0};
  ns_import_report rep = {0};
  /* budget 6 values = 2 rows of 3 metrics per piece; the duplicate row across a
   * piece boundary is still recognised */
  cr_assert_eq(ns_import_csv_stream(fx("csv/wide.csv"), "cn1", NULL, 6, keep_piece, &pc, &rep), NS_OK, "%s",
               ns_err_detail());
  cr_assert_eq(pc.n, 2);
  cr_assert_eq(pc.v[0]->T, 2);
  cr_assert_eq(pc.v[1]->T, 2);
  cr_assert_eq(pc.v[1]->ts_ms[1], T("2026-01-05T10:00:45Z"));
  cr_assert_eq(rep.dup_rows, 1);
  cr_assert_eq(rep.rows, 4);
  for (size_t i = 0; i < pc.n; i++) ns_mts_free(pc.v[i]);
  memset(&pc, 0, sizeof pc);
  cr_assert_eq(ns_import_csv_stream(fx("csv/epoch_label.csv"), "cn1", NULL, 2, keep_piece, &pc, &rep), NS_OK);
  cr_assert_eq(pc.n, 3);
  cr_assert_eq(pc.v[1]->labels[0], 1);
  for (size_t i = 0; i < pc.n; i++) ns_mts_free(pc.v[i]);
  /* an error after pieces were handed over still fails the whole call */
  memset(&pc, 0, sizeof pc);
  const char *p = tmp_file("w.csv", "t,a\n1,1\n2,2\n3,3\n2,9\n");
  cr_assert_eq(ns_import_csv_stream(p, "n", NULL, 1, keep_piece, &pc, &rep), NS_ERR_PARSE);
  assert_detail_has("w.csv:5:1: timestamp '2' goes back");
  for (size_t i = 0; i < pc.n; i++) ns_mts_free(pc.v[i]);
  rm_tmp_file(p);
}

static void wide_bad(const char *text, ns_status want, const char *detail) {
  const char *p = tmp_file("w.csv", text);
  ns_mts *m = (ns_mts *)1;
  ns_import_report rep = {0};
  ns_status st = ns_import_csv_wide(p, "n", NULL, &m, &rep);
  cr_assert_eq(st, want, "%s: got %s (%s)", text, ns_status_name(st), ns_err_detail());
  cr_assert_null(m);
  assert_detail_has(detail);
  rm_tmp_file(p);
}

Test(csv_wide, bad_input) {
  wide_bad("t,a\n1700000000,inf\n", NS_ERR_NONFINITE, "w.csv:2:12: inf value for metric a");
  wide_bad("t,a\n1700000000,-Infinity\n", NS_ERR_NONFINITE, "metric a");
  wide_bad("t,a\n1700000010,1\n1700000000,1\n", NS_ERR_PARSE, "w.csv:3:1: timestamp '1700000000' goes back");
  wide_bad("t,a\n1700000010,1\n1700000010,2\n", NS_ERR_PARSE, "duplicate timestamp '1700000010' with different");
  wide_bad("t,a,b\n1700000010,1\n", NS_ERR_PARSE, "w.csv:2:12: expected 3 fields, got 2");
  wide_bad("t,a,b\n1700000010,1,2,3\n", NS_ERR_PARSE, "expected 3 fields, got 4");
  wide_bad("t,a\nyesterday,1\n", NS_ERR_PARSE, "w.csv:2:1: bad timestamp 'yesterday'");
  wide_bad("t,a\n1700000010,1.2.3\n", NS_ERR_PARSE, "w.csv:2:12: bad number '1.2.3' (metric a)");
  wide_bad("t,a,a\n", NS_ERR_FORMAT, "w.csv:1:5: column 'a' appears twice");
  wide_bad("t,,b\n", NS_ERR_FORMAT, "w.csv:1:3: empty column name");
  wide_bad("t\n1\n", NS_ERR_FORMAT, "at least one metric");
  wide_bad("", NS_ERR_EMPTY, "empty file");
  wide_bad("t,a\n", NS_ERR_EMPTY, "no data rows");
  wide_bad("t,a,label\n1700000000,1,2\n", NS_ERR_PARSE, "label must be 0 or 1");
  wide_bad("t,a\n1700000000,\"1\n", NS_ERR_PARSE, "unterminated quoted field");
}

/* ---- NodeSentry files ---- */

Test(nodesentry, jobs_file) {
  ns_job *v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_nodesentry_read_jobs(fx("nodesentry/Job"), "ns", NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 3);
  cr_assert_str_eq(v[0].job_id, "1");
  cr_assert_eq(v[0].nnodes, 2);
  cr_assert_str_eq(v[0].tag, "train");
  cr_assert_str_eq(v[1].tag, "test");
  cr_assert_eq(v[1].start_ms, T("2024-07-15T11:39:18Z"));
  free_jobs(v, n);
  const char *p = tmp_file("Job", "1|n1|2024-07-09T23:13:30|2024-07-10T04:43:49|train\n");
  cr_assert_eq(ns_nodesentry_read_jobs(p, "ns", NULL, &v, &n, &rep), NS_ERR_FORMAT);
  assert_detail_has("expected the header JobID|NodeList|Start|End|Tag");
  rm_tmp_file(p);
  p = tmp_file("Job", "JobID|NodeList|Start|End|Tag\n1|n1|2024-07-09T23:13:30|2024-07-10T04:43:49\n");
  cr_assert_eq(ns_nodesentry_read_jobs(p, "ns", NULL, &v, &n, &rep), NS_ERR_PARSE);
  assert_detail_has("Job:2:");
  rm_tmp_file(p);
  p = tmp_file("Job", "");
  cr_assert_eq(ns_nodesentry_read_jobs(p, "ns", NULL, &v, &n, &rep), NS_ERR_EMPTY);
  rm_tmp_file(p);
}

Test(nodesentry, segment_file) {
  ns_segment *s = NULL;
  ns_import_report rep = {0};
  cr_assert_eq(ns_nodesentry_read_segment(fx("nodesentry/Train/n1/n1_Job-1.csv"), "ns", "n1", "1", NULL, &s, &rep),
               NS_OK, "%s", ns_err_detail());
  cr_assert_eq(s->T, 4);
  cr_assert_eq(s->M, 3);
  cr_assert_eq(s->interval_ms, 15000);
  cr_assert_eq(s->start_ms, T("2024-07-09T23:13:45Z"));
  cr_assert_eq(s->end_ms, T("2024-07-09T23:14:30Z"));
  cr_assert_eq(s->kind, NS_SEG_JOB);
  cr_assert_str_eq(s->job_id, "1");
  cr_assert_str_eq(s->metrics[2], "Metric3");
  cr_assert_eq(s->x[0 * 3 + 2], (float)-1.503917487121528);
  cr_assert_eq(s->x[1 * 3 + 0], -5.0f);
  cr_assert_null(s->labels);
  cr_assert_eq(ns_segment_check(s), NS_OK);
  ns_segment_free(s);
  cr_assert_eq(ns_nodesentry_read_segment(fx("nodesentry/Test/n2_Job-2.csv"), "ns", "n2", "2", NULL, &s, &rep), NS_OK);
  cr_assert_not_null(s->labels);
  cr_assert_eq(s->M, 3);
  uint8_t want[] = {0, 0, 1, 1, 0};
  cr_assert(memcmp(s->labels, want, 5) == 0);
  ns_segment_free(s);
  cr_assert_eq(rep.segments, 2);
  cr_assert_eq(rep.rows, 9);
}

static void seg_bad(const char *text, ns_status want, const char *detail) {
  const char *p = tmp_file("n1_Job-1.csv", text);
  ns_segment *s = (ns_segment *)1;
  ns_import_report rep = {0};
  ns_status st = ns_nodesentry_read_segment(p, "ns", "n1", "1", NULL, &s, &rep);
  cr_assert_eq(st, want, "%s: got %s (%s)", text, ns_status_name(st), ns_err_detail());
  cr_assert_null(s);
  assert_detail_has(detail);
  rm_tmp_file(p);
}

Test(nodesentry, segment_bad_input) {
  const char *H = "timestamp,M1,M2\n";
  char b[512];
#define SB(body, want, det) (snprintf(b, sizeof b, "%s%s", H, body), seg_bad(b, want, det))
  SB("2024-07-09 23:13:45,1,2\n2024-07-09 23:14:00,1,2\n2024-07-09 23:14:30,1,2\n", NS_ERR_FORMAT,
     "n1_Job-1.csv:4:1: irregular sampling: step 30.000 s, expected 15.000 s");
  SB("2024-07-09 23:13:45,1,2\n2024-07-09 23:14:00,NaN,2\n", NS_ERR_NONFINITE, ":3:21: NaN value for metric M1");
  SB("2024-07-09 23:13:45,1,2\n2024-07-09 23:14:00,,2\n", NS_ERR_NONFINITE, ":3:21: missing value for metric M1");
  SB("2024-07-09 23:13:45,1,2\n2024-07-09 23:14:00,1,1e39\n", NS_ERR_NONFINITE, "does not fit a float");
  SB("2024-07-09 23:13:45,1,2\n", NS_ERR_TOO_SHORT, "1 row(s)");
  SB("2024-07-09 23:13:45,1,2\n2024-07-09 23:13:30,1,2\n", NS_ERR_PARSE, "goes back in time");
  seg_bad("time,M1\n2024-07-09 23:13:45,1\n", NS_ERR_FORMAT, "first column must be 'timestamp'");
  seg_bad("timestamp,M1,Label\n2024-07-09 23:13:45,1,0\n2024-07-09 23:14:00,1,2\n", NS_ERR_PARSE,
          ":3:23: label must be 0 or 1");
  /* an exact duplicate row is dropped and keeps the spacing regular */
  const char *p = tmp_file("n1_Job-1.csv", "timestamp,M1\n2024-07-09 23:13:45,1\n2024-07-09 23:13:45,1\n"
                                           "2024-07-09 23:14:00,2\n");
  ns_segment *s = NULL;
  ns_import_report rep = {0};
  cr_assert_eq(ns_nodesentry_read_segment(p, "ns", "n1", "1", NULL, &s, &rep), NS_OK);
  cr_assert_eq(s->T, 2);
  cr_assert_eq(rep.dup_rows, 1);
  ns_segment_free(s);
  rm_tmp_file(p);
}

/* Files written on Windows (CRLF) and with quoted header names. */
Test(csv_wide, crlf_and_quotes) {
  const char *p = tmp_file("w.csv", "\"time\",\"cpu,user\",b\r\n1700000000,1,2\r\n1700000001,3,4\r\n");
  ns_mts *m = NULL;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_csv_wide(p, "n", NULL, &m, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_str_eq(m->metrics[0], "cpu,user");
  cr_assert_eq(m->x[3], 4);
  ns_mts_free(m);
  rm_tmp_file(p);
  p = tmp_file("vmstat", "#Time,Time_usec,ProducerName,a\r\n1.5,500000,n1,7\r\n");
  char *paths[] = {(char *)p};
  ns_mts **v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_import_ldms(paths, 1, NULL, &v, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(v[0]->ts_ms[0], 1500);
  cr_assert_eq(v[0]->x[0], 7);
  ns_import_mts_free(v, n);
  rm_tmp_file(p);
  p = tmp_file("s.txt", "JobID|NodeList|Start|End|State\r\n1|n1|2026-01-01T00:00:00|Unknown|RUNNING\r\n");
  ns_job *j = NULL;
  cr_assert_eq(ns_import_sacct_file(p, "c", NULL, &j, &n, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_str_eq(j[0].state, "RUNNING");
  free_jobs(j, n);
  rm_tmp_file(p);
}

typedef struct {
  int calls;
  int64_t last_done, total;
} prog_log;

static void log_progress(void *ctx, int64_t done, int64_t total) {
  prog_log *l = ctx;
  cr_assert(done >= l->last_done && done <= total, "%lld of %lld", (long long)done, (long long)total);
  l->calls++;
  l->last_done = done;
  l->total = total;
}

Test(report, progress_callbacks) {
  prog_log l = {0};
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.progress = log_progress;
  o.progress_ctx = &l;
  char *paths[] = {(char *)fx("ldms/ok")};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, &o, &v, &n, &rep), NS_OK);
  ns_import_mts_free(v, n);
  cr_assert(l.calls >= 1);
  cr_assert_eq(l.last_done, l.total); /* every byte read at the end */
  memset(&l, 0, sizeof l);
  ns_mts *m = NULL;
  cr_assert_eq(ns_import_csv_wide(fx("csv/wide.csv"), "n", &o, &m, &rep), NS_OK);
  ns_mts_free(m);
  cr_assert_eq(l.last_done, l.total);
  cr_assert(l.total > 100);
}

Test(report, format) {
  ns_import_report r = {.files = 2, .rows = 10, .points = 30, .nodes = 1, .seconds = 0.5, .dup_rows = 1,
                        .truncated_lines = 2};
  char buf[512];
  ns_import_report_format(&r, buf, sizeof buf);
  cr_assert_str_eq(buf, "files 2, rows 10, points 30, nodes 1, jobs 0, segments 0, labels 0, 0.50 s, repairs 3 "
                        "(duplicate rows 1, truncated lines 2)");
  char small[20];
  ns_import_report_format(&r, small, sizeof small);
  cr_assert_eq(strlen(small), 19);
}
