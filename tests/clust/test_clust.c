/* ns_clust: HAC partitions and silhouettes against the scipy/sklearn goldens
 * in $NS_SHARED/golden/hac, invariants and bad input. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_clust.h"

static cJSON *load_golden(const char *name) {
  const char *sh = getenv("NS_SHARED");
  if (!sh) cr_skip_test("NS_SHARED not set");
  char path[1024];
  snprintf(path, sizeof path, "%s/golden/hac/%s.json", sh, name);
  FILE *f = fopen(path, "rb");
  if (!f) cr_skip_test("golden %s absent", path);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)len + 1);
  cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
  buf[len] = 0;
  fclose(f);
  cJSON *j = cJSON_Parse(buf);
  free(buf);
  cr_assert_not_null(j, "cannot parse %s", path);
  return j;
}

static float *golden_D(cJSON *j, size_t *n) {
  cJSON *D = cJSON_GetObjectItem(j, "D");
  *n = (size_t)cJSON_GetArraySize(D);
  float *c = malloc(ns_cond_size(*n) * sizeof *c);
  for (size_t i = 0; i < *n; i++) {
    cJSON *row = cJSON_GetArrayItem(D, (int)i);
    for (size_t k = i + 1; k < *n; k++) c[ns_cond_index(*n, i, k)] = (float)cJSON_GetArrayItem(row, (int)k)->valuedouble;
  }
  return c;
}

static void check_problem(const char *name) {
  cJSON *j = load_golden(name);
  size_t n;
  float *D = golden_D(j, &n);
  cJSON *res = cJSON_GetObjectItem(j, "results");
  const char *methods[] = {"complete", "average", "single", "ward"};
  int *lab = malloc(n * sizeof *lab);
  int checked = 0;
  for (int mi = 0; mi < 4; mi++) {
    ns_linkage l;
    cr_assert_eq(ns_linkage_parse(methods[mi], &l), NS_OK);
    ns_merge *z = NULL;
    cr_assert_eq(ns_clust_hac(D, n, l, NULL, NULL, &z), NS_OK, "%s", ns_err_detail());
    cJSON *m = cJSON_GetObjectItem(res, methods[mi]);
    // Merge heights against scipy's linkage (float32 input: ~1e-6 relative).
    cJSON *Z = cJSON_GetObjectItem(m, "scipy_linkage");
    for (size_t r = 0; r + 1 < n; r++) {
      double h = cJSON_GetArrayItem(cJSON_GetArrayItem(Z, (int)r), 2)->valuedouble;
      cr_assert(fabs(z[r].height - h) <= 1e-5 * (1 + h), "%s %s merge %zu: %g vs %g", name, methods[mi], r,
                z[r].height, h);
      cr_assert_eq(z[r].size, (size_t)cJSON_GetArrayItem(cJSON_GetArrayItem(Z, (int)r), 3)->valueint);
    }
    cJSON *ks = cJSON_GetObjectItem(m, "n_clusters");
    cJSON *e;
    cJSON_ArrayForEach(e, ks) {
      size_t k = (size_t)atoi(e->string);
      cr_assert_eq(ns_clust_cut(z, n, k, lab), NS_OK);
      cJSON *canon = cJSON_GetObjectItem(e, "labels_canonical");
      for (size_t i = 0; i < n; i++)
        cr_assert_eq(lab[i], cJSON_GetArrayItem(canon, (int)i)->valueint, "%s %s k=%zu item %zu", name,
                     methods[mi], k, i);
      cJSON *sj = cJSON_GetObjectItem(e, "silhouette_on_D");
      if (!sj) sj = cJSON_GetObjectItem(e, "silhouette");
      double s;
      cr_assert_eq(ns_clust_silhouette(D, n, lab, 2, &s), NS_OK, "%s", ns_err_detail());
      cr_assert(fabs(s - sj->valuedouble) <= 1e-6, "%s %s k=%zu silhouette %.9f vs %.9f", name, methods[mi], k, s,
                sj->valuedouble);
      checked++;
    }
    free(z);
  }
  cr_assert_eq(checked, 20);
  free(lab);
  free(D);
  cJSON_Delete(j);
}

Test(golden, blobs3) { check_problem("blobs3_2d_n12"); }
Test(golden, blobs4_unequal) { check_problem("blobs4_unequal_8d_n40"); }
Test(golden, uniform) { check_problem("uniform_5d_n25"); }

/* Best k by silhouette, as the README states: 3 for blobs3, 4 for blobs4 (all
 * methods), 5 for uniform with complete linkage. */
static void check_best(const char *name, ns_linkage l, size_t want) {
  cJSON *j = load_golden(name);
  size_t n;
  float *D = golden_D(j, &n);
  ns_clust_opts o = {.linkage = l, .k_min = 2, .k_max = 6, .min_size = 1, .threads = 2};
  ns_clust_result *r = NULL;
  cr_assert_eq(ns_clust_select(D, n, &o, &r), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(r->k_best, want, "%s %s: k %zu", name, ns_linkage_name(l), r->k_best);
  cr_assert_eq(r->k, want);
  cr_assert_eq(r->k_lo, 2);
  cr_assert_eq(r->k_hi, 6);
  // The selection's silhouettes agree with the single-partition routine.
  int *lab = malloc(n * sizeof *lab);
  for (size_t k = 2; k <= 6; k++) {
    double s;
    cr_assert_eq(ns_clust_cut(r->merges, n, k, lab), NS_OK);
    cr_assert_eq(ns_clust_silhouette(D, n, lab, 1, &s), NS_OK);
    cr_assert(fabs(s - r->silhouette[k - 2]) < 1e-12);
  }
  free(lab);
  ns_clust_result_free(r);
  free(D);
  cJSON_Delete(j);
}

Test(select, best_k_matches_readme) {
  for (int l = 0; l < 4; l++) {
    check_best("blobs3_2d_n12", (ns_linkage)l, 3);
    check_best("blobs4_unequal_8d_n40", (ns_linkage)l, 4);
  }
  check_best("uniform_5d_n25", NS_LINKAGE_COMPLETE, 5);
}

/* Random points in the plane, Euclidean condensed matrix. */
static float *random_D(size_t n, unsigned seed, double **Xout) {
  double *X = malloc(2 * n * sizeof *X);
  srand(seed);
  for (size_t i = 0; i < 2 * n; i++) X[i] = (double)rand() / RAND_MAX * 10.0;
  float *D = malloc(ns_cond_size(n) * sizeof *D);
  for (size_t i = 0; i < n; i++)
    for (size_t k = i + 1; k < n; k++)
      D[ns_cond_index(n, i, k)] = (float)hypot(X[2 * i] - X[2 * k], X[2 * i + 1] - X[2 * k + 1]);
  if (Xout) *Xout = X;
  else free(X);
  return D;
}

Test(invariants, permutation_keeps_partition) {
  size_t n = 60;
  double *X;
  float *D = random_D(n, 7, &X);
  size_t *perm = malloc(n * sizeof *perm);
  for (size_t i = 0; i < n; i++) perm[i] = i;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)rand() % (i + 1), t = perm[i];
    perm[i] = perm[j], perm[j] = t;
  }
  float *P = malloc(ns_cond_size(n) * sizeof *P);
  for (size_t i = 0; i < n; i++)
    for (size_t k = i + 1; k < n; k++) P[ns_cond_index(n, i, k)] = D[ns_cond_index(n, perm[i], perm[k])];
  for (int l = 0; l < 4; l++) {
    ns_clust_opts o = {.linkage = (ns_linkage)l, .k_min = 2, .k_max = 10, .min_size = 2, .threads = 2};
    ns_clust_result *a = NULL, *b = NULL;
    cr_assert_eq(ns_clust_select(D, n, &o, &a), NS_OK);
    cr_assert_eq(ns_clust_select(P, n, &o, &b), NS_OK);
    cr_assert_eq(a->k, b->k);
    cr_assert(fabs(a->sil_best - b->sil_best) < 1e-9);
    // Same partition up to labels: co-membership agrees for every pair.
    for (size_t i = 0; i < n; i++)
      for (size_t k = 0; k < n; k++)
        cr_assert_eq(a->labels[perm[i]] == a->labels[perm[k]], b->labels[i] == b->labels[k]);
    ns_clust_result_free(a);
    ns_clust_result_free(b);
  }
  free(perm), free(P), free(D), free(X);
}

Test(invariants, threads_do_not_change_silhouette) {
  size_t n = 300;
  float *D = random_D(n, 11, NULL);
  ns_merge *z = NULL;
  cr_assert_eq(ns_clust_hac(D, n, NS_LINKAGE_AVERAGE, NULL, NULL, &z), NS_OK);
  int lab[300];
  cr_assert_eq(ns_clust_cut(z, n, 7, lab), NS_OK);
  double s1, s3;
  cr_assert_eq(ns_clust_silhouette(D, n, lab, 1, &s1), NS_OK);
  cr_assert_eq(ns_clust_silhouette(D, n, lab, 3, &s3), NS_OK);
  cr_assert(fabs(s1 - s3) < 1e-12);
  cr_assert(s1 > 0.2, "clustered plane points have positive silhouette, got %g", s1);
  free(z), free(D);
}

Test(invariants, min_size_merges_tiny_clusters) {
  // Two tight groups of 5 and one far outlier: k = 3 is best, the outlier is merged.
  size_t n = 11;
  float *D = calloc(ns_cond_size(n), sizeof *D);
  for (size_t i = 0; i < n; i++)
    for (size_t k = i + 1; k < n; k++) {
      int gi = i < 5 ? 0 : i < 10 ? 1 : 2, gk = k < 5 ? 0 : k < 10 ? 1 : 2;
      double d = gi == gk ? 0.1 + 0.01 * (double)(i + k) : 10;
      if ((gi == 2 && gk == 1) || (gi == 1 && gk == 2)) d = 40;
      if ((gi == 2 && gk == 0) || (gi == 0 && gk == 2)) d = 30;
      D[ns_cond_index(n, i, k)] = (float)d;
    }
  ns_clust_opts o = {.linkage = NS_LINKAGE_COMPLETE, .k_min = 2, .k_max = 5, .min_size = 1, .threads = 1};
  ns_clust_result *r = NULL;
  cr_assert_eq(ns_clust_select(D, n, &o, &r), NS_OK);
  cr_assert_eq(r->k, 3);
  ns_clust_result_free(r);
  o.min_size = 2;
  cr_assert_eq(ns_clust_select(D, n, &o, &r), NS_OK);
  cr_assert_eq(r->k_best, 3);
  cr_assert_eq(r->k, 2);
  cr_assert_eq(r->labels[10], r->labels[0], "outlier joins the nearer group (mean distance 30 < 40)");
  cr_assert_neq(r->labels[5], r->labels[0]);
  ns_clust_result_free(r);
  free(D);
}

Test(edge, tiny_inputs) {
  ns_clust_opts o = {.linkage = NS_LINKAGE_COMPLETE, .k_min = 2, .k_max = 20, .min_size = 2, .threads = 2};
  ns_clust_result *r = NULL;
  cr_assert_eq(ns_clust_select(NULL, 1, &o, &r), NS_OK);
  cr_assert_eq(r->k, 1);
  cr_assert_eq(r->labels[0], 0);
  ns_clust_result_free(r);
  float d2[1] = {3};
  cr_assert_eq(ns_clust_select(d2, 2, &o, &r), NS_OK);
  cr_assert_eq(r->k, 1);
  cr_assert_eq(r->merges[0].height, 3);
  ns_clust_result_free(r);
  // k_min above n-1: nothing scorable, one cluster.
  float d4[6] = {1, 5, 5, 5, 5, 1};
  o.k_min = 5, o.k_max = 9;
  cr_assert_eq(ns_clust_select(d4, 4, &o, &r), NS_OK);
  cr_assert_eq(r->k, 1);
  cr_assert(r->k_hi < r->k_lo);
  ns_clust_result_free(r);
  cr_assert_eq(ns_clust_select(NULL, 0, &o, &r), NS_ERR_EMPTY);
  cr_assert_null(r);
}

Test(bad_input, nan_negative_and_ranges) {
  float D[3] = {1, NAN, 2};
  ns_merge *z = NULL;
  cr_assert_eq(ns_clust_hac(D, 3, NS_LINKAGE_COMPLETE, NULL, NULL, &z), NS_ERR_NONFINITE);
  cr_assert(strstr(ns_err_detail(), "d(0,2)"), "%s", ns_err_detail());
  cr_assert_null(z);
  D[1] = -1;
  cr_assert_eq(ns_clust_hac(D, 3, NS_LINKAGE_WARD, NULL, NULL, &z), NS_ERR_RANGE);
  D[1] = 1.5f;
  cr_assert_eq(ns_clust_hac(D, 3, (ns_linkage)9, NULL, NULL, &z), NS_ERR_INVAL);
  cr_assert_eq(ns_clust_hac(D, 3, NS_LINKAGE_SINGLE, NULL, NULL, &z), NS_OK);
  int lab[3];
  cr_assert_eq(ns_clust_cut(z, 3, 0, lab), NS_ERR_RANGE);
  cr_assert_eq(ns_clust_cut(z, 3, 4, lab), NS_ERR_RANGE);
  cr_assert_eq(ns_clust_cut(z, 3, 3, lab), NS_OK);
  cr_assert(lab[0] == 0 && lab[1] == 1 && lab[2] == 2);
  double s;
  int one[3] = {0, 0, 0};
  cr_assert_eq(ns_clust_silhouette(D, 3, one, 1, &s), NS_ERR_RANGE);
  int neg[3] = {0, -1, 1};
  cr_assert_eq(ns_clust_silhouette(D, 3, neg, 1, &s), NS_ERR_RANGE);
  ns_linkage l;
  cr_assert_eq(ns_linkage_parse("median", &l), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "median"));
  ns_clust_opts o = {.linkage = NS_LINKAGE_COMPLETE, .k_min = 9, .k_max = 3};
  ns_clust_result *r = NULL;
  cr_assert_eq(ns_clust_select(D, 3, &o, &r), NS_ERR_RANGE);
  free(z);
}

Test(edge, identical_items_and_ties) {
  // Every distance 0 (identical segments), then every distance 1: no
  // endless chain, a full dendrogram, silhouette 0, the smallest k on ties.
  size_t n = 10;
  float *D = calloc(ns_cond_size(n), sizeof *D);
  for (int pass = 0; pass < 2; pass++) {
    for (size_t q = 0; q < ns_cond_size(n); q++) D[q] = (float)pass;
    for (int l = 0; l < 4; l++) {
      ns_clust_opts o = {.linkage = (ns_linkage)l, .k_min = 2, .k_max = 5, .min_size = 1, .threads = 2};
      ns_clust_result *r = NULL;
      cr_assert_eq(ns_clust_select(D, n, &o, &r), NS_OK);
      cr_assert_eq(r->merges[n - 2].size, n);
      cr_assert_eq(r->merges[n - 2].height, (double)pass);
      for (size_t k = 2; k <= 5; k++) cr_assert(fabs(r->silhouette[k - 2]) < 1e-12);
      cr_assert_eq(r->k_best, 2);
      ns_clust_result_free(r);
    }
  }
  free(D);
}
