/* Ablation C2: random groups with the HAC library's sizes. Uses only the
 * public ns_clib.h API and struct layout; the per-cluster statistics follow
 * the definition documented there (steps 1-5). */
#include "ns_clib_random.h"
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ns_log.h"

#define NF NS_CLIB_NFEAT

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

ns_status ns_clib_randomize(const ns_clib *ref, const ns_featset *fs, uint64_t seed, ns_clib **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "C2: NULL output");
  *out = NULL;
  if (!ref || !fs) return ns_errorf(NS_ERR_INVAL, "C2: no reference library or features");
  if (fs->M != ref->M)
    return ns_errorf(NS_ERR_INVAL, "C2: features have %zu metrics, the library %zu", fs->M, ref->M);
  if (ref->n_clusters == 0) return ns_errorf(NS_ERR_EMPTY, "C2: the reference library has no clusters");
  ns_status st = NS_OK;
  ns_clib *lib = calloc(1, sizeof *lib);
  size_t *rows = malloc((fs->n ? fs->n : 1) * sizeof *rows);
  int64_t *want = NULL, *have = NULL;
  if (!lib || !rows) goto oom;
  lib->params = ref->params;
  lib->M = ref->M;
  if (!(lib->metrics = calloc(ref->M, sizeof *lib->metrics))) goto oom;
  for (size_t m = 0; m < ref->M; m++)
    if (!(lib->metrics[m] = strdup(ref->metrics[m]))) goto oom;
  for (int k = 0; k < 2; k++) {
    lib->sweep[k] = ref->sweep[k];
    lib->sweep[k].silhouette = NULL;
    if (ref->sweep[k].silhouette && ref->sweep[k].k_hi >= ref->sweep[k].k_lo) {
      size_t ns = ref->sweep[k].k_hi - ref->sweep[k].k_lo + 1;
      if (!(lib->sweep[k].silhouette = malloc(ns * sizeof(double)))) goto oom;
      memcpy(lib->sweep[k].silhouette, ref->sweep[k].silhouette, ns * sizeof(double));
    }
  }
  if (!(lib->clusters = calloc(ref->n_clusters, sizeof *lib->clusters))) goto oom;
  lib->n_clusters = ref->n_clusters;
  uint64_t rs = seed;
  for (int kind = NS_SEG_JOB; kind <= NS_SEG_IDLE; kind++) {
    size_t nk = 0, total = 0;
    for (size_t i = 0; i < fs->n; i++)
      if ((int)fs->kind[i] == kind) rows[nk++] = i;
    for (size_t c = 0; c < ref->n_clusters; c++)
      if ((int)ref->clusters[c].kind == kind) total += ref->clusters[c].size;
    if (total != nk) {
      st = ns_errorf(NS_ERR_INVAL, "C2: the library's %s clusters hold %zu segments, the features %zu",
                     kind == NS_SEG_JOB ? "job" : "idle", total, nk);
      goto fail;
    }
    if (nk == 0) continue;
    // The same segments, not merely as many: compare sorted id lists.
    free(want), free(have);
    want = malloc(nk * sizeof *want), have = malloc(nk * sizeof *have);
    if (!want || !have) goto oom;
    size_t w = 0;
    for (size_t c = 0; c < ref->n_clusters; c++)
      if ((int)ref->clusters[c].kind == kind)
        for (size_t r = 0; r < ref->clusters[c].size; r++) want[w++] = ref->clusters[c].members[r];
    for (size_t i = 0; i < nk; i++) have[i] = fs->ids[rows[i]];
    qsort(want, nk, sizeof *want, cmp_i64);
    qsort(have, nk, sizeof *have, cmp_i64);
    for (size_t i = 0; i < nk; i++)
      if (want[i] != have[i]) {
        st = ns_errorf(NS_ERR_INVAL, "C2: segment %" PRId64 " of the library is not among the features",
                       want[i] < have[i] ? want[i] : have[i]);
        goto fail;
      }
    // Uniform random permutation, then consecutive chunks of the reference sizes.
    for (size_t i = nk - 1; i > 0; i--) {
      size_t j = (size_t)(rng_next(&rs) % (uint64_t)(i + 1)), t = rows[i];
      rows[i] = rows[j], rows[j] = t;
    }
    size_t off = 0;
    for (size_t c = 0; c < ref->n_clusters; c++) {
      const ns_clib_cluster *rc = &ref->clusters[c];
      if ((int)rc->kind != kind) continue;
      ns_clib_cluster *cl = &lib->clusters[c];
      cl->kind = rc->kind;
      cl->label = rc->label;
      if ((st = ns_clib_cluster_fill(fs, rows + off, rc->size, &ref->params, cl))) goto fail;
      off += rc->size;
    }
  }
  free(rows), free(want), free(have);
  *out = lib;
  return NS_OK;
oom:
  st = ns_errorf(NS_ERR_NOMEM, "C2: out of memory");
fail:
  free(rows), free(want), free(have);
  ns_clib_free(lib);
  return st;
}

ns_status ns_clib_random_set_mac_store(ns_store *st, ns_clib *lib) {
  if (!st || !lib) return ns_errorf(NS_ERR_INVAL, "C2 MAC: no store or library");
  ns_status s = NS_OK;
  for (size_t c = 0; c < lib->n_clusters && !s; c++) {
    ns_clib_cluster *cl = &lib->clusters[c];
    ns_segment **reps = calloc(cl->n_rep ? cl->n_rep : 1, sizeof *reps);
    if (!reps) return NS_ERR_NOMEM;
    for (size_t r = 0; r < cl->n_rep && !s; r++) s = ns_store_get_segment(st, cl->members[r], &reps[r]);
    if (!s) s = ns_clib_set_mac(lib, c, (const ns_segment *const *)reps);
    for (size_t r = 0; r < cl->n_rep; r++) ns_segment_free(reps[r]);
    free(reps);
  }
  return s;
}

ns_status ns_clib_random_build_store(ns_store *st, const ns_seg_filter *f, const ns_clib_params *p,
                                     uint64_t seed, ns_progress_fn progress, void *pctx, ns_clib **out,
                                     ns_clib **ref_out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "C2: NULL output");
  *out = NULL;
  if (ref_out) *ref_out = NULL;
  if (!st || !p) return ns_errorf(NS_ERR_INVAL, "C2: no store or parameters");
  int64_t *ids = NULL;
  size_t n = 0, kept = 0;
  ns_featset *fs = NULL;
  ns_segment *seg = NULL;
  char **names = NULL;
  size_t M = 0;
  ns_clib *ref = NULL, *lib = NULL;
  ns_status s = ns_store_list_segments(st, f ? f : &NS_SEG_FILTER_ALL, &ids, &n);
  if (s) return s;
  if (n == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "C2: no stored segments match (run `nsentry prep` first?)");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if ((s = ns_store_get_segment(st, ids[i], &seg))) goto done;
    if (!fs) {
      M = seg->M;
      if ((s = ns_featset_create(n, M, &fs))) goto done;
      if (!(names = calloc(M, sizeof *names))) {
        s = NS_ERR_NOMEM;
        goto done;
      }
      for (size_t m = 0; m < M; m++)
        if (!(names[m] = strdup(seg->metrics[m]))) {
          s = NS_ERR_NOMEM;
          goto done;
        }
    }
    bool same = seg->M == M;
    for (size_t m = 0; same && m < M; m++) same = strcmp(seg->metrics[m], names[m]) == 0;
    if (!same) {
      s = ns_errorf(NS_ERR_SCHEMA, "C2: segment %" PRId64 " has other metrics than segment %" PRId64, ids[i], ids[0]);
      goto done;
    }
    float *feat = NULL;
    s = ns_clib_segment_features(seg, p, &feat);
    if (s == NS_ERR_TOO_SHORT) {
      ns_warn("C2: skipping %s", ns_err_message(s));
    } else if (s) {
      goto done;
    } else {
      memcpy(fs->f + kept * M * NF, feat, M * NF * sizeof(float));
      fs->ids[kept] = ids[i];
      fs->kind[kept] = seg->kind;
      kept++;
      free(feat);
    }
    s = NS_OK;
    ns_segment_free(seg);
    seg = NULL;
    if (progress) progress(pctx, "features", i + 1, n);
  }
  if (kept == 0) {
    s = ns_errorf(NS_ERR_TOO_SHORT, "C2: all %zu segments are too short for the features", n);
    goto done;
  }
  fs->n = kept;
  if ((s = ns_clib_build(fs, (const char *const *)names, p, progress, pctx, &ref))) goto done;
  if ((s = ns_clib_randomize(ref, fs, seed, &lib))) goto done;
  if ((s = ns_clib_random_set_mac_store(st, lib))) goto done;
  if (progress) progress(pctx, "mac", 1, 1);
  *out = lib;
  lib = NULL;
  if (ref_out) {
    *ref_out = ref;
    ref = NULL;
  }
done:
  free(ids);
  ns_featset_free(fs);
  ns_segment_free(seg);
  for (size_t m = 0; names && m < M; m++) free(names[m]);
  free(names);
  ns_clib_free(ref);
  ns_clib_free(lib);
  return s;
}
