/* Builds the small fixture database the nsentry-label tests drive:
 * 3 jobs (one anomalous with a stored score and interval, one normal, one
 * with no segments), a cluster library with two clusters, and one imported
 * label. Deterministic: fixed times and values.
 *   usage: label_mkdb URI [empty] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_db.h"
#include "ns_store.h"

#define T0 1795344000000LL /* 2026-11-22 12:00:00 UTC */
#define IV 15000

static void check(ns_status st, const char *what) {
  if (st) {
    fprintf(stderr, "label_mkdb: %s: %s\n", what, ns_err_message(st));
    exit(1);
  }
}

static int64_t add_segment(ns_store *s, const char *job, const char *node, int64_t start, int T, int anomaly_at) {
  static char *names[] = {"cpu_user", "mem_used", "net_rx", "io_wait", "load1"};
  ns_segment *seg = NULL;
  check(ns_segment_create((size_t)T, 5, &seg), "segment");
  check(ns_segment_set_metrics(seg, names), "metrics");
  check(ns_segment_set_meta(seg, "lab", node, job, start, IV), "meta");
  for (int t = 0; t < T; t++) {
    seg->x[t * 5 + 0] = (float)(0.5 * sin(t / 6.0));
    seg->x[t * 5 + 1] = (float)(-1.0 + t * 0.01);
    seg->x[t * 5 + 2] = (float)((t % 10) / 10.0);
    seg->x[t * 5 + 3] = 0.1f;
    seg->x[t * 5 + 4] = (float)(0.2 * cos(t / 4.0));
    if (anomaly_at >= 0 && t >= anomaly_at && t < anomaly_at + 8) seg->x[t * 5 + 0] = 3.5f;
  }
  int64_t id = 0;
  check(ns_store_put_segment(s, seg, "test", &id), "put segment");
  ns_segment_free(seg);
  return id;
}

static void exec_sql(ns_store *s, const char *sql, const int64_t *ids, int nids, const char *text,
                     const void *blob, size_t nblob) {
  ns_db_stmt *q = NULL;
  bool row;
  check(ns_db_prepare(ns_store_db(s), sql, &q), sql);
  int k = 1;
  for (int i = 0; i < nids; i++) check(ns_db_bind_int64(q, k++, ids[i]), "bind");
  if (text) check(ns_db_bind_text(q, k++, text), "bind");
  if (blob) check(ns_db_bind_blob(q, k++, blob, nblob), "bind");
  check(ns_db_step(q, &row), sql);
  ns_db_finalize(q);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: label_mkdb URI [empty]\n");
    return 2;
  }
  ns_store *s = NULL;
  check(ns_store_open(argv[1], &s), "open");
  if (argc > 2 && strcmp(argv[2], "empty") == 0) {
    ns_store_close(s);
    return 0;
  }
  check(ns_store_begin(s), "begin");
  ns_job jobs[3] = {{0}};
  const char *ids[] = {"101", "102", "103"}, *users[] = {"alice", "bob", "carol"};
  for (int i = 0; i < 3; i++) {
    jobs[i].cluster = "lab";
    jobs[i].job_id = (char *)ids[i];
    jobs[i].start_ms = T0 + i * 3600000LL;
    jobs[i].end_ms = jobs[i].start_ms + 120 * IV;
    jobs[i].nnodes = i == 0 ? 2 : 1;
    jobs[i].nodelist = i == 0 ? "cn[01-02]" : "cn03";
    jobs[i].user = (char *)users[i];
    jobs[i].partition = "batch";
    jobs[i].state = "COMPLETED";
    check(ns_store_put_job(s, &jobs[i]), "put job");
  }
  int64_t s1 = add_segment(s, "101", "cn01", T0, 120, 60);
  int64_t s2 = add_segment(s, "101", "cn02", T0, 120, -1);
  int64_t s3 = add_segment(s, "102", "cn03", T0 + 3600000LL, 120, -1);
  /* job 103 has no segments */

  exec_sql(s, "INSERT INTO model_libraries (version, created_ms, active) VALUES ('r1', 1, 1)", NULL, 0, NULL, NULL, 0);
  int64_t lib = 1;
  exec_sql(s, "INSERT INTO clusters (library_id, kind, label, size, radius) VALUES (?1, 0, 'job-0', 2, 1.5)", &lib, 1,
           NULL, NULL, 0);
  exec_sql(s, "INSERT INTO clusters (library_id, kind, label, size, radius) VALUES (?1, 0, 'job-1', 1, 0.0)", &lib, 1,
           NULL, NULL, 0);
  int64_t m1[] = {1, s1}, m2[] = {1, s2}, m3[] = {2, s3};
  exec_sql(s, "INSERT INTO cluster_members (cluster_id, segment_id, distance, representative) VALUES (?1, ?2, 0.8, 1)",
           m1, 2, NULL, NULL, 0);
  exec_sql(s, "INSERT INTO cluster_members (cluster_id, segment_id, distance, representative) VALUES (?1, ?2, 1.5, 1)",
           m2, 2, NULL, NULL, 0);
  exec_sql(s, "INSERT INTO cluster_members (cluster_id, segment_id, distance, representative) VALUES (?1, ?2, 0.0, 1)",
           m3, 2, NULL, NULL, 0);
  exec_sql(s, "INSERT INTO models (library_id, cluster_id, needs_retrain, created_ms) VALUES (1, ?1, 0, 1)", m1, 1,
           NULL, NULL, 0);
  exec_sql(s, "INSERT INTO models (library_id, cluster_id, needs_retrain, created_ms) VALUES (1, ?1, 0, 1)", m3, 1,
           NULL, NULL, 0);

  float score[120];
  for (int t = 0; t < 120; t++) score[t] = (t >= 60 && t < 68) ? 6.0f + (float)(t - 60) * 0.1f : 0.3f + 0.05f * (float)(t % 4);
  char details[512];
  snprintf(details, sizeof details,
           "{\"threshold\":2.0,\"intervals\":[{\"start_ms\":%lld,\"end_ms\":%lld,\"score_max\":6.7,"
           "\"top_metrics\":[{\"metric\":\"cpu_user\",\"direction\":\"above\"},"
           "{\"metric\":\"load1\",\"direction\":\"below\"}]}]}",
           (long long)(T0 + 60 * IV), (long long)(T0 + 67 * IV));
  int64_t v1[] = {s1};
  exec_sql(s,
           "INSERT INTO verdicts (cluster, job_id, node, segment_id, anomalous, score_max, score_mean, pattern_id,"
           " model_version, created_ms, threshold, details, scores)"
           " VALUES ('lab', '101', 'cn01', ?1, 1, 6.7, 0.6, 1, 'r1', 1, 2.0, ?2, ?3)",
           v1, 1, details, score, sizeof score);
  int64_t v2[] = {s2};
  exec_sql(s,
           "INSERT INTO verdicts (cluster, job_id, node, segment_id, anomalous, score_max, score_mean, pattern_id,"
           " model_version, created_ms, details) VALUES ('lab', '101', 'cn02', ?1, 0, 0.45, 0.3, 1, 'r1', 1, '{}')",
           v2, 1, NULL, NULL, 0);
  int64_t v3[] = {s3};
  exec_sql(s,
           "INSERT INTO verdicts (cluster, job_id, node, segment_id, anomalous, score_max, score_mean, pattern_id,"
           " model_version, created_ms, details) VALUES ('lab', '102', 'cn03', ?1, 0, 0.5, 0.3, 2, 'r1', 1, '{}')",
           v3, 1, NULL, NULL, 0);
  ns_label l = {0};
  l.cluster = "lab";
  l.node = "cn03";
  l.job_id = "102";
  l.start_ms = T0 + 3600000LL + 10 * IV;
  l.end_ms = l.start_ms + 2 * IV;
  l.label = 0;
  l.author = "importer";
  l.source = "import";
  l.created_ms = 1;
  int64_t lid;
  check(ns_store_put_label(s, &l, &lid), "put label");
  check(ns_store_commit(s), "commit");
  ns_store_close(s);
  return 0;
}
