/* ns_clib without the database: distances, building from representations,
 * representatives and weights, MAC, matching, the binary form. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_clib.h"
#include "ns_hash.h"

#define NF NS_CLIB_NFEAT

static unsigned long long rs = 12345;
static double urand(void) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return (double)(rs >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

/* Groups of segments around random centres: sizes[g] members of group g,
 * kind[g] job or idle; ids 100 + row. */
static ns_featset *make_groups(size_t M, size_t ng, const size_t *sizes, const ns_seg_kind *kind, double noise,
                               size_t **group_of) {
  size_t n = 0;
  for (size_t g = 0; g < ng; g++) n += sizes[g];
  ns_featset *fs = NULL;
  cr_assert_eq(ns_featset_create(n, M, &fs), NS_OK);
  float *C = malloc(ng * M * NF * sizeof *C);
  for (size_t q = 0; q < ng * M * NF; q++) C[q] = (float)nrand();
  *group_of = malloc(n * sizeof **group_of);
  size_t row = 0;
  for (size_t g = 0; g < ng; g++)
    for (size_t k = 0; k < sizes[g]; k++, row++) {
      for (size_t q = 0; q < M * NF; q++) fs->f[row * M * NF + q] = C[g * M * NF + q] + (float)(noise * nrand());
      fs->ids[row] = 100 + (int64_t)row;
      fs->kind[row] = kind[g];
      (*group_of)[row] = g;
    }
  free(C);
  return fs;
}

/* Two job groups and one idle group. */
static ns_featset *two_jobs_one_idle(size_t M, const size_t sizes[3], size_t **group_of) {
  const ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB, NS_SEG_IDLE};
  return make_groups(M, 3, sizes, kinds, 0.2, group_of);
}

static char **names(size_t M) {
  char **v = malloc(M * sizeof *v);
  for (size_t m = 0; m < M; m++) {
    v[m] = malloc(16);
    snprintf(v[m], 16, "metric%zu", m);
  }
  return v;
}
static void free_names(char **v, size_t M) {
  for (size_t m = 0; m < M; m++) free(v[m]);
  free(v);
}

Test(distance, matrix_is_bit_identical_to_pair_distance) {
  size_t sizes[] = {40, 37}, *grp;
  ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB};
  ns_featset *fs = make_groups(5, 2, sizes, kinds, 0.3, &grp);
  float *D = NULL;
  cr_assert_eq(ns_clib_distance_matrix(fs, NULL, 0, 2, NULL, NULL, &D), NS_OK);
  size_t n = fs->n, len = fs->M * NF;
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) {
      float want = (float)ns_clib_distance(fs->f + i * len, fs->f + j * len, fs->M);
      cr_assert(memcmp(&D[ns_cond_index(n, i, j)], &want, sizeof want) == 0, "pair %zu,%zu", i, j);
    }
  // By hand for one pair: sum over metrics of per-metric L2.
  double s = 0;
  for (size_t m = 0; m < fs->M; m++) {
    double t = 0;
    for (size_t k = 0; k < NF; k++) {
      double d = (double)fs->f[m * NF + k] - fs->f[len + m * NF + k];
      t += d * d;
    }
    s += sqrt(t);
  }
  cr_assert(fabs(s - ns_clib_distance(fs->f, fs->f + len, fs->M)) < 1e-4 * s);
  // A subset in another order.
  size_t idx[3] = {70, 3, 41};
  float *S = NULL;
  cr_assert_eq(ns_clib_distance_matrix(fs, idx, 3, 1, NULL, NULL, &S), NS_OK);
  cr_assert_eq(S[ns_cond_index(3, 0, 2)], D[ns_cond_index(n, 41, 70)]);
  idx[1] = 999;
  float *bad = NULL;
  cr_assert_eq(ns_clib_distance_matrix(fs, idx, 3, 1, NULL, NULL, &bad), NS_ERR_RANGE);
  cr_assert_null(bad);
  free(S), free(D), free(grp);
  ns_featset_free(fs);
}

static ns_clib_params test_params(void) {
  ns_clib_params p;
  ns_clib_params_default(&p);
  p.k_min = 2, p.k_max = 8, p.threads = 2, p.n_rep = 4;
  return p;
}

Test(build, groups_become_clusters_and_members_match_their_cluster) {
  size_t sizes[] = {12, 9, 6, 8, 5}, *grp;
  ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB, NS_SEG_JOB, NS_SEG_IDLE, NS_SEG_IDLE};
  size_t M = 6;
  ns_featset *fs = make_groups(M, 5, sizes, kinds, 0.2, &grp);
  char **nm = names(M);
  ns_clib_params p = test_params();
  ns_clib *lib = NULL;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(lib->n_clusters, 5);
  cr_assert_eq(lib->sweep[NS_SEG_JOB].k, 3);
  cr_assert_eq(lib->sweep[NS_SEG_IDLE].k, 2);
  cr_assert_eq(lib->sweep[NS_SEG_JOB].k_lo, 2);
  cr_assert_eq(lib->sweep[NS_SEG_JOB].k_hi, 8);
  cr_assert_eq(lib->sweep[NS_SEG_IDLE].k_hi, 8); /* 13 idle segments */
  cr_assert(lib->sweep[NS_SEG_JOB].sil_best > 0.5);
  size_t len = M * NF;
  for (size_t c = 0; c < lib->n_clusters; c++) {
    ns_clib_cluster *cl = &lib->clusters[c];
    cr_assert_eq(cl->kind, c < 3 ? NS_SEG_JOB : NS_SEG_IDLE);
    cr_assert_eq(cl->n_rep, 4);
    size_t g = grp[cl->members[0] - 100];
    cr_assert_eq(cl->size, sizes[g]);
    float wmin = 2, wmax = 0;
    for (size_t r = 0; r < cl->size; r++) {
      cr_assert_eq(grp[cl->members[r] - 100], g, "cluster %zu mixes groups", c);
      cr_assert(cl->member_dist[r] <= cl->radius);
      if (r > 0 && r != cl->n_rep) cr_assert(cl->member_dist[r] >= cl->member_dist[r - 1]);
      if (r < cl->n_rep) {
        cr_assert(cl->rep_weight[r] >= 0.1f - 1e-6f && cl->rep_weight[r] <= 1.0f);
        wmin = fminf(wmin, cl->rep_weight[r]), wmax = fmaxf(wmax, cl->rep_weight[r]);
        float d = (float)ns_clib_distance(cl->rep_feat + r * len, cl->centroid, M);
        cr_assert_eq(d, cl->member_dist[r]);
      }
    }
    cr_assert_float_eq(wmax, 1.0f, 1e-6);
    cr_assert_float_eq(wmin, 0.1f, 1e-6, "farthest representative keeps weight 0.1, got %g", wmin);
    cr_assert_eq(cl->rep_weight[0], 1.0f, "the nearest representative weighs most");
  }
  // Every training segment matches the cluster it was trained in, within the radius.
  for (size_t i = 0; i < fs->n; i++) {
    ns_clib_match m[3];
    size_t nm_out = 0;
    cr_assert_eq(ns_clib_match_features(lib, fs->kind[i], fs->f + i * len, m, 3, &nm_out), NS_OK);
    cr_assert_eq(nm_out, fs->kind[i] == NS_SEG_JOB ? 3 : 2);
    const ns_clib_cluster *cl = &lib->clusters[m[0].cluster];
    bool member = false;
    for (size_t r = 0; r < cl->size; r++) member |= cl->members[r] == fs->ids[i];
    cr_assert(member, "segment %zu matched cluster %zu it is not in", i, m[0].cluster);
    cr_assert_not(m[0].unmatched);
    cr_assert_eq(m[0].kind, fs->kind[i]);
    cr_assert(m[1].distance >= m[0].distance);
    cr_assert(m[1].unmatched, "far cluster is beyond its radius");
    if (i < fs->n && cl->members[0] == fs->ids[i]) cr_assert_eq(m[0].nearest_rep, 0);
  }
  // A far-away pattern is unmatched.
  float *far = malloc(len * sizeof *far);
  for (size_t q = 0; q < len; q++) far[q] = (float)(5 * nrand());
  ns_clib_match m1;
  size_t k1;
  cr_assert_eq(ns_clib_match_features(lib, NS_SEG_JOB, far, &m1, 1, &k1), NS_OK);
  cr_assert_eq(k1, 1);
  cr_assert(m1.unmatched);
  cr_assert(m1.distance > m1.limit);
  far[7] = NAN;
  cr_assert_eq(ns_clib_match_features(lib, NS_SEG_JOB, far, &m1, 1, &k1), NS_ERR_NONFINITE);
  free(far);
  ns_clib_free(lib);
  free_names(nm, M);
  free(grp);
  ns_featset_free(fs);
}

Test(build, one_pool_clusters_jobs_and_idle_together) {
  /* C1: one global cluster of both kinds, matched by idle segments too;
   * without one_pool the same data gives one cluster per kind. */
  ns_clib_params p = test_params();
  p.k_min = p.k_max = 1;
  size_t sizes[] = {12, 9, 8}, *grp, len = 4 * NF;
  ns_featset *fs = two_jobs_one_idle(4, sizes, &grp);
  char **nm = names(4);
  ns_clib *lib = NULL;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(lib->n_clusters, 2, "per kind by default");
  ns_clib_free(lib);
  lib = NULL;
  p.one_pool = true;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(lib->n_clusters, 1);
  cr_assert_eq(lib->clusters[0].size, fs->n, "every segment, job and idle, is in the one cluster");
  cr_assert_eq(lib->clusters[0].kind, NS_SEG_JOB);
  cr_assert_eq(lib->sweep[NS_SEG_JOB].n, fs->n);
  cr_assert_eq(lib->sweep[NS_SEG_IDLE].n, 0);
  ns_clib_match m;
  size_t k = 0;
  cr_assert_eq(ns_clib_match_features(lib, NS_SEG_IDLE, fs->f + (fs->n - 1) * len, &m, 1, &k), NS_OK);
  cr_assert_eq(k, 1, "an idle segment is matched to the global cluster");
  cr_assert_eq(m.cluster, 0);
  ns_clib_free(lib);
  free_names(nm, 4);
  free(grp);
  ns_featset_free(fs);
}

Test(build, permuting_segments_keeps_clusters) {
  size_t sizes[] = {10, 7, 9}, *grp;
  ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB, NS_SEG_JOB};
  size_t M = 3, len = M * NF;
  ns_featset *fs = make_groups(M, 3, sizes, kinds, 0.6, &grp);
  ns_featset *ps = NULL;
  cr_assert_eq(ns_featset_create(fs->n, M, &ps), NS_OK);
  for (size_t i = 0; i < fs->n; i++) {
    size_t src = (i * 7 + 3) % fs->n; /* 7 is coprime with 26 */
    memcpy(ps->f + i * len, fs->f + src * len, len * sizeof(float));
    ps->ids[i] = fs->ids[src], ps->kind[i] = fs->kind[src];
  }
  char **nm = names(M);
  ns_clib_params p = test_params();
  ns_clib *a = NULL, *b = NULL;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &a), NS_OK);
  cr_assert_eq(ns_clib_build(ps, (const char *const *)nm, &p, NULL, NULL, &b), NS_OK);
  cr_assert_eq(a->n_clusters, b->n_clusters);
  for (size_t c = 0; c < a->n_clusters; c++) {
    // Find b's cluster holding a's first member; same member set, same order.
    size_t d = 0;
    while (d < b->n_clusters && b->clusters[d].members[0] != a->clusters[c].members[0]) d++;
    cr_assert_lt(d, b->n_clusters);
    cr_assert_eq(a->clusters[c].size, b->clusters[d].size);
    for (size_t r = 0; r < a->clusters[c].size; r++) cr_assert_eq(a->clusters[c].members[r], b->clusters[d].members[r]);
    cr_assert_float_eq(a->clusters[c].radius, b->clusters[d].radius, 1e-4);
  }
  ns_clib_free(a), ns_clib_free(b);
  free_names(nm, M);
  free(grp);
  ns_featset_free(fs), ns_featset_free(ps);
}

static ns_segment *series(size_t T, size_t M, char **nm, int64_t id, const double *step) {
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create(T, M, &s), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(s, nm), NS_OK);
  cr_assert_eq(ns_segment_set_meta(s, "c", "n1", "1", 0, 15000), NS_OK);
  s->id = id;
  for (size_t t = 0; t < T; t++)
    for (size_t m = 0; m < M; m++) s->x[t * M + m] = (float)((t % 2) * step[m]);
  return s;
}

Test(mac, weights_favour_stable_metrics) {
  size_t sizes[] = {5, 5}, *grp;
  ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB};
  size_t M = 3;
  ns_featset *fs = make_groups(M, 2, sizes, kinds, 0.1, &grp);
  char **nm = names(M);
  ns_clib_params p = test_params();
  p.n_rep = 2;
  ns_clib *lib = NULL;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_OK);
  ns_clib_cluster *cl = &lib->clusters[0];
  cr_assert_eq(cl->n_rep, 2);
  double step[3] = {0.0, 1.0, 3.0};
  ns_segment *reps[2] = {series(20, M, nm, cl->members[0], step), series(20, M, nm, cl->members[1], step)};
  cr_assert_eq(ns_clib_set_mac(lib, 0, (const ns_segment *const *)reps), NS_OK, "%s", ns_err_detail());
  cr_assert_float_eq(cl->mac[0], 0.0, 1e-7);
  cr_assert_float_eq(cl->mac[1], 1.0, 1e-6);
  cr_assert_float_eq(cl->mac[2], 3.0, 1e-6);
  double sum = cl->mac_weight[0] + cl->mac_weight[1] + cl->mac_weight[2];
  cr_assert_float_eq(sum, 1.0, 1e-6);
  cr_assert(cl->mac_weight[0] > cl->mac_weight[1] && cl->mac_weight[1] > cl->mac_weight[2]);
  cr_assert_float_eq(cl->mac_weight[2] / cl->mac_weight[0], 0.1, 1e-5, "most volatile keeps 0.1 of the top");
  // Wrong segment, other metric names, NaN: clear errors.
  reps[1]->id = 99999;
  cr_assert_eq(ns_clib_set_mac(lib, 0, (const ns_segment *const *)reps), NS_ERR_INVAL);
  reps[1]->id = cl->members[1];
  free(reps[1]->metrics[2]);
  reps[1]->metrics[2] = strdup("other");
  cr_assert_eq(ns_clib_set_mac(lib, 0, (const ns_segment *const *)reps), NS_ERR_SCHEMA);
  cr_assert(strstr(ns_err_detail(), "other"), "%s", ns_err_detail());
  free(reps[1]->metrics[2]);
  reps[1]->metrics[2] = strdup("metric2");
  reps[1]->x[5] = NAN;
  cr_assert_eq(ns_clib_set_mac(lib, 0, (const ns_segment *const *)reps), NS_ERR_NONFINITE);
  cr_assert_eq(ns_clib_set_mac(lib, 99, (const ns_segment *const *)reps), NS_ERR_RANGE);
  ns_segment_free(reps[0]), ns_segment_free(reps[1]);
  ns_clib_free(lib);
  free_names(nm, M);
  free(grp);
  ns_featset_free(fs);
}

Test(serialize, round_trip_and_corruption) {
  size_t sizes[] = {6, 6, 4}, *grp;
  size_t M = 4, len = M * NF;
  ns_featset *fs = two_jobs_one_idle(M, sizes, &grp);
  char **nm = names(M);
  ns_clib_params p = test_params();
  p.linkage = NS_LINKAGE_WARD;
  ns_clib *lib = NULL, *back = NULL;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_OK);
  double step[4] = {1, 2, 3, 4};
  ns_clib_cluster *cl = &lib->clusters[1];
  ns_segment **reps = calloc(cl->n_rep, sizeof *reps);
  for (size_t r = 0; r < cl->n_rep; r++) reps[r] = series(9, M, nm, cl->members[r], step);
  cr_assert_eq(ns_clib_set_mac(lib, 1, (const ns_segment *const *)reps), NS_OK);
  void *buf = NULL;
  size_t n = 0;
  cr_assert_eq(ns_clib_serialize(lib, &buf, &n), NS_OK);
  cr_assert_eq(ns_clib_deserialize(buf, n, &back), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(back->M, M);
  cr_assert_str_eq(back->metrics[3], "metric3");
  cr_assert_eq(back->params.linkage, NS_LINKAGE_WARD);
  cr_assert_eq(back->n_clusters, lib->n_clusters);
  cr_assert_eq(back->sweep[0].k, lib->sweep[0].k);
  cr_assert_eq(back->sweep[0].silhouette[0], lib->sweep[0].silhouette[0]);
  for (size_t c = 0; c < lib->n_clusters; c++) {
    ns_clib_cluster *a = &lib->clusters[c], *b = &back->clusters[c];
    cr_assert_eq(a->size, b->size);
    cr_assert_eq(a->radius, b->radius);
    cr_assert(memcmp(a->centroid, b->centroid, len * sizeof(float)) == 0);
    cr_assert(memcmp(a->rep_feat, b->rep_feat, a->n_rep * len * sizeof(float)) == 0);
    cr_assert(memcmp(a->members, b->members, a->size * sizeof(int64_t)) == 0);
    cr_assert_eq(!!a->mac, !!b->mac);
  }
  cr_assert_float_eq(back->clusters[1].mac_weight[0], cl->mac_weight[0], 0);
  // Flipped byte, truncation, wrong magic.
  unsigned char *bytes = buf;
  bytes[n / 2] ^= 1;
  ns_clib *bad = NULL;
  cr_assert_eq(ns_clib_deserialize(buf, n, &bad), NS_ERR_CORRUPT);
  bytes[n / 2] ^= 1;
  cr_assert_eq(ns_clib_deserialize(buf, n - 9, &bad), NS_ERR_CORRUPT);
  bytes[0] = 'X';
  cr_assert_eq(ns_clib_deserialize(buf, n, &bad), NS_ERR_FORMAT);
  cr_assert_null(bad);
  for (size_t r = 0; r < cl->n_rep; r++) ns_segment_free(reps[r]);
  free(reps), free(buf);
  ns_clib_free(lib), ns_clib_free(back);
  free_names(nm, M);
  free(grp);
  ns_featset_free(fs);
}

Test(bad_input, build_rejects_nan_and_empty) {
  size_t sizes[] = {4, 4}, *grp;
  ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB};
  ns_featset *fs = make_groups(2, 2, sizes, kinds, 0.1, &grp);
  char **nm = names(2);
  ns_clib_params p = test_params();
  ns_clib *lib = NULL;
  fs->f[5 * 2 * NF + NF + 3] = NAN;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_ERR_NONFINITE);
  cr_assert(strstr(ns_err_detail(), "segment 105"), "%s", ns_err_detail());
  cr_assert_null(lib);
  fs->f[5 * 2 * NF + NF + 3] = 0;
  p.n_rep = 0;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_ERR_RANGE);
  p = test_params();
  p.k_min = 9, p.k_max = 3;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_ERR_RANGE);
  p = test_params();
  fs->n = 0;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_ERR_EMPTY);
  free_names(nm, 2);
  free(grp);
  ns_featset_free(fs);
}

Test(params, from_config_and_prefix) {
  ns_config *cfg = NULL;
  cr_assert_eq(ns_config_create(&cfg), NS_OK);
  ns_clib_params p, d;
  ns_clib_params_default(&d);
  cr_assert_eq(ns_clib_params_from_config(cfg, &p), NS_OK);
  // Defaults agree with the config table.
  cr_assert(p.linkage == d.linkage && p.k_min == d.k_min && p.k_max == d.k_max && p.min_size == d.min_size);
  cr_assert(p.n_rep == d.n_rep && p.match_len_ms == d.match_len_ms && p.radius_factor == d.radius_factor);
  cr_assert(p.feat_fs == d.feat_fs && p.threads == d.threads && p.strata == d.strata);
  cr_assert_eq(ns_config_set(cfg, "clust_k_min", "30"), NS_OK);
  cr_assert_eq(ns_clib_params_from_config(cfg, &p), NS_ERR_RANGE);
  ns_config_free(cfg);
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create(500, 1, &s), NS_OK);
  s->interval_ms = 15000;
  cr_assert_eq(ns_clib_prefix_rows(s, 3600000), 240);
  cr_assert_eq(ns_clib_prefix_rows(s, 100 * 3600000LL), 500);
  cr_assert_eq(ns_clib_prefix_rows(s, 1000), 1);
  ns_segment_free(s);
}

/* Mean distance of row a to the rows of its true group g. */
static double mean_to_group(const ns_featset *fs, size_t a, const size_t *grp, size_t g) {
  double s = 0;
  size_t k = 0, len = fs->M * NF;
  for (size_t b = 0; b < fs->n; b++)
    if (b != a && grp[b] == g) s += ns_clib_distance(fs->f + a * len, fs->f + b * len, fs->M), k++;
  return k ? s / (double)k : 0;
}

Test(strata, sub_patterns_of_a_broad_cluster) {
  size_t sizes[] = {120, 60, 30, 20}, *grp;
  ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB, NS_SEG_JOB, NS_SEG_JOB};
  size_t M = 3, n = 230;
  ns_featset *fs = make_groups(M, 4, sizes, kinds, 0.2, &grp);
  size_t *rows = malloc(n * sizeof *rows);
  for (size_t i = 0; i < n; i++) rows[i] = i;
  ns_clib_params p = test_params();
  p.strata = 4;
  ns_clib_cluster c = {.kind = NS_SEG_JOB};
  cr_assert_eq(ns_clib_cluster_fill(fs, rows, n, &p, &c), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(c.n_strata, 4);
  // Every member has the sub-pattern of its true group, one per group.
  int of_group[4] = {-1, -1, -1, -1};
  for (size_t m = 0; m < n; m++) {
    size_t g = grp[c.members[m] - 100];
    cr_assert(c.stratum[m] >= 0 && c.stratum[m] < 4);
    if (of_group[g] < 0) of_group[g] = c.stratum[m];
    cr_assert_eq(c.stratum[m], of_group[g], "member %zu of group %zu", m, g);
  }
  for (size_t g = 0; g < 4; g++)
    for (size_t h = g + 1; h < 4; h++) cr_assert_neq(of_group[g], of_group[h]);
  // Largest sub-pattern first; each one's most central member first.
  cr_assert_eq(c.n_cover, n - c.n_rep);
  size_t first_of[4] = {0};
  bool seen[4] = {false};
  for (size_t q = 0; q < c.n_cover; q++) {
    cr_assert(c.cover[q] >= c.n_rep && c.cover[q] < n, "cover lists members after the representatives");
    int r = c.stratum[c.cover[q]];
    if (q > 0) cr_assert_geq(r, c.stratum[c.cover[q - 1]], "sub-patterns come one after the other");
    if (!seen[r]) seen[r] = true, first_of[r] = c.cover[q];
  }
  for (size_t g = 0; g < 4; g++) cr_assert_eq(of_group[g], (int)g, "group %zu (size %zu) ranks %d", g, sizes[g], of_group[g]);
  for (size_t q = 0; q < c.n_cover; q++) {
    size_t mi = c.cover[q], r = (size_t)c.stratum[mi];
    size_t row = (size_t)(c.members[mi] - 100), row0 = (size_t)(c.members[first_of[r]] - 100);
    // Centrality within the sampled members of the group; the true group is a close stand-in here.
    cr_assert_leq(mean_to_group(fs, row0, grp, grp[row0]), mean_to_group(fs, row, grp, grp[row]) * 1.05);
  }
  ns_clib_cluster none = {.kind = NS_SEG_JOB};
  p.strata = 0;
  cr_assert_eq(ns_clib_cluster_fill(fs, rows, n, &p, &none), NS_OK);
  cr_assert_eq(none.n_strata, 0);
  cr_assert_null(none.stratum);
  cr_assert_null(none.cover);
  for (size_t m = 0; m < n; m++) cr_assert_eq(none.members[m], c.members[m], "sub-patterns keep the member order");
  ns_clib_cluster small = {.kind = NS_SEG_JOB};
  p.strata = 4;
  cr_assert_eq(ns_clib_cluster_fill(fs, rows, 12, &p, &small), NS_OK);
  cr_assert_eq(small.n_strata, 0, "12 members are too few for 4 sub-patterns");
  free(c.members), free(c.member_dist), free(c.rep_weight), free(c.rep_feat), free(c.centroid), free(c.stratum),
      free(c.cover);
  free(none.members), free(none.member_dist), free(none.rep_weight), free(none.rep_feat), free(none.centroid);
  free(small.members), free(small.member_dist), free(small.rep_weight), free(small.rep_feat), free(small.centroid);
  free(rows), free(grp);
  ns_featset_free(fs);
}

static void rechecksum(void *buf, size_t n) {
  uint64_t h = ns_fnv1a64(buf, n - 8);
  memcpy((unsigned char *)buf + n - 8, &h, 8);
}

Test(strata, travel_with_the_library_and_bad_ones_are_refused) {
  size_t sizes[] = {40, 30, 12}, *grp;
  ns_seg_kind kinds[] = {NS_SEG_JOB, NS_SEG_JOB, NS_SEG_IDLE};
  size_t M = 3;
  ns_featset *fs = make_groups(M, 3, sizes, kinds, 0.3, &grp);
  char **nm = names(M);
  ns_clib_params p = test_params();
  p.strata = 3;
  ns_clib *lib = NULL, *back = NULL;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)nm, &p, NULL, NULL, &lib), NS_OK, "%s", ns_err_detail());
  size_t with = 0;
  for (size_t c = 0; c < lib->n_clusters; c++) with += lib->clusters[c].n_strata > 0;
  cr_assert_geq(with, 2, "the two job clusters of 30+ members have sub-patterns");
  void *buf = NULL;
  size_t n = 0;
  cr_assert_eq(ns_clib_serialize(lib, &buf, &n), NS_OK);
  cr_assert_eq(ns_clib_deserialize(buf, n, &back), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(back->params.strata, 3);
  for (size_t c = 0; c < lib->n_clusters; c++) {
    ns_clib_cluster *a = &lib->clusters[c], *b = &back->clusters[c];
    cr_assert_eq(a->n_strata, b->n_strata);
    cr_assert_eq(a->n_cover, b->n_cover);
    if (!a->n_strata) continue;
    cr_assert(memcmp(a->stratum, b->stratum, a->size * sizeof *a->stratum) == 0);
    cr_assert(memcmp(a->cover, b->cover, a->n_cover * sizeof *a->cover) == 0);
  }
  free(buf);
  // A format this build does not know, even with a good checksum.
  cr_assert_eq(ns_clib_serialize(lib, &buf, &n), NS_OK);
  uint64_t fmt = 3;
  memcpy((unsigned char *)buf + 8, &fmt, 8);
  rechecksum(buf, n);
  ns_clib *bad = NULL;
  cr_assert_eq(ns_clib_deserialize(buf, n, &bad), NS_ERR_VERSION);
  cr_assert(strstr(ns_err_detail(), "format 3"), "%s", ns_err_detail());
  free(buf);
  // Sub-pattern numbers and cover indices out of range are refused.
  ns_clib_cluster *cl = &lib->clusters[0];
  cr_assert_gt(cl->n_strata, 0);
  int32_t keep = cl->stratum[1];
  cl->stratum[1] = (int32_t)cl->n_strata;
  cr_assert_eq(ns_clib_serialize(lib, &buf, &n), NS_OK);
  cr_assert_eq(ns_clib_deserialize(buf, n, &bad), NS_ERR_CORRUPT);
  free(buf);
  cl->stratum[1] = keep;
  uint64_t kc = cl->cover[0];
  cl->cover[0] = cl->size;
  cr_assert_eq(ns_clib_serialize(lib, &buf, &n), NS_OK);
  cr_assert_eq(ns_clib_deserialize(buf, n, &bad), NS_ERR_CORRUPT);
  cr_assert_null(bad);
  free(buf);
  cl->cover[0] = kc;
  ns_clib_free(lib), ns_clib_free(back);
  free_names(nm, M);
  free(grp);
  ns_featset_free(fs);
}
