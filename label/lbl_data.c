#include "lbl_data.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "lbl_recompute.h"
#include "ns_db.h"

struct lbl_data {
  ns_store *st;
  char sqlite_path[4096]; /* "" for PostgreSQL */
  dev_t dev;
  ino_t ino;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_text(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

ns_status lbl_data_open(const char *uri, lbl_data **out) {
  *out = NULL;
  lbl_data *d = calloc(1, sizeof *d);
  if (!d) return NS_ERR_NOMEM;
  if (strncmp(uri, "sqlite:", 7) == 0 && strcmp(uri + 7, ":memory:") != 0) {
    /* Refuse to create an empty database by accident: the tool reviews an
     * existing one. */
    struct stat sb;
    if (stat(uri + 7, &sb) != 0) {
      free(d);
      return ns_errorf(NS_ERR_NOTFOUND, "%s does not exist", uri + 7);
    }
    copy_text(d->sqlite_path, sizeof d->sqlite_path, uri + 7);
    d->dev = sb.st_dev;
    d->ino = sb.st_ino;
  }
  ns_status st = ns_store_open(uri, &d->st);
  if (st) {
    free(d);
    return st;
  }
  *out = d;
  return NS_OK;
}

void lbl_data_close(lbl_data *d) {
  if (!d) return;
  ns_store_close(d->st);
  free(d);
}

ns_status lbl_data_alive(lbl_data *d) {
  if (d->sqlite_path[0]) {
    /* A deleted or replaced file would silently swallow new labels. */
    struct stat sb;
    if (stat(d->sqlite_path, &sb) != 0) return ns_errorf(NS_ERR_DB, "database file %s has disappeared", d->sqlite_path);
    if (sb.st_ino != d->ino || sb.st_dev != d->dev)
      return ns_errorf(NS_ERR_DB, "database file %s was replaced; restart nsentry-label", d->sqlite_path);
    return NS_OK;
  }
  ns_db_stmt *q = NULL;
  ns_status st = ns_db_prepare(ns_store_db(d->st), "SELECT 1", &q);
  bool row;
  if (!st) st = ns_db_step(q, &row);
  ns_db_finalize(q);
  return st ? ns_errorf(NS_ERR_DB, "database unreachable: %s", ns_err_detail()) : NS_OK;
}

/* Prepare after checking the database is still there. */
static ns_status prep(lbl_data *d, const char *sql, ns_db_stmt **q) {
  ns_status st = lbl_data_alive(d);
  if (st) return st;
  return ns_db_prepare(ns_store_db(d->st), sql, q);
}

static ns_status grow(void **v, size_t n, size_t *cap, size_t elem) {
  if (n < *cap) return NS_OK;
  size_t nc = *cap ? *cap * 2 : 64;
  void *p = realloc(*v, nc * elem);
  if (!p) return NS_ERR_NOMEM;
  memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
  *v = p;
  *cap = nc;
  return NS_OK;
}

static double col_num(ns_db_stmt *q, int c) { return ns_db_col_is_null(q, c) ? NAN : ns_db_col_double(q, c); }

ns_status lbl_list_jobs(lbl_data *d, lbl_job **out, size_t *n) {
  *out = NULL;
  *n = 0;
  static const char *sql =
      "SELECT j.cluster, j.job_id, j.user_name, j.partition_name, j.nnodes, j.start_ms, j.end_ms,"
      " (SELECT COUNT(*) FROM segments s WHERE s.cluster = j.cluster AND s.job_id = j.job_id),"
      " (SELECT MAX(v.anomalous) FROM verdicts v WHERE v.cluster = j.cluster AND v.job_id = j.job_id),"
      " (SELECT MAX(v.score_max) FROM verdicts v WHERE v.cluster = j.cluster AND v.job_id = j.job_id),"
      " (SELECT COUNT(*) FROM labels l JOIN segments s ON l.cluster = s.cluster AND l.node = s.node"
      "   AND l.start_ms <= s.end_ms AND l.end_ms >= s.start_ms"
      "   WHERE s.cluster = j.cluster AND s.job_id = j.job_id)"
      " FROM jobs j ORDER BY j.start_ms, j.job_id";
  ns_db_stmt *q = NULL;
  lbl_job *v = NULL;
  size_t cnt = 0, cap = 0;
  bool row;
  ns_status st = prep(d, sql, &q);
  while (!st && !(st = ns_db_step(q, &row)) && row) {
    if ((st = grow((void **)&v, cnt, &cap, sizeof *v))) break;
    lbl_job *j = &v[cnt++];
    copy_text(j->cluster, sizeof j->cluster, ns_db_col_text(q, 0));
    copy_text(j->job_id, sizeof j->job_id, ns_db_col_text(q, 1));
    copy_text(j->user, sizeof j->user, ns_db_col_text(q, 2));
    copy_text(j->partition, sizeof j->partition, ns_db_col_text(q, 3));
    j->nnodes = (int)ns_db_col_int64(q, 4);
    j->start_ms = ns_db_col_int64(q, 5);
    j->end_ms = ns_db_col_int64(q, 6);
    j->nsegments = (int)ns_db_col_int64(q, 7);
    j->verdict = ns_db_col_is_null(q, 8) ? -1 : (int)ns_db_col_int64(q, 8);
    j->score = col_num(q, 9);
    j->nlabels = (int)ns_db_col_int64(q, 10);
  }
  ns_db_finalize(q);
  if (st) {
    free(v);
    return st;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}

ns_status lbl_list_nodes(lbl_data *d, const char *cluster, const char *job_id, lbl_node **out, size_t *n) {
  *out = NULL;
  *n = 0;
  static const char *sql =
      "SELECT s.id, s.node, s.start_ms, s.end_ms, s.t, v.anomalous, v.score_max, c.label, v.model_version,"
      " (SELECT COUNT(*) FROM labels l WHERE l.cluster = s.cluster AND l.node = s.node"
      "   AND l.start_ms <= s.end_ms AND l.end_ms >= s.start_ms)"
      " FROM segments s LEFT JOIN verdicts v ON v.cluster = s.cluster AND v.job_id = s.job_id AND v.node = s.node"
      " LEFT JOIN clusters c ON c.id = v.pattern_id"
      " WHERE s.cluster = ?1 AND s.job_id = ?2 ORDER BY s.node, s.start_ms";
  ns_db_stmt *q = NULL;
  lbl_node *v = NULL;
  size_t cnt = 0, cap = 0;
  bool row;
  ns_status st = prep(d, sql, &q);
  if (!st) st = ns_db_bind_text(q, 1, cluster);
  if (!st) st = ns_db_bind_text(q, 2, job_id);
  while (!st && !(st = ns_db_step(q, &row)) && row) {
    if ((st = grow((void **)&v, cnt, &cap, sizeof *v))) break;
    lbl_node *nd = &v[cnt++];
    nd->seg_id = ns_db_col_int64(q, 0);
    copy_text(nd->node, sizeof nd->node, ns_db_col_text(q, 1));
    nd->start_ms = ns_db_col_int64(q, 2);
    nd->end_ms = ns_db_col_int64(q, 3);
    nd->T = (size_t)ns_db_col_int64(q, 4);
    nd->verdict = ns_db_col_is_null(q, 5) ? -1 : (int)ns_db_col_int64(q, 5);
    nd->score = col_num(q, 6);
    copy_text(nd->cluster, sizeof nd->cluster, ns_db_col_text(q, 7));
    copy_text(nd->model, sizeof nd->model, ns_db_col_text(q, 8));
    nd->nlabels = (int)ns_db_col_int64(q, 9);
  }
  ns_db_finalize(q);
  if (st) {
    free(v);
    return st;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}

void lbl_segview_clear(lbl_segview *v) {
  if (!v) return;
  ns_segment_free(v->seg);
  free(v->score);
  free(v->iv);
  ns_labels_free(v->labels, v->nlabels);
  memset(v, 0, sizeof *v);
}

/* Intervals from a verdict's details JSON (ns_node_verdict_json):
 * {"threshold": x, "intervals": [{"start_ms", "end_ms", "score_max",
 *  "top_metrics": [{"metric", "direction": "above"|"below"}]}]} */
static ns_status parse_details(const char *json, lbl_segview *v) {
  cJSON *root = json ? cJSON_Parse(json) : NULL;
  if (!root) return NS_OK;  /* no details: nothing to highlight */
  ns_status st = NS_OK;
  cJSON *thr = cJSON_GetObjectItemCaseSensitive(root, "threshold");
  if (cJSON_IsNumber(thr)) v->threshold = thr->valuedouble;
  cJSON *ivs = cJSON_GetObjectItemCaseSensitive(root, "intervals");
  int n = cJSON_IsArray(ivs) ? cJSON_GetArraySize(ivs) : 0;
  if (n > 0 && !(v->iv = calloc((size_t)n, sizeof *v->iv))) st = NS_ERR_NOMEM;
  for (int i = 0; !st && i < n; i++) {
    cJSON *it = cJSON_GetArrayItem(ivs, i);
    cJSON *a = cJSON_GetObjectItemCaseSensitive(it, "start_ms"), *b = cJSON_GetObjectItemCaseSensitive(it, "end_ms"),
          *s = cJSON_GetObjectItemCaseSensitive(it, "score_max"),
          *top = cJSON_GetObjectItemCaseSensitive(it, "top_metrics");
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) continue;
    lbl_interval *iv = &v->iv[v->niv++];
    iv->start_ms = (int64_t)a->valuedouble;
    iv->end_ms = (int64_t)b->valuedouble;
    iv->score = cJSON_IsNumber(s) ? s->valuedouble : NAN;
    size_t off = 0;
    for (int k = 0; cJSON_IsArray(top) && k < cJSON_GetArraySize(top); k++) {
      cJSON *t = cJSON_GetArrayItem(top, k), *m = cJSON_GetObjectItemCaseSensitive(t, "metric"),
            *dir = cJSON_GetObjectItemCaseSensitive(t, "direction");
      if (!cJSON_IsString(m) || off >= sizeof iv->top - 1) continue;
      off += (size_t)snprintf(iv->top + off, sizeof iv->top - off, "%s%s%s", k ? ", " : "", m->valuestring,
                              cJSON_IsString(dir) ? (strcmp(dir->valuestring, "below") == 0 ? "-" : "+") : "");
    }
  }
  cJSON_Delete(root);
  return st;
}

ns_status lbl_reload_labels(lbl_data *d, lbl_segview *v) {
  ns_label *l = NULL;
  size_t n = 0;
  ns_status st = lbl_data_alive(d);
  if (!st) st = ns_store_list_labels(d->st, v->seg->cluster, v->seg->node, v->seg->start_ms, v->seg->end_ms, &l, &n);
  if (st) return st;
  ns_labels_free(v->labels, v->nlabels);
  v->labels = l;
  v->nlabels = n;
  return NS_OK;
}

ns_status lbl_load_segview(lbl_data *d, int64_t seg_id, lbl_segview *out) {
  memset(out, 0, sizeof *out);
  out->verdict = -1;
  out->threshold = NAN;
  out->score_max = NAN;
  ns_status st = lbl_data_alive(d);
  if (!st) st = ns_store_get_segment(d->st, seg_id, &out->seg);
  if (st) return st;
  if (out->seg->T == 0) {
    lbl_segview_clear(out);
    return ns_errorf(NS_ERR_EMPTY, "segment %lld has no points", (long long)seg_id);
  }
  ns_db_stmt *q = NULL;
  bool row = false;
  if (out->seg->job_id) {
    st = prep(d,
              "SELECT v.anomalous, v.score_max, c.label, v.model_version, v.details, v.scores, v.threshold"
              " FROM verdicts v LEFT JOIN clusters c ON c.id = v.pattern_id"
              " WHERE v.cluster = ?1 AND v.job_id = ?2 AND v.node = ?3",
              &q);
    if (!st) st = ns_db_bind_text(q, 1, out->seg->cluster);
    if (!st) st = ns_db_bind_text(q, 2, out->seg->job_id);
    if (!st) st = ns_db_bind_text(q, 3, out->seg->node);
    if (!st) st = ns_db_step(q, &row);
    if (!st && row) {
      out->verdict = (int)ns_db_col_int64(q, 0);
      out->score_max = col_num(q, 1);
      copy_text(out->cluster, sizeof out->cluster, ns_db_col_text(q, 2));
      copy_text(out->model, sizeof out->model, ns_db_col_text(q, 3));
      st = parse_details(ns_db_col_text(q, 4), out);
      size_t nb = 0;
      const void *blob = ns_db_col_blob(q, 5, &nb);
      if (!st && blob && nb == out->seg->T * sizeof(float)) {
        if (!(out->score = malloc(nb))) st = NS_ERR_NOMEM;
        else memcpy(out->score, blob, nb);
      }
      if (!ns_db_col_is_null(q, 6)) out->threshold = ns_db_col_double(q, 6);
    }
    ns_db_finalize(q);
  }
  if (!st) st = lbl_reload_labels(d, out);
  if (st) lbl_segview_clear(out);
  return st;
}

ns_status lbl_put_label(lbl_data *d, const ns_segment *seg, int64_t start_ms, int64_t end_ms, int label,
                        const char *author, const char *note) {
  ns_status st = lbl_data_alive(d);
  if (st) return st;
  ns_label l = {0};
  l.cluster = seg->cluster;
  l.node = seg->node;
  l.job_id = seg->job_id;
  l.start_ms = start_ms;
  l.end_ms = end_ms;
  l.label = label;
  l.author = (char *)author;
  l.source = "expert";
  l.note = (char *)note;
  l.created_ms = now_ms();
  int64_t id;
  return ns_store_put_label(d->st, &l, &id);
}

ns_status lbl_delete_label(lbl_data *d, int64_t label_id) {
  ns_status st = lbl_data_alive(d);
  return st ? st : ns_store_delete_label(d->st, label_id);
}

ns_status lbl_next_unlabelled(lbl_data *d, int64_t *seg_id, int64_t *start_ms, bool *found) {
  *seg_id = 0;
  *start_ms = 0;
  *found = false;
  ns_db_stmt *q = NULL;
  bool row;
  ns_status st = prep(d,
                      "SELECT v.segment_id, v.cluster, v.node, v.details FROM verdicts v"
                      " WHERE v.anomalous = 1 AND v.segment_id IS NOT NULL ORDER BY v.score_max DESC LIMIT 1000",
                      &q);
  double best = -INFINITY;
  while (!st && !(st = ns_db_step(q, &row)) && row) {
    lbl_segview tmp = {0};
    if ((st = parse_details(ns_db_col_text(q, 3), &tmp))) break;
    for (size_t i = 0; !st && i < tmp.niv; i++) {
      if (!(tmp.iv[i].score > best)) continue;
      ns_label *l = NULL;
      size_t n = 0;
      st = ns_store_list_labels(d->st, ns_db_col_text(q, 1), ns_db_col_text(q, 2), tmp.iv[i].start_ms,
                                tmp.iv[i].end_ms, &l, &n);
      ns_labels_free(l, n);
      if (!st && n == 0) {
        best = tmp.iv[i].score;
        *seg_id = ns_db_col_int64(q, 0);
        *start_ms = tmp.iv[i].start_ms;
        *found = true;
      }
    }
    free(tmp.iv);
  }
  ns_db_finalize(q);
  return st;
}

/* Clusters of the active library, or of the newest one when none is active. */
static const char *library_filter =
    "(SELECT id FROM model_libraries ORDER BY active DESC, created_ms DESC, id DESC LIMIT 1)";

ns_status lbl_list_clusters(lbl_data *d, lbl_cluster **out, size_t *n) {
  *out = NULL;
  *n = 0;
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT c.id, c.kind, c.label, c.size, c.radius, l.version,"
           " (SELECT MAX(m.needs_retrain) FROM models m WHERE m.cluster_id = c.id)"
           " FROM clusters c JOIN model_libraries l ON l.id = c.library_id"
           " WHERE c.library_id = %s ORDER BY c.kind, c.id",
           library_filter);
  ns_db_stmt *q = NULL;
  lbl_cluster *v = NULL;
  size_t cnt = 0, cap = 0;
  bool row;
  ns_status st = prep(d, sql, &q);
  while (!st && !(st = ns_db_step(q, &row)) && row) {
    if ((st = grow((void **)&v, cnt, &cap, sizeof *v))) break;
    lbl_cluster *c = &v[cnt++];
    c->id = ns_db_col_int64(q, 0);
    copy_text(c->kind, sizeof c->kind, ns_db_col_int64(q, 1) ? "idle" : "job");
    copy_text(c->label, sizeof c->label, ns_db_col_text(q, 2));
    c->size = (int)ns_db_col_int64(q, 3);
    c->radius = col_num(q, 4);
    copy_text(c->model, sizeof c->model, ns_db_col_text(q, 5));
    c->needs_retrain = !ns_db_col_is_null(q, 6) && ns_db_col_int64(q, 6) != 0;
  }
  ns_db_finalize(q);
  if (st) {
    free(v);
    return st;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}

ns_status lbl_list_members(lbl_data *d, int64_t cluster_id, lbl_member **out, size_t *n) {
  *out = NULL;
  *n = 0;
  ns_db_stmt *q = NULL;
  lbl_member *v = NULL;
  size_t cnt = 0, cap = 0;
  bool row;
  ns_status st = prep(d,
                      "SELECT m.segment_id, s.node, s.job_id, m.distance, m.representative FROM cluster_members m"
                      " JOIN segments s ON s.id = m.segment_id WHERE m.cluster_id = ?1"
                      " ORDER BY m.distance IS NULL, m.distance, m.segment_id",
                      &q);
  if (!st) st = ns_db_bind_int64(q, 1, cluster_id);
  while (!st && !(st = ns_db_step(q, &row)) && row) {
    if ((st = grow((void **)&v, cnt, &cap, sizeof *v))) break;
    lbl_member *m = &v[cnt++];
    m->seg_id = ns_db_col_int64(q, 0);
    copy_text(m->node, sizeof m->node, ns_db_col_text(q, 1));
    copy_text(m->job_id, sizeof m->job_id, ns_db_col_text(q, 2));
    m->distance = col_num(q, 3);
    m->representative = ns_db_col_int64(q, 4) != 0;
  }
  ns_db_finalize(q);
  if (st) {
    free(v);
    return st;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}

static ns_status exec_ids(ns_db *db, const char *sql, int64_t a, int64_t b) {
  ns_db_stmt *q = NULL;
  bool row;
  ns_status st = ns_db_prepare(db, sql, &q);
  if (!st) st = ns_db_bind_int64(q, 1, a);
  if (!st && b) st = ns_db_bind_int64(q, 2, b);
  if (!st) st = ns_db_step(q, &row);
  ns_db_finalize(q);
  return st;
}

ns_status lbl_move_member(lbl_data *d, int64_t seg_id, int64_t from_id, int64_t to_id, int64_t *new_id) {
  *new_id = 0;
  if (to_id == from_id) return ns_errorf(NS_ERR_INVAL, "segment is already in cluster %lld", (long long)to_id);
  ns_status st = lbl_data_alive(d);
  if (st) return st;
  ns_db *db = ns_store_db(d->st);
  ns_db_stmt *q = NULL;
  bool row = false;
  int64_t library = 0, kind = 0;
  if ((st = ns_store_begin(d->st))) return st;
  /* The target must exist in the same library and be of the same kind. */
  st = ns_db_prepare(db, "SELECT library_id, kind FROM clusters WHERE id = ?1", &q);
  if (!st) st = ns_db_bind_int64(q, 1, from_id);
  if (!st) st = ns_db_step(q, &row);
  if (!st && !row) st = ns_errorf(NS_ERR_NOTFOUND, "cluster %lld not found", (long long)from_id);
  if (!st) library = ns_db_col_int64(q, 0), kind = ns_db_col_int64(q, 1);
  ns_db_finalize(q);
  q = NULL;
  if (!st && to_id > 0) {
    st = ns_db_prepare(db, "SELECT library_id, kind FROM clusters WHERE id = ?1", &q);
    if (!st) st = ns_db_bind_int64(q, 1, to_id);
    if (!st) st = ns_db_step(q, &row);
    if (!st && !row) st = ns_errorf(NS_ERR_NOTFOUND, "cluster %lld not found", (long long)to_id);
    if (!st && (ns_db_col_int64(q, 0) != library || ns_db_col_int64(q, 1) != kind))
      st = ns_errorf(NS_ERR_INVAL, "cluster %lld belongs to another library or kind", (long long)to_id);
    ns_db_finalize(q);
    q = NULL;
  }
  if (!st && to_id <= 0) {
    st = ns_db_prepare(db,
                       "INSERT INTO clusters (library_id, kind, label, size) VALUES (?1, ?2, 'manual', 0) RETURNING id",
                       &q);
    if (!st) st = ns_db_bind_int64(q, 1, library);
    if (!st) st = ns_db_bind_int64(q, 2, kind);
    if (!st) st = ns_db_step(q, &row);
    if (!st && row) to_id = ns_db_col_int64(q, 0);
    ns_db_finalize(q);
    q = NULL;
    if (!st) {
      char lab[32];
      snprintf(lab, sizeof lab, "manual-%lld", (long long)to_id);
      st = ns_db_prepare(db, "UPDATE clusters SET label = ?1 WHERE id = ?2", &q);
      if (!st) st = ns_db_bind_text(q, 1, lab);
      if (!st) st = ns_db_bind_int64(q, 2, to_id);
      if (!st) st = ns_db_step(q, &row);
      ns_db_finalize(q);
      q = NULL;
    }
    if (!st)
      st = exec_ids(db,
                    "INSERT INTO models (library_id, cluster_id, needs_retrain, created_ms)"
                    " SELECT library_id, id, 1, 0 FROM clusters WHERE id = ?1",
                    to_id, 0);
  }
  if (!st) {
    st = ns_db_prepare(db, "DELETE FROM cluster_members WHERE cluster_id = ?1 AND segment_id = ?2", &q);
    if (!st) st = ns_db_bind_int64(q, 1, from_id);
    if (!st) st = ns_db_bind_int64(q, 2, seg_id);
    if (!st) st = ns_db_step(q, &row);
    if (!st && ns_db_changes(q) != 1)
      st = ns_errorf(NS_ERR_NOTFOUND, "segment %lld is not in cluster %lld", (long long)seg_id, (long long)from_id);
    ns_db_finalize(q);
    q = NULL;
  }
  if (!st)
    st = exec_ids(db,
                  "INSERT INTO cluster_members (cluster_id, segment_id, representative, weight) VALUES (?1, ?2, 0, 1)",
                  to_id, seg_id);
  /* Both clusters change shape: recompute centroid, distances and radius,
   * and their models must be retrained. */
  if (!st) st = lbl_recompute_cluster(d->st, from_id);
  if (!st) st = lbl_recompute_cluster(d->st, to_id);
  if (!st)
    st = exec_ids(db, "UPDATE models SET needs_retrain = 1 WHERE cluster_id IN (?1, ?2)", from_id, to_id);
  if (st) {
    ns_store_rollback(d->st);
    return st;
  }
  if ((st = ns_store_commit(d->st))) return st;
  *new_id = to_id;
  return NS_OK;
}
