/* ns_clib with real features and the store: build from stored segments,
 * save/load (artifact + clusters rows), match stored segments, bad input.
 * SQLite always; PostgreSQL too when NS_TEST_PG_URI is set. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ns_clib.h"
#include "ns_feat.h"
#include "ns_store.h"

#define M 4
static char *mnames[M] = {"cpu", "mem", "net", "io"};

/* Segment of pattern g: sine of a per-group period on some metrics, a ramp
 * or noise on others; seeded per segment. */
static ns_segment *pattern(int g, int seed, size_t T, const char *node, const char *job) {
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create(T, M, &s), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(s, mnames), NS_OK);
  cr_assert_eq(ns_segment_set_meta(s, "lab", node, job, 1700000000000LL + seed * 86400000LL, 15000), NS_OK);
  unsigned st = (unsigned)seed * 2654435761u + 1;
  for (size_t t = 0; t < T; t++) {
    for (size_t m = 0; m < M; m++) {
      st = st * 1103515245u + 12345u;
      double noise = ((st >> 8) & 0xffff) / 65536.0 - 0.5;
      double v;
      if (g == 0) v = sin(2 * M_PI * t / 12.0 + m) + 0.1 * noise;
      else if (g == 1) v = (double)t / T * (m + 1) + 0.1 * noise;
      else v = ((t / 10) % 2 ? 1.0 : -1.0) * (m + 1) + 0.1 * noise;
      s->x[t * M + m] = (float)v;
    }
  }
  return s;
}

static ns_store *open_store(const char *which, char *path) {
  ns_store *st = NULL;
  if (strcmp(which, "pg") == 0) {
    const char *uri = getenv("NS_TEST_PG_URI");
    if (!uri) cr_skip_test("NS_TEST_PG_URI not set");
    cr_assert_eq(ns_store_open(uri, &st), NS_OK, "%s", ns_err_detail());
    path[0] = 0;
  } else {
    snprintf(path, 64, "/tmp/ns_clib_XXXXXX");
    int fd = mkstemp(path);
    close(fd);
    char uri[96];
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    cr_assert_eq(ns_store_open(uri, &st), NS_OK, "%s", ns_err_detail());
  }
  return st;
}

static void end_to_end(const char *which) {
  char path[64];
  ns_store *st = open_store(which, path);
  // 3 job patterns x 4 segments, 2 idle patterns x 3; a unique node name per run (PostgreSQL is shared).
  char node[64];
  snprintf(node, sizeof node, "cn%d", (int)getpid());
  int64_t ids[64], gid[64];
  size_t n = 0;
  for (int g = 0; g < 3; g++)
    for (int k = 0; k < 4; k++, n++) {
      char job[16];
      snprintf(job, sizeof job, "%zu", 100 + n);
      ns_segment *s = pattern(g, (int)n, 240 + (size_t)k, node, job);
      cr_assert_eq(ns_store_put_segment(st, s, "train", &ids[n]), NS_OK, "%s", ns_err_detail());
      gid[n] = g;
      ns_segment_free(s);
    }
  for (int g = 0; g < 2; g++)
    for (int k = 0; k < 3; k++, n++) {
      ns_segment *s = pattern(g == 0 ? 1 : 2, (int)n, 150, node, NULL);
      cr_assert_eq(ns_store_put_segment(st, s, "train", &ids[n]), NS_OK, "%s", ns_err_detail());
      gid[n] = 10 + g;
      ns_segment_free(s);
    }
  // One too-short segment is skipped with a warning, not fatal.
  ns_segment *tiny = pattern(0, 999, 5, node, "999");
  int64_t tiny_id;
  cr_assert_eq(ns_store_put_segment(st, tiny, "train", &tiny_id), NS_OK);
  ns_clib_params p;
  ns_clib_params_default(&p);
  p.k_max = 6, p.n_rep = 3, p.threads = 2;
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.node = node;
  f.split = "train";
  ns_clib *lib = NULL;
  cr_assert_eq(ns_clib_build_store(st, &f, &p, NULL, NULL, &lib), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(lib->sweep[NS_SEG_JOB].k, 3, "job k %zu", lib->sweep[NS_SEG_JOB].k);
  cr_assert_eq(lib->sweep[NS_SEG_IDLE].n, 6);
  cr_assert_eq(lib->sweep[NS_SEG_IDLE].k, 2);
  cr_assert_eq(lib->n_clusters, 5);
  for (size_t c = 0; c < lib->n_clusters; c++) {
    cr_assert_not_null(lib->clusters[c].mac_weight);
    for (size_t r = 0; r < lib->clusters[c].size; r++) cr_assert_neq(lib->clusters[c].members[r], tiny_id);
  }
  // A model library row to attach the clusters to (the detection area owns the table).
  ns_db_stmt *q = NULL;
  char ver[64];
  snprintf(ver, sizeof ver, "clib-test-%d-%s", (int)getpid(), which);
  cr_assert_eq(ns_db_prepare(ns_store_db(st), "INSERT INTO model_libraries (version, created_ms) VALUES (?1, 0) RETURNING id", &q), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_db_bind_text(q, 1, ver), NS_OK);
  bool row = false;
  cr_assert_eq(ns_db_step(q, &row), NS_OK, "%s", ns_err_detail());
  cr_assert(row);
  int64_t library_id = ns_db_col_int64(q, 0);
  ns_db_finalize(q);
  cr_assert_eq(ns_clib_save(st, lib, library_id), NS_OK, "%s", ns_err_detail());
  cr_assert_gt(lib->version, 0);
  cr_assert_gt(lib->clusters[0].db_id, 0);
  // Rows: one per cluster, one member row per member, representatives flagged.
  cr_assert_eq(ns_db_prepare(ns_store_db(st), "SELECT COUNT(*), SUM(representative) FROM cluster_members m JOIN clusters c ON c.id = m.cluster_id WHERE c.library_id = ?1", &q), NS_OK);
  ns_db_bind_int64(q, 1, library_id);
  cr_assert_eq(ns_db_step(q, &row), NS_OK);
  cr_assert_eq(ns_db_col_int64(q, 0), 18);
  cr_assert_eq(ns_db_col_int64(q, 1), 15); /* 3 per cluster */
  ns_db_finalize(q);
  ns_clib *back = NULL, *back2 = NULL;
  cr_assert_eq(ns_clib_load_for_library(st, library_id, &back), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(back->version, lib->version);
  cr_assert_eq(back->n_clusters, lib->n_clusters);
  for (size_t c = 0; c < lib->n_clusters; c++) cr_assert_eq(back->clusters[c].db_id, lib->clusters[c].db_id);
  cr_assert_eq(ns_clib_load(st, lib->version, &back2), NS_OK);
  cr_assert_eq(back2->clusters[0].db_id, 0);
  // Attaching a loaded version to a second model library adds rows, not a version.
  snprintf(ver, sizeof ver, "clib-test2-%d-%s", (int)getpid(), which);
  cr_assert_eq(ns_db_prepare(ns_store_db(st), "INSERT INTO model_libraries (version, created_ms) VALUES (?1, 0) RETURNING id", &q), NS_OK);
  ns_db_bind_text(q, 1, ver);
  cr_assert_eq(ns_db_step(q, &row), NS_OK);
  int64_t library2 = ns_db_col_int64(q, 0);
  ns_db_finalize(q);
  cr_assert_eq(ns_clib_save(st, back2, library2), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(back2->version, lib->version);
  cr_assert_gt(back2->clusters[0].db_id, lib->clusters[lib->n_clusters - 1].db_id);
  ns_clib_free(back2);
  cr_assert_eq(ns_clib_load(st, 0, &back2), NS_OK);
  cr_assert_eq(back2->version, lib->version, "no new artifact version");
  ns_clib_free(back2);
  cr_assert_eq(ns_clib_load_for_library(st, library2, &back2), NS_OK);
  cr_assert_eq(back2->version, lib->version);
  ns_clib_free(back2);
  cr_assert_eq(ns_clib_load(st, lib->version + 1000, &back2), NS_ERR_NOTFOUND);
  cr_assert_eq(ns_clib_load_for_library(st, library_id + 100000, &back2), NS_ERR_NOTFOUND);
  // Every training segment matches the cluster it was trained in; same group -> same cluster.
  size_t cl_of_group[16];
  for (size_t g = 0; g < 16; g++) cl_of_group[g] = 999;
  for (size_t i = 0; i < n; i++) {
    ns_segment *s = NULL;
    cr_assert_eq(ns_store_get_segment(st, ids[i], &s), NS_OK);
    ns_clib_match m[2];
    size_t k = 0;
    cr_assert_eq(ns_clib_match_segment(back, s, m, 2, &k), NS_OK, "%s", ns_err_detail());
    cr_assert_eq(k, 2);
    const ns_clib_cluster *cl = &back->clusters[m[0].cluster];
    bool member = false;
    for (size_t r = 0; r < cl->size; r++) member |= cl->members[r] == ids[i];
    cr_assert(member, "segment %zu (group %lld) matched cluster %zu", i, (long long)gid[i], m[0].cluster);
    cr_assert_not(m[0].unmatched);
    cr_assert_eq(m[0].db_id, cl->db_id);
    size_t g = (size_t)(gid[i] % 16);
    if (cl_of_group[g] == 999) cl_of_group[g] = m[0].cluster;
    cr_assert_eq(cl_of_group[g], m[0].cluster, "group %zu split over clusters", g);
    if (cl->members[0] == ids[i]) cr_assert_eq(m[0].nearest_rep, 0);
    ns_segment_free(s);
  }
  // Bad input: too short, NaN, other metrics.
  ns_clib_match m;
  size_t k;
  cr_assert_eq(ns_clib_match_segment(back, tiny, &m, 1, &k), NS_ERR_TOO_SHORT);
  cr_assert(strstr(ns_err_detail(), "features need"), "%s", ns_err_detail());
  ns_segment *bad = pattern(0, 1, 100, node, "1");
  bad->x[17 * M + 2] = NAN;
  cr_assert_eq(ns_clib_match_segment(back, bad, &m, 1, &k), NS_ERR_NONFINITE);
  bad->x[17 * M + 2] = 0;
  free(bad->metrics[1]);
  bad->metrics[1] = strdup("gpu");
  cr_assert_eq(ns_clib_match_segment(back, bad, &m, 1, &k), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "gpu"), "%s", ns_err_detail());
  ns_segment_free(bad);
  ns_segment_free(tiny);
  ns_clib_free(back);
  ns_clib_free(lib);
  ns_store_close(st);
  if (path[0]) unlink(path);
}

Test(sqlite, end_to_end) { end_to_end("sqlite"); }
Test(postgres, end_to_end) { end_to_end("pg"); }

Test(sqlite, empty_store_and_no_library) {
  char path[64];
  ns_store *st = open_store("sqlite", path);
  ns_clib_params p;
  ns_clib_params_default(&p);
  ns_clib *lib = NULL;
  cr_assert_eq(ns_clib_build_store(st, NULL, &p, NULL, NULL, &lib), NS_ERR_EMPTY);
  cr_assert_null(lib);
  cr_assert_eq(ns_clib_load(st, 0, &lib), NS_ERR_NOTFOUND);
  cr_assert(strstr(ns_err_detail(), "nsentry cluster"), "%s", ns_err_detail());
  // Only too-short segments: a clear error.
  ns_segment *s = pattern(0, 1, 4, "n1", "5");
  int64_t id;
  cr_assert_eq(ns_store_put_segment(st, s, NULL, &id), NS_OK);
  ns_segment_free(s);
  cr_assert_eq(ns_clib_build_store(st, NULL, &p, NULL, NULL, &lib), NS_ERR_TOO_SHORT);
  ns_store_close(st);
  unlink(path);
}
