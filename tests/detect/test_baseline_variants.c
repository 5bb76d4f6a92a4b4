/* The z-score and autoencoder baselines as model-library variants (zscore,
 * ae): trained per cluster by the pipeline, stored in the models table,
 * loaded and scored by ns_detect like Transformer libraries; damaged or
 * mismatched baseline blobs, wrong variants and incremental training are
 * refused. The second suite runs the `nsentry` CLI on a small synthetic
 * cluster (synth, prep, train, score, eval, library). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ns_baseline.h"
#include "ns_build_config.h"
#include "ns_config.h"
#include "ns_db.h"
#include "ns_detect.h"
#include "ns_pipeline.h"
#include "ns_store.h"
#include "../tmp_store.h"

#define NM 6
#define NT 160
#define IV 15000
#define SPIKE_METRIC 2

static char *names[NM] = {"cpu_user", "cpu_sys", "mem_used", "net_rx", "net_tx", "io_wait"};

/* Two behaviours (0: sines, 1: square waves), each segment with its own
 * amplitude and phase; spike_at >= 0 adds 12 points of mem_used at 4.5. */
static ns_segment *segment(int pattern, int node, int job, unsigned seed, int spike_at) {
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create(NT, NM, &s), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(s, names), NS_OK);
  char nd[16], jb[16];
  snprintf(nd, sizeof nd, "bn%02d", node);
  snprintf(jb, sizeof jb, "%d", job);
  cr_assert_eq(ns_segment_set_meta(s, "lab", nd, jb, 1700000000000LL + (int64_t)job * 3600000, IV), NS_OK);
  unsigned r = seed * 2654435761u + 1;
#define RNDU() ((r = r * 1103515245u + 12345u), (double)((r >> 8) & 0xffff) / 65536.0)
  double amp = 0.8 + 0.4 * RNDU();
  int phase = (int)(24 * RNDU());
  for (int t = 0; t < NT; t++)
    for (int m = 0; m < NM; m++) {
      int u = t + phase;
      double v = pattern == 0 ? sin(u / (8.0 + m)) : ((u / (10 + m)) % 2 ? 1.0 : -1.0);
      s->x[t * NM + m] = (float)(amp * v * (0.5 + 0.1 * m) + 0.05 * (RNDU() - 0.5));
    }
#undef RNDU
  for (int t = spike_at; spike_at >= 0 && t < spike_at + 12; t++) s->x[t * NM + SPIKE_METRIC] = 4.5f;
  return s;
}

static ns_store *store;
static ns_config *cfg;
static char dbpath[64];

static void setup(void) {
  store = tmp_store_open("blvar", dbpath);
  cr_assert_eq(ns_config_create(&cfg), NS_OK);
  const char *kv[] = {"model_epochs=4", "model_window=32", "model_batch=8", "model_layers=1", "model_heads=2",
                      "model_patience=0", "clust_k_max=4", "clust_representatives=4", "match_len=40m",
                      "detect_window=15m", "feat_fs=100", "baseline_ae_epochs=30"};
  for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
    cr_assert_eq(ns_config_apply_args(cfg, 1, (char *const *)&kv[i]), NS_OK, "%s: %s", kv[i], ns_err_detail());
  int job = 1;
  for (int p = 0; p < 2; p++)
    for (int n = 0; n < 4; n++, job++) {
      ns_segment *s = segment(p, n + 4 * p, job, (unsigned)(job * 7), -1);
      int64_t id;
      cr_assert_eq(ns_store_put_segment(store, s, "train", &id), NS_OK, "%s", ns_err_detail());
      ns_segment_free(s);
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
  cr_assert_eq(s, NS_OK, "train %s: %s", ns_variant_name(v), ns_err_message(s));
  return sum;
}

/* Replace every models blob of library lib_id. */
static void set_blobs(int64_t lib_id, const void *blob, size_t n) {
  ns_db_stmt *q = NULL;
  bool row;
  cr_assert_eq(ns_db_prepare(ns_store_db(store), "UPDATE models SET blob = ?1 WHERE library_id = ?2", &q), NS_OK);
  cr_assert_eq(ns_db_bind_blob(q, 1, blob, n), NS_OK);
  cr_assert_eq(ns_db_bind_int64(q, 2, lib_id), NS_OK);
  cr_assert_eq(ns_db_step(q, &row), NS_OK);
  ns_db_finalize(q);
}

/* The stored blob of the cluster with clusters.id cluster_db_id, as a baseline. */
static ns_baseline *stored_baseline(int64_t cluster_db_id) {
  ns_db_stmt *q = NULL;
  bool row = false;
  cr_assert_eq(ns_db_prepare(ns_store_db(store), "SELECT blob FROM models WHERE cluster_id = ?1", &q), NS_OK);
  cr_assert_eq(ns_db_bind_int64(q, 1, cluster_db_id), NS_OK);
  cr_assert_eq(ns_db_step(q, &row), NS_OK);
  cr_assert(row, "no models row for cluster %lld", (long long)cluster_db_id);
  size_t n = 0;
  const void *blob = ns_db_col_blob(q, 0, &n);
  cr_assert(ns_baseline_blob_is(blob, n), "the models row does not hold a baseline blob");
  ns_baseline *b = NULL;
  cr_assert_eq(ns_baseline_load(blob, n, (const char *const *)names, NM, &b), NS_OK, "%s", ns_err_detail());
  ns_db_finalize(q);
  return b;
}

static void trains_and_flags_injection(ns_variant var, ns_baseline_kind kind) {
  ns_train_summary sum = train(var);
  cr_assert_eq(sum.n_segments, 8);
  cr_assert_geq(sum.n_clusters, 2, "the two behaviours should give two clusters, got %zu", sum.n_clusters);
  size_t calibrated = 0;
  for (size_t c = 0; c < sum.n_clusters; c++) {
    const ns_train_cluster_summary *cs = &sum.clusters[c];
    cr_assert_gt(cs->windows_used, 0);
    cr_assert_eq(cs->rounds, 1, "no robust rounds for baselines");
    /* Every member is trained on here, so thresholds come from held-out windows. */
    if (cs->windows_total - cs->windows_labelled >= 10) {
      cr_assert_gt(cs->calibration_windows, 0, "cluster %d: no held-out windows", cs->label);
      /* train_loss is the mean training score; the thresholds' mean is another set's. */
      cr_assert_neq(cs->score_mean, cs->train_loss, "cluster %d kept its training statistics", cs->label);
      calibrated++;
    }
    cr_assert(isfinite(cs->score_q99) && cs->score_q99 > 0);
  }
  cr_assert_gt(calibrated, 0);
  ns_train_summary_clear(&sum);

  ns_library_info *li = NULL;
  size_t nl = 0;
  cr_assert_eq(ns_library_list(store, &li, &nl), NS_OK);
  cr_assert_eq(nl, 1);
  cr_assert_str_eq(li[0].variant, ns_variant_name(var));
  free(li);

  ns_library *lib = NULL;
  cr_assert_eq(ns_library_load_active(store, &lib), NS_OK, "%s", ns_err_detail());
  ns_segment *normal = segment(1, 9, 100, 4242, -1), *bad = segment(1, 9, 101, 4242, 90);
  ns_node_verdict *vn = NULL, *vb = NULL;
  cr_assert_eq(ns_detect_prepped(lib, normal, cfg, &vn), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_detect_prepped(lib, bad, cfg, &vb), NS_OK, "%s", ns_err_detail());
  cr_assert(vn->scored && vb->scored);
  cr_assert_eq(vb->cluster, vn->cluster);
  cr_assert(vb->anomalous, "injected segment not flagged: max %g, level %g", vb->score_max, vb->threshold);
  cr_assert_gt(vb->score_max, 3 * vn->score_max, "injection %g vs normal %g", vb->score_max, vn->score_max);
  /* Injected points score above every normal point of the same segment. */
  float inj_min = INFINITY, rest_max = 0;
  for (size_t t = 0; t < vb->T; t++)
    if (t >= 90 && t < 102) inj_min = fminf(inj_min, vb->score[t]);
    else rest_max = fmaxf(rest_max, vb->score[t]);
  cr_assert_gt(inj_min, rest_max, "injected points %g, others up to %g", inj_min, rest_max);
  /* The interval over the injection names the injected metric, above its
   * reconstruction: first for the z-score; among the top metrics for the
   * autoencoder, whose reconstruction of the other metrics the spike also
   * throws off (it maps points to points, with no notion of "usual"). */
  bool found = false;
  int64_t inj = bad->start_ms + 95LL * IV;
  for (size_t i = 0; i < vb->n_intervals; i++) {
    const ns_interval *iv = &vb->intervals[i];
    if (iv->start_ms > inj || inj > iv->end_ms) continue;
    found = true;
    int k = 0;
    while (k < iv->n_top && strcmp(iv->top_metric[k], names[SPIKE_METRIC]) != 0) k++;
    cr_assert_lt(k, kind == NS_BASELINE_ZSCORE ? 1 : iv->n_top, "%s is not a top metric (first: %s)",
                 names[SPIKE_METRIC], iv->top_metric[0]);
    cr_assert_eq(iv->top_direction[k], 1);
  }
  cr_assert(found, "no interval covers the injection");
  /* Thresholds are the stored baseline's score statistics, as for a model. */
  ns_baseline *b = stored_baseline(vb->cluster_db_id);
  cr_assert_eq(ns_baseline_get_kind(b), kind);
  const ns_score_stats *ss = ns_baseline_score_stats(b);
  double level = ns_cfg_double(cfg, NS_CFG_detect_level_factor) *
                 ns_score_stats_quantile(ss, ns_cfg_double(cfg, NS_CFG_detect_level_quantile));
  double floor = ns_score_stats_quantile(ss, ns_cfg_double(cfg, NS_CFG_detect_noise_quantile));
  cr_assert_float_eq(vb->threshold, level, 1e-9 * (1 + level));
  cr_assert_float_eq(vb->noise_floor, floor, 1e-9 * (1 + floor));
  /* And the scores are the baseline's own. */
  float *xh = malloc(NT * NM * sizeof *xh), *sc = malloc(NT * sizeof *sc);
  cr_assert_eq(ns_baseline_reconstruct(b, bad->x, NT, xh), NS_OK);
  ns_baseline_score(b, bad->x, xh, NT, sc, NULL);
  for (size_t t = 0; t < NT; t++) cr_assert_float_eq(vb->score[t], sc[t], 1e-6f * (1 + sc[t]), "point %zu", t);
  free(xh), free(sc);
  ns_baseline_free(b);
  char *json = NULL;
  cr_assert_eq(ns_node_verdict_json(vb, &json), NS_OK);
  cr_assert(strstr(json, "\"metric\":\"mem_used\""), "%s", json);
  free(json);
  ns_node_verdict_free(vn);
  ns_node_verdict_free(vb);
  ns_segment_free(normal);
  ns_segment_free(bad);
  ns_library_free(lib);
}

TestSuite(baseline_variants, .init = setup, .fini = teardown, .timeout = 240);

Test(baseline_variants, zscore_trains_scores_and_flags_injection) {
  trains_and_flags_injection(NS_VARIANT_ZSCORE, NS_BASELINE_ZSCORE);
}

Test(baseline_variants, ae_trains_scores_and_flags_injection) {
  trains_and_flags_injection(NS_VARIANT_AE, NS_BASELINE_DENSE_AE);
}

Test(baseline_variants, variant_names_parse_and_unknown_is_rejected) {
  ns_variant v;
  cr_assert_eq(ns_variant_parse("zscore", &v), NS_OK);
  cr_assert_eq(v, NS_VARIANT_ZSCORE);
  cr_assert_eq(ns_variant_parse("ae", &v), NS_OK);
  cr_assert_eq(v, NS_VARIANT_AE);
  cr_assert_str_eq(ns_variant_name(NS_VARIANT_AE), "ae");
  cr_assert_eq(ns_variant_parse("dense_ae", &v), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "zscore") && strstr(ns_err_detail(), "ae)"), "%s", ns_err_detail());
  cr_assert_eq(ns_variant_parse("Zscore", &v), NS_ERR_RANGE);
}

Test(baseline_variants, corrupt_or_foreign_blobs_are_refused) {
  ns_train_summary z = train(NS_VARIANT_ZSCORE);
  ns_library *lib = NULL;
  /* Truncated baseline blob. */
  set_blobs(z.library_id, "NSBASEL\0garbage", 15);
  cr_assert_neq(ns_library_load(store, z.library_id, &lib), NS_OK);
  cr_assert_null(lib);
  cr_assert(strstr(ns_err_detail(), "model of cluster") && strstr(ns_err_detail(), "baseline blob"), "%s",
            ns_err_detail());
  /* A Transformer blob where a baseline belongs. */
  set_blobs(z.library_id, "NSMODEL\0garbage", 15);
  cr_assert_eq(ns_library_load(store, z.library_id, &lib), NS_ERR_FORMAT);
  cr_assert(strstr(ns_err_detail(), "not an nsentry baseline"), "%s", ns_err_detail());
  /* A valid baseline of the wrong kind, and one of another metric schema. */
  ns_segment *s = segment(0, 1, 1, 1, -1);
  ns_train_series ser = {s->x, NT, 1.0f, 0, NULL};
  ns_baseline_opts o;
  ns_baseline_opts_default(&o);
  o.epochs = 1;
  ns_baseline *ae = NULL, *other = NULL;
  cr_assert_eq(ns_baseline_train(NS_BASELINE_DENSE_AE, (const char *const *)names, NM, NULL, &ser, 1, &o, &ae), NS_OK);
  void *buf = NULL;
  size_t n = 0;
  cr_assert_eq(ns_baseline_save(ae, &buf, &n), NS_OK);
  set_blobs(z.library_id, buf, n);
  free(buf);
  cr_assert_eq(ns_library_load(store, z.library_id, &lib), NS_ERR_CORRUPT);
  cr_assert(strstr(ns_err_detail(), "ae baseline in a zscore library"), "%s", ns_err_detail());
  const char *renamed[NM] = {"cpu_user", "cpu_sys", "gpu_util", "net_rx", "net_tx", "io_wait"};
  cr_assert_eq(ns_baseline_train(NS_BASELINE_ZSCORE, renamed, NM, NULL, &ser, 1, &o, &other), NS_OK);
  cr_assert_eq(ns_baseline_save(other, &buf, &n), NS_OK);
  set_blobs(z.library_id, buf, n);
  free(buf);
  cr_assert_eq(ns_library_load(store, z.library_id, &lib), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "gpu_util"), "%s", ns_err_detail());
  cr_assert_null(lib);
  ns_baseline_free(ae);
  ns_baseline_free(other);
  ns_segment_free(s);
  ns_train_summary_clear(&z);
}

Test(baseline_variants, segment_schema_mismatch_is_an_error) {
  ns_train_summary z = train(NS_VARIANT_ZSCORE);
  ns_train_summary_clear(&z);
  ns_library *lib = NULL;
  cr_assert_eq(ns_library_load_active(store, &lib), NS_OK, "%s", ns_err_detail());
  ns_segment *s = segment(0, 1, 200, 1, -1);
  free(s->metrics[4]);
  s->metrics[4] = strdup("gpu_mem");
  ns_node_verdict *v = NULL;
  cr_assert_eq(ns_detect_prepped(lib, s, cfg, &v), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "gpu_mem"), "%s", ns_err_detail());
  cr_assert_null(v);
  ns_segment_free(s);
  ns_library_free(lib);
}

/* A cluster larger than its representatives calibrates a baseline on members
 * it was not trained on. A stretch of one such member that an expert
 * labelled anomalous must stay out of those thresholds, as it does for the
 * Transformer (ns_train_series.skip). Plain calibration (train_calib_robust
 * = no), so the label is the only thing that can leave the stretch out. */
Test(baseline_variants, expert_labels_stay_out_of_member_calibration) {
  const char *kv[] = {"train_min_windows=0", "train_calib_robust=no"};
  for (size_t i = 0; i < 2; i++) cr_assert_eq(ns_config_apply_args(cfg, 1, (char *const *)&kv[i]), NS_OK);
  // 8 more sine segments: the sine cluster has 12 members, 4 representatives
  ns_segment *spiked = NULL;
  for (int j = 0; j < 8; j++) {
    ns_segment *sg = segment(0, 10 + j, 50 + j, (unsigned)(900 + j), -1);
    if (j == 5) // a spike modest enough not to change the clustering
      for (int t = 130; t < 142; t++) sg->x[t * NM + SPIKE_METRIC] = 1.6f;
    int64_t id;
    cr_assert_eq(ns_store_put_segment(store, sg, "train", &id), NS_OK, "%s", ns_err_detail());
    if (j == 5) spiked = sg;
    else ns_segment_free(sg);
  }
  double q_plain[8] = {0}, q_lab[8] = {0};
  ns_train_summary a = train(NS_VARIANT_ZSCORE);
  cr_assert_eq(a.n_segments, 16);
  cr_assert_leq(a.n_clusters, 8);
  for (size_t c = 0; c < a.n_clusters; c++) q_plain[c] = a.clusters[c].score_q99;
  ns_label l = {.cluster = "lab", .node = spiked->node, .job_id = spiked->job_id,
                .start_ms = spiked->start_ms + 128LL * IV, .end_ms = spiked->start_ms + 145LL * IV, .label = 1,
                .author = "test", .source = "expert", .note = "spike"};
  int64_t lid;
  cr_assert_eq(ns_store_put_label(store, &l, &lid), NS_OK, "%s", ns_err_detail());
  ns_train_summary b = train(NS_VARIANT_ZSCORE);
  cr_assert_eq(b.n_clusters, a.n_clusters, "labels must not change the clustering");
  size_t lower = 0, member_calibrated = 0;
  for (size_t c = 0; c < b.n_clusters; c++) {
    q_lab[c] = b.clusters[c].score_q99;
    member_calibrated += b.clusters[c].calibration_segments > 0;
    if (q_lab[c] < 0.9 * q_plain[c]) lower++;
    else cr_assert_float_eq(q_lab[c], q_plain[c], 1e-9 * (1 + q_plain[c]), "cluster %zu moved", c);
  }
  cr_assert_gt(member_calibrated, 0, "no cluster calibrated on held-out members");
  cr_assert_eq(lower, 1, "the labelled spike still sets a threshold (%zu clusters lower)", lower);
  ns_train_summary_clear(&a);
  ns_train_summary_clear(&b);
  ns_segment_free(spiked);
}

Test(baseline_variants, no_incremental_training_of_or_on_baselines) {
  ns_train_plan plan = {.cluster = "lab", .split = "train", .activate = true, .variant = NS_VARIANT_AE,
                        .incremental = true};
  ns_train_summary sum;
  cr_assert_eq(ns_pipeline_train(store, cfg, &plan, &sum), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "incrementally"), "%s", ns_err_detail());
  ns_train_summary z = train(NS_VARIANT_ZSCORE);
  ns_train_summary_clear(&z);
  ns_segment *s = segment(1, 30, 400, 5, -1);
  int64_t id;
  cr_assert_eq(ns_store_put_segment(store, s, "train", &id), NS_OK, "%s", ns_err_detail());
  ns_segment_free(s);
  plan.variant = NS_VARIANT_FULL;
  cr_assert_eq(ns_pipeline_train(store, cfg, &plan, &sum), NS_ERR_STATE);
  cr_assert(strstr(ns_err_detail(), "zscore baseline"), "%s", ns_err_detail());
  ns_library_info *li = NULL;
  size_t n = 0;
  cr_assert_eq(ns_library_list(store, &li, &n), NS_OK);
  cr_assert_eq(n, 1, "a refused training must leave no library behind");
  free(li);
}

/* ---- the CLI on a small synthetic cluster ---- */

static char cli_dir[64];

static const char *nsentry_bin(void) {
  static char path[512];
  const char *root = getenv("NS_BUILD_ROOT");
  snprintf(path, sizeof path, "%s/service/nsentry", root && *root ? root : NS_BUILD_ROOT);
  return path;
}

/* Runs `nsentry --db sqlite:DIR/c.db ARGS > DIR/out 2>&1`; the exit status. */
static int cli(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "NSENTRY_CONF=/dev/null '%s' --db 'sqlite:%s/c.db' %s > '%s/out' 2>&1", nsentry_bin(),
           cli_dir, args, cli_dir);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* The output of the last cli() call (malloc'ed). */
static char *cli_out(void) {
  char p[96];
  snprintf(p, sizeof p, "%s/out", cli_dir);
  FILE *f = fopen(p, "rb");
  cr_assert_not_null(f);
  char *buf = calloc(1, 1 << 20);
  size_t n = fread(buf, 1, (1 << 20) - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static double json_number(const char *json, const char *after, const char *key) {
  const char *p = strstr(json, after);
  cr_assert_not_null(p, "no %s in %s", after, json);
  char k[64];
  snprintf(k, sizeof k, "\"%s\":", key);
  p = strstr(p, k);
  cr_assert_not_null(p, "no %s in %s", key, json);
  return strtod(p + strlen(k), NULL);
}

static void cli_setup(void) {
  snprintf(cli_dir, sizeof cli_dir, "/tmp/ns_blcli_XXXXXX");
  cr_assert_not_null(mkdtemp(cli_dir));
  if (access(nsentry_bin(), X_OK) != 0) cr_skip_test("%s not built", nsentry_bin());
  cr_assert_eq(cli("synth --nodes 6 --days 2 --metrics 24 --seed 3 --anomaly-ratio 0.02 --train-frac 0.6 "
                   "--format db --cluster sm"), 0, "%s", cli_out());
  char *o = cli_out();
  char until[64] = "";
  const char *p = strstr(o, "training period ends ");
  cr_assert_not_null(p, "%s", o);
  sscanf(p + strlen("training period ends "), "%63s", until);
  free(o);
  char args[256];
  snprintf(args, sizeof args, "prep --fit --cluster sm --train-until %s", until);
  cr_assert_eq(cli(args), 0, "%s", cli_out());
}

static void cli_teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cli_dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(baseline_cli, .init = cli_setup, .fini = cli_teardown, .timeout = 300);

static void cli_variant(const char *variant) {
  char args[128];
  snprintf(args, sizeof args, "train --cluster sm --variant %s", variant);
  cr_assert_eq(cli(args), 0, "%s", cli_out());
  char *o = cli_out(), want[64];
  snprintf(want, sizeof want, "variant %s, active", variant);
  cr_assert(strstr(o, want), "%s", o);
  free(o);
  cr_assert_eq(cli("library"), 0);
  o = cli_out();
  snprintf(want, sizeof want, " yes     %s ", variant);
  cr_assert(strstr(o, want), "library list does not show the active %s library:\n%s", variant, o);
  free(o);
  cr_assert_eq(cli("score --cluster sm --json"), 0, "%s", cli_out());
  o = cli_out();
  cr_assert(strstr(o, "\"top_metrics\"") && strstr(o, "\"anomalous\":true"), "%.2000s", o);
  free(o);
  cr_assert_eq(cli("eval --cluster sm --json"), 0, "%s", cli_out());
  o = cli_out();
  /* Injected anomalies rank above normal points (an AUC of 0.5 would be chance). */
  double auc = json_number(o, "\"pooled\"", "roc_auc"), paper_auc = json_number(o, "\"paper\"", "auc");
  double recall = json_number(o, "\"paper\"", "recall");
  cr_assert_gt(auc, 0.8, "%s: pooled ROC-AUC %g", variant, auc);
  cr_assert_gt(paper_auc, 0.8, "%s: per-node AUC %g", variant, paper_auc);
  cr_assert_gt(recall, 0.5, "%s: recall %g", variant, recall);
  free(o);
}

Test(baseline_cli, zscore_library_scores_and_evaluates) { cli_variant("zscore"); }

Test(baseline_cli, ae_library_scores_and_evaluates) { cli_variant("ae"); }

Test(baseline_cli, unknown_variant_and_incremental_baseline_are_refused) {
  cr_assert_neq(cli("train --cluster sm --variant zscores"), 0);
  char *o = cli_out();
  cr_assert(strstr(o, "unknown variant 'zscores'") && strstr(o, "zscore, ae"), "%s", o);
  free(o);
  cr_assert_neq(cli("train --cluster sm --variant ae --incremental"), 0);
  o = cli_out();
  cr_assert(strstr(o, "incrementally"), "%s", o);
  free(o);
  cr_assert_eq(cli("train --help"), 0);
  o = cli_out();
  cr_assert(strstr(o, "zscore|ae"), "%s", o);
  free(o);
  cr_assert_eq(cli("library"), 0);
  o = cli_out();
  cr_assert(strstr(o, "no model library yet"), "refused trainings left a library behind:\n%s", o);
  free(o);
}
