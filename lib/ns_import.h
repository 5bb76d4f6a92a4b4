/* Importers: NodeSentry dataset folders, LDMS store_csv files, Slurm sacct
 * job lists and generic wide CSV files. Every parser streams its input,
 * reports errors as "file:line:col: what" (ns_err_detail) and applies only
 * the documented repairs of docs/import.md, each counted in ns_import_report.
 *
 * Three layers:
 *   - parsers (ns_import_sacct_file, ns_import_ldms, ns_import_csv_wide,
 *     ns_nodesentry_read_*) return in-memory results and touch no database;
 *   - streaming parsers (ns_import_ldms_stream, ns_import_csv_stream) hand
 *     their rows to a sink in pieces, with bounded memory;
 *   - store importers (ns_import_*_store, ns_import_nodesentry) parse and
 *     write in ONE transaction each: on any error nothing is stored.
 * Not thread-safe per call, but calls share no state (any thread may run
 * its own import). */
#ifndef NS_IMPORT_H
#define NS_IMPORT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_mts.h"
#include "ns_status.h"
#include "ns_store.h"

/* What an import did. Parsers add to it (so one report can cover several
 * calls); zero it before the first. */
typedef struct ns_import_report {
  int64_t files, rows, points, nodes, jobs, segments, labels;
  double seconds;             /* wall time, set by the store importers */
  /* repairs (docs/import.md) */
  int64_t dup_rows;           /* exact duplicate rows dropped */
  int64_t truncated_lines;    /* LDMS: unterminated final line dropped */
  int64_t repeated_headers;   /* LDMS: header line repeated after a restart skipped */
  int64_t missing_values;     /* empty / NaN fields kept as missing (NaN) */
  int64_t counter_resets;     /* ns_import_counters_to_rates: negative deltas -> NaN */
  int64_t skipped_jobs;       /* sacct: never started (no nodes or no start time) */
  int64_t shared_jobs;        /* jobs marked shared because they overlap on a node */
  int64_t unknown_nodes;      /* sacct: unknown nodes accepted (allow_unknown_nodes) */
} ns_import_report;

/* Sum of the repair counters. */
NS_API int64_t ns_import_repairs(const ns_import_report *r);
/* The one-line summary the CLI prints, e.g. "files 20, rows 15440, points
 * 2130720, nodes 7, jobs 17, segments 19, labels 11, 0.24 s, repairs 0",
 * followed by "(duplicate rows 1, ...)" naming each repair that happened. */
NS_API void ns_import_report_format(const ns_import_report *r, char *buf, size_t n);

/* Counter rules for LDMS columns (see docs/import.md). A rule list is
 * comma-separated glob patterns (fnmatch) matched against "schema:metric",
 * where schema is the store_csv file name without rollover/.csv suffix.
 * The first matching pattern decides; a leading '!' makes it a gauge.
 * No match = gauge. */
#define NS_IMPORT_DEFAULT_COUNTER_RULES                                                                 \
  "!procstat*:*procs_running*,!procstat*:*procs_blocked*,!procstat*:*cpu_enabled*,"                    \
  "!procstat*:*cores_up*,procstat*:*,"                                                                  \
  "vmstat*:nr_dirtied,vmstat*:nr_written,!vmstat*:nr_*,vmstat*:*,"                                     \
  "!procnetdev*:*link_*,!procnetdev*:*mtu*,procnetdev*:*,"                                             \
  "!procdiskstats*:*ios_in_progress*,procdiskstats*:*,"                                                \
  "procnfs*:*,"                                                                                         \
  "!*:*_rate*,!*:*_per_sec*,*:*_total"
/* Is schema:metric a counter under `rules` (NULL = the default)? Errors on
 * a malformed rule list (empty pattern). */
NS_API ns_status ns_import_is_counter(const char *rules, const char *schema, const char *metric, bool *out);

typedef struct ns_import_opts {
  const char *counter_rules;   /* NULL = NS_IMPORT_DEFAULT_COUNTER_RULES */
  int64_t join_window_ms;      /* LDMS: rows of different schemas this close join; <0 = default 500 */
  bool local_time;             /* naive timestamps are local time, not UTC */
  char *const *known_nodes;    /* sacct: nodes telemetry exists for; NULL = no check */
  size_t n_known_nodes;
  bool allow_unknown_nodes;    /* sacct: keep jobs on unknown nodes (warning) instead of failing */
  const char *only_node;       /* LDMS: keep only this producer (NULL = all) */
  int64_t from_ms, to_ms;      /* LDMS: keep only rows in [from, to] (0 = open) */
  /* Called now and then with input bytes read so far and the total (LDMS,
   * wide CSV, NodeSentry folders); NULL = none. */
  void (*progress)(void *ctx, int64_t done_bytes, int64_t total_bytes);
  void *progress_ctx;
} ns_import_opts;
#define NS_IMPORT_OPTS_DEFAULT ((ns_import_opts){.join_window_ms = -1})

/* ---- Slurm job lists ---- */

/* Parse `sacct -P -X -o JobID,NodeList,Start,End,State` output (with or
 * without the header line; with a header any column order and the extra
 * columns Submit, User, Partition, Account, ExitCode, NNodes, Tag are
 * understood). Jobs that never started are skipped (counted); End
 * "Unknown" = running (end_ms 0); job ids are kept as text ("123",
 * "123_4", "123+0"). Jobs overlapping on a node are marked shared. Unknown
 * nodes (opts->known_nodes) are an error unless allow_unknown_nodes.
 * Caller frees with ns_jobs_free. */
NS_API ns_status ns_import_sacct_file(const char *path, const char *cluster, const ns_import_opts *opts,
                                      ns_job **jobs, size_t *n, ns_import_report *rep);
/* Mark jobs whose [start, end] overlap on a common node as shared (both);
 * adds to rep->shared_jobs and logs a warning per pair. */
NS_API ns_status ns_import_mark_overlaps(ns_job *jobs, size_t n, ns_import_report *rep);

/* ---- LDMS store_csv ---- */

/* Read store_csv files (a directory argument means every regular file in
 * it, *.HEADER files excepted) and join them per producer: one ns_mts per
 * node, metrics named "schema.metric", counters flagged in is_counter
 * (opts->counter_rules), timestamps ascending. Rows of different schemas
 * within opts->join_window_ms of each other become one row (stamped with
 * the earliest of them); a schema without a row there contributes NaN.
 * opts->only_node / from_ms / to_ms select one node's window cheaply: other
 * rows are skipped before their values are parsed (their field count is
 * still checked), and files over 4 MiB are entered by binary search just
 * before from_ms (error messages then count lines from that byte). Use it
 * to cut a job's window. Caller frees with ns_import_mts_free. */
NS_API ns_status ns_import_ldms(char *const *paths, size_t npaths, const ns_import_opts *opts, ns_mts ***out,
                                size_t *n, ns_import_report *rep);
NS_API void ns_import_mts_free(ns_mts **v, size_t n);

/* The same import with bounded memory: joined rows are handed to `sink` in
 * pieces, each an ns_mts of one node (the sink takes ownership and must free
 * it) whose rows follow the node's previous piece in time. Pieces are handed
 * over whenever more than `budget_values` joined values are buffered, and
 * at the end; a node's metric set may grow between pieces (a schema that
 * starts later). The files are read in lockstep in 10-minute blocks of data
 * time; a row may lag its file's time order by up to 5 minutes. */
typedef ns_status (*ns_import_sink)(void *ctx, ns_mts *m); /* a non-OK return stops the import */
NS_API ns_status ns_import_ldms_stream(char *const *paths, size_t npaths, const ns_import_opts *opts,
                                       int64_t budget_values, ns_import_sink sink, void *ctx,
                                       ns_import_report *rep);

/* Turn flagged counters into per-second rates in place: row t gets
 * (x[t]-x[t-1]) / dt; row 0 and rows after a decrease (counter reset,
 * counted) or a missing value become NaN; is_counter is cleared. */
NS_API ns_status ns_import_counters_to_rates(ns_mts *m, ns_import_report *rep);

/* ---- generic wide CSV ---- */

/* "timestamp,metric1,...,metricN" with a header; timestamps as in
 * ns_parse_time_ms, strictly increasing (exact duplicate rows dropped);
 * empty or NaN fields are missing values; Inf is an error. An optional
 * last column named "label" / "Label" becomes m->labels (0/1). */
NS_API ns_status ns_import_csv_wide(const char *path, const char *node, const ns_import_opts *opts, ns_mts **out,
                                    ns_import_report *rep);

/* The same with bounded memory: rows go to `sink` (which takes ownership)
 * in consecutive pieces of about budget_values values. */
NS_API ns_status ns_import_csv_stream(const char *path, const char *node, const ns_import_opts *opts,
                                      int64_t budget_values, ns_import_sink sink, void *ctx,
                                      ns_import_report *rep);

/* ---- NodeSentry dataset ---- */

/* The Job file: "JobID|NodeList|Start|End|Tag" with a header. NodeList is
 * a hostlist (comma-separated names work); End may be "Unknown". */
NS_API ns_status ns_nodesentry_read_jobs(const char *path, const char *cluster, const ns_import_opts *opts,
                                         ns_job **jobs, size_t *n, ns_import_report *rep);
/* One segment file ("timestamp,Metric1..N[,Label]"): regular spacing (the
 * interval is the first step), finite values, labels from Label. */
NS_API ns_status ns_nodesentry_read_segment(const char *path, const char *cluster, const char *node,
                                            const char *job_id, const ns_import_opts *opts, ns_segment **out,
                                            ns_import_report *rep);
/* Import DIR (Job, Train/<node>/<node>_<job>.csv, Test/<node>_<job>.csv)
 * into the store in one transaction: jobs, segments (split "train" /
 * "test"), and one label row (source "import") per run of equal labels in
 * each labelled file. A file's job must be in Job and its node in the job's
 * node list. */
NS_API ns_status ns_import_nodesentry(const char *dir, ns_store *s, const char *cluster, const ns_import_opts *opts,
                                      ns_import_report *rep);

/* ---- store importers (one transaction each) ---- */

/* Jobs with ns_store_put_job. Without opts->known_nodes, the nodes the
 * cluster has raw telemetry for (if any) are the known nodes. */
NS_API ns_status ns_import_sacct_store(ns_store *s, const char *path, const char *cluster, const ns_import_opts *opts,
                                       ns_import_report *rep);
/* Raw series with ns_store_put_raw (source "ldms" / "csv"), streamed in
 * pieces (ns_import_ldms_stream / ns_import_csv_stream). */
NS_API ns_status ns_import_ldms_store(ns_store *s, char *const *paths, size_t npaths, const char *cluster,
                                      const ns_import_opts *opts, ns_import_report *rep);
NS_API ns_status ns_import_csv_store(ns_store *s, const char *path, const char *node, const char *cluster,
                                     const ns_import_opts *opts, ns_import_report *rep);

#endif
