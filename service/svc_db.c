/* The service's use of the database: ingest transaction, the durable scoring
 * queue, node and job verdicts, and the Slurm outbox (tables of schema v1,
 * docs/schema.md). On PostgreSQL several nsentryd processes may share the
 * queue: claims use FOR UPDATE SKIP LOCKED and every state change is guarded
 * by the state it expects, so no entry is scored or finalised twice. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_db.h"
#include "ns_hostlist.h"
#include "ns_log.h"
#include "ns_verdict.h"
#include "svc.h"
#include "ns_prep.h"

int64_t svc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prepare and bind: types is one char per parameter, i = int64, d = double,
 * t = text (NULL binds NULL). */
static ns_status vprep(ns_db *db, ns_db_stmt **out, const char *sql, const char *types, va_list ap) {
  ns_db_stmt *st = NULL;
  ns_status rc = ns_db_prepare(db, sql, &st);
  if (rc) return rc;
  for (int i = 0; types && types[i]; i++) {
    switch (types[i]) {
    case 'i': rc = ns_db_bind_int64(st, i + 1, va_arg(ap, int64_t)); break;
    case 'd': rc = ns_db_bind_double(st, i + 1, va_arg(ap, double)); break;
    default: rc = ns_db_bind_text(st, i + 1, va_arg(ap, const char *)); break;
    }
    if (rc) {
      ns_db_finalize(st);
      return rc;
    }
  }
  *out = st;
  return NS_OK;
}

static ns_status prep(ns_db *db, ns_db_stmt **out, const char *sql, const char *types, ...) {
  va_list ap;
  va_start(ap, types);
  ns_status rc = vprep(db, out, sql, types, ap);
  va_end(ap);
  return rc;
}

/* Execute a statement without result rows; *changes may be NULL. */
static ns_status run(ns_db *db, int64_t *changes, const char *sql, const char *types, ...) {
  va_list ap;
  va_start(ap, types);
  ns_db_stmt *st = NULL;
  ns_status rc = vprep(db, &st, sql, types, ap);
  va_end(ap);
  if (rc) return rc;
  bool row = false;
  rc = ns_db_step(st, &row);
  if (!rc && changes) *changes = ns_db_changes(st);
  ns_db_finalize(st);
  return rc;
}

ns_status svc_db_ingest(ns_store *s, const svc_ingest *in, int64_t now_ms, int64_t *seg_id, bool *dup) {
  *seg_id = 0;
  *dup = false;
  ns_db *db = ns_store_db(s);
  const ns_segment *seg = in->seg;
  ns_status rc = ns_store_begin(s);
  if (rc) return rc;
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = seg->cluster;
  f.node = seg->node;
  f.job_id = seg->job_id;
  f.kind = NS_SEG_JOB;
  f.split = NS_SPLIT_INGEST;
  int64_t *ids = NULL;
  size_t n = 0;
  if ((rc = ns_store_list_segments(s, &f, &ids, &n))) goto fail;
  if (n > 0) {
    *seg_id = ids[0];
    *dup = true;
    free(ids);
    return ns_store_rollback(s);
  }
  free(ids);
  if ((rc = ns_store_put_job(s, &in->job))) goto fail;
  if ((rc = ns_store_put_segment(s, seg, NS_SPLIT_INGEST, seg_id))) goto fail;
  int64_t ch = 0;
  if ((rc = run(db, &ch,
                "INSERT INTO score_queue (cluster, job_id, node, segment_id, state, attempts, created_ms, updated_ms) "
                "VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5) ON CONFLICT (segment_id) DO NOTHING",
                "tttii", seg->cluster, seg->job_id, seg->node, *seg_id, now_ms)))
    goto fail;
  if (ch == 0) {
    /* A concurrent retry of the same segment committed first. */
    *dup = true;
    return ns_store_rollback(s);
  }
  /* A late node re-opens a final verdict; it is finalised again once scored. */
  if ((rc = run(db, NULL,
                "INSERT INTO job_verdicts (cluster, job_id, state, anomalous, nodes_reported, nodes_expected, "
                "created_ms) VALUES (?1, ?2, 'pending', 0, 1, ?3, ?4) ON CONFLICT (cluster, job_id) DO UPDATE SET "
                "nodes_reported = job_verdicts.nodes_reported + 1, state = 'pending', "
                "nodes_expected = CASE WHEN excluded.nodes_expected > job_verdicts.nodes_expected "
                "THEN excluded.nodes_expected ELSE job_verdicts.nodes_expected END",
                "ttii", seg->cluster, seg->job_id, (int64_t)in->job_nodes, now_ms)))
    goto fail;
  return ns_store_commit(s);
fail:
  ns_store_rollback(s);
  return rc;
}

static __thread int last_attempts;
int svc_db_last_attempts(void) { return last_attempts; }

ns_status svc_db_claim(ns_store *s, const char *worker, int64_t now_ms, int64_t lease_ms, int64_t *qid,
                       int64_t *seg_id) {
  *qid = *seg_id = 0;
  ns_db *db = ns_store_db(s);
  bool pg = ns_db_kind_of(db) == NS_DB_POSTGRES;
  char sql[768];
  snprintf(sql, sizeof sql,
           "UPDATE score_queue SET state = 'leased', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1, "
           "updated_ms = ?3 WHERE id = (SELECT id FROM score_queue WHERE "
           "(state = 'pending' AND (lease_until IS NULL OR lease_until <= ?3)) OR "
           "(state = 'leased' AND lease_until <= ?3) ORDER BY id LIMIT 1%s) "
           "AND (state = 'pending' OR (state = 'leased' AND lease_until <= ?3)) RETURNING id, segment_id, attempts",
           pg ? " FOR UPDATE SKIP LOCKED" : "");
  ns_db_stmt *st = NULL;
  ns_status rc = prep(db, &st, sql, "tii", worker, now_ms + lease_ms, now_ms);
  if (rc) return rc;
  bool row = false;
  if ((rc = ns_db_step(st, &row))) goto done;
  if (!row) {
    rc = NS_ERR_NOTFOUND;
    goto done;
  }
  *qid = ns_db_col_int64(st, 0);
  *seg_id = ns_db_col_int64(st, 1);
  last_attempts = (int)ns_db_col_int64(st, 2);
done:
  ns_db_finalize(st);
  return rc;
}

ns_status svc_db_release(ns_store *s, int64_t qid, const char *reason, int64_t retry_at_ms, bool failed) {
  return run(ns_store_db(s), NULL,
             "UPDATE score_queue SET state = ?1, lease_owner = NULL, lease_until = ?2, error = ?3, updated_ms = ?4 "
             "WHERE id = ?5 AND state = 'leased'",
             "titii", failed ? "failed" : "pending", retry_at_ms, reason, svc_now_ms(), qid);
}

ns_status svc_db_note_pending(ns_store *s, const char *reason) {
  return run(ns_store_db(s), NULL,
             "UPDATE score_queue SET error = ?1 WHERE state = 'pending' AND (error IS NULL OR error <> ?1)", "t",
             reason);
}

ns_status svc_db_put_node_verdict(ns_store *s, int64_t qid, int64_t seg_id, const char *cluster, const char *job_id,
                                  const char *node, const ns_node_verdict *v, const char *model, int64_t now_ms) {
  ns_db *db = ns_store_db(s);
  ns_status rc = ns_store_begin(s);
  if (rc) return rc;
  int64_t ch = 0;
  if ((rc = run(db, &ch,
                "UPDATE score_queue SET state = 'done', lease_owner = NULL, lease_until = NULL, error = NULL, "
                "updated_ms = ?1 WHERE id = ?2 AND state = 'leased'",
                "ii", now_ms, qid)))
    goto fail;
  if (ch == 0) { /* lease expired and another worker took it: its result wins */
    rc = ns_errorf(NS_ERR_STATE, "queue entry %lld is no longer leased by this worker", (long long)qid);
    goto fail;
  }
  ns_node_verdict named = *v;
  if (!named.model_version[0] && model) snprintf(named.model_version, sizeof named.model_version, "%s", model);
  if ((rc = ns_detect_store_verdict(s, cluster, job_id, node, seg_id, &named))) goto fail;
  return ns_store_commit(s);
fail:
  ns_store_rollback(s);
  return rc;
}

typedef struct job_key {
  char cluster[128], job_id[64];
  int64_t expected, reported;
} job_key;

/* Names of expected nodes that never reported, from the job's nodelist. */
static char *missing_list(ns_store *s, const char *cluster, const char *job_id) {
  ns_job *job = NULL;
  char *out = NULL, **have = NULL;
  size_t n_have = 0, cap_have = 0;
  ns_db_stmt *q = NULL;
  if (ns_store_get_job(s, cluster, job_id, &job) != NS_OK || !job->nodelist || !*job->nodelist) goto done;
  if (prep(ns_store_db(s), &q, "SELECT node FROM segments WHERE cluster = ?1 AND job_id = ?2", "tt", cluster,
           job_id) != NS_OK)
    goto done;
  for (;;) {
    bool row = false;
    if (ns_db_step(q, &row) != NS_OK || !row) break;
    if (n_have == cap_have) {
      char **nh = realloc(have, (cap_have = cap_have ? cap_have * 2 : 16) * sizeof *nh);
      if (!nh) goto done;
      have = nh;
    }
    if (!(have[n_have] = strdup(ns_db_col_text(q, 0) ? ns_db_col_text(q, 0) : ""))) goto done;
    n_have++;
  }
  char **names = NULL;
  size_t n = 0;
  if (ns_hostlist_expand(job->nodelist, &names, &n) != NS_OK) goto done;
  char **miss = calloc(n ? n : 1, sizeof *miss);
  size_t k = 0;
  if (miss) {
    for (size_t i = 0; i < n; i++) {
      bool seen = false;
      for (size_t j = 0; j < n_have && !seen; j++) seen = strcmp(names[i], have[j]) == 0;
      if (!seen) miss[k++] = names[i];
    }
    if (k) ns_hostlist_compress(miss, k, &out);
    free(miss);
  }
  ns_hostlist_free(names, n);
done:
  ns_db_finalize(q);
  for (size_t i = 0; i < n_have; i++) free(have[i]);
  free(have);
  if (job) ns_job_free(job);
  return out;
}

static ns_status finalise_one(ns_store *s, const job_key *jk, int64_t now_ms, const char *field, bool *anom_out,
                              bool *done_out) {
  *done_out = false;
  ns_db *db = ns_store_db(s);
  ns_db_stmt *st = NULL;
  char **nodes = NULL, **anodes = NULL, *missing = NULL, *token = NULL, model[64] = "";
  size_t n = 0, na = 0, cap = 16;
  double score = -INFINITY;
  ns_status rc = NS_OK;
  nodes = malloc(cap * sizeof *nodes);
  anodes = malloc(cap * sizeof *anodes);
  if (!nodes || !anodes) {
    rc = NS_ERR_NOMEM;
    goto done;
  }
  if ((rc = prep(db, &st,
                 "SELECT node, anomalous, score_max, model_version FROM verdicts WHERE cluster = ?1 AND job_id = ?2 "
                 "ORDER BY score_max DESC, node",
                 "tt", jk->cluster, jk->job_id)))
    goto done;
  for (;;) {
    bool row = false;
    if ((rc = ns_db_step(st, &row))) goto done;
    if (!row) break;
    if (n == cap) {
      cap *= 2;
      char **a = realloc(nodes, cap * sizeof *a), **b = a ? realloc(anodes, cap * sizeof *b) : NULL;
      if (a) nodes = a;
      if (b) anodes = b;
      if (!a || !b) {
        rc = NS_ERR_NOMEM;
        goto done;
      }
    }
    nodes[n] = strdup(ns_db_col_text(st, 0) ? ns_db_col_text(st, 0) : "?");
    if (!nodes[n]) {
      rc = NS_ERR_NOMEM;
      goto done;
    }
    n++;
    if (ns_db_col_int64(st, 1)) anodes[na++] = nodes[n - 1];
    if (!ns_db_col_is_null(st, 2) && ns_db_col_double(st, 2) > score) score = ns_db_col_double(st, 2);
    const char *mv = ns_db_col_text(st, 3);
    if (mv && !model[0]) snprintf(model, sizeof model, "%s", mv);
  }
  ns_db_finalize(st);
  st = NULL;
  /* Missing = never reported; nodes whose scoring failed reported and are not missing. */
  size_t reported = jk->reported > 0 ? (size_t)jk->reported : n;
  size_t expected = jk->expected > 0 ? (size_t)jk->expected : reported;
  size_t n_missing = expected > reported ? expected - reported : 0;
  if (n_missing) missing = missing_list(s, jk->cluster, jk->job_id);
  if (n > 0) {
    ns_verdict_info vi = {na ? "anomalous" : "normal", score, (const char *const *)anodes, na, n_missing, model};
    if ((rc = ns_verdict_token(&vi, &token))) goto done;
  }
  char missing_text[64];
  if (n_missing && !missing) snprintf(missing_text, sizeof missing_text, "%zu node(s), names unknown", n_missing);
  if ((rc = ns_store_begin(s))) goto done;
  int64_t ch = 0;
  if ((rc = run(db, &ch,
                "UPDATE job_verdicts SET state = 'final', anomalous = ?1, missing_nodes = ?2, token = ?3, "
                "finalized_ms = ?4 WHERE cluster = ?5 AND job_id = ?6 AND state = 'pending' AND nodes_reported = ?7",
                "ittitti", (int64_t)(na > 0), n_missing ? (missing ? missing : missing_text) : NULL, token, now_ms,
                jk->cluster, jk->job_id, jk->reported))) {
    ns_store_rollback(s);
    goto done;
  }
  if (ch == 1 && token && strcmp(field, "none") != 0) {
    if ((rc = run(db, NULL,
                  "INSERT INTO slurm_outbox (cluster, job_id, token, attempts, next_try, created_ms) VALUES "
                  "(?1, ?2, ?3, 0, ?4, ?4) ON CONFLICT (cluster, job_id) DO UPDATE SET token = excluded.token, "
                  "attempts = 0, next_try = excluded.next_try, last_error = NULL",
                  "ttti", jk->cluster, jk->job_id, token, now_ms))) {
      ns_store_rollback(s);
      goto done;
    }
  }
  if ((rc = ns_store_commit(s))) goto done;
  *done_out = ch == 1;
  *anom_out = na > 0;
done:
  ns_db_finalize(st);
  for (size_t i = 0; i < n; i++) free(nodes[i]);
  free(nodes);
  free(anodes);
  free(missing);
  free(token);
  return rc;
}

ns_status svc_db_finalise(ns_store *s, int64_t now_ms, int64_t grace_ms, const char *field, int *n_final,
                          int *n_anom, int *n_norm) {
  *n_final = *n_anom = *n_norm = 0;
  ns_db *db = ns_store_db(s);
  ns_db_stmt *st = NULL;
  job_key keys[64];
  size_t nk = 0;
  ns_status rc = prep(db, &st,
                      "SELECT jv.cluster, jv.job_id, jv.nodes_expected, jv.nodes_reported FROM job_verdicts jv "
                      "WHERE jv.state = 'pending' AND (jv.nodes_reported >= jv.nodes_expected OR jv.created_ms <= ?1) "
                      /* Busy jobs come from the (state, id) index, computed once per pass. */
                      "AND (jv.cluster, jv.job_id) NOT IN (SELECT q.cluster, q.job_id FROM score_queue q WHERE "
                      "q.state IN ('pending', 'leased') AND q.job_id IS NOT NULL) ORDER BY jv.created_ms LIMIT 64",
                      "i", now_ms - grace_ms);
  if (rc) return rc;
  for (;;) {
    bool row = false;
    if ((rc = ns_db_step(st, &row)) || !row) break;
    job_key *k = &keys[nk++];
    snprintf(k->cluster, sizeof k->cluster, "%s", ns_db_col_text(st, 0));
    snprintf(k->job_id, sizeof k->job_id, "%s", ns_db_col_text(st, 1));
    k->expected = ns_db_col_int64(st, 2);
    k->reported = ns_db_col_int64(st, 3);
  }
  ns_db_finalize(st);
  if (rc) return rc;
  for (size_t i = 0; i < nk; i++) {
    bool anom = false, done = false;
    if ((rc = finalise_one(s, &keys[i], now_ms, field, &anom, &done))) return rc;
    if (done) {
      (*n_final)++;
      if (anom)
        (*n_anom)++;
      else
        (*n_norm)++;
    }
  }
  return NS_OK;
}

ns_status svc_db_rescore(ns_store *s, const char *cluster, const char *job_id, int64_t now_ms, int *n) {
  *n = 0;
  ns_db *db = ns_store_db(s);
  ns_status rc = ns_store_begin(s);
  if (rc) return rc;
  int64_t ch = 0;
  if ((rc = run(db, &ch,
                "UPDATE score_queue SET state = 'pending', attempts = 0, lease_owner = NULL, lease_until = NULL, "
                "error = NULL, updated_ms = ?1 WHERE segment_id IN (SELECT id FROM segments WHERE cluster = ?2 AND "
                "job_id = ?3)",
                "itt", now_ms, cluster, job_id)))
    goto fail;
  if (ch == 0) {
    rc = ns_errorf(NS_ERR_NOTFOUND, "no segments for job %s/%s", cluster, job_id);
    goto fail;
  }
  *n = (int)ch;
  if ((rc = run(db, NULL, "UPDATE job_verdicts SET state = 'pending' WHERE cluster = ?1 AND job_id = ?2", "tt",
                cluster, job_id)))
    goto fail;
  return ns_store_commit(s);
fail:
  ns_store_rollback(s);
  return rc;
}

ns_status svc_db_stats_get(ns_store *s, svc_db_stats *out) {
  memset(out, 0, sizeof *out);
  ns_db_stmt *st = NULL;
  ns_status rc = prep(ns_store_db(s), &st, "SELECT state, COUNT(*) FROM score_queue GROUP BY state", "");
  if (rc) return rc;
  for (;;) {
    bool row = false;
    if ((rc = ns_db_step(st, &row)) || !row) break;
    const char *state = ns_db_col_text(st, 0);
    int64_t c = ns_db_col_int64(st, 1);
    if (!state) continue;
    if (!strcmp(state, "pending")) out->pending = c;
    else if (!strcmp(state, "leased")) out->running = c;
    else if (!strcmp(state, "done")) out->done = c;
    else if (!strcmp(state, "failed")) out->failed = c;
  }
  ns_db_finalize(st);
  return rc;
}

static char *print_and_free(cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

ns_status svc_db_job_json(ns_store *s, const char *cluster, const char *job_id, bool have_library, char **out) {
  *out = NULL;
  ns_db *db = ns_store_db(s);
  ns_db_stmt *st = NULL;
  cJSON *o = cJSON_CreateObject(), *nodes = cJSON_CreateArray();
  ns_status rc = NS_OK;
  if (!o || !nodes) {
    cJSON_Delete(nodes);
    rc = NS_ERR_NOMEM;
    goto done;
  }
  cJSON_AddStringToObject(o, "cluster", cluster);
  cJSON_AddStringToObject(o, "job_id", job_id);
  if ((rc = prep(db, &st,
                 "SELECT state, anomalous, nodes_reported, nodes_expected, missing_nodes, token, created_ms, "
                 "finalized_ms FROM job_verdicts WHERE cluster = ?1 AND job_id = ?2",
                 "tt", cluster, job_id)))
    goto done;
  bool row = false;
  if ((rc = ns_db_step(st, &row))) goto done;
  if (!row) {
    rc = ns_errorf(NS_ERR_NOTFOUND, "job %s/%s has no segments", cluster, job_id);
    goto done;
  }
  bool final = strcmp(ns_db_col_text(st, 0), "final") == 0;
  bool anom = ns_db_col_int64(st, 1) != 0;
  cJSON_AddNumberToObject(o, "nodes_reported", (double)ns_db_col_int64(st, 2));
  cJSON_AddNumberToObject(o, "nodes_expected", (double)ns_db_col_int64(st, 3));
  if (ns_db_col_text(st, 4)) cJSON_AddStringToObject(o, "missing_nodes", ns_db_col_text(st, 4));
  const char *tok = ns_db_col_text(st, 5);
  if (tok) cJSON_AddStringToObject(o, "token", tok);
  cJSON_AddNumberToObject(o, "first_report_ms", (double)ns_db_col_int64(st, 6));
  if (!ns_db_col_is_null(st, 7)) cJSON_AddNumberToObject(o, "finalized_ms", (double)ns_db_col_int64(st, 7));
  bool has_token = tok != NULL;
  ns_db_finalize(st);
  st = NULL;
  /* Per node: queue state joined with the verdict, if any. */
  if ((rc = prep(db, &st,
                 "SELECT q.node, q.state, q.error, q.attempts, v.anomalous, v.score_max, v.score_mean, v.new_pattern, "
                 "v.model_version, v.details FROM segments s JOIN score_queue q ON q.segment_id = s.id "
                 "LEFT JOIN verdicts v ON v.cluster = q.cluster AND v.job_id = q.job_id AND v.node = q.node "
                 "WHERE s.cluster = ?1 AND s.job_id = ?2 ORDER BY q.node",
                 "tt", cluster, job_id)))
    goto done;
  int n_unscored = 0, n_failed = 0;
  const char *reason = NULL;
  char reason_buf[256] = "";
  double score = -INFINITY;
  char model[64] = "";
  for (;;) {
    if ((rc = ns_db_step(st, &row))) goto done;
    if (!row) break;
    cJSON *n = cJSON_CreateObject();
    cJSON_AddItemToArray(nodes, n);
    cJSON_AddStringToObject(n, "node", ns_db_col_text(st, 0));
    const char *qs = ns_db_col_text(st, 1);
    cJSON_AddStringToObject(n, "queue_state", qs);
    if (ns_db_col_text(st, 2)) {
      cJSON_AddStringToObject(n, "reason", ns_db_col_text(st, 2));
      snprintf(reason_buf, sizeof reason_buf, "%s", ns_db_col_text(st, 2));
      reason = reason_buf;
    }
    if (!strcmp(qs, "failed")) n_failed++;
    if (ns_db_col_is_null(st, 4)) {
      if (strcmp(qs, "done") != 0) n_unscored++;
      cJSON_AddNullToObject(n, "verdict");
      continue;
    }
    /* A stale verdict of a node being rescored is still shown, marked. */
    if (strcmp(qs, "done") != 0) n_unscored++;
    cJSON_AddStringToObject(n, "verdict", ns_db_col_int64(st, 4) ? "anomalous" : "normal");
    double smax = ns_db_col_double(st, 5);
    cJSON_AddNumberToObject(n, "score_max", smax);
    cJSON_AddNumberToObject(n, "score_mean", ns_db_col_double(st, 6));
    cJSON_AddBoolToObject(n, "new_pattern", ns_db_col_int64(st, 7) != 0);
    if (smax > score) score = smax;
    if (ns_db_col_text(st, 8)) {
      cJSON_AddStringToObject(n, "model_version", ns_db_col_text(st, 8));
      if (!model[0]) snprintf(model, sizeof model, "%s", ns_db_col_text(st, 8));
    }
    cJSON *det = ns_db_col_text(st, 9) ? cJSON_Parse(ns_db_col_text(st, 9)) : NULL;
    if (det) {
      cJSON *iv = cJSON_DetachItemFromObject(det, "intervals");
      cJSON *tm = cJSON_DetachItemFromObject(det, "top_metrics");
      cJSON_AddItemToObject(n, "intervals", iv ? iv : cJSON_CreateArray());
      cJSON_AddItemToObject(n, "top_metrics", tm ? tm : cJSON_CreateArray());
      cJSON_Delete(det);
    }
  }
  char status[320];
  if (final && has_token)
    snprintf(status, sizeof status, "final");
  else if (final)
    snprintf(status, sizeof status, "final: no node could be scored");
  else if (n_unscored && !have_library)
    snprintf(status, sizeof status, "unscored: no model library");
  else if (n_unscored)
    snprintf(status, sizeof status, "pending: %d node(s) queued for scoring%s%s", n_unscored, reason ? "; " : "",
             reason ? reason : "");
  else
    snprintf(status, sizeof status, "pending: waiting for nodes");
  cJSON_AddStringToObject(o, "status", status);
  if (final && has_token)
    cJSON_AddStringToObject(o, "verdict", anom ? "anomalous" : "normal");
  else
    cJSON_AddNullToObject(o, "verdict");
  if (score > -INFINITY)
    cJSON_AddNumberToObject(o, "score", score);
  else
    cJSON_AddNullToObject(o, "score");
  if (model[0])
    cJSON_AddStringToObject(o, "model_version", model);
  else
    cJSON_AddNullToObject(o, "model_version");
  if (n_failed) cJSON_AddNumberToObject(o, "nodes_failed", n_failed);
  cJSON_AddItemToObject(o, "nodes", nodes);
  nodes = NULL;
  *out = print_and_free(o);
  o = NULL;
  if (!*out) rc = NS_ERR_NOMEM;
done:
  ns_db_finalize(st);
  cJSON_Delete(o);
  return rc;
}

ns_status svc_db_verdicts_json(ns_store *s, int64_t since_ms, bool only_anomalous, int limit, char **out) {
  *out = NULL;
  ns_db_stmt *st = NULL;
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
  ns_status rc = NS_OK;
  if (!o || !arr) {
    cJSON_Delete(arr);
    rc = NS_ERR_NOMEM;
    goto done;
  }
  cJSON_AddItemToObject(o, "verdicts", arr);
  if ((rc = prep(ns_store_db(s), &st,
                 "SELECT cluster, job_id, anomalous, token, finalized_ms, nodes_reported, nodes_expected, "
                 "missing_nodes FROM job_verdicts WHERE state = 'final' AND finalized_ms >= ?1 AND anomalous >= ?2 "
                 "ORDER BY finalized_ms, cluster, job_id LIMIT ?3",
                 "iii", since_ms, (int64_t)(only_anomalous ? 1 : 0), (int64_t)limit)))
    goto done;
  int64_t last = since_ms;
  for (;;) {
    bool row = false;
    if ((rc = ns_db_step(st, &row))) goto done;
    if (!row) break;
    cJSON *v = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, v);
    cJSON_AddStringToObject(v, "cluster", ns_db_col_text(st, 0));
    cJSON_AddStringToObject(v, "job_id", ns_db_col_text(st, 1));
    cJSON_AddStringToObject(v, "verdict", ns_db_col_int64(st, 2) ? "anomalous" : "normal");
    if (ns_db_col_text(st, 3)) cJSON_AddStringToObject(v, "token", ns_db_col_text(st, 3));
    last = ns_db_col_int64(st, 4);
    cJSON_AddNumberToObject(v, "finalized_ms", (double)last);
    cJSON_AddNumberToObject(v, "nodes_reported", (double)ns_db_col_int64(st, 5));
    cJSON_AddNumberToObject(v, "nodes_expected", (double)ns_db_col_int64(st, 6));
    if (ns_db_col_text(st, 7)) cJSON_AddStringToObject(v, "missing_nodes", ns_db_col_text(st, 7));
  }
  cJSON_AddNumberToObject(o, "next_since", (double)last);
  *out = print_and_free(o);
  o = NULL;
  if (!*out) rc = NS_ERR_NOMEM;
done:
  ns_db_finalize(st);
  cJSON_Delete(o);
  return rc;
}

ns_status svc_db_outbox_next(ns_store *s, int64_t now_ms, svc_outbox_row *row) {
  memset(row, 0, sizeof *row);
  ns_db_stmt *st = NULL;
  ns_status rc = prep(ns_store_db(s), &st,
                      "SELECT id, cluster, job_id, token, attempts FROM slurm_outbox WHERE next_try <= ?1 "
                      "ORDER BY next_try, id LIMIT 1",
                      "i", now_ms);
  if (rc) return rc;
  bool r = false;
  if ((rc = ns_db_step(st, &r))) goto done;
  if (!r) {
    rc = NS_ERR_NOTFOUND;
    goto done;
  }
  row->id = ns_db_col_int64(st, 0);
  snprintf(row->cluster, sizeof row->cluster, "%s", ns_db_col_text(st, 1));
  snprintf(row->job_id, sizeof row->job_id, "%s", ns_db_col_text(st, 2));
  snprintf(row->token, sizeof row->token, "%s", ns_db_col_text(st, 3));
  row->attempts = (int)ns_db_col_int64(st, 4);
done:
  ns_db_finalize(st);
  return rc;
}

/* Permanent failures stay in the outbox (visible, never retried) with
 * next_try far in the future; `nsentry`-side tools can requeue them. */
#define OUTBOX_PARKED INT64_C(4102444800000)

ns_status svc_db_outbox_done(ns_store *s, int64_t id, bool ok, bool permanent, const char *err, int64_t retry_at_ms) {
  ns_db *db = ns_store_db(s);
  if (ok) return run(db, NULL, "DELETE FROM slurm_outbox WHERE id = ?1", "i", id);
  return run(db, NULL,
             "UPDATE slurm_outbox SET attempts = attempts + 1, next_try = ?1, last_error = ?2 WHERE id = ?3", "iti",
             permanent ? OUTBOX_PARKED : retry_at_ms, err, id);
}

ns_status svc_db_anomaly_text(ns_store *s, const char *cluster, const char *job_id, char *buf, size_t n) {
  snprintf(buf, n, "%s", "");
  ns_db_stmt *st = NULL;
  ns_status rc = prep(ns_store_db(s), &st,
                      "SELECT state, anomalous, token, (SELECT COUNT(*) FROM segments s JOIN score_queue q ON "
                      "q.segment_id = s.id WHERE s.cluster = ?1 AND s.job_id = ?2 AND q.state IN ('pending', "
                      "'leased')) FROM job_verdicts WHERE cluster = ?1 AND job_id = ?2",
                      "tt", cluster, job_id);
  if (rc) return rc;
  bool row = false;
  if ((rc = ns_db_step(st, &row))) goto done;
  if (!row) {
    rc = NS_ERR_NOTFOUND;
    goto done;
  }
  const char *state = ns_db_col_text(st, 0), *tok = ns_db_col_text(st, 2);
  if (!strcmp(state, "final") && tok) {
    char score[32] = "";
    ns_verdict_get(tok, "score", score, sizeof score);
    snprintf(buf, n, "%s%s%s", ns_db_col_int64(st, 1) ? "ANOMALOUS" : "normal", score[0] ? " score=" : "", score);
  } else if (!strcmp(state, "final")) {
    snprintf(buf, n, "unscored");
  } else if (ns_db_col_int64(st, 3) > 0) {
    snprintf(buf, n, "queued");
  } else {
    snprintf(buf, n, "pending");
  }
done:
  ns_db_finalize(st);
  return rc;
}
