/* The training pipeline and online detection on a small synthetic store:
 * two behaviour patterns, a model library trained end to end, verdicts on
 * normal and injected segments, library management and failure paths. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ns_config.h"
#include "ns_db.h"
#include "ns_detect.h"
#include "ns_pipeline.h"
#include "ns_store.h"
#include "../tmp_store.h"

#define NM 6
#define NT 160
#define IV 15000

static char *names[NM] = {"cpu_user", "cpu_sys", "mem_used", "net_rx", "net_tx", "io_wait"};

/* Pattern 0: slow sines; pattern 1: square waves. Small per-node noise.
 * T points (make_segment: NT). */
static ns_segment *make_segment_len(int T, int pattern, int node, int job, unsigned seed, int spike_at) {
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create((size_t)T, NM, &s), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(s, names), NS_OK);
  char nd[16], jb[16];
  snprintf(nd, sizeof nd, "cn%02d", node);
  snprintf(jb, sizeof jb, "%d", job);
  cr_assert_eq(ns_segment_set_meta(s, "lab", nd, jb, 1700000000000LL + (int64_t)job * 3600000, IV), NS_OK);
  srand(seed);
  /* Each segment its own amplitude and phase, so clusters have a spread. */
  double amp = 0.8 + 0.4 * ((double)rand() / RAND_MAX);
  int phase = rand() % 24;
  for (int t = 0; t < T; t++)
    for (int m = 0; m < NM; m++) {
      double noise = 0.05 * ((double)rand() / RAND_MAX - 0.5);
      int u = t + phase;
      double v = pattern == 0 ? sin(u / (8.0 + m)) : ((u / (10 + m)) % 2 ? 1.0 : -1.0);
      s->x[t * NM + m] = (float)(amp * v * (0.5 + 0.1 * m) + noise);
    }
  if (spike_at >= 0)
    for (int t = spike_at; t < spike_at + 12; t++) s->x[t * NM + 2] = 4.5f;
  return s;
}

static ns_segment *make_segment(int pattern, int node, int job, unsigned seed, int spike_at) {
  return make_segment_len(NT, pattern, node, job, seed, spike_at);
}

static ns_store *store;
static ns_config *cfg;
static char dbpath[64];

static void setup(void) {
  store = tmp_store_open("pipe", dbpath);
  cr_assert_eq(ns_config_create(&cfg), NS_OK);
  const char *kv[] = {"model_epochs=12", "model_window=32", "model_batch=8", "model_layers=1", "model_heads=2",
                      "model_patience=0", "clust_k_max=4", "clust_representatives=4", "match_len=40m",
                      "detect_window=15m", "train_robust_rounds=2", "model_lr=3e-3", "feat_fs=100",
                      "ablation_cut=10m"};
  for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
    cr_assert_eq(ns_config_apply_args(cfg, 1, (char *const *)&kv[i]), NS_OK, "%s: %s", kv[i], ns_err_detail());
  int job = 1;
  for (int p = 0; p < 2; p++)
    for (int n = 0; n < 4; n++) {
      ns_segment *s = make_segment(p, n + 4 * p, job, (unsigned)(job * 7), -1);
      int64_t id;
      cr_assert_eq(ns_store_put_segment(store, s, "train", &id), NS_OK, "%s", ns_err_detail());
      ns_segment_free(s);
      job++;
    }
}

static void teardown(void) {
  ns_store_close(store);
  ns_config_free(cfg);
  tmp_store_remove(dbpath);
}

static ns_train_summary train(ns_variant v) {
  ns_train_plan plan = {.cluster = "lab", .split = "train", .activate = true, .variant = v};
  ns_train_summary sum;
  ns_status s = ns_pipeline_train(store, cfg, &plan, &sum);
  cr_assert_eq(s, NS_OK, "train: %s", ns_err_message(s));
  return sum;
}

TestSuite(pipeline, .init = setup, .fini = teardown, .timeout = 240);

Test(pipeline, trains_library_and_flags_injected_anomaly) {
  ns_train_summary sum = train(NS_VARIANT_FULL);
  cr_assert_eq(sum.n_segments, 8);
  cr_assert_geq(sum.n_clusters, 2, "two patterns should give two clusters, got %zu", sum.n_clusters);
  cr_assert_str_eq(sum.version, "r1");
  for (size_t c = 0; c < sum.n_clusters; c++) cr_assert_gt(sum.clusters[c].windows_used, 0);
  ns_train_summary_clear(&sum);

  ns_library *lib = NULL;
  cr_assert_eq(ns_library_load_active(store, &lib), NS_OK, "%s", ns_err_detail());
  cr_assert_str_eq(ns_library_version(lib), "r1");
  cr_assert_eq(ns_library_n_metrics(lib), NM);

  ns_segment *normal = make_segment(1, 9, 100, 4242, -1), *bad = make_segment(1, 9, 101, 4242, 90);
  ns_node_verdict *vn = NULL, *vb = NULL;
  cr_assert_eq(ns_detect_prepped(lib, normal, cfg, &vn), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_detect_prepped(lib, bad, cfg, &vb), NS_OK, "%s", ns_err_detail());
  cr_assert(vn->scored && vb->scored);
  cr_assert_not(vn->anomalous, "normal segment flagged: max %g, level %g", vn->score_max, vn->threshold);
  cr_assert(vb->anomalous, "injected segment not flagged: max %g, level %g", vb->score_max, vb->threshold);
  cr_assert_gt(vb->score_max, 3 * vn->score_max);
  /* The interval covers the injection and names the injected metric. */
  bool found = false;
  for (size_t i = 0; i < vb->n_intervals; i++) {
    const ns_interval *iv = &vb->intervals[i];
    int64_t inj = bad->start_ms + 95LL * IV;
    if (iv->start_ms <= inj && inj <= iv->end_ms) {
      found = true;
      cr_assert_str_eq(iv->top_metric[0], "mem_used");
      cr_assert_eq(iv->top_direction[0], 1);
    }
  }
  cr_assert(found, "no interval covers the injection");
  cr_assert_eq(vb->cluster, vn->cluster);

  /* Stored verdict round trip (upsert twice). */
  cr_assert_eq(ns_detect_store_verdict(store, "lab", "101", "cn09", 0, vb), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_detect_store_verdict(store, "lab", "101", "cn09", 0, vb), NS_OK, "%s", ns_err_detail());
  ns_db_stmt *q = NULL;
  bool row;
  cr_assert_eq(ns_db_prepare(ns_store_db(store), "SELECT COUNT(*), MAX(anomalous), MAX(length(scores)) FROM verdicts", &q), NS_OK);
  cr_assert_eq(ns_db_step(q, &row), NS_OK);
  cr_assert_eq(ns_db_col_int64(q, 0), 1);
  cr_assert_eq(ns_db_col_int64(q, 1), 1);
  cr_assert_eq(ns_db_col_int64(q, 2), NT * 4);
  ns_db_finalize(q);
  char *json = NULL;
  cr_assert_eq(ns_node_verdict_json(vb, &json), NS_OK);
  cr_assert(strstr(json, "\"anomalous\":true") && strstr(json, "\"metric\":\"mem_used\""), "%s", json);
  free(json);

  ns_node_verdict_free(vn);
  ns_node_verdict_free(vb);
  ns_segment_free(normal);
  ns_segment_free(bad);
  ns_library_free(lib);
}

Test(pipeline, schema_mismatch_and_short_segments_are_errors) {
  ns_train_summary sum = train(NS_VARIANT_FULL);
  ns_train_summary_clear(&sum);
  ns_library *lib = NULL;
  cr_assert_eq(ns_library_load_active(store, &lib), NS_OK);
  ns_segment *s = make_segment(0, 1, 200, 1, -1);
  free(s->metrics[3]);
  s->metrics[3] = strdup("gpu_util");
  ns_node_verdict *v = NULL;
  cr_assert_eq(ns_detect_prepped(lib, s, cfg, &v), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "gpu_util") != NULL, "%s", ns_err_detail());
  cr_assert_null(v);
  free(s->metrics[3]);
  s->metrics[3] = strdup("net_rx");
  s->x[5] = NAN;
  cr_assert_eq(ns_detect_prepped(lib, s, cfg, &v), NS_ERR_NONFINITE);
  ns_segment_free(s);
  ns_library_free(lib);
}

Test(pipeline, libraries_roll_back_and_corrupt_models_are_refused) {
  ns_library_info *li = NULL;
  size_t n = 0;
  ns_library *lib = NULL;
  cr_assert_eq(ns_library_load_active(store, &lib), NS_ERR_NOTFOUND);
  ns_train_summary a = train(NS_VARIANT_FULL), b = train(NS_VARIANT_C5);
  cr_assert_str_eq(b.version, "r2");
  cr_assert_eq(ns_library_list(store, &li, &n), NS_OK);
  cr_assert_eq(n, 2);
  cr_assert_not(li[0].active);
  cr_assert(li[1].active);
  cr_assert_str_eq(li[1].variant, "c5");
  free(li);
  cr_assert_eq(ns_library_activate(store, a.library_id), NS_OK);
  cr_assert_eq(ns_library_load_active(store, &lib), NS_OK);
  cr_assert_str_eq(ns_library_version(lib), "r1");
  ns_library_free(lib);
  cr_assert_eq(ns_library_activate(store, 999), NS_ERR_NOTFOUND);

  /* A damaged model blob makes the library unloadable, with a clear error. */
  ns_db_stmt *q = NULL;
  bool row;
  cr_assert_eq(ns_db_prepare(ns_store_db(store),
                             "UPDATE models SET blob = ?1 WHERE library_id = ?2", &q), NS_OK);
  cr_assert_eq(ns_db_bind_blob(q, 1, "NSMODEL\0garbage", 15), NS_OK);
  cr_assert_eq(ns_db_bind_int64(q, 2, a.library_id), NS_OK);
  cr_assert_eq(ns_db_step(q, &row), NS_OK);
  ns_db_finalize(q);
  ns_status s = ns_library_load(store, a.library_id, &lib);
  cr_assert_neq(s, NS_OK);
  cr_assert_null(lib);
  cr_assert(strstr(ns_err_detail(), "model of cluster") != NULL, "%s", ns_err_detail());
  ns_train_summary_clear(&a);
  ns_train_summary_clear(&b);
}

Test(pipeline, nothing_to_train_is_an_error) {
  ns_train_plan plan = {.split = "nonexistent", .activate = true};
  ns_train_summary sum;
  ns_status s = ns_pipeline_train(store, cfg, &plan, &sum);
  cr_assert_neq(s, NS_OK);
  ns_library_info *li = NULL;
  size_t n = 0;
  cr_assert_eq(ns_library_list(store, &li, &n), NS_OK);
  cr_assert_eq(n, 0, "a failed training must leave no library behind");
  free(li);
}

Test(pipeline, variants_parse) {
  ns_variant v;
  cr_assert_eq(ns_variant_parse("c4", &v), NS_OK);
  cr_assert_eq(v, NS_VARIANT_C4);
  cr_assert_str_eq(ns_variant_name(NS_VARIANT_C1), "c1");
  cr_assert_eq(ns_variant_parse("c9", &v), NS_ERR_RANGE);
}

Test(pipeline, incremental_finetunes_matches_and_learns_new_patterns) {
  /* Start from a library that knows pattern 0 only. */
  ns_train_plan plan = {.split = "train", .activate = true, .to_ms = 1700000000000LL + 4 * 3600000LL + 1000};
  ns_train_summary sum;
  cr_assert_eq(ns_pipeline_train(store, cfg, &plan, &sum), NS_OK, "%s", ns_err_detail());
  size_t before = sum.n_clusters;
  ns_train_summary_clear(&sum);
  ns_library *lib = NULL;
  ns_node_verdict *v = NULL;
  ns_segment *probe = make_segment(1, 20, 300, 99, -1);
  cr_assert_eq(ns_library_load_active(store, &lib), NS_OK);
  cr_assert_eq(ns_detect_prepped(lib, probe, cfg, &v), NS_OK, "%s", ns_err_detail());
  cr_assert(v->new_pattern, "pattern 1 should be new to a pattern-0 library");
  double err_before = v->score_mean;
  ns_node_verdict_free(v);
  ns_library_free(lib);

  /* Everything stored since: more pattern 0 and all of pattern 1. */
  plan = (ns_train_plan){.split = "train", .activate = true, .incremental = true};
  cr_assert_eq(ns_pipeline_train(store, cfg, &plan, &sum), NS_OK, "%s", ns_err_detail());
  cr_assert_str_eq(sum.version, "r2");
  cr_assert_gt(sum.n_clusters, before, "new patterns should form new clusters");
  cr_assert_eq(sum.n_unmatched, 4);
  size_t finetuned = 0, fresh = 0;
  for (size_t c = 0; c < sum.n_clusters; c++) finetuned += sum.clusters[c].finetuned, fresh += sum.clusters[c].is_new;
  cr_assert_geq(fresh, 1);
  ns_train_summary_clear(&sum);
  cr_assert_eq(ns_library_load_active(store, &lib), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_detect_prepped(lib, probe, cfg, &v), NS_OK, "%s", ns_err_detail());
  cr_assert_not(v->new_pattern, "pattern 1 is known after incremental training (cluster %d, distance %g)", v->cluster, v->match_distance);
  cr_assert_geq(v->cluster, (int)before, "matched to a cluster made from the new segments (label %d)", v->cluster);
  cr_assert_lt(v->score_mean, err_before, "a model of its own pattern reconstructs it better (%g vs %g)",
               v->score_mean, err_before);
  ns_node_verdict_free(v);
  ns_library_free(lib);
  ns_segment_free(probe);

  /* Nothing new left: a clear error, and no new library. */
  ns_status s = ns_pipeline_train(store, cfg, &plan, &sum);
  cr_assert_eq(s, NS_ERR_EMPTY, "%s", ns_err_message(s));
  ns_library_info *li = NULL;
  size_t n = 0;
  cr_assert_eq(ns_library_list(store, &li, &n), NS_OK);
  cr_assert_eq(n, 2);
  free(li);
}

Test(pipeline, ablation_variants_train_and_score) {
  const ns_variant vs[] = {NS_VARIANT_C1, NS_VARIANT_C2, NS_VARIANT_C3, NS_VARIANT_C4, NS_VARIANT_C5};
  ns_segment *probe = make_segment(0, 3, 500, 77, -1);
  for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
    ns_train_summary sum = train(vs[i]);
    if (vs[i] == NS_VARIANT_C1) cr_assert_eq(sum.n_clusters, 1, "C1 is one global model");
    if (vs[i] == NS_VARIANT_C3) cr_assert_eq(sum.n_c3_test_cuts, 0, "no test split: nothing to cut, and no error");
    ns_train_summary_clear(&sum);
    ns_library *lib = NULL;
    ns_node_verdict *v = NULL;
    cr_assert_eq(ns_library_load_active(store, &lib), NS_OK, "%s: %s", ns_variant_name(vs[i]), ns_err_detail());
    cr_assert_eq(ns_detect_prepped(lib, probe, cfg, &v), NS_OK, "%s: %s", ns_variant_name(vs[i]), ns_err_detail());
    cr_assert(v->scored);
    ns_node_verdict_free(v);
    ns_library_free(lib);
  }
  ns_library_info *li = NULL;
  size_t n = 0;
  cr_assert_eq(ns_library_list(store, &li, &n), NS_OK);
  cr_assert_eq(n, 5);
  cr_assert_str_eq(li[2].variant, "c3");
  free(li);
  ns_segment_free(probe);
}

static void set(const char *kv) {
  cr_assert_eq(ns_config_apply_args(cfg, 1, (char *const *)&kv), NS_OK, "%s: %s", kv, ns_err_detail());
}

/* 24 more segments: two clusters of 16 members, of which the quick
 * training settings below train on 2 each. */
static void broad_clusters(void) {
  for (int j = 0; j < 24; j++) {
    ns_segment *s = make_segment(j % 2, 20 + j % 6, 200 + j, (unsigned)(977 * j + 5), -1);
    int64_t id;
    cr_assert_eq(ns_store_put_segment(store, s, "train", &id), NS_OK, "%s", ns_err_detail());
    ns_segment_free(s);
  }
  set("clust_k_max=2");
  set("clust_representatives=2");
  set("train_min_windows=0");
  set("train_robust_rounds=1");
  set("model_epochs=2");
}

/* Broad clusters (k held at 2, 16 segments of varied amplitude and phase
 * each) and a window budget the representatives already meet: only the
 * sub-pattern step adds members, at most train_strata_members per
 * sub-pattern, and none when it is 0. */
Test(pipeline, sub_patterns_get_training_members) {
  broad_clusters();
  set("clust_strata=3");
  ns_train_summary on = train(NS_VARIANT_FULL);
  cr_assert_eq(on.n_clusters, 2);
  size_t added = 0;
  for (size_t c = 0; c < on.n_clusters; c++) {
    cr_assert_eq(on.clusters[c].size, 16);
    cr_assert_geq(on.clusters[c].n_series, 2);
    cr_assert_leq(on.clusters[c].n_series, 2 + 3 * 2, "cluster %zu: %zu series", c, on.clusters[c].n_series);
    added += on.clusters[c].n_series - 2;
  }
  cr_assert_geq(added, 4, "sub-patterns of both clusters get members (added %zu)", added);
  ns_train_summary_clear(&on);
  set("train_strata_members=0");
  ns_train_summary off = train(NS_VARIANT_FULL);
  for (size_t c = 0; c < off.n_clusters; c++) cr_assert_eq(off.clusters[c].n_series, 2);
  ns_train_summary_clear(&off);
  /* The sub-patterns travel with the library: incremental training of the
   * active one (format 2) loads them back and still trains. */
  set("train_strata_members=2");
  ns_segment *s = make_segment(0, 30, 400, 31337, -1);
  int64_t id;
  cr_assert_eq(ns_store_put_segment(store, s, "train", &id), NS_OK, "%s", ns_err_detail());
  ns_segment_free(s);
  ns_train_plan plan = {.cluster = "lab", .split = "train", .activate = true, .incremental = true};
  ns_train_summary inc;
  cr_assert_eq(ns_pipeline_train(store, cfg, &plan, &inc), NS_OK, "%s", ns_err_detail());
  ns_train_summary_clear(&inc);
}

/* Thresholds are calibrated on at most train_calib_members held-out members,
 * and on all of them when the cluster has fewer; 0 is refused. */
Test(pipeline, calibration_member_count_follows_the_config) {
  broad_clusters();
  set("train_strata_members=0");
  const char *bad = "train_calib_members=0";
  cr_assert_eq(ns_config_apply_args(cfg, 1, (char *const *)&bad), NS_ERR_RANGE);
  size_t want[] = {3, 14};
  const char *kv[] = {"train_calib_members=3", "train_calib_members=100"};
  for (int k = 0; k < 2; k++) {
    set(kv[k]);
    ns_train_summary sum = train(NS_VARIANT_FULL);
    cr_assert_eq(sum.n_clusters, 2);
    for (size_t c = 0; c < sum.n_clusters; c++) {
      cr_assert_eq(sum.clusters[c].n_series, 2);
      cr_assert_eq(sum.clusters[c].calibration_segments, want[k], "%s: cluster %zu calibrated on %zu", kv[k], c,
                   sum.clusters[c].calibration_segments);
    }
    ns_train_summary_clear(&sum);
  }
}

/* A cluster of short jobs (median series shorter than model_window) trains
 * on windows as long as its shortest series, so every member gives one: a
 * median window left the shorter half untrained, and that half can be one
 * whole kind of job (flagged from start to end afterwards). */
Test(pipeline, short_job_clusters_train_every_member) {
  int job = 600;
  for (int p = 0; p < 2; p++)
    for (int k = 0; k < 7; k++) {
      ns_segment *s = make_segment_len(k < 3 ? 24 : 48, p, 10 + k, job, (unsigned)(31 * job), -1);
      int64_t id;
      cr_assert_eq(ns_store_put_segment(store, s, "train", &id), NS_OK, "%s", ns_err_detail());
      ns_segment_free(s);
      job++;
    }
  set("model_window=256");
  set("clust_k_max=2");
  set("train_robust_rounds=1");
  set("model_epochs=2");
  ns_train_summary sum = train(NS_VARIANT_FULL);
  bool shortest = false;
  for (size_t c = 0; c < sum.n_clusters; c++) {
    const ns_train_cluster_summary *cs = &sum.clusters[c];
    cr_assert_eq(cs->n_series, cs->size, "cluster %zu: every member is trained on", c);
    /* Whatever the clustering (by pattern, or long apart from short),
     * each cluster's window is its shortest member: 24 or 160, never the
     * median 48. */
    cr_assert(cs->window == 24 || cs->window == NT, "cluster %zu: window %d", c, cs->window);
    shortest |= cs->window == 24;
    cr_assert_geq(cs->windows_total, cs->n_series, "cluster %zu", c);
  }
  cr_assert(shortest, "the clusters holding the 24-point jobs train on 24-point windows");
  ns_train_summary_clear(&sum);
}
