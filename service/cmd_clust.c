/* `nsentry cluster` and `nsentry match` (clust area). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "ns_clib.h"
#include "ns_commands.h"
#include "ns_csv.h"
#include "ns_store.h"

/* One progress bar per stage, restarted when the stage changes. */
typedef struct prog {
  ns_progress bar;
  const char *stage;
  bool on;
} prog;

static void prog_cb(void *ctx, const char *stage, size_t done, size_t total) {
  prog *p = ctx;
  if (!p->on) return;
  if (!p->stage || strcmp(p->stage, stage) != 0) {
    if (p->stage) ns_progress_finish(&p->bar);
    p->stage = stage;
    ns_progress_start(&p->bar, stage, (int64_t)total);
  }
  ns_progress_update(&p->bar, (int64_t)done, NULL);
}

static void prog_end(prog *p) {
  if (p->on && p->stage) ns_progress_finish(&p->bar);
  p->stage = NULL;
}

static void print_library(const ns_clib *lib, bool members, size_t max_members) {
  static const char *kname[2] = {"job", "idle"};
  printf("cluster library: %zu metrics, linkage %s, k %zu..%zu, min size %zu, K %zu, match_len %" PRId64 " s\n",
         lib->M, ns_linkage_name(lib->params.linkage), lib->params.k_min, lib->params.k_max, lib->params.min_size,
         lib->params.n_rep, lib->params.match_len_ms / 1000);
  for (int k = 0; k < 2; k++) {
    const ns_clib_sweep *s = &lib->sweep[k];
    if (s->n == 0) {
      printf("\n%s segments: none\n", kname[k]);
      continue;
    }
    printf("\n%s segments: %zu\n", kname[k], s->n);
    if (s->k_hi >= s->k_lo) {
      printf("  k   silhouette\n");
      for (size_t q = s->k_lo; q <= s->k_hi; q++)
        printf("  %-3zu %10.4f%s\n", q, s->silhouette[q - s->k_lo], q == s->k_best ? "  <- best" : "");
    } else {
      printf("  too few segments to score a cluster count; one cluster\n");
    }
    printf("  chosen k = %zu (silhouette %.4f)", s->k_best, s->sil_best);
    if (s->k != s->k_best) printf(", %zu after merging clusters below %zu members", s->k, lib->params.min_size);
    printf("\n");
    for (size_t c = 0; c < lib->n_clusters; c++) {
      const ns_clib_cluster *cl = &lib->clusters[c];
      if ((int)cl->kind != k) continue;
      printf("  cluster %s-%d: %zu members, radius %.3f, %zu representatives", kname[k], cl->label, cl->size,
             cl->radius, cl->n_rep);
      if (cl->n_strata) {
        size_t *cnt = calloc(cl->n_strata, sizeof *cnt);
        for (size_t m = 0; cnt && m < cl->size; m++)
          if (cl->stratum[m] >= 0) cnt[cl->stratum[m]]++;
        printf(", %zu sub-patterns (members:", cl->n_strata);
        for (size_t g = 0; cnt && g < cl->n_strata; g++) printf(" %zu", cnt[g]);
        printf(")");
        free(cnt);
      }
      printf("\n");
      if (!members) continue;
      size_t shown = cl->size < max_members ? cl->size : max_members;
      for (size_t r = 0; r < shown; r++) {
        if (r < cl->n_rep)
          printf("    segment %-8" PRId64 " distance %9.3f  representative %zu weight %.3f\n", cl->members[r],
                 (double)cl->member_dist[r], r, (double)cl->rep_weight[r]);
        else
          printf("    segment %-8" PRId64 " distance %9.3f\n", cl->members[r], (double)cl->member_dist[r]);
      }
      if (shown < cl->size) printf("    ... %zu more (--members N)\n", cl->size - shown);
    }
  }
}

int cmd_cluster(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {{"split", required_argument, 0, 's'},  {"cluster", required_argument, 0, 'c'},
                                       {"node", required_argument, 0, 'n'},   {"kind", required_argument, 0, 'k'},
                                       {"library-id", required_argument, 0, 'L'}, {"no-save", no_argument, 0, 'N'},
                                       {"members", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.split = "train";
  int64_t library_id = 0;
  bool save = true;
  size_t max_members = 20;
  int c;
  while ((c = getopt_long(argc, argv, "s:c:n:k:m:h", opts, NULL)) != -1) {
    switch (c) {
    case 's': f.split = strcmp(optarg, "any") == 0 ? NULL : optarg; break;
    case 'c': f.cluster = optarg; break;
    case 'n': f.node = optarg; break;
    case 'k':
      if (strcmp(optarg, "job") == 0) f.kind = NS_SEG_JOB;
      else if (strcmp(optarg, "idle") == 0) f.kind = NS_SEG_IDLE;
      else if (strcmp(optarg, "all") == 0) f.kind = -1;
      else ns_cli_die(2, "cluster: --kind must be job, idle or all, not '%s'", optarg);
      break;
    case 'L': {
      char *end = NULL;
      library_id = strtoll(optarg, &end, 10);
      if (!end || *end || library_id <= 0) ns_cli_die(2, "cluster: --library-id needs a positive id, not '%s'", optarg);
      break;
    }
    case 'N': save = false; break;
    case 'm': max_members = strtoul(optarg, NULL, 10); break;
    case 'h':
      printf("usage: nsentry cluster [--split S|any] [--cluster NAME] [--node N] [--kind job|idle|all]\n"
             "                       [--members N] [--no-save] [--library-id ID]\n"
             "Cluster the stored training segments (default split 'train'): features of each segment's first\n"
             "match_len, distance matrix, HAC, k by best silhouette in clust_k_min..clust_k_max; job and idle\n"
             "segments apart. Prints the silhouette per k, cluster sizes and members, and saves the library\n"
             "(a new version) unless --no-save. --library-id also writes clusters rows for that model library.\n");
      return 0;
    default: return 2;
    }
  }
  if (optind != argc) ns_cli_die(2, "cluster: unexpected argument '%s' (see --help)", argv[optind]);
  ns_clib_params p;
  ns_cli_check(ns_clib_params_from_config(cfg, &p), "cluster");
  ns_store *st = NULL;
  ns_cli_check(ns_store_open(ns_cfg_str(cfg, NS_CFG_db), &st), "open database");
  prog pr = {.on = true};
  ns_clib *lib = NULL;
  double t0 = ns_now_s();
  ns_status s = ns_clib_build_store(st, &f, &p, prog_cb, &pr, &lib);
  prog_end(&pr);
  if (s) {
    ns_store_close(st);
    ns_cli_check(s, "cluster");
  }
  print_library(lib, true, max_members);
  printf("\nclustered in %.1f s\n", ns_now_s() - t0);
  if (save) {
    s = ns_clib_save(st, lib, library_id);
    if (s) {
      ns_clib_free(lib);
      ns_store_close(st);
      ns_cli_check(s, "save cluster library");
    }
    printf("saved cluster library version %" PRId64 "\n", lib->version);
  }
  ns_clib_free(lib);
  ns_store_close(st);
  return 0;
}

/* A preprocessed segment from CSV: header of metric names, optionally a
 * first column "timestamp"/"time"/"ts"; columns are put in library order. */
static ns_status read_csv_segment(const char *path, const ns_clib *lib, int64_t interval_ms, ns_segment **out) {
  *out = NULL;
  ns_csv *r = NULL;
  ns_status s = ns_csv_open(path, ',', &r);
  if (s) return s;
  bool got = false;
  long *col_of = NULL;
  float *x = NULL;
  size_t T = 0, cap = 0, nf = 0;
  int64_t t_first = 0, t_second = 0;
  if ((s = ns_csv_next(r, &got))) goto done;
  if (!got) {
    s = ns_errorf(NS_ERR_EMPTY, "%s: empty file", path);
    goto done;
  }
  nf = ns_csv_nfields(r);
  bool has_time = nf > 0 && (strcasecmp(ns_csv_field(r, 0, NULL), "timestamp") == 0 ||
                             strcasecmp(ns_csv_field(r, 0, NULL), "time") == 0 ||
                             strcasecmp(ns_csv_field(r, 0, NULL), "ts") == 0);
  col_of = malloc(lib->M * sizeof *col_of);
  if (!col_of) goto oom;
  for (size_t m = 0; m < lib->M; m++) {
    col_of[m] = -1;
    for (size_t i = has_time; i < nf; i++)
      if (strcmp(ns_csv_field(r, i, NULL), lib->metrics[m]) == 0) col_of[m] = (long)i;
    if (col_of[m] < 0) {
      s = ns_errorf(NS_ERR_SCHEMA, "%s:1: no column for the library's metric '%s'", path, lib->metrics[m]);
      goto done;
    }
  }
  for (;;) {
    if ((s = ns_csv_next(r, &got))) goto done;
    if (!got) break;
    if (ns_csv_nfields(r) != nf) {
      s = ns_errorf(NS_ERR_PARSE, "%s:%" PRId64 ": %zu fields, the header has %zu", path, ns_csv_line(r),
                    ns_csv_nfields(r), nf);
      goto done;
    }
    if (T == cap) {
      cap = cap ? 2 * cap : 256;
      float *nx = realloc(x, cap * lib->M * sizeof *x);
      if (!nx) goto oom;
      x = nx;
    }
    if (has_time && T < 2) {
      size_t len;
      const char *fv = ns_csv_field(r, 0, &len);
      int64_t ms;
      if (ns_parse_time_ms(fv, len, false, &ms)) {
        s = ns_errorf(NS_ERR_PARSE, "%s:%" PRId64 ":1: bad time '%s'", path, ns_csv_line(r), fv);
        goto done;
      }
      if (T == 0) t_first = ms;
      else t_second = ms;
    }
    for (size_t m = 0; m < lib->M; m++) {
      size_t len;
      const char *fv = ns_csv_field(r, (size_t)col_of[m], &len);
      double v;
      if (ns_parse_double(fv, len, &v)) {
        s = ns_errorf(NS_ERR_PARSE, "%s:%" PRId64 ":%zu: bad number '%s'", path, ns_csv_line(r),
                      ns_csv_col(r, (size_t)col_of[m]), fv);
        goto done;
      }
      x[T * lib->M + m] = (float)v;
    }
    T++;
  }
  if (T == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "%s: no data rows", path);
    goto done;
  }
  if (has_time && T >= 2 && t_second > t_first) interval_ms = t_second - t_first;
  ns_segment *seg = NULL;
  if ((s = ns_segment_create(T, lib->M, &seg))) goto done;
  memcpy(seg->x, x, T * lib->M * sizeof *x);
  if ((s = ns_segment_set_metrics(seg, lib->metrics)) ||
      (s = ns_segment_set_meta(seg, NULL, path, "file", has_time ? t_first : 0, interval_ms))) {
    ns_segment_free(seg);
    goto done;
  }
  *out = seg;
  goto done;
oom:
  s = NS_ERR_NOMEM;
done:
  free(col_of), free(x);
  ns_csv_close(r);
  return s;
}

int cmd_match(int argc, char **argv, ns_config *cfg) {
  static const struct option opts[] = {{"version", required_argument, 0, 'V'}, {"top", required_argument, 0, 'n'},
                                       {"idle", no_argument, 0, 'i'},          {"library-id", required_argument, 0, 'L'},
                                       {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int64_t version = 0, library_id = 0;
  size_t top = 3;
  bool idle = false;
  int c;
  while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
    switch (c) {
    case 'V': {
      char *end = NULL;
      version = strtoll(optarg, &end, 10);
      if (!end || *end || version <= 0) ns_cli_die(2, "match: --version needs a positive version, not '%s'", optarg);
      break;
    }
    case 'n': top = strtoul(optarg, NULL, 10); break;
    case 'i': idle = true; break;
    case 'L': {
      char *end = NULL;
      library_id = strtoll(optarg, &end, 10);
      if (!end || *end || library_id <= 0) ns_cli_die(2, "match: --library-id needs a positive id, not '%s'", optarg);
      break;
    }
    case 'h':
      printf("usage: nsentry match [--version V | --library-id ID] [-n|--top N] [--idle] SEGMENT...\n"
             "SEGMENT is a stored segment id, or a CSV file of a preprocessed segment (header: metric names,\n"
             "optionally a first timestamp column; --idle matches it against idle clusters). Prints the N\n"
             "nearest clusters with distances; 'unmatched' when farther than match_radius_factor x radius.\n"
             "Default: the latest cluster library; --library-id: the one a model library uses.\n");
      return 0;
    default: return 2;
    }
  }
  if (optind >= argc) ns_cli_die(2, "match: give a segment id or CSV file (see --help)");
  if (top < 1) top = 1;
  ns_store *st = NULL;
  ns_cli_check(ns_store_open(ns_cfg_str(cfg, NS_CFG_db), &st), "open database");
  ns_clib *lib = NULL;
  if (version > 0 && library_id > 0) ns_cli_die(2, "match: give --version or --library-id, not both");
  ns_status s = library_id > 0 ? ns_clib_load_for_library(st, library_id, &lib) : ns_clib_load(st, version, &lib);
  if (s) {
    ns_store_close(st);
    ns_cli_check(s, "match");
  }
  ns_clib_match *best = calloc(top, sizeof *best);
  int rc = 0;
  for (int a = optind; a < argc; a++) {
    ns_segment *seg = NULL;
    char *end = NULL;
    long long id = strtoll(argv[a], &end, 10);
    if (end && *end == '\0' && end != argv[a]) {
      s = ns_store_get_segment(st, id, &seg);
    } else {
      s = read_csv_segment(argv[a], lib, ns_cfg_int(cfg, NS_CFG_prep_interval), &seg);
      if (!s && idle) seg->kind = NS_SEG_IDLE;
    }
    size_t n = 0;
    if (!s) s = ns_clib_match_segment(lib, seg, best, top, &n);
    if (s) {
      fprintf(stderr, "nsentry: match %s: %s\n", argv[a], ns_err_message(s));
      ns_segment_free(seg);
      rc = 1;
      continue;
    }
    printf("%s (%s %s, %zu rows, first %zu used) library v%" PRId64 ":\n", argv[a], seg->node ? seg->node : "?",
           seg->kind == NS_SEG_JOB ? (seg->job_id ? seg->job_id : "job") : "idle", seg->T,
           ns_clib_prefix_rows(seg, lib->params.match_len_ms), lib->version);
    for (size_t r = 0; r < n; r++) {
      const ns_clib_match *m = &best[r];
      printf("  %zu. cluster %s-%d  distance %9.3f  limit %9.3f  %s  nearest representative %zu (segment %" PRId64
             ", distance %.3f)\n",
             r + 1, m->kind == NS_SEG_JOB ? "job" : "idle", m->label, m->distance, m->limit,
             m->unmatched ? "unmatched" : "matched  ", m->nearest_rep,
             lib->clusters[m->cluster].members[m->nearest_rep], m->rep_distance);
    }
    ns_segment_free(seg);
  }
  free(best);
  ns_clib_free(lib);
  ns_store_close(st);
  return rc;
}
