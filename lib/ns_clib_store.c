/* The cluster library and the database: building from stored segments,
 * saving and loading (artifact + clusters / cluster_members rows). Kept apart
 * from ns_clib.c so that the pure parts link without the store. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_clib.h"
#include "ns_log.h"

#define NF NS_CLIB_NFEAT
#define CLIB_KIND "clib"
#define CLIB_NAME "clusters"

static bool same_names(char *const *a, char *const *b, size_t M) {
  for (size_t m = 0; m < M; m++)
    if (!a[m] || !b[m] || strcmp(a[m], b[m]) != 0) return false;
  return true;
}

ns_status ns_clib_build_store(ns_store *st, const ns_seg_filter *f, const ns_clib_params *p,
                              ns_progress_fn progress, void *pctx, ns_clib **out) {
  *out = NULL;
  if (!st || !p) return ns_errorf(NS_ERR_INVAL, "cluster library: no store or parameters");
  int64_t *ids = NULL;
  size_t n = 0, kept = 0, too_short = 0;
  ns_featset *fs = NULL;
  ns_segment *seg = NULL, *first = NULL;
  ns_clib *lib = NULL;
  ns_status s = ns_store_list_segments(st, f ? f : &NS_SEG_FILTER_ALL, &ids, &n);
  if (s) return s;
  if (n == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "no stored segments match (run `nsentry prep` first?)");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if ((s = ns_store_get_segment(st, ids[i], &seg))) goto done;
    if (!first) {
      first = seg;
      seg = NULL;
      if ((s = ns_featset_create(n, first->M, &fs))) goto done;
    }
    const ns_segment *cur = seg ? seg : first;
    if (cur->M != fs->M || !same_names(cur->metrics, first->metrics, fs->M)) {
      s = ns_errorf(NS_ERR_SCHEMA, "segment %" PRId64 " has other metrics than segment %" PRId64
                    " (%zu vs %zu); re-run prep so all training segments share one schema",
                    ids[i], first->id, cur->M, fs->M);
      goto done;
    }
    float *feat = NULL;
    s = ns_clib_segment_features(cur, p, &feat);
    if (s == NS_ERR_TOO_SHORT) {
      // The store legitimately holds short windows; they cannot be described.
      ns_warn("cluster: skipping %s", ns_err_message(s));
      too_short++;
    } else if (s) {
      goto done;
    } else {
      memcpy(fs->f + kept * fs->M * NF, feat, fs->M * NF * sizeof(float));
      fs->ids[kept] = ids[i];
      fs->kind[kept] = cur->kind;
      kept++;
      free(feat);
    }
    s = NS_OK;
    ns_segment_free(seg);
    seg = NULL;
    if (progress) progress(pctx, "features", i + 1, n);
  }
  if (kept == 0) {
    s = ns_errorf(NS_ERR_TOO_SHORT, "all %zu segments are too short for the features", n);
    goto done;
  }
  if (too_short) ns_warn("cluster: %zu of %zu segments skipped as too short", too_short, n);
  fs->n = kept;
  if ((s = ns_clib_build(fs, (const char *const *)first->metrics, p, progress, pctx, &lib))) goto done;
  ns_featset_free(fs);
  fs = NULL;
  // MAC statistics from the representatives' whole preprocessed series.
  size_t total_rep = 0, done_rep = 0;
  for (size_t c = 0; c < lib->n_clusters; c++) total_rep += lib->clusters[c].n_rep;
  for (size_t c = 0; c < lib->n_clusters; c++) {
    ns_clib_cluster *cl = &lib->clusters[c];
    ns_segment **reps = calloc(cl->n_rep, sizeof *reps);
    if (!reps) {
      s = NS_ERR_NOMEM;
      goto done;
    }
    for (size_t r = 0; r < cl->n_rep && !s; r++) s = ns_store_get_segment(st, cl->members[r], &reps[r]);
    if (!s) s = ns_clib_set_mac(lib, c, (const ns_segment *const *)reps);
    for (size_t r = 0; r < cl->n_rep; r++) ns_segment_free(reps[r]);
    free(reps);
    if (s) goto done;
    done_rep += cl->n_rep;
    if (progress) progress(pctx, "mac", done_rep, total_rep);
  }
  *out = lib;
  lib = NULL;
done:
  free(ids);
  ns_featset_free(fs);
  ns_segment_free(seg);
  ns_segment_free(first);
  ns_clib_free(lib);
  return s;
}

static ns_status exec1(ns_db *db, ns_db_stmt **stp, const char *sql) {
  if (*stp) return ns_db_reset(*stp);
  return ns_db_prepare(db, sql, stp);
}

ns_status ns_clib_save(ns_store *st, ns_clib *lib, int64_t library_id) {
  if (!st || !lib) return ns_errorf(NS_ERR_INVAL, "save: no store or library");
  void *buf = NULL;
  size_t n = 0;
  ns_status s = NS_OK;
  // A saved version is immutable: attach its rows without a second copy.
  bool reuse = lib->version > 0;
  if (reuse && library_id <= 0) return NS_OK;
  if (!reuse && (s = ns_clib_serialize(lib, &buf, &n))) return s;
  ns_db *db = ns_store_db(st);
  ns_db_stmt *ins_c = NULL, *ins_m = NULL;
  int64_t version = lib->version;
  int64_t *db_ids = calloc(lib->n_clusters ? lib->n_clusters : 1, sizeof *db_ids);
  if (!db_ids) {
    free(buf);
    return NS_ERR_NOMEM;
  }
  if ((s = ns_store_begin(st))) goto done;
  if (!reuse && (s = ns_store_put_artifact(st, CLIB_KIND, CLIB_NAME, buf, n, &version))) goto rollback;
  if (library_id > 0) {
    size_t len = lib->M * NF;
    for (size_t c = 0; c < lib->n_clusters; c++) {
      const ns_clib_cluster *cl = &lib->clusters[c];
      char label[32], params[96];
      snprintf(label, sizeof label, "%s-%d", cl->kind == NS_SEG_JOB ? "job" : "idle", cl->label);
      int pl = snprintf(params, sizeof params, "{\"clib_version\":%" PRId64 ",\"index\":%zu}", version, c);
      bool row = false;
      if ((s = exec1(db, &ins_c,
                     "INSERT INTO clusters (library_id, kind, label, size, radius, centroid, params) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id")) ||
          (s = ns_db_bind_int64(ins_c, 1, library_id)) || (s = ns_db_bind_int64(ins_c, 2, cl->kind)) ||
          (s = ns_db_bind_text(ins_c, 3, label)) || (s = ns_db_bind_int64(ins_c, 4, (int64_t)cl->size)) ||
          (s = ns_db_bind_double(ins_c, 5, cl->radius)) ||
          (s = ns_db_bind_blob(ins_c, 6, cl->centroid, len * sizeof(float))) ||
          (s = ns_db_bind_blob(ins_c, 7, params, (size_t)pl)) || (s = ns_db_step(ins_c, &row)))
        goto rollback;
      if (!row) {
        s = ns_errorf(NS_ERR_DB, "save: INSERT INTO clusters returned no id");
        goto rollback;
      }
      db_ids[c] = ns_db_col_int64(ins_c, 0);
      for (size_t r = 0; r < cl->size; r++) {
        if ((s = exec1(db, &ins_m,
                       "INSERT INTO cluster_members (cluster_id, segment_id, distance, representative, weight) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)")) ||
            (s = ns_db_bind_int64(ins_m, 1, db_ids[c])) || (s = ns_db_bind_int64(ins_m, 2, cl->members[r])) ||
            (s = ns_db_bind_double(ins_m, 3, cl->member_dist[r])) ||
            (s = ns_db_bind_int64(ins_m, 4, r < cl->n_rep)) ||
            (s = ns_db_bind_double(ins_m, 5, r < cl->n_rep ? cl->rep_weight[r] : 0.0)) ||
            (s = ns_db_step(ins_m, &row)))
          goto rollback;
      }
    }
  }
  // A RETURNING statement left mid-result would block the commit.
  ns_db_finalize(ins_c), ns_db_finalize(ins_m);
  ins_c = ins_m = NULL;
  if ((s = ns_store_commit(st))) goto done;
  lib->version = version;
  for (size_t c = 0; library_id > 0 && c < lib->n_clusters; c++) lib->clusters[c].db_id = db_ids[c];
  goto done;
rollback:
  ns_db_finalize(ins_c), ns_db_finalize(ins_m);
  ins_c = ins_m = NULL;
  {
    // Keep the first error's detail over the rollback's.
    char detail[512];
    snprintf(detail, sizeof detail, "%s", ns_err_detail());
    ns_store_rollback(st);
    ns_errorf(s, "save cluster library: %s", detail);
  }
done:
  ns_db_finalize(ins_c), ns_db_finalize(ins_m);
  free(buf), free(db_ids);
  return s;
}

ns_status ns_clib_load(ns_store *st, int64_t version, ns_clib **out) {
  *out = NULL;
  if (!st) return ns_errorf(NS_ERR_INVAL, "load: no store");
  void *buf = NULL;
  size_t n = 0;
  int64_t got = 0;
  ns_status s = ns_store_get_artifact(st, CLIB_KIND, CLIB_NAME, version, &buf, &n, &got);
  if (s == NS_ERR_NOTFOUND)
    return version > 0 ? ns_errorf(s, "no cluster library version %" PRId64, version)
                       : ns_errorf(s, "no cluster library yet (run `nsentry cluster`)");
  if (s) return s;
  s = ns_clib_deserialize(buf, n, out);
  free(buf);
  if (!s) (*out)->version = got;
  return s;
}

ns_status ns_clib_load_for_library(ns_store *st, int64_t library_id, ns_clib **out) {
  *out = NULL;
  if (!st) return ns_errorf(NS_ERR_INVAL, "load: no store");
  ns_db_stmt *q = NULL;
  ns_clib *lib = NULL;
  int64_t version = 0;
  ns_status s = ns_db_prepare(ns_store_db(st), "SELECT id, params FROM clusters WHERE library_id = ?1 ORDER BY id", &q);
  if (s) return s;
  if ((s = ns_db_bind_int64(q, 1, library_id))) goto done;
  size_t rows = 0;
  int64_t *ids = NULL;
  size_t *index = NULL;
  for (;;) {
    bool row = false;
    if ((s = ns_db_step(q, &row))) break;
    if (!row) break;
    size_t bn = 0;
    const char *p = ns_db_col_blob(q, 1, &bn);
    char text[128] = {0};
    memcpy(text, p ? p : "", bn < sizeof text - 1 ? bn : sizeof text - 1);
    long long v = 0;
    size_t ix = 0;
    if (sscanf(text, "{\"clib_version\":%lld,\"index\":%zu}", &v, &ix) != 2 || (version && v != version)) {
      s = ns_errorf(NS_ERR_CORRUPT, "clusters row %" PRId64 " of library %" PRId64 ": bad params '%s'",
                    ns_db_col_int64(q, 0), library_id, text);
      break;
    }
    version = v;
    int64_t *ni = realloc(ids, (rows + 1) * sizeof *ids);
    size_t *nx = ni ? realloc(index, (rows + 1) * sizeof *index) : NULL;
    if (ni) ids = ni;
    if (nx) index = nx;
    if (!ni || !nx) {
      s = NS_ERR_NOMEM;
      break;
    }
    ids[rows] = ns_db_col_int64(q, 0);
    index[rows] = ix;
    rows++;
  }
  if (!s && rows == 0) s = ns_errorf(NS_ERR_NOTFOUND, "model library %" PRId64 " has no clusters", library_id);
  if (!s) s = ns_clib_load(st, version, &lib);
  for (size_t r = 0; !s && r < rows; r++) {
    if (index[r] >= lib->n_clusters) {
      s = ns_errorf(NS_ERR_CORRUPT, "clusters row %" PRId64 " names cluster %zu of %zu", ids[r], index[r],
                    lib->n_clusters);
      break;
    }
    lib->clusters[index[r]].db_id = ids[r];
  }
  free(ids), free(index);
  if (!s) {
    *out = lib;
    lib = NULL;
  }
done:
  ns_db_finalize(q);
  ns_clib_free(lib);
  return s;
}
