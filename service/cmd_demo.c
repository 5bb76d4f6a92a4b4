/* `nsentry demo`: the end-to-end demo on an embedded default (a small
 * synthetic cluster), in a fresh temporary folder and SQLite database.
 * One function per step; later areas append their steps (cluster, train,
 * score, verdicts) to `steps[]`, using and extending demo_ctx. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd_prep.h"
#include "ns_commands.h"
#include "ns_csv.h"
#include "ns_detect.h"
#include "ns_eval.h"
#include "ns_pipeline.h"
#include "ns_import.h"
#include "ns_log.h"
#include "ns_prep.h"
#include "ns_store.h"
#include "ns_synth.h"

typedef struct demo_ctx {
  ns_config *cfg;
  ns_synth_opts synth_opts;
  char dir[4096];     /* temporary working folder */
  char db_uri[4200];  /* sqlite:<dir>/nsentry.db */
  const char *cluster;
  ns_synth *synth;
  ns_store *store;
  int64_t train_until;
  ns_prep_summary prep;
  double t0;
} demo_ctx;

typedef int (*demo_step_fn)(demo_ctx *d);

static void step_banner(demo_ctx *d, int k, const char *what) {
  printf("\n[%d] %s  (t = %.1f s)\n", k, what, ns_now_s() - d->t0);
}

/* 1. A small synthetic cluster written as LDMS store_csv files + sacct jobs. */
static int demo_generate(demo_ctx *d) {
  ns_status st = ns_synth_create(&d->synth_opts, &d->synth);
  if (st) return fprintf(stderr, "nsentry: demo: synth: %s\n", ns_err_message(st)), 1;
  size_t nj, nl;
  ns_synth_jobs(d->synth, &nj);
  ns_synth_labels(d->synth, &nl);
  d->train_until = ns_synth_train_until(d->synth);
  ns_synth_report rep = {0};
  if ((st = ns_synth_write_ldms(d->synth, d->dir, &rep)))
    return fprintf(stderr, "nsentry: demo: writing LDMS files: %s\n", ns_err_message(st)), 1;
  printf("    %zu nodes x %.3g days at %" PRId64 " s, %zu metrics (LDMS-style names, counters cumulative)\n",
         ns_synth_n_nodes(d->synth), d->synth_opts.days, d->synth_opts.interval_ms / 1000, ns_synth_n_metrics(d->synth));
  printf("    %zu jobs (compute, memory, io, comm, idle; multi-node), %zu injected anomalies (HPAS types)\n", nj, nl);
  printf("    wrote %" PRId64 " rows / %" PRId64 " values as %s/ldms/*.csv + jobs.sacct in %.2f s\n", rep.rows,
         rep.points, d->dir, rep.seconds);
  return 0;
}

/* 2. Import into a fresh SQLite database with the real importers; the
 * generator's anomaly intervals become labels (source "synth"). */
static int demo_import(demo_ctx *d) {
  ns_status st = ns_store_open(d->db_uri, &d->store);
  if (st) return fprintf(stderr, "nsentry: demo: open %s: %s\n", d->db_uri, ns_err_message(st)), 1;
  char ldms[4200], sacct[4200];
  snprintf(ldms, sizeof ldms, "%s/ldms", d->dir);
  snprintf(sacct, sizeof sacct, "%s/jobs.sacct", d->dir);
  ns_import_opts io = NS_IMPORT_OPTS_DEFAULT;
  ns_import_report r1 = {0}, r2 = {0};
  char *paths[] = {ldms};
  if ((st = ns_import_ldms_store(d->store, paths, 1, d->cluster, &io, &r1)))
    return fprintf(stderr, "nsentry: demo: import LDMS: %s\n", ns_err_message(st)), 1;
  if ((st = ns_import_sacct_store(d->store, sacct, d->cluster, &io, &r2)))
    return fprintf(stderr, "nsentry: demo: import sacct: %s\n", ns_err_message(st)), 1;
  size_t nl;
  const ns_label *labels = ns_synth_labels(d->synth, &nl);
  if ((st = ns_store_begin(d->store))) return fprintf(stderr, "nsentry: demo: %s\n", ns_err_message(st)), 1;
  for (size_t i = 0; i < nl && !st; i++) st = ns_store_put_label(d->store, &labels[i], NULL);
  if (st) {
    ns_store_rollback(d->store);
    return fprintf(stderr, "nsentry: demo: storing labels: %s\n", ns_err_message(st)), 1;
  }
  if ((st = ns_store_commit(d->store))) return fprintf(stderr, "nsentry: demo: %s\n", ns_err_message(st)), 1;
  char b1[256], b2[256];
  ns_import_report_format(&r1, b1, sizeof b1);
  ns_import_report_format(&r2, b2, sizeof b2);
  printf("    LDMS:  %s\n    sacct: %s\n    labels: %zu anomaly intervals\n", b1, b2, nl);
  return 0;
}

/* 3. Fit preprocessing on the training period, apply, cut segments. */
static int demo_prep(demo_ctx *d) {
  ns_prep_opts po;
  ns_prep_opts_from_config(d->cfg, &po);
  ns_status st = ns_prep_run_store(d->store, d->cluster, &po, true, d->train_until, &d->prep, NULL, NULL);
  if (st) return fprintf(stderr, "nsentry: demo: prep: %s\n", ns_err_message(st)), 1;
  ns_cmd_prep_print_summary(d->cluster, &d->prep, d->train_until, d->store);
  return 0;
}

/* 4. What is in the database now. */
static int demo_summary(demo_ctx *d) {
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = d->cluster;
  int64_t *ids = NULL;
  size_t n = 0;
  ns_status st = ns_store_list_segments(d->store, &f, &ids, &n);
  if (st) return fprintf(stderr, "nsentry: demo: %s\n", ns_err_message(st)), 1;
  size_t labelled = 0, anom_points = 0, points = 0, shown = 0;
  double z_norm = 0, z_anom = 0; /* mean |z| per row, test segments */
  size_t n_norm = 0, n_anom = 0;
  printf("    %zu segments stored; first ones:\n", n);
  printf("      %-8s %-6s %-8s %-5s %-20s %6s %5s %s\n", "node", "kind", "job", "split", "start", "rows", "cols",
         "anomalous rows");
  for (size_t i = 0; i < n; i++) {
    ns_segment *s = NULL;
    if ((st = ns_store_get_segment(d->store, ids[i], &s))) break;
    size_t a = 0;
    if (s->labels)
      for (size_t t = 0; t < s->T; t++) a += s->labels[t];
    if (a) labelled++;
    anom_points += a, points += s->T;
    if (s->start_ms >= d->train_until)
      for (size_t t = 0; t < s->T; t++) {
        double z = 0;
        for (size_t m = 0; m < s->M; m++) z += fabs((double)s->x[t * s->M + m]);
        z /= (double)s->M;
        if (s->labels && s->labels[t]) z_anom += z, n_anom++;
        else z_norm += z, n_norm++;
      }
    if (shown < 8 || (a && shown < 12)) {
      char ts[40];
      ns_format_time_ms(s->start_ms, ts, sizeof ts);
      printf("      %-8s %-6s %-8s %-5s %-20.19s %6zu %5zu %zu\n", s->node, s->kind == NS_SEG_JOB ? "job" : "idle",
             s->job_id ? s->job_id : "-", s->start_ms < d->train_until ? "train" : "test", ts, s->T, s->M, a);
      shown++;
    }
    ns_segment_free(s);
  }
  free(ids);
  if (st) return fprintf(stderr, "nsentry: demo: %s\n", ns_err_message(st)), 1;
  printf("    %zu of %zu segments hold injected anomalies (%zu of %zu rows, %.2f %%)\n", labelled, n, anom_points,
         points, points ? 100.0 * (double)anom_points / (double)points : 0.0);
  if (n_norm && n_anom)
    printf("    test period, mean |z| per row: normal %.3f, anomalous %.3f (the signal detection will look for)\n",
           z_norm / (double)n_norm, z_anom / (double)n_anom);
  return 0;
}

/* 5. Features, clusters and one model per cluster: a model library. */
static void demo_progress(void *ctx, const char *stage, size_t done, size_t total) {
  (void)ctx, (void)stage, (void)done, (void)total;
}

static int demo_train(demo_ctx *d) {
  ns_train_plan plan = {.cluster = d->cluster, .split = "train", .activate = true, .notes = "demo",
                        .progress = demo_progress};
  ns_train_summary sum;
  ns_status st = ns_pipeline_train(d->store, d->cfg, &plan, &sum);
  if (st) return fprintf(stderr, "nsentry: demo: train: %s\n", ns_err_message(st)), 1;
  printf("    model library %s: %zu training segments -> %zu clusters (k by silhouette), %.1f s\n", sum.version,
         sum.n_segments, sum.n_clusters, sum.seconds);
  for (size_t c = 0; c < sum.n_clusters; c++)
    printf("      %s-%d: %zu members, trained on %zu (%zu windows, %d rounds), loss %.4g\n",
           sum.clusters[c].kind == NS_SEG_JOB ? "job" : "idle", sum.clusters[c].label, sum.clusters[c].size,
           sum.clusters[c].n_series, sum.clusters[c].windows_used, sum.clusters[c].rounds, sum.clusters[c].train_loss);
  ns_train_summary_clear(&sum);
  return 0;
}

/* 6. Score every test segment, store verdicts, show the jobs; then the
 * paper's evaluation against the injected anomalies. */
static int demo_score(demo_ctx *d) {
  ns_library *lib = NULL;
  ns_precision prec;
  ns_status st = ns_precision_from_config(d->cfg, &prec);
  if (!st) st = ns_library_load_active(d->store, &lib);
  if (!st && (st = ns_library_set_precision(lib, prec))) ns_library_free(lib);
  if (st) return fprintf(stderr, "nsentry: demo: %s\n", ns_err_message(st)), 1;
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = d->cluster;
  f.split = "test";
  int64_t *ids = NULL;
  size_t n = 0, k = 0, shown = 0;
  if ((st = ns_store_list_segments(d->store, &f, &ids, &n))) goto done;
  ns_eval_series *es = calloc(n ? n : 1, sizeof *es);
  ns_segment **segs = calloc(n ? n : 1, sizeof *segs);
  ns_node_verdict **vs = calloc(n ? n : 1, sizeof *vs);
  if (!es || !segs || !vs) {
    st = NS_ERR_NOMEM;
    goto free_all;
  }
  printf("    %-8s %-8s %-10s %7s  %-40s %s\n", "job", "node", "verdict", "score", "top metrics (first interval)",
         "injected");
  for (size_t i = 0; i < n; i++) {
    if ((st = ns_store_get_segment(d->store, ids[i], &segs[k]))) break;
    ns_status s2 = ns_detect_prepped(lib, segs[k], d->cfg, &vs[k]);
    if (!s2) s2 = ns_segment_alloc_labels(segs[k]); /* no injected anomaly: all zero */
    if (s2 || !vs[k]->scored) {
      ns_node_verdict_free(vs[k]);
      vs[k] = NULL;
      ns_segment_free(segs[k]);
      continue;
    }
    if ((st = ns_detect_store_verdict(d->store, segs[k]->cluster, segs[k]->job_id, segs[k]->node, segs[k]->id, vs[k])))
      break;
    size_t truth = 0;
    for (size_t t = 0; t < segs[k]->T; t++) truth += segs[k]->labels[t];
    if (segs[k]->job_id && (vs[k]->anomalous || truth) && shown < 14) {
      char top[160] = "";
      if (vs[k]->n_intervals) {
        const ns_interval *iv = &vs[k]->intervals[0];
        snprintf(top, sizeof top, "%s%c %s%c", iv->top_metric[0], iv->top_direction[0] > 0 ? '+' : '-',
                 iv->n_top > 1 ? iv->top_metric[1] : "", iv->n_top > 1 ? (iv->top_direction[1] > 0 ? '+' : '-') : ' ');
      }
      printf("    %-8s %-8s %-10s %7.3g  %-40.40s %s\n", segs[k]->job_id, segs[k]->node,
             vs[k]->anomalous ? "ANOMALOUS" : "normal", vs[k]->score_max, top, truth ? "yes" : "-");
      shown++;
    }
    es[k] = (ns_eval_series){segs[k]->node, segs[k]->T, segs[k]->interval_ms, vs[k]->score, vs[k]->flag,
                             segs[k]->labels};
    k++;
  }
  if (!st && k) {
    ns_eval_report rep;
    if (!(st = ns_eval_run(es, k, 60000, &rep))) {
      printf("\n    evaluation on %zu test segments against the injected anomalies:\n", k);
      printf("      paper protocol: precision %.3f  recall %.3f  F1 %.3f  AUC %.3f\n", rep.paper_precision,
             rep.paper_recall, rep.paper_f1, rep.paper_auc);
      printf("      pooled point-wise F1 %.3f, PA-F1 %.3f, ROC-AUC %.3f, PR-AUC %.3f\n", rep.pooled.f1,
             rep.pooled.pa_f1, rep.pooled.roc_auc, rep.pooled.pr_auc);
      ns_eval_report_clear(&rep);
    }
  }
  printf("    verdicts stored in %s (rerun with --keep, then browse them with nsentry-label --db ...)\n", d->db_uri);
free_all:
  for (size_t i = 0; i < k; i++) {
    ns_segment_free(segs[i]);
    ns_node_verdict_free(vs[i]);
  }
  free(es), free(segs), free(vs);
done:
  free(ids);
  ns_library_free(lib);
  if (st) return fprintf(stderr, "nsentry: demo: scoring: %s\n", ns_err_message(st)), 1;
  return 0;
}

static const struct {
  const char *what;
  demo_step_fn fn;
} steps[] = {
    {"generate a synthetic cluster", demo_generate},
    {"import telemetry, jobs and labels into a fresh database", demo_import},
    {"preprocess: fit on the training period, apply, segment", demo_prep},
    {"summary", demo_summary},
    {"train a model library (features, HAC, Transformer-MoE per cluster)", demo_train},
    {"score the test period, store verdicts, evaluate", demo_score},
};

static int rm_rf(const char *dir) {
  char cmd[4300];
  if (strchr(dir, '\'')) return -1;
  snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
  return system(cmd);
}

static void demo_usage(FILE *f) {
  fprintf(f,
          "usage: nsentry demo [--nodes N] [--days D] [--seed S] [--dir DIR] [--keep]\n"
          "  Runs the pipeline end to end on a small synthetic cluster in a fresh\n"
          "  temporary folder and SQLite database (removed afterwards unless --keep).\n");
}

int cmd_demo(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {{"nodes", required_argument, 0, 'n'}, {"days", required_argument, 0, 'd'},
                                       {"seed", required_argument, 0, 's'},  {"dir", required_argument, 0, 'D'},
                                       {"keep", no_argument, 0, 'k'},        {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  demo_ctx d;
  memset(&d, 0, sizeof d);
  d.cfg = cfg;
  d.cluster = "demo";
  ns_synth_opts_default(&d.synth_opts);
  d.synth_opts.cluster = d.cluster;
  d.synth_opts.nodes = 8;
  d.synth_opts.days = 2;
  d.synth_opts.anomaly_ratio = 0.03;
  d.synth_opts.seed = 42;
  bool keep = false;
  const char *dir = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 'n':
      d.synth_opts.nodes = (int)strtol(optarg, &end, 10);
      if (*end || d.synth_opts.nodes < 1 || d.synth_opts.nodes > 10000) ns_cli_die(2, "demo: --nodes '%s' must be 1..10000", optarg);
      break;
    case 'd':
      d.synth_opts.days = strtod(optarg, &end);
      if (*end || !(d.synth_opts.days > 0.05 && d.synth_opts.days <= 60)) ns_cli_die(2, "demo: --days '%s' must be in (0.05, 60]", optarg);
      break;
    case 's':
      d.synth_opts.seed = strtoull(optarg, &end, 10);
      if (*end || !*optarg) ns_cli_die(2, "demo: --seed '%s' is not a number", optarg);
      break;
    case 'D': dir = optarg; break;
    case 'k': keep = true; break;
    case 'h': demo_usage(stdout); return 0;
    default: demo_usage(stderr); return 2;
    }
  }
  if (optind < argc) ns_cli_die(2, "demo: unexpected argument '%s'", argv[optind]);
  if (dir) {
    if (snprintf(d.dir, sizeof d.dir, "%s", dir) >= (int)sizeof d.dir) ns_cli_die(2, "demo: --dir too long");
    if (access(d.dir, F_OK) == 0) ns_cli_die(2, "demo: %s exists; give a new folder", d.dir);
    keep = true;
  } else {
    const char *tmp = getenv("TMPDIR");
    snprintf(d.dir, sizeof d.dir, "%s/nsentry-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(d.dir)) ns_cli_die(1, "demo: cannot create a temporary folder: %s", strerror(errno));
  }
  snprintf(d.db_uri, sizeof d.db_uri, "sqlite:%s/nsentry.db", d.dir);
  d.t0 = ns_now_s();
  printf("nsentry demo: working in %s (database %s)\n", d.dir, d.db_uri);
  int rc = 0;
  for (size_t k = 0; k < sizeof steps / sizeof steps[0] && rc == 0; k++) {
    step_banner(&d, (int)k + 1, steps[k].what);
    rc = steps[k].fn(&d);
  }
  ns_store_close(d.store);
  ns_synth_free(d.synth);
  printf("\nnsentry demo: %s in %.1f s", rc ? "FAILED" : "done", ns_now_s() - d.t0);
  if (keep || rc) printf("; files kept in %s\n", d.dir);
  else {
    printf("\n");
    rm_rf(d.dir);
  }
  return rc;
}
