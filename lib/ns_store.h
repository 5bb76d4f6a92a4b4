/* The nsentry database: schema creation/migration and the core tables
 * (nodes, jobs, segments, metric catalogue, labels, artifacts). Every
 * access goes through ns_store_* functions. Modules that own further tables
 * (clusters, models, verdicts, queue) use ns_store_db() with ns_db_* and keep
 * their SQL in their own module; the DDL for both dialects lives in sql/. */
#ifndef NS_STORE_H
#define NS_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_db.h"
#include "ns_mts.h"
#include "ns_status.h"

typedef struct ns_store ns_store;

/* Opens (creating if needed) and migrates to the latest schema version. */
NS_API ns_status ns_store_open(const char *uri, ns_store **out);
NS_API void ns_store_close(ns_store *s);
NS_API ns_db *ns_store_db(ns_store *s);
NS_API int ns_store_schema_version(ns_store *s);
NS_API ns_status ns_store_begin(ns_store *s);
NS_API ns_status ns_store_commit(ns_store *s);
NS_API ns_status ns_store_rollback(ns_store *s);

typedef struct ns_job {
  char *cluster, *job_id;         /* key */
  int64_t submit_ms, start_ms, end_ms; /* 0 = unknown (end of a running job) */
  int nnodes;
  char *nodelist;                 /* compressed Slurm hostlist as given */
  char *user, *partition, *account, *state, *tag;
  int exit_code;
  bool shared;                    /* node shared with other jobs (telemetry not exclusive) */
} ns_job;
NS_API void ns_job_free(ns_job *j);
/* Upsert on (cluster, job_id). */
NS_API ns_status ns_store_put_job(ns_store *s, const ns_job *j);
NS_API ns_status ns_store_get_job(ns_store *s, const char *cluster, const char *job_id, ns_job **out);

/* Jobs of `cluster` overlapping [from, to] (0 = open), ordered by start. */
NS_API ns_status ns_store_list_jobs(ns_store *s, const char *cluster, int64_t from_ms, int64_t to_ms,
                                    ns_job **out, size_t *n);
NS_API void ns_jobs_free(ns_job *jobs, size_t n);

/* Raw node telemetry as imported, before preprocessing (stored in chunks).
 * `source` names the importer ("ldms", "csv", "synth", ...). */
NS_API ns_status ns_store_put_raw(ns_store *s, const char *cluster, const ns_mts *m, const char *source);
NS_API ns_status ns_store_list_raw_nodes(ns_store *s, const char *cluster, char ***nodes, size_t *n);
NS_API void ns_strings_free(char **v, size_t n);
/* A node's raw rows in [from, to] (0 = open), chunks merged in time order;
 * the metric set is the union of the chunks' (NaN where a chunk lacks one). */
NS_API ns_status ns_store_get_raw(ns_store *s, const char *cluster, const char *node, int64_t from_ms,
                                  int64_t to_ms, ns_mts **out);

/* Segments. `split` is a free tag such as "train" or "test" (NULL = none);
 * "ingest" marks raw segments as shipped by nodes. Idempotent on (cluster,
 * node, job_id/idle, start_ms, split): storing the same segment twice returns
 * the existing id, and a derived copy (a preprocessed piece, an ablation cut)
 * may share the window under another split. */
NS_API ns_status ns_store_put_segment(ns_store *s, const ns_segment *seg, const char *split, int64_t *out_id);
NS_API ns_status ns_store_get_segment(ns_store *s, int64_t id, ns_segment **out);
NS_API ns_status ns_store_delete_segment(ns_store *s, int64_t id);

typedef struct ns_seg_filter {
  const char *cluster;   /* NULL = any */
  const char *node;      /* NULL = any */
  const char *job_id;    /* NULL = any */
  int kind;              /* -1 any, NS_SEG_JOB, NS_SEG_IDLE */
  const char *split;     /* NULL = any */
  int64_t from_ms, to_ms;/* overlap with [from, to]; 0 = open */
} ns_seg_filter;
#define NS_SEG_FILTER_ALL ((ns_seg_filter){NULL, NULL, NULL, -1, NULL, 0, 0})
/* Ids ordered by (start_ms, node). Caller frees *ids. */
NS_API ns_status ns_store_list_segments(ns_store *s, const ns_seg_filter *f, int64_t **ids, size_t *n);
/* The same selection with each segment's node and time span, in the same
 * order (no data read). Free with ns_seg_spans_free. */
typedef struct ns_seg_span {
  int64_t id, start_ms, end_ms;
  char *node;
} ns_seg_span;
NS_API ns_status ns_store_list_spans(ns_store *s, const ns_seg_filter *f, ns_seg_span **out, size_t *n);
NS_API void ns_seg_spans_free(ns_seg_span *v, size_t n);

/* Expert or imported labels on a node's time range. */
typedef struct ns_label {
  int64_t id;
  char *cluster, *node, *job_id;  /* job_id may be NULL */
  int64_t start_ms, end_ms;
  int label;                      /* 1 = anomalous, 0 = normal */
  char *author, *source, *note;   /* source: "import", "expert", "synth", ... */
  int64_t created_ms;
} ns_label;
NS_API void ns_labels_free(ns_label *l, size_t n);
NS_API ns_status ns_store_put_label(ns_store *s, const ns_label *l, int64_t *out_id);
NS_API ns_status ns_store_delete_label(ns_store *s, int64_t id);
/* Labels of `node` (NULL = all) overlapping [from, to] (0 = open). */
NS_API ns_status ns_store_list_labels(ns_store *s, const char *cluster, const char *node, int64_t from_ms,
                                      int64_t to_ms, ns_label **out, size_t *n);

/* Versioned opaque artifacts (preprocessing parameters, cluster and model
 * libraries, ...). put assigns the next version for (kind, name). */
NS_API ns_status ns_store_put_artifact(ns_store *s, const char *kind, const char *name, const void *data,
                                       size_t n, int64_t *out_version);
/* version <= 0 = latest. Caller frees *data. */
NS_API ns_status ns_store_get_artifact(ns_store *s, const char *kind, const char *name, int64_t version,
                                       void **data, size_t *n, int64_t *out_version);

#endif
