/* `nsentry import` and `nsentry segments` (import area). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_commands.h"
#include "ns_csv.h"
#include "ns_import.h"
#include "ns_log.h"
#include "ns_store.h"

static const char *import_usage =
    "usage: nsentry import nodesentry DIR [--cluster NAME]\n"
    "       nsentry import ldms DIR|FILE... [--cluster NAME] [--join-window DURATION] [--counters RULES]\n"
    "       nsentry import sacct FILE [--cluster NAME] [--utc | --local] [--allow-unknown-nodes]\n"
    "       nsentry import csv FILE --node NAME [--cluster NAME] [--utc | --local]\n"
    "Each import is one transaction: on any error nothing is stored. Repairs are\n"
    "listed in docs/import.md; the summary line counts them.\n";

/* Progress bar on a TTY (input bytes read). */
typedef struct {
  ns_progress bar;
  const char *label;
  bool started;
} import_progress;

static void on_progress(void *ctx, int64_t done, int64_t total) {
  import_progress *p = ctx;
  if (!p->started) {
    ns_progress_start(&p->bar, p->label, total);
    p->started = true;
  }
  p->bar.total = total;
  ns_progress_update(&p->bar, done, "bytes");
}

int cmd_import(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {{"cluster", required_argument, 0, 'c'},
                                       {"node", required_argument, 0, 'n'},
                                       {"join-window", required_argument, 0, 'w'},
                                       {"counters", required_argument, 0, 'r'},
                                       {"utc", no_argument, 0, 'u'},
                                       {"local", no_argument, 0, 'l'},
                                       {"allow-unknown-nodes", no_argument, 0, 'a'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    fputs(import_usage, stdout);
    return 0;
  }
  if (argc < 2) {
    fputs(import_usage, stderr);
    return 2;
  }
  const char *kind = argv[1];
  const char *cluster = ns_cfg_str(cfg, NS_CFG_cluster_name), *node = NULL;
  const char *rules = ns_cfg_str(cfg, NS_CFG_import_counter_rules);
  const char *naive = ns_cfg_str(cfg, NS_CFG_import_naive_time);
  ns_import_opts o = NS_IMPORT_OPTS_DEFAULT;
  o.join_window_ms = ns_cfg_int(cfg, NS_CFG_import_join_window);
  int c;
  /* Parse after the format word: it plays argv[0]; optind 0 = full reset. */
  int sub_argc = argc - 1;
  char **sub_argv = argv + 1;
  optind = 0;
  while ((c = getopt_long(sub_argc, sub_argv, "c:n:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': cluster = optarg; break;
    case 'n': node = optarg; break;
    case 'w': ns_cli_check(ns_parse_duration_ms(optarg, &o.join_window_ms), "--join-window"); break;
    case 'r': rules = optarg; break;
    case 'u': naive = "utc"; break;
    case 'l': naive = "local"; break;
    case 'a': o.allow_unknown_nodes = true; break;
    case 'h': fputs(import_usage, stdout); return 0;
    default: fputs(import_usage, stderr); return 2;
    }
  }
  if (!cluster || !*cluster) ns_cli_die(2, "import: empty cluster name");
  o.counter_rules = rules && *rules ? rules : NULL;
  bool is_sacct = strcmp(kind, "sacct") == 0;
  o.local_time = strcmp(naive, "local") == 0 || (strcmp(naive, "auto") == 0 && is_sacct);
  int nargs = sub_argc - optind;
  char **args = sub_argv + optind;
  bool ok_kind = strcmp(kind, "nodesentry") == 0 || strcmp(kind, "ldms") == 0 || is_sacct || strcmp(kind, "csv") == 0;
  if (!ok_kind) {
    fprintf(stderr, "nsentry: import: unknown format '%s'\n%s", kind, import_usage);
    return 2;
  }
  bool multi = strcmp(kind, "ldms") == 0;
  if (nargs < 1 || (!multi && nargs != 1)) {
    fprintf(stderr, "nsentry: import %s: %s\n%s", kind, nargs < 1 ? "missing input" : "exactly one input expected",
            import_usage);
    return 2;
  }
  if (strcmp(kind, "csv") == 0 && (!node || !*node)) ns_cli_die(2, "import csv: --node NAME is required");

  ns_store *s = NULL;
  ns_cli_check(ns_store_open(ns_cfg_str(cfg, NS_CFG_db), &s), "open database");
  ns_import_report rep = {0};
  ns_status st;
  char what[64];
  snprintf(what, sizeof what, "import %s", kind);
  import_progress prog = {.label = what};
  o.progress = on_progress;
  o.progress_ctx = &prog;
  if (strcmp(kind, "nodesentry") == 0)
    st = ns_import_nodesentry(args[0], s, cluster, &o, &rep);
  else if (multi)
    st = ns_import_ldms_store(s, args, (size_t)nargs, cluster, &o, &rep);
  else if (is_sacct)
    st = ns_import_sacct_store(s, args[0], cluster, &o, &rep);
  else
    st = ns_import_csv_store(s, args[0], node, cluster, &o, &rep);
  ns_store_close(s);
  if (prog.started) ns_progress_finish(&prog.bar);
  ns_cli_check(st, what);
  char line[512];
  ns_import_report_format(&rep, line, sizeof line);
  printf("imported %s into cluster %s: %s\n", kind, cluster, line);
  return 0;
}

static const char *segments_usage =
    "usage: nsentry segments [--cluster NAME] [--node N] [--job J] [--split S] [--kind job|idle] [--limit N]\n"
    "Lists stored segments: id, cluster, node, job, start and end (UTC), rows, metrics,\n"
    "interval and anomalous (labelled) points. The first --limit (default 200; 0 = all)\n"
    "are printed, and the total is always counted.\n";

int cmd_segments(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {{"cluster", required_argument, 0, 'c'}, {"node", required_argument, 0, 'n'},
                                       {"job", required_argument, 0, 'j'},     {"split", required_argument, 0, 's'},
                                       {"kind", required_argument, 0, 'k'},    {"limit", required_argument, 0, 'l'},
                                       {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  long limit = 200;
  int c;
  while ((c = getopt_long(argc, argv, "c:n:j:s:k:l:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': f.cluster = optarg; break;
    case 'n': f.node = optarg; break;
    case 'j': f.job_id = optarg; break;
    case 's': f.split = optarg; break;
    case 'k':
      if (strcmp(optarg, "job") == 0) f.kind = NS_SEG_JOB;
      else if (strcmp(optarg, "idle") == 0) f.kind = NS_SEG_IDLE;
      else ns_cli_die(2, "segments: --kind must be job or idle, not '%s'", optarg);
      break;
    case 'l': {
      char *e = NULL;
      limit = strtol(optarg, &e, 10);
      if (!*optarg || *e || limit < 0) ns_cli_die(2, "segments: --limit must be a number >= 0, not '%s'", optarg);
      break;
    }
    case 'h': fputs(segments_usage, stdout); return 0;
    default: fputs(segments_usage, stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "nsentry: segments: unexpected argument '%s'\n%s", argv[optind], segments_usage);
    return 2;
  }
  ns_store *s = NULL;
  ns_cli_check(ns_store_open(ns_cfg_str(cfg, NS_CFG_db), &s), "open database");
  int64_t *ids = NULL;
  size_t n = 0;
  ns_status st = ns_store_list_segments(s, &f, &ids, &n);
  if (st) {
    ns_store_close(s);
    ns_cli_check(st, "segments");
  }
  printf("%-8s %-12s %-14s %-12s %-24s %-24s %7s %5s %6s %5s\n", "id", "cluster", "node", "job", "start", "end",
         "rows", "M", "step_s", "anom");
  int64_t rows = 0;
  size_t shown = limit == 0 || (size_t)limit > n ? n : (size_t)limit;
  for (size_t i = 0; i < shown; i++) {
    ns_segment *g = NULL;
    if ((st = ns_store_get_segment(s, ids[i], &g))) break;
    char a[40], b[40];
    ns_format_time_ms(g->start_ms, a, sizeof a);
    ns_format_time_ms(g->end_ms, b, sizeof b);
    size_t anom = 0;
    if (g->labels)
      for (size_t t = 0; t < g->T; t++) anom += g->labels[t];
    char anoms[24];
    if (g->labels) snprintf(anoms, sizeof anoms, "%zu", anom);
    else snprintf(anoms, sizeof anoms, "-");
    printf("%-8" PRId64 " %-12s %-14s %-12s %-24s %-24s %7zu %5zu %6.1f %5s\n", g->id ? g->id : ids[i],
           g->cluster ? g->cluster : "", g->node ? g->node : "", g->job_id ? g->job_id : "(idle)", a, b, g->T, g->M,
           (double)g->interval_ms / 1000.0, anoms);
    rows += (int64_t)g->T;
    ns_segment_free(g);
  }
  free(ids);
  ns_store_close(s);
  ns_cli_check(st, "segments");
  /* Each listed segment is loaded whole, so big listings are cut short. */
  if (shown < n)
    printf("%zu segments (%zu listed, %" PRId64 " rows in those; --limit 0 lists all)\n", n, shown, rows);
  else
    printf("%zu segments, %" PRId64 " rows\n", n, rows);
  return 0;
}
