/* nsentry train | score | eval | library: the offline pipeline, scoring,
 * evaluation with the paper's protocol, and model-library management. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_commands.h"
#include "ns_detect.h"
#include "ns_eval.h"
#include "ns_pipeline.h"
#include "ns_store.h"

/* Segments shipped by nodes (stored by nsentryd) are raw; every other
 * stored segment (prep output, imports) is already preprocessed. */
#define RAW_SPLIT "ingest"

typedef struct progress_ctx {
  ns_progress bar;
  char stage[32];
} progress_ctx;

static void on_progress(void *ctx, const char *stage, size_t done, size_t total) {
  progress_ctx *p = ctx;
  if (strcmp(p->stage, stage) != 0) {
    if (p->stage[0]) ns_progress_finish(&p->bar);
    snprintf(p->stage, sizeof p->stage, "%s", stage);
    ns_progress_start(&p->bar, p->stage, (int64_t)total);
  }
  p->bar.total = (int64_t)total;
  ns_progress_update(&p->bar, (int64_t)done, NULL);
}

static int64_t parse_time_ms(const char *s) {
  struct tm tm = {0};
  char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) end = strptime(s, "%Y-%m-%d", &tm);
  if (end && !*end) return (int64_t)timegm(&tm) * 1000;
  char *e;
  long long v = strtoll(s, &e, 10);
  if (*e || v <= 0) ns_cli_die(2, "'%s' is not a time (YYYY-MM-DD[THH:MM:SS] UTC or epoch ms)", s);
  return v;
}

static ns_store *open_store(ns_config *cfg) {
  ns_store *st = NULL;
  ns_cli_check(ns_store_open(ns_cfg_str(cfg, NS_CFG_db), &st), ns_cfg_str(cfg, NS_CFG_db));
  return st;
}

int cmd_train(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {
      {"cluster", required_argument, 0, 'c'}, {"split", required_argument, 0, 's'},
      {"from", required_argument, 0, 'f'},    {"to", required_argument, 0, 't'},
      {"variant", required_argument, 0, 'V'}, {"no-activate", no_argument, 0, 'n'},
      {"notes", required_argument, 0, 'N'},   {"incremental", no_argument, 0, 'i'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  ns_train_plan plan = {.split = "train", .activate = true};
  int c;
  while ((c = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': plan.cluster = optarg; break;
    case 's': plan.split = strcmp(optarg, "any") == 0 ? NULL : optarg; break;
    case 'f': plan.from_ms = parse_time_ms(optarg); break;
    case 't': plan.to_ms = parse_time_ms(optarg); break;
    case 'V': ns_cli_check(ns_variant_parse(optarg, &plan.variant), "--variant"); break;
    case 'n': plan.activate = false; break;
    case 'N': plan.notes = optarg; break;
    case 'i': plan.incremental = true; break;
    case 'h':
      printf("usage: nsentry train [--cluster NAME] [--split S|any] [--from T] [--to T]\n"
             "                     [--variant full|c1|c2|c3|c4|c5|zscore|ae] [--no-activate] [--notes TEXT] [--incremental]\n"
             "Train a model library from the stored segments (default split 'train'): features, HAC with\n"
             "the silhouette-chosen k, one Transformer-MoE per cluster (contamination-robust rounds when\n"
             "train_robust=yes), threshold statistics. The new library becomes active unless --no-activate.\n"
             "--incremental: new segments fine-tune the clusters they match; unmatched ones form new clusters.\n"
             "Variants are the paper's ablations (docs/ablations.md); zscore and ae keep the full method's\n"
             "clusters but give each cluster the z-score or dense-autoencoder baseline instead of a model.\n");
      return 0;
    default: return 2;
    }
  }
  if (optind < argc) ns_cli_die(2, "train: unexpected argument '%s'", argv[optind]);
  ns_store *st = open_store(cfg);
  progress_ctx pc = {0};
  plan.progress = on_progress;
  plan.progress_ctx = &pc;
  ns_train_summary sum;
  ns_status s = ns_pipeline_train(st, cfg, &plan, &sum);
  if (pc.stage[0]) ns_progress_finish(&pc.bar);
  ns_cli_check(s, "train");
  printf("model library %s (id %lld, variant %s%s): %zu segments, %zu clusters, %.1f s "
         "(features+clustering %.1f s, models %.1f s)\n",
         sum.version, (long long)sum.library_id, ns_variant_name(plan.variant), plan.activate ? ", active" : "",
         sum.n_segments, sum.n_clusters, sum.seconds, sum.seconds_features, sum.seconds_models);
  if (sum.n_c3_test_cuts)
    printf("C3: the test period is cut the same way: %zu pieces in split 'test-c3' (score them with "
           "`nsentry eval --split test-c3`)\n", sum.n_c3_test_cuts);
  printf("%-10s %6s %5s %6s %8s %8s %8s %6s %10s %5s %7s %10s %10s\n", "cluster", "size", "train", "window", "windows", "used",
         "labelled", "rounds", "loss", "calib", "trimmed", "score-mean", "score-q99");
  for (size_t i = 0; i < sum.n_clusters; i++) {
    const ns_train_cluster_summary *cs = &sum.clusters[i];
    char name[32];
    snprintf(name, sizeof name, "%s-%d", cs->kind == NS_SEG_JOB ? "job" : "idle", cs->label);
    printf("%-10s %6zu %5zu %6d %8zu %8zu %8zu %6d %10.4g %5zu %7zu %10.4g %10.4g\n", name, cs->size, cs->n_series,
           cs->window, cs->windows_total, cs->windows_used, cs->windows_labelled, cs->rounds, cs->train_loss,
           cs->calibration_segments ? cs->calibration_segments : cs->calibration_windows, cs->calibration_trimmed,
           cs->score_mean, cs->score_q99);
  }
  ns_train_summary_clear(&sum);
  ns_store_close(st);
  return 0;
}

typedef struct seg_sel {
  ns_seg_filter f;
  int64_t *ids;
  size_t n;
} seg_sel;

static void select_segments(ns_store *st, seg_sel *sel, int64_t *explicit_ids, size_t n_explicit) {
  if (n_explicit) {
    sel->ids = explicit_ids;
    sel->n = n_explicit;
    return;
  }
  ns_cli_check(ns_store_list_segments(st, &sel->f, &sel->ids, &sel->n), "listing segments");
}

static ns_status score_one(ns_store *st, const ns_library *lib, ns_config *cfg, int64_t id, ns_segment **seg_out,
                           ns_node_verdict **v) {
  ns_segment *seg = NULL;
  ns_status s = ns_store_get_segment(st, id, &seg);
  if (s) return s;
  /* Raw shipped segments are preprocessed by the library; stored ones are not. */
  bool raw = false;
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  (void)f;
  ns_db_stmt *q = NULL;
  bool row = false;
  if (!ns_db_prepare(ns_store_db(st), "SELECT split FROM segments WHERE id = ?1", &q) &&
      !ns_db_bind_int64(q, 1, id) && !ns_db_step(q, &row) && row && ns_db_col_text(q, 0))
    raw = strcmp(ns_db_col_text(q, 0), RAW_SPLIT) == 0;
  ns_db_finalize(q);
  s = raw ? ns_detect_segment(lib, seg, cfg, v) : ns_detect_prepped(lib, seg, cfg, v);
  if (s) {
    ns_segment_free(seg);
    return s;
  }
  *seg_out = seg;
  return NS_OK;
}

static void print_verdict_row(const ns_segment *seg, const ns_node_verdict *v) {
  char top[160] = "";
  size_t off = 0;
  for (size_t i = 0; i < v->n_intervals && i < 1; i++)
    for (int k = 0; k < v->intervals[i].n_top; k++)
      off += (size_t)snprintf(top + off, sizeof top - off, "%s%s%c", k ? "," : "", v->intervals[i].top_metric[k],
                              v->intervals[i].top_direction[k] > 0 ? '+' : '-');
  printf("%-8lld %-12s %-14s %-10s %5s %8.3g %8.3g %4d %-6s %4zu %s\n", (long long)seg->id,
         seg->job_id ? seg->job_id : "(idle)", seg->node, !v->scored ? "unscored" : v->anomalous ? "ANOMALOUS" : "normal",
         v->new_pattern ? "new" : "", v->score_max, v->score_mean, v->cluster, v->model_version, v->n_intervals, top);
}

static ns_library *load_library(ns_store *st, int64_t id, const ns_config *cfg) {
  ns_library *lib = NULL;
  ns_precision p;
  ns_cli_check(ns_precision_from_config(cfg, &p), "model_precision");
  ns_cli_check(id > 0 ? ns_library_load(st, id, &lib) : ns_library_load_active(st, &lib), "model library");
  ns_cli_check(ns_library_set_precision(lib, p), "model_precision");
  return lib;
}

int cmd_score(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {
      {"segment", required_argument, 0, 'S'}, {"split", required_argument, 0, 's'},
      {"job", required_argument, 0, 'j'},     {"node", required_argument, 0, 'n'},
      {"cluster", required_argument, 0, 'c'}, {"library", required_argument, 0, 'L'},
      {"json", no_argument, 0, 'J'},          {"store", no_argument, 0, 'W'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  seg_sel sel = {.f = NS_SEG_FILTER_ALL};
  sel.f.split = "test";
  int64_t ids[256], lib_id = 0;
  size_t nids = 0;
  int json = 0, store = 0, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'S':
      if (nids == 256) ns_cli_die(2, "score: at most 256 --segment options");
      ids[nids++] = atoll(optarg);
      if (ids[nids - 1] <= 0) ns_cli_die(2, "score: '%s' is not a segment id", optarg);
      break;
    case 's': sel.f.split = strcmp(optarg, "any") == 0 ? NULL : optarg; break;
    case 'j': sel.f.job_id = optarg; break;
    case 'n': sel.f.node = optarg; break;
    case 'c': sel.f.cluster = optarg; break;
    case 'L': lib_id = atoll(optarg); break;
    case 'J': json = 1; break;
    case 'W': store = 1; break;
    case 'h':
      printf("usage: nsentry score [--segment ID]... [--split S|any] [--job J] [--node N] [--cluster NAME]\n"
             "                     [--library ID] [--json] [--store]\n"
             "Score stored segments (default split 'test') with the active model library and print\n"
             "verdicts; --store writes them to the verdicts table.\n");
      return 0;
    default: return 2;
    }
  }
  ns_store *st = open_store(cfg);
  ns_library *lib = load_library(st, lib_id, cfg);
  select_segments(st, &sel, ids, nids);
  if (!json)
    printf("%-8s %-12s %-14s %-10s %5s %8s %8s %4s %-6s %4s %s\n", "segment", "job", "node", "verdict", "new",
           "max", "mean", "clu", "model", "ivs", "top metrics");
  else
    printf("[");
  int failures = 0;
  for (size_t i = 0; i < sel.n; i++) {
    ns_segment *seg = NULL;
    ns_node_verdict *v = NULL;
    ns_status s = score_one(st, lib, cfg, sel.ids[i], &seg, &v);
    if (s) {
      fprintf(stderr, "nsentry: segment %lld: %s\n", (long long)sel.ids[i], ns_err_message(s));
      failures++;
      continue;
    }
    if (store) {
      s = ns_detect_store_verdict(st, seg->cluster, seg->job_id, seg->node, seg->id, v);
      if (s) fprintf(stderr, "nsentry: storing verdict of segment %lld: %s\n", (long long)seg->id, ns_err_message(s)), failures++;
    }
    if (json) {
      char *js = NULL;
      ns_cli_check(ns_node_verdict_json(v, &js), "json");
      printf("%s{\"segment\":%lld,\"node\":\"%s\",\"job\":\"%s\",\"verdict\":%s}", i ? "," : "", (long long)seg->id,
             seg->node, seg->job_id ? seg->job_id : "", js);
      free(js);
    } else {
      print_verdict_row(seg, v);
    }
    ns_node_verdict_free(v);
    ns_segment_free(seg);
  }
  if (json) printf("]\n");
  if (sel.ids != ids) free(sel.ids);
  ns_library_free(lib);
  ns_store_close(st);
  return failures ? 1 : 0;
}

/* Ground truth of a segment: its per-point labels, then every labels-table
 * anomaly (any source) over its time range. */
static ns_status truth_of(ns_store *st, const ns_segment *seg, uint8_t *y) {
  memset(y, 0, seg->T);
  if (seg->labels) memcpy(y, seg->labels, seg->T);
  ns_label *l = NULL;
  size_t n = 0;
  ns_status s = ns_store_list_labels(st, seg->cluster, seg->node, seg->start_ms, seg->end_ms, &l, &n);
  if (s) return s;
  for (size_t i = 0; i < n; i++) {
    if (l[i].label != 1) continue;
    for (size_t t = 0; t < seg->T; t++) {
      int64_t ms = seg->start_ms + (int64_t)t * seg->interval_ms;
      if (ms >= l[i].start_ms && ms <= l[i].end_ms) y[t] = 1;
    }
  }
  ns_labels_free(l, n);
  return NS_OK;
}

int cmd_eval(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {
      {"split", required_argument, 0, 's'}, {"cluster", required_argument, 0, 'c'},
      {"node", required_argument, 0, 'n'},  {"library", required_argument, 0, 'L'},
      {"edge", required_argument, 0, 'e'},  {"json", no_argument, 0, 'J'},
      {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
  seg_sel sel = {.f = NS_SEG_FILTER_ALL};
  sel.f.split = "test";
  int64_t lib_id = 0, edge_ms = 60000;
  int json = 0, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 's': sel.f.split = strcmp(optarg, "any") == 0 ? NULL : optarg; break;
    case 'c': sel.f.cluster = optarg; break;
    case 'n': sel.f.node = optarg; break;
    case 'L': lib_id = atoll(optarg); break;
    case 'e': ns_cli_check(ns_parse_duration_ms(optarg, &edge_ms), "--edge"); break;
    case 'J': json = 1; break;
    case 'h':
      printf("usage: nsentry eval [--split S|any] [--cluster NAME] [--node N] [--library ID] [--edge 60s] [--json]\n"
             "Score the selected segments (default split 'test') and evaluate against their labels (per-point\n"
             "label columns and the labels table) with the paper's protocol: point-adjusted P/R and AUC per\n"
             "node averaged over nodes, F1 from the averages, the first and last --edge of every segment\n"
             "excluded; also plain point-wise F1, PA-F1, ROC-AUC and PR-AUC, pooled and per node.\n");
      return 0;
    default: return 2;
    }
  }
  ns_store *st = open_store(cfg);
  ns_library *lib = load_library(st, lib_id, cfg);
  select_segments(st, &sel, NULL, 0);
  if (sel.n == 0) ns_cli_die(1, "eval: no segments selected");
  ns_eval_series *es = calloc(sel.n, sizeof *es);
  ns_segment **segs = calloc(sel.n, sizeof *segs);
  ns_node_verdict **vs = calloc(sel.n, sizeof *vs);
  uint8_t **truth = calloc(sel.n, sizeof *truth);
  if (!es || !segs || !vs || !truth) ns_cli_die(1, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < sel.n; i++) {
    ns_status s = score_one(st, lib, cfg, sel.ids[i], &segs[k], &vs[k]);
    if (s) {
      fprintf(stderr, "nsentry: segment %lld skipped: %s\n", (long long)sel.ids[i], ns_err_message(s));
      continue;
    }
    if (!vs[k]->scored || vs[k]->T != segs[k]->T) {
      fprintf(stderr, "nsentry: segment %lld skipped: %s\n", (long long)sel.ids[i],
              vs[k]->note[0] ? vs[k]->note : "scored on a different grid");
      ns_node_verdict_free(vs[k]);
      ns_segment_free(segs[k]);
      continue;
    }
    if (!(truth[k] = malloc(segs[k]->T))) ns_cli_die(1, "out of memory");
    ns_cli_check(truth_of(st, segs[k], truth[k]), "labels");
    es[k] = (ns_eval_series){segs[k]->node, segs[k]->T, segs[k]->interval_ms, vs[k]->score, vs[k]->flag, truth[k]};
    k++;
  }
  if (k == 0) ns_cli_die(1, "eval: no segment could be scored");
  ns_eval_report rep;
  ns_cli_check(ns_eval_run(es, k, edge_ms, &rep), "eval");
  if (json) ns_eval_print_json(&rep, stdout);
  else {
    printf("model library %s, %zu segments\n", ns_library_version(lib), k);
    ns_eval_print_table(&rep, stdout);
  }
  ns_eval_report_clear(&rep);
  for (size_t i = 0; i < k; i++) {
    ns_segment_free(segs[i]);
    ns_node_verdict_free(vs[i]);
    free(truth[i]);
  }
  free(es), free(segs), free(vs), free(truth);
  free(sel.ids);
  ns_library_free(lib);
  ns_store_close(st);
  return 0;
}

int cmd_library(int argc, char **argv, ns_config *cfg) {
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf("usage: nsentry library [list] | activate ID\n"
           "List model libraries, or make one active (rollback = activate an older one).\n");
    return 0;
  }
  ns_store *st = open_store(cfg);
  int rc = 0;
  if (argc == 1 || (argc == 2 && strcmp(argv[1], "list") == 0)) {
    ns_library_info *v = NULL;
    size_t n = 0;
    ns_cli_check(ns_library_list(st, &v, &n), "library list");
    printf("%-6s %-8s %-7s %-8s %8s  %-20s %s\n", "id", "version", "active", "variant", "clusters", "created (UTC)", "notes");
    for (size_t i = 0; i < n; i++) {
      char t[32];
      time_t s = (time_t)(v[i].created_ms / 1000);
      struct tm tm;
      gmtime_r(&s, &tm);
      strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S", &tm);
      printf("%-6lld %-8s %-7s %-8s %8d  %-20s %s\n", (long long)v[i].id, v[i].version, v[i].active ? "yes" : "",
             v[i].variant, v[i].n_clusters, t, v[i].notes);
    }
    if (!n) printf("(no model library yet: run `nsentry train`)\n");
    free(v);
  } else if (argc == 3 && strcmp(argv[1], "activate") == 0) {
    char *end;
    long long id = strtoll(argv[2], &end, 10);
    if (*end || id <= 0) ns_cli_die(2, "library: '%s' is not a library id", argv[2]);
    ns_cli_check(ns_library_activate(st, id), "library activate");
    printf("model library %lld is active\n", id);
  } else {
    fprintf(stderr, "usage: nsentry library [list] | activate ID\n");
    rc = 2;
  }
  ns_store_close(st);
  return rc;
}
