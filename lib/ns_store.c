/* Core tables over ns_db. Matrices are single blobs (float32 LE), statements
 * are prepared once per store, and metric sets and nodes are cached so a bulk
 * import costs one INSERT per segment or raw chunk. */
#include "ns_store.h"
#include "ns_hash.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_sql.h"

/* Rows per raw chunk: one day at 15 s is 5760; 4096 keeps a chunk near 1.3 MB at 82 metrics. */
#define RAW_CHUNK_ROWS 4096

enum {
  Q_SET_FIND,
  Q_SET_INS,
  Q_METRIC_INS,
  Q_METRIC_ID,
  Q_MEMBER_INS,
  Q_NODE_INS,
  Q_SEG_INS,
  Q_SEG_FIND,
  Q_SEG_GET,
  Q_SEG_DEL,
  Q_JOB_PUT,
  Q_JOB_GET,
  Q_JOB_LIST,
  Q_RAW_PUT,
  Q_RAW_NODES,
  Q_RAW_GET,
  Q_LABEL_INS,
  Q_LABEL_DEL,
  Q_LABEL_LIST,
  Q_ART_PUT,
  Q_ART_LATEST,
  Q_ART_GET,
  Q_COUNT
};

#define JOB_COLS                                                                                     \
  "cluster, job_id, submit_ms, start_ms, end_ms, nnodes, nodelist, user_name, partition_name, account, " \
  "state, tag, exit_code, shared"
#define LABEL_COLS "id, cluster, node, job_id, start_ms, end_ms, label, author, source, note, created_ms"

static const char *const q_sql[Q_COUNT] = {
    [Q_SET_FIND] = "SELECT id, names FROM metric_sets WHERE names_hash = ?1",
    [Q_SET_INS] = "INSERT INTO metric_sets (n, names_hash, names, created_ms) VALUES (?1, ?2, ?3, ?4) RETURNING id",
    [Q_METRIC_INS] = "INSERT INTO metrics (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
    [Q_METRIC_ID] = "SELECT id FROM metrics WHERE name = ?1",
    [Q_MEMBER_INS] = "INSERT INTO metric_set_members (set_id, pos, metric_id) VALUES (?1, ?2, ?3)",
    [Q_NODE_INS] = "INSERT INTO nodes (cluster, name, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?3)"
                   " ON CONFLICT (cluster, name) DO NOTHING",
    [Q_SEG_INS] = "INSERT INTO segments (cluster, node, job_id, kind, split, start_ms, end_ms, interval_ms, t, m,"
                  " metric_set_id, data, labels, created_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                  " ON CONFLICT DO NOTHING RETURNING id",
    [Q_SEG_FIND] = "SELECT id FROM segments WHERE cluster = ?1 AND node = ?2 AND COALESCE(job_id, '') = ?3"
                   " AND start_ms = ?4 AND COALESCE(split, '') = ?5",
    [Q_SEG_GET] = "SELECT s.cluster, s.node, s.job_id, s.kind, s.start_ms, s.end_ms, s.interval_ms, s.t, s.m,"
                  " ms.n, ms.names, s.data, s.labels FROM segments s JOIN metric_sets ms ON ms.id = s.metric_set_id"
                  " WHERE s.id = ?1",
    [Q_SEG_DEL] = "DELETE FROM segments WHERE id = ?1",
    [Q_JOB_PUT] = "INSERT INTO jobs (" JOB_COLS ", updated_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                  " ON CONFLICT (cluster, job_id) DO UPDATE SET"
                  " submit_ms = COALESCE(excluded.submit_ms, jobs.submit_ms),"
                  " start_ms = COALESCE(excluded.start_ms, jobs.start_ms),"
                  " end_ms = COALESCE(excluded.end_ms, jobs.end_ms),"
                  " nnodes = CASE WHEN excluded.nnodes > 0 THEN excluded.nnodes ELSE jobs.nnodes END,"
                  " nodelist = COALESCE(excluded.nodelist, jobs.nodelist),"
                  " user_name = COALESCE(excluded.user_name, jobs.user_name),"
                  " partition_name = COALESCE(excluded.partition_name, jobs.partition_name),"
                  " account = COALESCE(excluded.account, jobs.account),"
                  " state = COALESCE(excluded.state, jobs.state),"
                  " tag = COALESCE(excluded.tag, jobs.tag),"
                  " exit_code = excluded.exit_code, shared = excluded.shared, updated_ms = excluded.updated_ms",
    [Q_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE cluster = ?1 AND job_id = ?2",
    [Q_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (CAST(?1 AS TEXT) IS NULL OR cluster = ?1)"
                   " AND (CAST(?2 AS BIGINT) = 0 OR COALESCE(end_ms, 9223372036854775807) >= ?2)"
                   " AND (CAST(?3 AS BIGINT) = 0 OR COALESCE(start_ms, submit_ms, 0) <= ?3)"
                   " ORDER BY COALESCE(start_ms, submit_ms, 0), cluster, job_id",
    [Q_RAW_PUT] = "INSERT INTO raw_chunks (cluster, node, t0_ms, t1_ms, nrows, metric_set_id, value_bytes, ts, vals,"
                  " counters, labels, source, created_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                  " ON CONFLICT (cluster, node, metric_set_id, t0_ms, t1_ms) DO UPDATE SET"
                  " nrows = excluded.nrows, value_bytes = excluded.value_bytes, ts = excluded.ts, vals = excluded.vals,"
                  " counters = excluded.counters, labels = excluded.labels, source = excluded.source,"
                  " created_ms = excluded.created_ms",
    [Q_RAW_NODES] = "SELECT DISTINCT node FROM raw_chunks WHERE cluster = ?1 ORDER BY node",
    [Q_RAW_GET] = "SELECT c.id, c.nrows, c.value_bytes, c.ts, c.vals, c.counters, c.labels, ms.n, ms.names"
                  " FROM raw_chunks c JOIN metric_sets ms ON ms.id = c.metric_set_id"
                  " WHERE c.cluster = ?1 AND c.node = ?2 AND (CAST(?3 AS BIGINT) = 0 OR c.t1_ms >= ?3) AND (CAST(?4 AS BIGINT) = 0 OR c.t0_ms <= ?4)"
                  " ORDER BY c.t0_ms, c.id",
    [Q_LABEL_INS] = "INSERT INTO labels (cluster, node, job_id, start_ms, end_ms, label, author, source, note,"
                    " created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
    [Q_LABEL_DEL] = "DELETE FROM labels WHERE id = ?1",
    [Q_LABEL_LIST] = "SELECT " LABEL_COLS " FROM labels WHERE (CAST(?1 AS TEXT) IS NULL OR cluster = ?1)"
                     " AND (CAST(?2 AS TEXT) IS NULL OR node = ?2) AND (CAST(?3 AS BIGINT) = 0 OR end_ms >= ?3) AND (CAST(?4 AS BIGINT) = 0 OR start_ms <= ?4)"
                     " ORDER BY start_ms, node, id",
    [Q_ART_PUT] = "INSERT INTO artifacts (kind, name, version, created_ms, data)"
                  " VALUES (?1, ?2, (SELECT COALESCE(MAX(version), 0) + 1 FROM artifacts WHERE kind = ?1 AND name = ?2),"
                  " ?3, ?4) RETURNING version",
    [Q_ART_LATEST] = "SELECT version, data FROM artifacts WHERE kind = ?1 AND name = ?2 ORDER BY version DESC LIMIT 1",
    [Q_ART_GET] = "SELECT version, data FROM artifacts WHERE kind = ?1 AND name = ?2 AND version = ?3",
};

/* Open-addressing string -> int64 map (metric sets by joined names, known nodes). */
typedef struct {
  char **keys;
  int64_t *vals;
  size_t cap, n;
} strmap;

struct ns_store {
  ns_db *db;
  int version;
  ns_db_stmt *q[Q_COUNT];
  strmap sets, nodes;
  uint64_t seen_rollbacks;
  uint32_t active; /* cached statements possibly mid-result */
  ns_db_stmt *seg_list[256]; /* list_segments / list_spans (bit 7), one per combination of filters */
};


static void strmap_clear(strmap *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

static bool strmap_get(const strmap *m, const char *k, int64_t *v) {
  if (!m->cap) return false;
  for (size_t i = ns_fnv1a64_str(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->keys[i]) return false;
    if (!strcmp(m->keys[i], k)) {
      *v = m->vals[i];
      return true;
    }
  }
}

static ns_status strmap_put(strmap *m, const char *k, int64_t v) {
  if ((m->n + 1) * 2 > m->cap) {
    strmap g = {0};
    g.cap = m->cap ? m->cap * 2 : 64;
    g.keys = calloc(g.cap, sizeof *g.keys);
    g.vals = calloc(g.cap, sizeof *g.vals);
    if (!g.keys || !g.vals) {
      free(g.keys), free(g.vals);
      return NS_ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->keys[i]) continue;
      size_t j = ns_fnv1a64_str(m->keys[i]) & (g.cap - 1);
      while (g.keys[j]) j = (j + 1) & (g.cap - 1);
      g.keys[j] = m->keys[i];
      g.vals[j] = m->vals[i];
      g.n++;
    }
    free(m->keys), free(m->vals);
    *m = g;
  }
  size_t i = ns_fnv1a64_str(k) & (m->cap - 1);
  while (m->keys[i] && strcmp(m->keys[i], k)) i = (i + 1) & (m->cap - 1);
  if (!m->keys[i]) {
    if (!(m->keys[i] = strdup(k))) return NS_ERR_NOMEM;
    m->n++;
  }
  m->vals[i] = v;
  return NS_OK;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool host_le(void) {
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 1;
}

/* Copy n 4- or 8-byte words, swapping on big-endian hosts (blobs are LE). */
static void copy_le(void *dst, const void *src, size_t n, size_t w) {
  if (dst != src) memcpy(dst, src, n * w);
  if (host_le()) return;
  uint8_t *d = dst;
  for (size_t i = 0; i < n; i++, d += w)
    for (size_t a = 0, b = w - 1; a < b; a++, b--) {
      uint8_t t = d[a];
      d[a] = d[b];
      d[b] = t;
    }
}

/* A cache is valid only while nothing it recorded was rolled back. */
static void check_caches(ns_store *s) {
  uint64_t rb = ns_db_rollback_count(s->db);
  if (rb != s->seen_rollbacks) {
    strmap_clear(&s->sets);
    strmap_clear(&s->nodes);
    s->seen_rollbacks = rb;
  }
}

/* An SQLite statement left mid-result keeps its read snapshot; a later write
 * on this connection would then fail with BUSY_SNAPSHOT instead of waiting.
 * So every statement is reset before the next one runs and when a public
 * call returns. */
static void q_release(ns_store *s) {
  for (int i = 0; s->active && i < Q_COUNT; i++)
    if (s->active & (1u << i)) ns_db_reset(s->q[i]);
  s->active = 0;
}

static ns_status q_get(ns_store *s, int which, ns_db_stmt **out) {
  q_release(s);
  if (!s->q[which]) {
    ns_status st = ns_db_prepare(s->db, q_sql[which], &s->q[which]);
    if (st) return st;
  }
  s->active |= 1u << which;
  *out = s->q[which];
  return NS_OK;
}

/* ---- open / close / transactions ---- */

ns_status ns_store_open(const char *uri, ns_store **out) {
  *out = NULL;
  ns_store *s = calloc(1, sizeof *s);
  if (!s) return NS_ERR_NOMEM;
  ns_status st = ns_db_open(uri, &s->db);
  if (!st) st = ns_sql_migrate(s->db, 0, &s->version);
  if (st) {
    ns_store_close(s);
    return st;
  }
  s->seen_rollbacks = ns_db_rollback_count(s->db);
  *out = s;
  return NS_OK;
}

void ns_store_close(ns_store *s) {
  if (!s) return;
  for (int i = 0; i < Q_COUNT; i++) ns_db_finalize(s->q[i]);
  for (int i = 0; i < 256; i++) ns_db_finalize(s->seg_list[i]);
  strmap_clear(&s->sets);
  strmap_clear(&s->nodes);
  ns_db_close(s->db);
  free(s);
}

ns_db *ns_store_db(ns_store *s) { return s->db; }
int ns_store_schema_version(ns_store *s) { return s->version; }
ns_status ns_store_begin(ns_store *s) { return ns_db_begin(s->db); }
ns_status ns_store_commit(ns_store *s) { return ns_db_commit(s->db); }
ns_status ns_store_rollback(ns_store *s) { return ns_db_rollback(s->db); }

/* ---- helpers ---- */

static ns_status step_done(ns_db_stmt *q) {
  bool row;
  ns_status st;
  do st = ns_db_step(q, &row);
  while (!st && row);
  return st;
}

static ns_status dup_col(ns_db_stmt *q, int col, char **out) {
  const char *t = ns_db_col_text(q, col);
  *out = NULL;
  if (!t) return NS_OK;
  return (*out = strdup(t)) ? NS_OK : NS_ERR_NOMEM;
}

static ns_status check_names(char *const *names, size_t M, const char *what) {
  if (!names) return ns_errorf(NS_ERR_INVAL, "%s: no metric names", what);
  for (size_t m = 0; m < M; m++) {
    if (!names[m] || !names[m][0]) return ns_errorf(NS_ERR_INVAL, "%s: metric %zu has no name", what, m);
    if (strchr(names[m], '\n'))
      return ns_errorf(NS_ERR_INVAL, "%s: metric name '%s' contains a newline", what, names[m]);
  }
  return NS_OK;
}

static char *join_names(char *const *names, size_t M) {
  size_t len = 1;
  for (size_t m = 0; m < M; m++) len += strlen(names[m]) + 1;
  char *j = malloc(len), *p = j;
  if (!j) return NULL;
  for (size_t m = 0; m < M; m++) {
    size_t l = strlen(names[m]);
    memcpy(p, names[m], l);
    p += l;
    *p++ = '\n';
  }
  if (p > j) p--;
  *p = 0;
  return j;
}

/* Split a '\n'-joined list of n names into a fresh array. */
static ns_status split_names(const char *joined, size_t n, char ***out) {
  *out = NULL;
  char **v = calloc(n ? n : 1, sizeof *v);
  if (!v) return NS_ERR_NOMEM;
  const char *p = joined ? joined : "";
  for (size_t i = 0; i < n; i++) {
    const char *e = strchr(p, '\n');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (!(v[i] = strndup(p, l))) goto nomem;
    if (!e && i + 1 < n) {
      ns_strings_free(v, n);
      return ns_errorf(NS_ERR_CORRUPT, "metric set lists fewer than %zu names", n);
    }
    p = e ? e + 1 : p + l;
  }
  *out = v;
  return NS_OK;
nomem:
  ns_strings_free(v, n);
  return NS_ERR_NOMEM;
}

static ns_status find_set(ns_store *s, const char *hash, const char *joined, int64_t *id, bool *found) {
  ns_db_stmt *q;
  bool row;
  *found = false;
  ns_status st = q_get(s, Q_SET_FIND, &q);
  if (st || (st = ns_db_bind_text(q, 1, hash)) || (st = ns_db_step(q, &row))) return st;
  if (!row) return NS_OK;
  const char *names = ns_db_col_text(q, 1);
  if (!names || strcmp(names, joined))
    return ns_errorf(NS_ERR_INTERNAL, "metric-set hash %s collides with a different set", hash);
  *id = ns_db_col_int64(q, 0);
  *found = true;
  return NS_OK;
}

static ns_status insert_set(ns_store *s, char *const *names, size_t M, const char *hash, const char *joined,
                            int64_t *id) {
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_SET_INS, &q);
  if (st || (st = ns_db_bind_int64(q, 1, (int64_t)M)) || (st = ns_db_bind_text(q, 2, hash)) ||
      (st = ns_db_bind_text(q, 3, joined)) || (st = ns_db_bind_int64(q, 4, now_ms())) || (st = ns_db_step(q, &row)))
    return st;
  if (!row) return ns_errorf(NS_ERR_DB, "metric set insert returned no id");
  *id = ns_db_col_int64(q, 0);
  if ((st = step_done(q))) return st;
  for (size_t m = 0; m < M; m++) {
    int64_t mid;
    if ((st = q_get(s, Q_METRIC_INS, &q)) || (st = ns_db_bind_text(q, 1, names[m])) || (st = step_done(q)) ||
        (st = q_get(s, Q_METRIC_ID, &q)) || (st = ns_db_bind_text(q, 1, names[m])) || (st = ns_db_step(q, &row)))
      return st;
    if (!row) return ns_errorf(NS_ERR_DB, "metric '%s' vanished after insert", names[m]);
    mid = ns_db_col_int64(q, 0);
    if ((st = q_get(s, Q_MEMBER_INS, &q)) || (st = ns_db_bind_int64(q, 1, *id)) ||
        (st = ns_db_bind_int64(q, 2, (int64_t)m)) || (st = ns_db_bind_int64(q, 3, mid)) || (st = step_done(q)))
      return st;
  }
  return NS_OK;
}

/* Id of the metric set with exactly these names in this order, created if new. */
static ns_status metric_set_id(ns_store *s, char *const *names, size_t M, int64_t *id) {
  check_caches(s);
  char *joined = join_names(names, M);
  if (!joined) return NS_ERR_NOMEM;
  ns_status st = NS_OK;
  if (strmap_get(&s->sets, joined, id)) goto done;
  char hash[24];
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)ns_fnv1a64_str(joined));
  bool found;
  if ((st = find_set(s, hash, joined, id, &found))) goto done;
  if (!found) {
    /* Savepoint: another process may create the same set at the same moment. */
    if ((st = ns_db_begin(s->db))) goto done;
    st = insert_set(s, names, M, hash, joined, id);
    if (!st) st = ns_db_commit(s->db);
    else ns_db_rollback(s->db);
    if (st == NS_ERR_EXISTS && !(st = find_set(s, hash, joined, id, &found)) && !found)
      st = ns_errorf(NS_ERR_DB, "metric set vanished after a concurrent insert");
    if (st) goto done;
    /* Rollback above (if any) bumped the counter; re-sync before caching. */
    check_caches(s);
  }
  st = strmap_put(&s->sets, joined, *id);
done:
  free(joined);
  return st;
}

static ns_status note_node(ns_store *s, const char *cluster, const char *node, int64_t t_ms) {
  check_caches(s);
  size_t lc = strlen(cluster), ln = strlen(node);
  char *key = malloc(lc + ln + 2);
  if (!key) return NS_ERR_NOMEM;
  memcpy(key, cluster, lc);
  key[lc] = '\n';
  memcpy(key + lc + 1, node, ln + 1);
  int64_t v;
  ns_status st = NS_OK;
  if (!strmap_get(&s->nodes, key, &v)) {
    ns_db_stmt *q;
    if (!(st = q_get(s, Q_NODE_INS, &q)) && !(st = ns_db_bind_text(q, 1, cluster)) &&
        !(st = ns_db_bind_text(q, 2, node)) && !(st = ns_db_bind_int64(q, 3, t_ms)) && !(st = step_done(q)))
      st = strmap_put(&s->nodes, key, 1);
  }
  free(key);
  return st;
}

/* ---- jobs ---- */

void ns_job_free(ns_job *j) {
  if (!j) return;
  ns_jobs_free(j, 1);
}

void ns_jobs_free(ns_job *jobs, size_t n) {
  if (!jobs) return;
  for (size_t i = 0; i < n; i++) {
    ns_job *j = &jobs[i];
    free(j->cluster), free(j->job_id), free(j->nodelist), free(j->user), free(j->partition);
    free(j->account), free(j->state), free(j->tag);
  }
  free(jobs);
}

static ns_status bind_ms_or_null(ns_db_stmt *q, int idx, int64_t v) {
  return v ? ns_db_bind_int64(q, idx, v) : ns_db_bind_null(q, idx);
}

static ns_status put_job_impl(ns_store *s, const ns_job *j) {
  if (!j || !j->cluster || !*j->cluster || !j->job_id || !*j->job_id)
    return ns_errorf(NS_ERR_INVAL, "job needs a cluster name and a job id");
  if (j->nnodes < 0) return ns_errorf(NS_ERR_RANGE, "job %s: negative node count %d", j->job_id, j->nnodes);
  if (j->start_ms && j->end_ms && j->end_ms < j->start_ms)
    return ns_errorf(NS_ERR_RANGE, "job %s/%s: end %lld before start %lld", j->cluster, j->job_id,
                     (long long)j->end_ms, (long long)j->start_ms);
  ns_db_stmt *q;
  ns_status st = q_get(s, Q_JOB_PUT, &q);
  if (st || (st = ns_db_bind_text(q, 1, j->cluster)) || (st = ns_db_bind_text(q, 2, j->job_id)) ||
      (st = bind_ms_or_null(q, 3, j->submit_ms)) || (st = bind_ms_or_null(q, 4, j->start_ms)) ||
      (st = bind_ms_or_null(q, 5, j->end_ms)) || (st = ns_db_bind_int64(q, 6, j->nnodes)) ||
      (st = ns_db_bind_text(q, 7, j->nodelist)) || (st = ns_db_bind_text(q, 8, j->user)) ||
      (st = ns_db_bind_text(q, 9, j->partition)) || (st = ns_db_bind_text(q, 10, j->account)) ||
      (st = ns_db_bind_text(q, 11, j->state)) || (st = ns_db_bind_text(q, 12, j->tag)) ||
      (st = ns_db_bind_int64(q, 13, j->exit_code)) || (st = ns_db_bind_int64(q, 14, j->shared ? 1 : 0)) ||
      (st = ns_db_bind_int64(q, 15, now_ms())))
    return st;
  return step_done(q);
}

ns_status ns_store_put_job(ns_store *s, const ns_job *j) {
  ns_status st = put_job_impl(s, j);
  q_release(s);
  return st;
}

static ns_status read_job(ns_db_stmt *q, ns_job *j) {
  memset(j, 0, sizeof *j);
  ns_status st;
  if ((st = dup_col(q, 0, &j->cluster)) || (st = dup_col(q, 1, &j->job_id)) || (st = dup_col(q, 6, &j->nodelist)) ||
      (st = dup_col(q, 7, &j->user)) || (st = dup_col(q, 8, &j->partition)) || (st = dup_col(q, 9, &j->account)) ||
      (st = dup_col(q, 10, &j->state)) || (st = dup_col(q, 11, &j->tag)))
    return st;
  j->submit_ms = ns_db_col_int64(q, 2);
  j->start_ms = ns_db_col_int64(q, 3);
  j->end_ms = ns_db_col_int64(q, 4);
  j->nnodes = (int)ns_db_col_int64(q, 5);
  j->exit_code = (int)ns_db_col_int64(q, 12);
  j->shared = ns_db_col_int64(q, 13) != 0;
  return NS_OK;
}

static ns_status get_job_impl(ns_store *s, const char *cluster, const char *job_id, ns_job **out) {
  *out = NULL;
  if (!cluster || !job_id) return ns_errorf(NS_ERR_INVAL, "get_job needs a cluster and a job id");
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_JOB_GET, &q);
  if (st || (st = ns_db_bind_text(q, 1, cluster)) || (st = ns_db_bind_text(q, 2, job_id)) ||
      (st = ns_db_step(q, &row)))
    return st;
  if (!row) return ns_errorf(NS_ERR_NOTFOUND, "job %s/%s not in the database", cluster, job_id);
  ns_job *j = calloc(1, sizeof *j);
  if (!j) return NS_ERR_NOMEM;
  if ((st = read_job(q, j))) {
    ns_job_free(j);
    return st;
  }
  *out = j;
  return NS_OK;
}

ns_status ns_store_get_job(ns_store *s, const char *cluster, const char *job_id, ns_job **out) {
  ns_status st = get_job_impl(s, cluster, job_id, out);
  q_release(s);
  return st;
}

static ns_status list_jobs_impl(ns_store *s, const char *cluster, int64_t from_ms, int64_t to_ms, ns_job **out,
                             size_t *n) {
  *out = NULL;
  *n = 0;
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_JOB_LIST, &q);
  if (st || (st = ns_db_bind_text(q, 1, cluster)) || (st = ns_db_bind_int64(q, 2, from_ms)) ||
      (st = ns_db_bind_int64(q, 3, to_ms)))
    return st;
  ns_job *v = NULL;
  size_t cnt = 0, cap = 0;
  while (!(st = ns_db_step(q, &row)) && row) {
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 16;
      ns_job *g = realloc(v, nc * sizeof *g);
      if (!g) {
        st = NS_ERR_NOMEM;
        break;
      }
      v = g, cap = nc;
    }
    if ((st = read_job(q, &v[cnt++]))) break;
  }
  if (st) {
    ns_jobs_free(v, cnt);
    return st;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}

ns_status ns_store_list_jobs(ns_store *s, const char *cluster, int64_t from_ms, int64_t to_ms, ns_job **out,
                             size_t *n) {
  ns_status st = list_jobs_impl(s, cluster, from_ms, to_ms, out, n);
  q_release(s);
  return st;
}

/* ---- segments ---- */

static ns_status check_segment(const ns_segment *g) {
  if (!g || !g->x || !g->metrics) return ns_errorf(NS_ERR_INVAL, "segment is empty");
  if (!g->cluster || !*g->cluster || !g->node || !*g->node)
    return ns_errorf(NS_ERR_INVAL, "segment needs a cluster and a node name");
  const char *who = g->job_id ? g->job_id : "idle";
  if (g->kind == NS_SEG_JOB && (!g->job_id || !*g->job_id))
    return ns_errorf(NS_ERR_INVAL, "segment %s/%s: job segment without a job id", g->cluster, g->node);
  if (g->kind == NS_SEG_IDLE && g->job_id)
    return ns_errorf(NS_ERR_INVAL, "segment %s/%s: idle segment carries job id %s", g->cluster, g->node, g->job_id);
  if (g->kind != NS_SEG_JOB && g->kind != NS_SEG_IDLE)
    return ns_errorf(NS_ERR_INVAL, "segment %s/%s: unknown kind %d", g->node, who, (int)g->kind);
  if (g->T == 0 || g->M == 0) return ns_errorf(NS_ERR_EMPTY, "segment %s/%s has no rows", g->node, who);
  if (g->interval_ms <= 0)
    return ns_errorf(NS_ERR_INVAL, "segment %s/%s: interval %lld ms is not positive", g->node, who,
                     (long long)g->interval_ms);
  if (g->T > INT32_MAX / 4 / g->M) return ns_errorf(NS_ERR_LIMIT, "segment %s/%s too large", g->node, who);
  char what[160];
  snprintf(what, sizeof what, "segment %s/%s", g->node, who);
  ns_status st = check_names(g->metrics, g->M, what);
  if (st) return st;
  for (size_t m = 0; m < g->M; m++)
    for (size_t k = 0; k < m; k++)
      if (!strcmp(g->metrics[k], g->metrics[m]))
        return ns_errorf(NS_ERR_INVAL, "%s: metric name '%s' appears twice", what, g->metrics[m]);
  return NS_OK;
}

static ns_status find_segment(ns_store *s, const ns_segment *g, const char *split, int64_t *id) {
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_SEG_FIND, &q);
  if (st || (st = ns_db_bind_text(q, 1, g->cluster)) || (st = ns_db_bind_text(q, 2, g->node)) ||
      (st = ns_db_bind_text(q, 3, g->job_id ? g->job_id : "")) || (st = ns_db_bind_int64(q, 4, g->start_ms)) ||
      (st = ns_db_bind_text(q, 5, split ? split : "")) || (st = ns_db_step(q, &row)))
    return st;
  if (!row) return ns_errorf(NS_ERR_DB, "segment %s/%s at %lld neither inserted nor found", g->node,
                             g->job_id ? g->job_id : "idle", (long long)g->start_ms);
  *id = ns_db_col_int64(q, 0);
  return NS_OK;
}

static ns_status put_segment_impl(ns_store *s, const ns_segment *g, const char *split, int64_t *out_id) {
  if (out_id) *out_id = 0;
  ns_status st = check_segment(g);
  if (st) return st;
  int64_t set_id, id = 0;
  if ((st = metric_set_id(s, g->metrics, g->M, &set_id)) || (st = note_node(s, g->cluster, g->node, g->start_ms)))
    return st;
  size_t n = g->T * g->M;
  const void *blob = g->x;
  float *tmp = NULL;
  if (!host_le()) {
    if (!(tmp = malloc(n * sizeof *tmp))) return NS_ERR_NOMEM;
    copy_le(tmp, g->x, n, 4);
    blob = tmp;
  }
  int64_t end_ms = g->end_ms ? g->end_ms : g->start_ms + (int64_t)(g->T - 1) * g->interval_ms;
  ns_db_stmt *q;
  bool row = false;
  if (!(st = q_get(s, Q_SEG_INS, &q)) && !(st = ns_db_bind_text(q, 1, g->cluster)) &&
      !(st = ns_db_bind_text(q, 2, g->node)) && !(st = ns_db_bind_text(q, 3, g->job_id)) &&
      !(st = ns_db_bind_int64(q, 4, g->job_id ? NS_SEG_JOB : NS_SEG_IDLE)) && !(st = ns_db_bind_text(q, 5, split)) &&
      !(st = ns_db_bind_int64(q, 6, g->start_ms)) && !(st = ns_db_bind_int64(q, 7, end_ms)) &&
      !(st = ns_db_bind_int64(q, 8, g->interval_ms)) && !(st = ns_db_bind_int64(q, 9, (int64_t)g->T)) &&
      !(st = ns_db_bind_int64(q, 10, (int64_t)g->M)) && !(st = ns_db_bind_int64(q, 11, set_id)) &&
      !(st = ns_db_bind_blob(q, 12, blob, n * sizeof(float))) &&
      !(st = g->labels ? ns_db_bind_blob(q, 13, g->labels, g->T) : ns_db_bind_null(q, 13)) &&
      !(st = ns_db_bind_int64(q, 14, now_ms())) && !(st = ns_db_step(q, &row))) {
    if (row) {
      id = ns_db_col_int64(q, 0);
      st = step_done(q);
    } else {
      st = find_segment(s, g, split, &id);
    }
  }
  free(tmp);
  if (!st && out_id) *out_id = id;
  return st;
}

ns_status ns_store_put_segment(ns_store *s, const ns_segment *g, const char *split, int64_t *out_id) {
  ns_status st = put_segment_impl(s, g, split, out_id);
  q_release(s);
  return st;
}

static ns_status get_segment_impl(ns_store *s, int64_t id, ns_segment **out) {
  *out = NULL;
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_SEG_GET, &q);
  if (st || (st = ns_db_bind_int64(q, 1, id)) || (st = ns_db_step(q, &row))) return st;
  if (!row) return ns_errorf(NS_ERR_NOTFOUND, "segment %lld not in the database", (long long)id);
  int64_t T = ns_db_col_int64(q, 7), M = ns_db_col_int64(q, 8), setn = ns_db_col_int64(q, 9);
  size_t dn = 0, ln = 0;
  const void *data = ns_db_col_blob(q, 11, &dn);
  const void *lab = ns_db_col_blob(q, 12, &ln);
  if (T <= 0 || M <= 0 || setn != M || dn != (size_t)T * (size_t)M * 4 || (lab && ln != (size_t)T))
    return ns_errorf(NS_ERR_CORRUPT, "segment %lld: stored shape %lldx%lld does not match its data", (long long)id,
                     (long long)T, (long long)M);
  ns_segment *g = NULL;
  char **names = NULL;
  if ((st = ns_segment_create((size_t)T, (size_t)M, &g)) ||
      (st = ns_segment_set_meta(g, ns_db_col_text(q, 0), ns_db_col_text(q, 1), ns_db_col_text(q, 2),
                                ns_db_col_int64(q, 4), ns_db_col_int64(q, 6))) ||
      (st = split_names(ns_db_col_text(q, 10), (size_t)M, &names)))
    goto fail;
  for (size_t m = 0; m < (size_t)M; m++) g->metrics[m] = names[m];
  free(names);
  g->kind = (ns_seg_kind)ns_db_col_int64(q, 3);
  g->end_ms = ns_db_col_int64(q, 5);
  g->id = id;
  copy_le(g->x, data, (size_t)(T * M), 4);
  if (lab) {
    if ((st = ns_segment_alloc_labels(g))) goto fail;
    memcpy(g->labels, lab, (size_t)T);
  }
  *out = g;
  return NS_OK;
fail:
  ns_segment_free(g);
  return st;
}

ns_status ns_store_get_segment(ns_store *s, int64_t id, ns_segment **out) {
  ns_status st = get_segment_impl(s, id, out);
  q_release(s);
  return st;
}

static ns_status delete_segment_impl(ns_store *s, int64_t id) {
  ns_db_stmt *q;
  ns_status st = q_get(s, Q_SEG_DEL, &q);
  if (st || (st = ns_db_bind_int64(q, 1, id)) || (st = step_done(q))) return st;
  if (ns_db_changes(q) == 0) return ns_errorf(NS_ERR_NOTFOUND, "segment %lld not in the database", (long long)id);
  return NS_OK;
}

ns_status ns_store_delete_segment(ns_store *s, int64_t id) {
  ns_status st = delete_segment_impl(s, id);
  q_release(s);
  return st;
}

void ns_seg_spans_free(ns_seg_span *v, size_t n) {
  for (size_t i = 0; v && i < n; i++) free(v[i].node);
  free(v);
}

/* ids only, or (spans) id, node and time span per row. */
static ns_status list_impl(ns_store *s, const ns_seg_filter *f, bool spans, int64_t **ids, ns_seg_span **sp,
                           size_t *n) {
  ns_seg_filter all = NS_SEG_FILTER_ALL;
  if (!f) f = &all;
  if (f->kind != -1 && f->kind != NS_SEG_JOB && f->kind != NS_SEG_IDLE)
    return ns_errorf(NS_ERR_INVAL, "segment filter: unknown kind %d", f->kind);
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT %s FROM segments WHERE 1 = 1", spans ? "id, node, start_ms, end_ms" : "id");
  int k = 0, ic = 0, in = 0, ij = 0, is = 0, ik = 0, ifr = 0, ito = 0;
  unsigned mask = spans ? 128u : 0u;
  size_t len = strlen(sql);
#define ADD(cond, var, bit)                                                    \
  do {                                                                         \
    var = ++k;                                                                 \
    mask |= (bit);                                                             \
    len += (size_t)snprintf(sql + len, sizeof sql - len, cond, k);             \
  } while (0)
  if (f->cluster) ADD(" AND cluster = ?%d", ic, 1u);
  if (f->node) ADD(" AND node = ?%d", in, 2u);
  if (f->job_id) ADD(" AND job_id = ?%d", ij, 4u);
  if (f->kind != -1) ADD(" AND kind = ?%d", ik, 8u);
  if (f->split) ADD(" AND split = ?%d", is, 16u);
  if (f->from_ms) ADD(" AND end_ms >= ?%d", ifr, 32u);
  if (f->to_ms) ADD(" AND start_ms <= ?%d", ito, 64u);
#undef ADD
  snprintf(sql + len, sizeof sql - len, " ORDER BY start_ms, node, id");
  /* One prepared statement per filter combination, kept for the store's life. */
  q_release(s);
  ns_status st = NS_OK;
  if (!s->seg_list[mask] && (st = ns_db_prepare(s->db, sql, &s->seg_list[mask]))) return st;
  ns_db_stmt *q = s->seg_list[mask];
  ns_db_reset(q);
  if ((ic && (st = ns_db_bind_text(q, ic, f->cluster))) || (in && (st = ns_db_bind_text(q, in, f->node))) ||
      (ij && (st = ns_db_bind_text(q, ij, f->job_id))) || (ik && (st = ns_db_bind_int64(q, ik, f->kind))) ||
      (is && (st = ns_db_bind_text(q, is, f->split))) || (ifr && (st = ns_db_bind_int64(q, ifr, f->from_ms))) ||
      (ito && (st = ns_db_bind_int64(q, ito, f->to_ms))))
    goto done;
  int64_t *v = NULL;
  ns_seg_span *w = NULL;
  size_t cnt = 0, cap = 0;
  bool row;
  while (!(st = ns_db_step(q, &row)) && row) {
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 256;
      void *g = spans ? realloc(w, nc * sizeof *w) : realloc(v, nc * sizeof *v);
      if (!g) {
        st = NS_ERR_NOMEM;
        break;
      }
      if (spans) w = g;
      else v = g;
      cap = nc;
    }
    if (!spans) {
      v[cnt++] = ns_db_col_int64(q, 0);
      continue;
    }
    const char *nd = ns_db_col_text(q, 1);
    w[cnt] = (ns_seg_span){ns_db_col_int64(q, 0), ns_db_col_int64(q, 2), ns_db_col_int64(q, 3), strdup(nd ? nd : "")};
    if (!w[cnt++].node) {
      st = NS_ERR_NOMEM;
      break;
    }
  }
  if (st) {
    free(v);
    ns_seg_spans_free(w, cnt);
    goto done;
  }
  if (spans) *sp = w;
  else *ids = v;
  *n = cnt;
done:
  ns_db_reset(q);
  return st;
}

ns_status ns_store_list_segments(ns_store *s, const ns_seg_filter *f, int64_t **ids, size_t *n) {
  *ids = NULL;
  *n = 0;
  return list_impl(s, f, false, ids, NULL, n);
}

ns_status ns_store_list_spans(ns_store *s, const ns_seg_filter *f, ns_seg_span **out, size_t *n) {
  *out = NULL;
  *n = 0;
  return list_impl(s, f, true, NULL, out, n);
}

/* ---- labels ---- */

void ns_labels_free(ns_label *l, size_t n) {
  if (!l) return;
  for (size_t i = 0; i < n; i++) {
    free(l[i].cluster), free(l[i].node), free(l[i].job_id);
    free(l[i].author), free(l[i].source), free(l[i].note);
  }
  free(l);
}

static ns_status put_label_impl(ns_store *s, const ns_label *l, int64_t *out_id) {
  if (out_id) *out_id = 0;
  if (!l || !l->cluster || !*l->cluster || !l->node || !*l->node)
    return ns_errorf(NS_ERR_INVAL, "label needs a cluster and a node name");
  if (l->end_ms < l->start_ms)
    return ns_errorf(NS_ERR_RANGE, "label on %s: end %lld before start %lld", l->node, (long long)l->end_ms,
                     (long long)l->start_ms);
  if (l->label != 0 && l->label != 1)
    return ns_errorf(NS_ERR_RANGE, "label on %s: value %d is neither 0 (normal) nor 1 (anomalous)", l->node, l->label);
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_LABEL_INS, &q);
  if (st || (st = ns_db_bind_text(q, 1, l->cluster)) || (st = ns_db_bind_text(q, 2, l->node)) ||
      (st = ns_db_bind_text(q, 3, l->job_id)) || (st = ns_db_bind_int64(q, 4, l->start_ms)) ||
      (st = ns_db_bind_int64(q, 5, l->end_ms)) || (st = ns_db_bind_int64(q, 6, l->label)) ||
      (st = ns_db_bind_text(q, 7, l->author)) || (st = ns_db_bind_text(q, 8, l->source)) ||
      (st = ns_db_bind_text(q, 9, l->note)) || (st = ns_db_bind_int64(q, 10, l->created_ms ? l->created_ms : now_ms())) ||
      (st = ns_db_step(q, &row)))
    return st;
  if (!row) return ns_errorf(NS_ERR_DB, "label insert returned no id");
  int64_t id = ns_db_col_int64(q, 0);
  if ((st = step_done(q))) return st;
  if (out_id) *out_id = id;
  return NS_OK;
}

ns_status ns_store_put_label(ns_store *s, const ns_label *l, int64_t *out_id) {
  ns_status st = put_label_impl(s, l, out_id);
  q_release(s);
  return st;
}

static ns_status delete_label_impl(ns_store *s, int64_t id) {
  ns_db_stmt *q;
  ns_status st = q_get(s, Q_LABEL_DEL, &q);
  if (st || (st = ns_db_bind_int64(q, 1, id)) || (st = step_done(q))) return st;
  if (ns_db_changes(q) == 0) return ns_errorf(NS_ERR_NOTFOUND, "label %lld not in the database", (long long)id);
  return NS_OK;
}

ns_status ns_store_delete_label(ns_store *s, int64_t id) {
  ns_status st = delete_label_impl(s, id);
  q_release(s);
  return st;
}

static ns_status list_labels_impl(ns_store *s, const char *cluster, const char *node, int64_t from_ms, int64_t to_ms,
                               ns_label **out, size_t *n) {
  *out = NULL;
  *n = 0;
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_LABEL_LIST, &q);
  if (st || (st = ns_db_bind_text(q, 1, cluster)) || (st = ns_db_bind_text(q, 2, node)) ||
      (st = ns_db_bind_int64(q, 3, from_ms)) || (st = ns_db_bind_int64(q, 4, to_ms)))
    return st;
  ns_label *v = NULL;
  size_t cnt = 0, cap = 0;
  while (!(st = ns_db_step(q, &row)) && row) {
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 16;
      ns_label *g = realloc(v, nc * sizeof *g);
      if (!g) {
        st = NS_ERR_NOMEM;
        break;
      }
      v = g, cap = nc;
    }
    ns_label *l = &v[cnt++];
    memset(l, 0, sizeof *l);
    l->id = ns_db_col_int64(q, 0);
    if ((st = dup_col(q, 1, &l->cluster)) || (st = dup_col(q, 2, &l->node)) || (st = dup_col(q, 3, &l->job_id)) ||
        (st = dup_col(q, 7, &l->author)) || (st = dup_col(q, 8, &l->source)) || (st = dup_col(q, 9, &l->note)))
      break;
    l->start_ms = ns_db_col_int64(q, 4);
    l->end_ms = ns_db_col_int64(q, 5);
    l->label = (int)ns_db_col_int64(q, 6);
    l->created_ms = ns_db_col_int64(q, 10);
  }
  if (st) {
    ns_labels_free(v, cnt);
    return st;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}

ns_status ns_store_list_labels(ns_store *s, const char *cluster, const char *node, int64_t from_ms, int64_t to_ms,
                               ns_label **out, size_t *n) {
  ns_status st = list_labels_impl(s, cluster, node, from_ms, to_ms, out, n);
  q_release(s);
  return st;
}

/* ---- artifacts ---- */

static ns_status put_artifact_impl(ns_store *s, const char *kind, const char *name, const void *data, size_t n,
                                int64_t *out_version) {
  if (out_version) *out_version = 0;
  if (!kind || !*kind || !name || !*name) return ns_errorf(NS_ERR_INVAL, "artifact needs a kind and a name");
  if (!data && n) return ns_errorf(NS_ERR_INVAL, "artifact %s/%s: no data", kind, name);
  ns_status st = NS_OK;
  /* Two writers may pick the same next version; the loser retries. */
  for (int attempt = 0; attempt < 8; attempt++) {
    if ((st = ns_db_begin(s->db))) return st;
    ns_db_stmt *q;
    bool row = false;
    int64_t ver = 0;
    /* PostgreSQL: serialise writers of one (kind, name) so they do not race
     * for the same next version (SQLite's write lock already does). */
    if (ns_db_kind_of(s->db) == NS_DB_POSTGRES) {
      ns_db_stmt *lk = NULL;
      bool r2;
      st = ns_db_prepare(s->db, "SELECT pg_advisory_xact_lock(hashtext(CAST(?1 AS TEXT) || '/' || CAST(?2 AS TEXT)))", &lk);
      if (!st) st = ns_db_bind_text(lk, 1, kind);
      if (!st) st = ns_db_bind_text(lk, 2, name);
      if (!st) st = ns_db_step(lk, &r2);
      ns_db_finalize(lk);
      if (st) {
        ns_db_rollback(s->db);
        return st;
      }
    }
    if (!(st = q_get(s, Q_ART_PUT, &q)) && !(st = ns_db_bind_text(q, 1, kind)) && !(st = ns_db_bind_text(q, 2, name)) &&
        !(st = ns_db_bind_int64(q, 3, now_ms())) && !(st = ns_db_bind_blob(q, 4, data, n)) &&
        !(st = ns_db_step(q, &row))) {
      if (!row) st = ns_errorf(NS_ERR_DB, "artifact insert returned no version");
      else {
        ver = ns_db_col_int64(q, 0);
        st = step_done(q);
      }
    }
    if (!st) st = ns_db_commit(s->db);
    else ns_db_rollback(s->db);
    if (!st) {
      if (out_version) *out_version = ver;
      return NS_OK;
    }
    if (st != NS_ERR_EXISTS) return st;
  }
  return st;
}

ns_status ns_store_put_artifact(ns_store *s, const char *kind, const char *name, const void *data, size_t n,
                                int64_t *out_version) {
  ns_status st = put_artifact_impl(s, kind, name, data, n, out_version);
  q_release(s);
  return st;
}

static ns_status get_artifact_impl(ns_store *s, const char *kind, const char *name, int64_t version, void **data,
                                size_t *n, int64_t *out_version) {
  *data = NULL;
  *n = 0;
  if (out_version) *out_version = 0;
  if (!kind || !name) return ns_errorf(NS_ERR_INVAL, "artifact needs a kind and a name");
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, version > 0 ? Q_ART_GET : Q_ART_LATEST, &q);
  if (st || (st = ns_db_bind_text(q, 1, kind)) || (st = ns_db_bind_text(q, 2, name)) ||
      (version > 0 && (st = ns_db_bind_int64(q, 3, version))) || (st = ns_db_step(q, &row)))
    return st;
  if (!row) {
    if (version > 0)
      return ns_errorf(NS_ERR_NOTFOUND, "artifact %s/%s version %lld not in the database", kind, name,
                       (long long)version);
    return ns_errorf(NS_ERR_NOTFOUND, "no artifact %s/%s in the database", kind, name);
  }
  size_t bn = 0;
  const void *b = ns_db_col_blob(q, 1, &bn);
  void *c = malloc(bn ? bn : 1);
  if (!c) return NS_ERR_NOMEM;
  if (bn) memcpy(c, b, bn);
  *data = c;
  *n = bn;
  if (out_version) *out_version = ns_db_col_int64(q, 0);
  return NS_OK;
}

ns_status ns_store_get_artifact(ns_store *s, const char *kind, const char *name, int64_t version, void **data,
                                size_t *n, int64_t *out_version) {
  ns_status st = get_artifact_impl(s, kind, name, version, data, n, out_version);
  q_release(s);
  return st;
}

/* ---- raw telemetry ---- */

void ns_strings_free(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

typedef struct {
  int64_t ts;
  size_t idx;
} ts_idx;

static int cmp_ts_idx(const void *a, const void *b) {
  const ts_idx *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static ns_status put_chunk(ns_store *s, const char *cluster, const ns_mts *m, const char *source, int64_t set_id,
                           int vbytes, const size_t *rows, size_t nr, const uint8_t *counters) {
  size_t M = m->M;
  int64_t *ts = malloc(nr * sizeof *ts);
  uint8_t *vals = malloc(nr * M * (size_t)vbytes);
  uint8_t *lab = m->labels ? malloc(nr) : NULL;
  ns_status st = NS_OK;
  if (!ts || !vals || (m->labels && !lab)) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < nr; i++) {
    size_t r = rows[i];
    copy_le(&ts[i], &m->ts_ms[r], 1, 8);
    const double *x = m->x + r * M;
    if (vbytes == 8) {
      copy_le(vals + i * M * 8, x, M, 8);
    } else {
      float *f = (float *)(void *)(vals + i * M * 4);
      for (size_t k = 0; k < M; k++) f[k] = (float)x[k];
      copy_le(f, f, M, 4);
    }
    if (lab) lab[i] = m->labels[r];
  }
  ns_db_stmt *q;
  if (!(st = q_get(s, Q_RAW_PUT, &q)) && !(st = ns_db_bind_text(q, 1, cluster)) &&
      !(st = ns_db_bind_text(q, 2, m->node)) && !(st = ns_db_bind_int64(q, 3, m->ts_ms[rows[0]])) &&
      !(st = ns_db_bind_int64(q, 4, m->ts_ms[rows[nr - 1]])) && !(st = ns_db_bind_int64(q, 5, (int64_t)nr)) &&
      !(st = ns_db_bind_int64(q, 6, set_id)) && !(st = ns_db_bind_int64(q, 7, vbytes)) &&
      !(st = ns_db_bind_blob(q, 8, ts, nr * 8)) && !(st = ns_db_bind_blob(q, 9, vals, nr * M * (size_t)vbytes)) &&
      !(st = ns_db_bind_blob(q, 10, counters, M)) &&
      !(st = lab ? ns_db_bind_blob(q, 11, lab, nr) : ns_db_bind_null(q, 11)) && !(st = ns_db_bind_text(q, 12, source)) &&
      !(st = ns_db_bind_int64(q, 13, now_ms())))
    st = step_done(q);
done:
  free(ts), free(vals), free(lab);
  return st;
}

static ns_status put_raw_impl(ns_store *s, const char *cluster, const ns_mts *m, const char *source) {
  if (!cluster || !*cluster) return ns_errorf(NS_ERR_INVAL, "raw telemetry needs a cluster name");
  if (!m || !m->node || !*m->node) return ns_errorf(NS_ERR_INVAL, "raw telemetry needs a node name");
  if (m->M == 0 || !m->metrics) return ns_errorf(NS_ERR_INVAL, "raw telemetry of %s has no metrics", m->node);
  if (m->T == 0) return ns_errorf(NS_ERR_EMPTY, "raw telemetry of %s has no rows", m->node);
  char what[160];
  snprintf(what, sizeof what, "raw telemetry of %s", m->node);
  ns_status st = check_names(m->metrics, m->M, what);
  if (st) return st;
  for (size_t a = 0; a < m->M; a++)
    for (size_t b = 0; b < a; b++)
      if (!strcmp(m->metrics[a], m->metrics[b]))
        return ns_errorf(NS_ERR_INVAL, "%s: metric name '%s' appears twice", what, m->metrics[a]);
  /* Time order (stable for equal stamps); imports are usually sorted already. */
  ts_idx *ord = malloc(m->T * sizeof *ord);
  size_t *rows = malloc(m->T * sizeof *rows);
  uint8_t *counters = calloc(m->M, 1);
  if (!ord || !rows || !counters) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  bool sorted = true;
  for (size_t r = 0; r < m->T; r++) {
    ord[r] = (ts_idx){m->ts_ms[r], r};
    if (r && m->ts_ms[r] < m->ts_ms[r - 1]) sorted = false;
  }
  if (!sorted) qsort(ord, m->T, sizeof *ord, cmp_ts_idx);
  for (size_t r = 0; r < m->T; r++) rows[r] = ord[r].idx;
  /* Cumulative counters need every bit for later differencing: keep them as float64. */
  int vbytes = 4;
  for (size_t k = 0; k < m->M; k++)
    if (m->is_counter && m->is_counter[k]) counters[k] = 1, vbytes = 8;
  int64_t set_id;
  if ((st = ns_db_begin(s->db))) goto done;
  if (!(st = metric_set_id(s, m->metrics, m->M, &set_id)) &&
      !(st = note_node(s, cluster, m->node, m->ts_ms[rows[0]]))) {
    for (size_t r0 = 0; r0 < m->T && !st; r0 += RAW_CHUNK_ROWS) {
      size_t nr = m->T - r0 < RAW_CHUNK_ROWS ? m->T - r0 : RAW_CHUNK_ROWS;
      st = put_chunk(s, cluster, m, source, set_id, vbytes, rows + r0, nr, counters);
    }
  }
  if (!st) st = ns_db_commit(s->db);
  else ns_db_rollback(s->db);
done:
  free(ord), free(rows), free(counters);
  return st;
}

ns_status ns_store_put_raw(ns_store *s, const char *cluster, const ns_mts *m, const char *source) {
  ns_status st = put_raw_impl(s, cluster, m, source);
  q_release(s);
  return st;
}

static ns_status list_raw_nodes_impl(ns_store *s, const char *cluster, char ***nodes, size_t *n) {
  *nodes = NULL;
  *n = 0;
  if (!cluster) return ns_errorf(NS_ERR_INVAL, "list_raw_nodes needs a cluster name");
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_RAW_NODES, &q);
  if (st || (st = ns_db_bind_text(q, 1, cluster))) return st;
  char **v = NULL;
  size_t cnt = 0, cap = 0;
  while (!(st = ns_db_step(q, &row)) && row) {
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 64;
      char **g = realloc(v, nc * sizeof *g);
      if (!g) {
        st = NS_ERR_NOMEM;
        break;
      }
      v = g, cap = nc;
    }
    if ((st = dup_col(q, 0, &v[cnt]))) break;
    cnt++;
  }
  if (st) {
    ns_strings_free(v, cnt);
    return st;
  }
  *nodes = v;
  *n = cnt;
  return NS_OK;
}

ns_status ns_store_list_raw_nodes(ns_store *s, const char *cluster, char ***nodes, size_t *n) {
  ns_status st = list_raw_nodes_impl(s, cluster, nodes, n);
  q_release(s);
  return st;
}

/* One stored chunk, decoded. */
typedef struct {
  int64_t id;
  size_t nr, M;
  int vbytes;
  int64_t *ts;
  uint8_t *vals, *counters, *labels;
  size_t *map; /* chunk column -> union column */
  char **names;
} raw_chunk;

typedef struct {
  int64_t ts, chunk_id;
  uint32_t chunk, row;
} row_ref;

/* Time, then storage order: of two rows with one stamp the later-stored wins. */
static int cmp_row_ref(const void *a, const void *b) {
  const row_ref *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  if (x->chunk_id != y->chunk_id) return x->chunk_id < y->chunk_id ? -1 : 1;
  return x->row < y->row ? -1 : x->row > y->row;
}

static void chunks_free(raw_chunk *c, size_t n) {
  if (!c) return;
  for (size_t i = 0; i < n; i++) {
    free(c[i].ts), free(c[i].vals), free(c[i].counters), free(c[i].labels), free(c[i].map);
    ns_strings_free(c[i].names, c[i].M);
  }
  free(c);
}

static void *blob_dup(const void *p, size_t n) {
  void *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, p, n);
  return d;
}

static ns_status read_chunk(ns_db_stmt *q, raw_chunk *c) {
  memset(c, 0, sizeof *c);
  int64_t id = ns_db_col_int64(q, 0), nr = ns_db_col_int64(q, 1), vb = ns_db_col_int64(q, 2),
          M = ns_db_col_int64(q, 7);
  size_t tn = 0, vn = 0, cn = 0, ln = 0;
  const void *ts = ns_db_col_blob(q, 3, &tn);
  const void *vals = ns_db_col_blob(q, 4, &vn);
  const void *cnt = ns_db_col_blob(q, 5, &cn);
  const void *lab = ns_db_col_blob(q, 6, &ln);
  if (nr <= 0 || M <= 0 || (vb != 4 && vb != 8) || tn != (size_t)nr * 8 || vn != (size_t)(nr * M * vb) ||
      (cnt && cn != (size_t)M) || (lab && ln != (size_t)nr))
    return ns_errorf(NS_ERR_CORRUPT, "raw chunk %lld: stored sizes do not match %lld rows x %lld metrics",
                     (long long)id, (long long)nr, (long long)M);
  c->id = id;
  c->nr = (size_t)nr;
  c->M = (size_t)M;
  c->vbytes = (int)vb;
  c->ts = blob_dup(ts, tn);
  c->vals = blob_dup(vals, vn);
  c->counters = cnt ? blob_dup(cnt, cn) : calloc((size_t)M, 1);
  c->labels = lab ? blob_dup(lab, ln) : NULL;
  c->map = calloc((size_t)M, sizeof *c->map);
  if (!c->ts || !c->vals || !c->counters || (lab && !c->labels) || !c->map) return NS_ERR_NOMEM;
  copy_le(c->ts, c->ts, c->nr, 8);
  return split_names(ns_db_col_text(q, 8), c->M, &c->names);
}

static double chunk_value(const raw_chunk *c, size_t r, size_t k) {
  if (c->vbytes == 8) {
    double d;
    copy_le(&d, c->vals + (r * c->M + k) * 8, 1, 8);
    return d;
  }
  float f;
  copy_le(&f, c->vals + (r * c->M + k) * 4, 1, 4);
  return (double)f;
}

static ns_status get_raw_impl(ns_store *s, const char *cluster, const char *node, int64_t from_ms, int64_t to_ms,
                           ns_mts **out) {
  *out = NULL;
  if (!cluster || !node) return ns_errorf(NS_ERR_INVAL, "get_raw needs a cluster and a node name");
  ns_db_stmt *q;
  bool row;
  ns_status st = q_get(s, Q_RAW_GET, &q);
  if (st || (st = ns_db_bind_text(q, 1, cluster)) || (st = ns_db_bind_text(q, 2, node)) ||
      (st = ns_db_bind_int64(q, 3, from_ms)) || (st = ns_db_bind_int64(q, 4, to_ms)))
    return st;
  raw_chunk *ch = NULL;
  size_t nch = 0, cap = 0;
  char **uni = NULL;
  size_t nuni = 0, ucap = 0;
  row_ref *refs = NULL;
  double *rowbuf = NULL;
  ns_mts *m = NULL;
  while (!(st = ns_db_step(q, &row)) && row) {
    if (nch == cap) {
      size_t nc = cap ? cap * 2 : 16;
      raw_chunk *g = realloc(ch, nc * sizeof *g);
      if (!g) {
        st = NS_ERR_NOMEM;
        break;
      }
      ch = g, cap = nc;
    }
    st = read_chunk(q, &ch[nch++]);
    if (st) break;
  }
  if (st) goto done;
  if (nch == 0) {
    st = ns_errorf(NS_ERR_NOTFOUND, "no raw telemetry for %s/%s in [%lld, %lld]", cluster, node,
                   (long long)from_ms, (long long)to_ms);
    goto done;
  }
  /* Union of metric names in order of first appearance. */
  size_t total = 0;
  bool any_labels = false;
  for (size_t c = 0; c < nch; c++) {
    total += ch[c].nr;
    any_labels |= ch[c].labels != NULL;
    for (size_t k = 0; k < ch[c].M; k++) {
      size_t u = 0;
      while (u < nuni && strcmp(uni[u], ch[c].names[k])) u++;
      if (u == nuni) {
        if (nuni == ucap) {
          size_t nc = ucap ? ucap * 2 : 64;
          char **g = realloc(uni, nc * sizeof *g);
          if (!g) {
            st = NS_ERR_NOMEM;
            goto done;
          }
          uni = g, ucap = nc;
        }
        uni[nuni++] = ch[c].names[k];
      }
      ch[c].map[k] = u;
    }
  }
  refs = malloc((total ? total : 1) * sizeof *refs);
  if (!refs) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  size_t nref = 0;
  bool sorted = true;
  for (size_t c = 0; c < nch; c++)
    for (size_t r = 0; r < ch[c].nr; r++) {
      int64_t t = ch[c].ts[r];
      if ((from_ms && t < from_ms) || (to_ms && t > to_ms)) continue;
      row_ref rr = {t, ch[c].id, (uint32_t)c, (uint32_t)r};
      if (nref && cmp_row_ref(&refs[nref - 1], &rr) > 0) sorted = false;
      refs[nref++] = rr;
    }
  if (!sorted) qsort(refs, nref, sizeof *refs, cmp_row_ref);
  if (nref == 0) {
    st = ns_errorf(NS_ERR_NOTFOUND, "no raw telemetry for %s/%s in [%lld, %lld]", cluster, node,
                   (long long)from_ms, (long long)to_ms);
    goto done;
  }
  if ((st = ns_mts_create(node, nuni, uni, &m))) goto done;
  for (size_t c = 0; c < nch; c++)
    for (size_t k = 0; k < ch[c].M; k++)
      if (ch[c].counters[k]) m->is_counter[ch[c].map[k]] = 1;
  if (any_labels && (st = ns_mts_enable_labels(m))) goto done;
  rowbuf = malloc(nuni * sizeof *rowbuf);
  if (!rowbuf) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  /* Equal stamps merge into one row: later chunks (by time, then insertion)
   * overwrite earlier values, except where they are missing (NaN). */
  for (size_t i = 0; i < nref;) {
    int64_t t = refs[i].ts;
    uint8_t lab = 0;
    for (size_t u = 0; u < nuni; u++) rowbuf[u] = NAN;
    for (; i < nref && refs[i].ts == t; i++) {
      const raw_chunk *c = &ch[refs[i].chunk];
      for (size_t k = 0; k < c->M; k++) {
        double v = chunk_value(c, refs[i].row, k);
        if (!isnan(v)) rowbuf[c->map[k]] = v;
      }
      if (c->labels && c->labels[refs[i].row]) lab = c->labels[refs[i].row];
    }
    if ((st = ns_mts_append(m, t, rowbuf))) goto done;
    if (m->labels) m->labels[m->T - 1] = lab;
  }
  *out = m;
  m = NULL;
done:
  ns_mts_free(m);
  free(rowbuf);
  free(refs);
  free(uni);
  chunks_free(ch, nch);
  return st;
}

ns_status ns_store_get_raw(ns_store *s, const char *cluster, const char *node, int64_t from_ms, int64_t to_ms,
                           ns_mts **out) {
  ns_status st = get_raw_impl(s, cluster, node, from_ms, to_ms, out);
  q_release(s);
  return st;
}
