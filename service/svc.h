/* nsentryd internals shared by the service's source files (not installed). */
#ifndef NS_SVC_H
#define NS_SVC_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "ns_config.h"
#include "ns_mts.h"
#include "ns_status.h"
#include "ns_detect.h"
#include "ns_store.h"


/* ---- svc_ingest.c: POST /v1/segments body ---- */
typedef struct svc_limits {
  int64_t max_body, max_metrics, max_points;
} svc_limits;

typedef struct svc_ingest {
  ns_segment *seg;     /* raw segment as shipped (NaN = missing) */
  ns_job job;          /* cluster, job_id, user, partition, ... (strings owned) */
  int job_nodes;
} svc_ingest;
void svc_ingest_free(svc_ingest *in);
/* Inflate a gzip body into a new buffer of at most max_out bytes (NS_ERR_LIMIT past it). */
ns_status svc_gunzip(const void *in, size_t n, size_t max_out, char **out, size_t *out_n);
/* Parse and validate; on error the detail names the problem (field, row, column). */
ns_status svc_ingest_parse(const char *body, size_t n, const svc_limits *lim, svc_ingest **out);

/* ---- svc_auth.c: MUNGE ---- */
typedef struct svc_auth svc_auth;
/* `socket` NULL = munged's default. Users are names or numeric UIDs, comma-separated. */
ns_status svc_auth_create(const char *socket, const char *ingest_users, const char *admin_users, svc_auth **out);
void svc_auth_free(svc_auth *a);
/* Decode `cred`, require its payload to be the hex SHA-256 of `body` and the
 * UID to be in the ingest (admin=false) or admin set. NS_ERR_AUTH for
 * missing/invalid/expired/replayed/mismatched credentials (401),
 * NS_ERR_FORBIDDEN for a valid credential of a user not allowed (403). */
ns_status svc_auth_check(svc_auth *a, const char *cred, const void *body, size_t n, bool admin, uid_t *uid_out);
/* Parse a user list ("0,slurm,1001") into UIDs. */
ns_status svc_parse_users(const char *list, uid_t **uids, size_t *n);

/* ---- svc_db.c: the service's tables (score_queue, verdicts, job_verdicts, slurm_outbox) ---- */
typedef struct svc_db_stats {
  int64_t pending, running, done, failed;
} svc_db_stats;
/* Store segment + job and enqueue it, in one transaction. *dup is set when
 * (cluster, job_id, node) was already stored: nothing is written then. */
ns_status svc_db_ingest(ns_store *st, const svc_ingest *in, int64_t now_ms, int64_t *seg_id, bool *dup);
/* Claim one pending entry (SKIP LOCKED on PostgreSQL); NS_ERR_NOTFOUND when none. */
ns_status svc_db_claim(ns_store *st, const char *worker, int64_t now_ms, int64_t lease_ms, int64_t *qid,
                       int64_t *seg_id);
/* Attempts (including this claim) of the entry returned by the last svc_db_claim on this thread. */
int svc_db_last_attempts(void);
/* Put a claimed entry back with a reason (e.g. no library), retry after delay. */
ns_status svc_db_release(ns_store *st, int64_t qid, const char *reason, int64_t retry_at_ms, bool failed);
/* Mark pending entries with a reason (shown in job status) without claiming them. */
ns_status svc_db_note_pending(ns_store *st, const char *reason);
/* Record a node verdict (ns_detect_store_verdict: details, per-point scores,
 * threshold, matched cluster) and mark the queue entry done, in one
 * transaction. `model` names the library when the verdict carries none. */
ns_status svc_db_put_node_verdict(ns_store *st, int64_t qid, int64_t seg_id, const char *cluster,
                                  const char *job_id, const char *node, const ns_node_verdict *v,
                                  const char *model, int64_t now_ms);
/* Finalise every job that has all nodes scored, or whose grace expired with
 * all received nodes scored; queue the Slurm token when field != "none".
 * Returns how many jobs were finalised. */
ns_status svc_db_finalise(ns_store *st, int64_t now_ms, int64_t grace_ms, const char *field, int *n_final,
                          int *n_anom, int *n_norm);
/* Requeue a job's segments and reopen its verdict. NS_ERR_NOTFOUND if unknown. */
ns_status svc_db_rescore(ns_store *st, const char *cluster, const char *job_id, int64_t now_ms, int *n);
ns_status svc_db_stats_get(ns_store *st, svc_db_stats *out);
/* JSON documents (caller frees). */
ns_status svc_db_job_json(ns_store *st, const char *cluster, const char *job_id, bool have_library, char **out);
ns_status svc_db_verdicts_json(ns_store *st, int64_t since_ms, bool only_anomalous, int limit, char **out);
/* Slurm outbox. */
typedef struct svc_outbox_row {
  int64_t id;
  char cluster[128], job_id[64], field[32];
  char token[512];
  int attempts;
} svc_outbox_row;
ns_status svc_db_outbox_next(ns_store *st, int64_t now_ms, svc_outbox_row *row);
ns_status svc_db_outbox_done(ns_store *st, int64_t id, bool ok, bool permanent, const char *err, int64_t retry_at_ms);
/* The tokens of several jobs for `nsentry sacct` (verdict text or status). */
ns_status svc_db_anomaly_text(ns_store *st, const char *cluster, const char *job_id, char *buf, size_t n);

/* ---- svc_slurm.c: writing the token with slurmdb_job_modify() ---- */
typedef struct svc_slurm svc_slurm;
ns_status svc_slurm_create(const char *slurm_conf, svc_slurm **out);
void svc_slurm_free(svc_slurm *s);
/* Merge the token into `field` ("admincomment" or "systemcomment") of the job.
 * NS_ERR_SLURM/NS_ERR_NET when slurmdbd is unreachable (retry), NS_ERR_NOTFOUND
 * when the job is unknown, NS_ERR_INVAL when the field content is unsafe. */
ns_status svc_slurm_write(svc_slurm *s, const char *cluster, const char *job_id, const char *field,
                          const char *token);
/* Read the field (caller frees; "" when empty). */
ns_status svc_slurm_read(svc_slurm *s, const char *cluster, const char *job_id, const char *field, char **out);

int64_t svc_now_ms(void);
#endif
