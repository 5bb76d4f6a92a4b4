#include "lbl_recompute.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ns_clib.h"
#include "ns_db.h"

typedef struct {
  size_t i; /* index into ids/feats */
  double d;
} member;

static int cmp_member(const void *a, const void *b) {
  const member *x = a, *y = b;
  if (x->d != y->d) return (x->d > y->d) - (x->d < y->d);
  return (x->i > y->i) - (x->i < y->i);
}

static void mean_rows(const float *f, const member *m, size_t k, size_t per, float *out) {
  memset(out, 0, per * sizeof *out);
  for (size_t r = 0; r < k; r++)
    for (size_t j = 0; j < per; j++) out[j] += f[m[r].i * per + j];
  for (size_t j = 0; j < per; j++) out[j] /= (float)k;
}

static ns_status run(ns_db *db, const char *sql, int64_t a, double d, int64_t b, int64_t c) {
  ns_db_stmt *q = NULL;
  bool row;
  ns_status st = ns_db_prepare(db, sql, &q);
  if (!st) st = ns_db_bind_double(q, 1, d);
  if (!st) st = ns_db_bind_int64(q, 2, b);
  if (!st) st = ns_db_bind_int64(q, 3, c);
  if (!st) st = ns_db_bind_int64(q, 4, a);
  if (!st) st = ns_db_step(q, &row);
  ns_db_finalize(q);
  return st;
}

ns_status lbl_recompute_cluster(ns_store *store, int64_t cluster_id) {
  ns_db *db = ns_store_db(store);
  ns_db_stmt *q = NULL;
  bool row;
  int64_t *ids = NULL;
  size_t n = 0, cap = 0, M = 0, per = 0;
  float *feats = NULL, *cen = NULL;
  member *mem = NULL;
  ns_clib_params p;
  ns_clib_params_default(&p);
  ns_status st = ns_db_prepare(db, "SELECT segment_id FROM cluster_members WHERE cluster_id = ?1", &q);
  if (!st) st = ns_db_bind_int64(q, 1, cluster_id);
  while (!st && !(st = ns_db_step(q, &row)) && row) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      int64_t *v = realloc(ids, cap * sizeof *v);
      if (!v) {
        st = NS_ERR_NOMEM;
        break;
      }
      ids = v;
    }
    ids[n++] = ns_db_col_int64(q, 0);
  }
  ns_db_finalize(q);
  q = NULL;
  if (st) goto cleanup;
  if (n == 0) {
    st = ns_db_prepare(db, "UPDATE clusters SET size = 0, radius = NULL, centroid = NULL WHERE id = ?1", &q);
    if (!st) st = ns_db_bind_int64(q, 1, cluster_id);
    if (!st) st = ns_db_step(q, &row);
    goto cleanup;
  }
  /* The members' representations, as the library build computes them. */
  for (size_t i = 0; i < n && !st; i++) {
    ns_segment *s = NULL;
    float *f = NULL;
    st = ns_store_get_segment(store, ids[i], &s);
    if (!st && i == 0) {
      M = s->M;
      per = M * NS_CLIB_NFEAT;
      if (!(feats = malloc(n * per * sizeof *feats))) st = NS_ERR_NOMEM;
    }
    if (!st && s->M != M)
      st = ns_errorf(NS_ERR_SCHEMA, "segment %lld has %zu metrics, cluster members have %zu", (long long)ids[i],
                     s->M, M);
    if (!st) st = ns_clib_segment_features(s, &p, &f);
    if (!st) memcpy(feats + i * per, f, per * sizeof *f);
    free(f);
    ns_segment_free(s);
  }
  if (st) goto cleanup;
  mem = malloc(n * sizeof *mem);
  cen = malloc(per * sizeof *cen);
  if (!mem || !cen) {
    st = NS_ERR_NOMEM;
    goto cleanup;
  }
  /* c0 = mean of all; representatives = nearest to c0; centroid = their mean. */
  for (size_t i = 0; i < n; i++) mem[i].i = i;
  mean_rows(feats, mem, n, per, cen);
  for (size_t i = 0; i < n; i++) mem[i].d = ns_clib_distance(feats + i * per, cen, M);
  qsort(mem, n, sizeof *mem, cmp_member);
  size_t nrep = n < p.n_rep ? n : p.n_rep;
  mean_rows(feats, mem, nrep, per, cen);
  double radius = 0;
  for (size_t i = 0; i < n; i++) {
    double d = ns_clib_distance(feats + mem[i].i * per, cen, M);
    if (d > radius) radius = d;
    bool rep = false;
    for (size_t r = 0; r < nrep; r++) rep |= mem[r].i == mem[i].i;
    st = run(db, "UPDATE cluster_members SET distance = ?1, representative = ?3 WHERE segment_id = ?2 AND cluster_id = ?4",
             cluster_id, d, ids[mem[i].i], rep);
    if (st) goto cleanup;
  }
  st = ns_db_prepare(db, "UPDATE clusters SET size = ?1, radius = ?2, centroid = ?3 WHERE id = ?4", &q);
  if (!st) st = ns_db_bind_int64(q, 1, (int64_t)n);
  if (!st) st = ns_db_bind_double(q, 2, radius);
  if (!st) st = ns_db_bind_blob(q, 3, cen, per * sizeof *cen);
  if (!st) st = ns_db_bind_int64(q, 4, cluster_id);
  if (!st) st = ns_db_step(q, &row);
cleanup:
  ns_db_finalize(q);
  free(ids);
  free(feats);
  free(cen);
  free(mem);
  return st;
}
