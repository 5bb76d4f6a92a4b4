/* The per-node spool (spool_dir): the sampler's on-disk ring of telemetry,
 * the SPANK plugin's job marks, and the epilog's outbox of unsent segments.
 *
 * Layout under spool_dir:
 *   ring/<first_ts_ms>.nss   telemetry chunks (format below), oldest removed first
 *   marks/<job_id>           job marks, text lines appended by the SPANK plugin:
 *                              "start <ms> <node>", "end <ms> <node>", "tag <TAG>"
 *   outbox/<ms>-<key>.json   segments waiting to be (re)sent, one POST body each
 *   outbox/dropped           one line per entry dropped to respect the cap
 *   sampler.pid              pid of the running sampler
 *
 * Chunk format (little-endian, native on every supported node):
 *   header: "NSSPOOL1" u32 M, then M NUL-terminated metric names, padded to 8;
 *   records: i64 ts_ms, M x f32 (NaN = missing), u32 FNV-1a of the preceding bytes.
 * A torn last record (crash mid-write) fails its checksum and is ignored, so a
 * sampler restart resumes safely. A chunk holds one metric set; a new set starts
 * a new chunk. */
#ifndef NS_SPOOL_H
#define NS_SPOOL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_mts.h"
#include "ns_status.h"

#define NS_SPOOL_MARKS_DIR "marks"
#define NS_SPOOL_RING_DIR "ring"
#define NS_SPOOL_OUTBOX_DIR "outbox"
#define NS_SPOOL_PIDFILE "sampler.pid"
/* Longest job id / tag accepted in marks and outbox keys. */
#define NS_SPOOL_MAX_ID 64

typedef struct ns_spool ns_spool;

typedef struct ns_spool_opts {
  int64_t retention_ms;    /* keep at least this much history (if it fits) */
  int64_t max_bytes;       /* hard cap on ring bytes */
  int64_t min_free_bytes;  /* never write when the filesystem has less free; 0 = default */
} ns_spool_opts;

/* Creates dir/{ring,marks,outbox} (0755) if needed. */
NS_API ns_status ns_spool_open(const char *dir, const ns_spool_opts *opts, ns_spool **out);
NS_API void ns_spool_close(ns_spool *sp);
NS_API const char *ns_spool_dir(const ns_spool *sp);

/* Append one sample; names are the metric set (copied; a change starts a new chunk).
 * Enforces retention, the byte cap and the free-space floor (dropping oldest chunks);
 * returns NS_ERR_LIMIT without writing when the disk is too full even after that. */
NS_API ns_status ns_spool_append(ns_spool *sp, int64_t ts_ms, size_t M, char *const *names,
                                 const float *values);
/* Remove chunks older than retention and beyond the cap. */
NS_API ns_status ns_spool_prune(ns_spool *sp, int64_t now_ms);
/* Bytes used by the ring. */
NS_API int64_t ns_spool_ring_bytes(const ns_spool *sp);

/* Samples with from_ms <= ts <= to_ms, as raw telemetry of `node` (metric set =
 * union over the chunks, NaN where a chunk lacks one). NS_ERR_EMPTY if none. */
NS_API ns_status ns_spool_read(const char *dir, const char *node, int64_t from_ms, int64_t to_ms,
                               ns_mts **out);
/* Timestamp of the newest sample (0 if none). */
NS_API ns_status ns_spool_last_ts(const char *dir, int64_t *out_ms);

/* ---- job marks ---- */
typedef struct ns_job_marks {
  int64_t start_ms, end_ms; /* 0 = not recorded */
  char node[128];
  char tag[NS_SPOOL_MAX_ID + 1];
} ns_job_marks;

/* A job id / tag is 1..64 chars of [A-Za-z0-9_.+-] (job ids like 12, 12_3, 12+0). */
NS_API bool ns_spool_id_ok(const char *s);
/* Append one "start"/"end" line (what the plugin does; here for tools and tests). */
NS_API ns_status ns_spool_mark(const char *dir, const char *job_id, const char *what, int64_t ms,
                               const char *node);
NS_API ns_status ns_spool_read_marks(const char *dir, const char *job_id, ns_job_marks *out);
NS_API ns_status ns_spool_remove_marks(const char *dir, const char *job_id);
/* Remove mark files not modified for older_than_ms (jobs whose epilog never ran). */
NS_API ns_status ns_spool_prune_marks(const char *dir, int64_t older_than_ms, int *removed);

/* ---- outbox ---- */
/* Store a POST body under a key (e.g. "lab.123.cn01"); keeps at most max_bytes,
 * dropping the oldest entries and logging each drop to outbox/dropped. */
NS_API ns_status ns_outbox_put(const char *dir, const char *key, const char *body, size_t len,
                               int64_t max_bytes, int *dropped);
typedef struct ns_outbox_entry {
  char path[4096];
  char key[160];
  int64_t bytes, queued_ms;
} ns_outbox_entry;
/* Entries oldest first. */
NS_API ns_status ns_outbox_list(const char *dir, ns_outbox_entry **out, size_t *n);
NS_API ns_status ns_outbox_read(const ns_outbox_entry *e, char **body, size_t *len);
NS_API ns_status ns_outbox_remove(const ns_outbox_entry *e);
/* Number of entries dropped so far (lines in outbox/dropped). */
NS_API int64_t ns_outbox_dropped(const char *dir);

/* Wall clock in ms since the epoch. */
NS_API int64_t ns_spool_now_ms(void);

#endif
