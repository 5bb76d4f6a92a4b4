/* Ablation data: C2 random groups (sizes kept, seeded, unlike HAC) and C3
 * equal-length cuts in a SQLite store. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ns_baseline.h"
#include "ns_clib_random.h"
#include "../tmp_store.h"

#define NF NS_CLIB_NFEAT
#define M 3
static char *mnames[M] = {"cpu", "mem", "net"};
static char dbpath[64];

static ns_store *open_tmp(void) { return tmp_store_open("baseline", dbpath); }

static void close_tmp(ns_store *st) {
  ns_store_close(st);
  tmp_store_remove(dbpath);
}

/* ---- C2 ---- */

/* Featset of 3 well-separated job groups (sizes 5, 4, 3) and 2 idle groups
 * (3, 2): features = group offset + small seeded noise. */
static ns_featset *groups(void) {
  static const int gsize[5] = {5, 4, 3, 3, 2};
  ns_featset *fs = NULL;
  cr_assert_eq(ns_featset_create(17, M, &fs), NS_OK);
  size_t i = 0;
  unsigned r = 1;
  for (int g = 0; g < 5; g++)
    for (int k = 0; k < gsize[g]; k++, i++) {
      fs->ids[i] = 100 + (int64_t)i;
      fs->kind[i] = g < 3 ? NS_SEG_JOB : NS_SEG_IDLE;
      for (size_t q = 0; q < M * NF; q++) {
        r = r * 1103515245u + 12345u;
        fs->f[i * M * NF + q] = (float)(10.0 * g * ((q % 3) == 0) + 0.1 * (((r >> 8) & 0xffff) / 65536.0));
      }
    }
  return fs;
}

static ns_clib_params c2_params(void) {
  ns_clib_params p;
  ns_clib_params_default(&p);
  p.k_min = 2;
  p.k_max = 4;
  p.min_size = 1;
  p.n_rep = 2;
  p.threads = 1;
  return p;
}

/* Cluster index of segment id in lib (by membership). */
static size_t owner(const ns_clib *lib, int64_t id) {
  for (size_t c = 0; c < lib->n_clusters; c++)
    for (size_t r = 0; r < lib->clusters[c].size; r++)
      if (lib->clusters[c].members[r] == id) return c;
  cr_assert_fail("segment %lld in no cluster", (long long)id);
  return 0;
}

Test(c2, keeps_sizes_seeded_and_differs_from_hac) {
  ns_featset *fs = groups();
  ns_clib_params p = c2_params();
  ns_clib *hac = NULL, *a = NULL, *b = NULL, *c = NULL;
  cr_assert_eq(ns_clib_build(fs, (const char *const *)mnames, &p, NULL, NULL, &hac), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(hac->n_clusters, 5, "HAC found %zu clusters", hac->n_clusters);
  cr_assert_eq(ns_clib_randomize(hac, fs, 1, &a), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns_clib_randomize(hac, fs, 1, &b), NS_OK);
  cr_assert_eq(ns_clib_randomize(hac, fs, 2, &c), NS_OK);
  cr_assert_eq(a->n_clusters, hac->n_clusters);
  bool same_ab = true, same_ac = true, same_hac = true;
  for (size_t k = 0; k < hac->n_clusters; k++) {
    const ns_clib_cluster *h = &hac->clusters[k], *x = &a->clusters[k];
    cr_assert_eq(x->kind, h->kind);
    cr_assert_eq(x->label, h->label);
    cr_assert_eq(x->size, h->size);
    cr_assert_eq(x->n_rep, h->n_rep);
    cr_assert_null(x->mac);
    // Every member keeps its kind; statistics follow the clib rules.
    for (size_t r = 0; r < x->size; r++) {
      size_t row = 0;
      while (fs->ids[row] != x->members[r]) row++;
      cr_assert_eq(fs->kind[row], x->kind);
      double d = ns_clib_distance(fs->f + row * M * NF, x->centroid, M);
      cr_assert_float_eq(x->member_dist[r], (float)d, 1e-3 * (1 + d));
      cr_assert_leq(x->member_dist[r], x->radius);
      if (r > 0 && r != x->n_rep) cr_assert_geq(x->member_dist[r], x->member_dist[r - 1]);
    }
    float wmax = 0, wmin = 2;
    for (size_t r = 0; r < x->n_rep; r++) {
      wmax = fmaxf(wmax, x->rep_weight[r]), wmin = fminf(wmin, x->rep_weight[r]);
      cr_assert_eq(memcmp(x->rep_feat + r * M * NF, fs->f + (x->members[r] - 100) * M * NF, M * NF * sizeof(float)), 0);
    }
    cr_assert_float_eq(wmax, 1.0f, 1e-6);
    if (x->n_rep > 1 && x->member_dist[0] != x->member_dist[x->n_rep - 1]) cr_assert_float_eq(wmin, 0.1f, 1e-6);
    // Centroid = mean of the representatives.
    for (size_t q = 0; q < M * NF; q += 37) {
      double s = 0;
      for (size_t r = 0; r < x->n_rep; r++) s += x->rep_feat[r * M * NF + q];
      cr_assert_float_eq(x->centroid[q], (float)(s / x->n_rep), 1e-4);
    }
    if (memcmp(x->members, b->clusters[k].members, x->size * sizeof(int64_t))) same_ab = false;
    if (memcmp(x->members, c->clusters[k].members, x->size * sizeof(int64_t))) same_ac = false;
  }
  cr_assert(same_ab, "same seed gave other groups");
  cr_assert_not(same_ac, "seed ignored");
  // Not the HAC partition: some pair together in HAC is split in C2.
  for (size_t i = 0; i < fs->n; i++)
    for (size_t j = i + 1; j < fs->n; j++)
      if ((owner(hac, fs->ids[i]) == owner(hac, fs->ids[j])) != (owner(a, fs->ids[i]) == owner(a, fs->ids[j])))
        same_hac = false;
  cr_assert_not(same_hac, "random groups equal the HAC partition");
  ns_clib_free(a), ns_clib_free(b), ns_clib_free(c);
  // Features that are not the library's segments are refused.
  fs->n = 16;
  cr_assert_eq(ns_clib_randomize(hac, fs, 1, &a), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "idle"), "%s", ns_err_detail());
  cr_assert_null(a);
  fs->n = 17;
  fs->ids[0] = 999;
  cr_assert_eq(ns_clib_randomize(hac, fs, 1, &a), NS_ERR_INVAL);
  cr_assert(strstr(ns_err_detail(), "segment 100"), "%s", ns_err_detail());
  cr_assert_eq(ns_clib_randomize(NULL, fs, 1, &a), NS_ERR_INVAL);
  ns_clib_free(hac);
  ns_featset_free(fs);
}

/* Stored segment: pattern g (sine / ramp / square) with seeded noise. */
static ns_segment *pattern(int g, int seed, size_t T, const char *node, const char *job, int64_t start) {
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create(T, M, &s), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(s, mnames), NS_OK);
  cr_assert_eq(ns_segment_set_meta(s, "lab", node, job, start, 15000), NS_OK);
  unsigned r = (unsigned)seed * 2654435761u + 1;
  for (size_t t = 0; t < T; t++)
    for (size_t m = 0; m < M; m++) {
      r = r * 1103515245u + 12345u;
      double noise = ((r >> 8) & 0xffff) / 65536.0 - 0.5, v;
      if (g == 0) v = sin(2 * M_PI * t / 12.0 + m);
      else if (g == 1) v = (double)t / T * (m + 1);
      else v = ((t / 10) % 2 ? 1.0 : -1.0) * (m + 1);
      s->x[t * M + m] = (float)(v + 0.1 * noise);
    }
  return s;
}

Test(c2, from_store_with_mac) {
  ns_store *st = open_tmp();
  int n = 0;
  for (int g = 0; g < 3; g++)
    for (int k = 0; k < 4; k++, n++) {
      char job[16];
      snprintf(job, sizeof job, "%d", 100 + n);
      ns_segment *s = pattern(g, n, 240, "cn1", job, 1700000000000LL + n * 86400000LL);
      cr_assert_eq(ns_store_put_segment(st, s, "train", NULL), NS_OK, "%s", ns_err_detail());
      ns_segment_free(s);
    }
  ns_clib_params p = c2_params();
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.split = "train";
  ns_clib *lib = NULL, *ref = NULL;
  cr_assert_eq(ns_clib_random_build_store(st, &f, &p, 3, NULL, NULL, &lib, &ref), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(lib->n_clusters, ref->n_clusters);
  size_t tot = 0;
  for (size_t c = 0; c < lib->n_clusters; c++) {
    cr_assert_eq(lib->clusters[c].size, ref->clusters[c].size);
    tot += lib->clusters[c].size;
    cr_assert_not_null(lib->clusters[c].mac_weight, "MAC weights set");
    double sw = 0;
    for (size_t m = 0; m < M; m++) sw += lib->clusters[c].mac_weight[m];
    cr_assert_float_eq(sw, 1.0, 1e-4);
  }
  cr_assert_eq(tot, 12);
  // The library round-trips through the clib artifact like a HAC one.
  cr_assert_eq(ns_clib_save(st, lib, 0), NS_OK, "%s", ns_err_detail());
  ns_clib *back = NULL;
  cr_assert_eq(ns_clib_load(st, lib->version, &back), NS_OK);
  cr_assert_eq(memcmp(back->clusters[0].members, lib->clusters[0].members, lib->clusters[0].size * 8), 0);
  ns_clib_free(back), ns_clib_free(lib), ns_clib_free(ref);
  f.split = "nothing";
  cr_assert_eq(ns_clib_random_build_store(st, &f, &p, 3, NULL, NULL, &lib, NULL), NS_ERR_EMPTY);
  cr_assert_null(lib);
  close_tmp(st);
}

/* ---- C3 ---- (SQLite always; PostgreSQL too when NS_TEST_PG_URI is set) */

#define T0 1700000000000LL
#define IV 15000LL
static char cl[64]; /* cluster name: unique per run on the shared PostgreSQL */
static bool on_pg;

static ns_store *open_which(const char *which) {
  on_pg = strcmp(which, "pg") == 0;
  if (!on_pg) {
    snprintf(cl, sizeof cl, "lab");
    return open_tmp();
  }
  const char *uri = getenv("NS_TEST_PG_URI");
  if (!uri) cr_skip_test("NS_TEST_PG_URI not set");
  snprintf(cl, sizeof cl, "c3t%d", (int)getpid());
  ns_store *st = NULL;
  cr_assert_eq(ns_store_open(uri, &st), NS_OK, "%s", ns_err_detail());
  return st;
}

static void close_which(ns_store *st) {
  if (!on_pg) {
    close_tmp(st);
    return;
  }
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = cl;
  int64_t *ids = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(st, &f, &ids, &n), NS_OK);
  for (size_t i = 0; i < n; i++) cr_assert_eq(ns_store_delete_segment(st, ids[i]), NS_OK);
  free(ids);
  ns_store_close(st);
}

static void put(ns_store *st, const char *node, const char *job, int64_t row0, size_t T, const char *split) {
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create(T, M, &s), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(s, mnames), NS_OK);
  cr_assert_eq(ns_segment_set_meta(s, cl, node, job, T0 + row0 * IV, IV), NS_OK);
  // Value = global row index, so joined pieces can be checked for continuity.
  for (size_t t = 0; t < T; t++)
    for (size_t m = 0; m < M; m++) s->x[t * M + m] = (float)(row0 + (int64_t)t) + 0.25f * (float)m;
  cr_assert_eq(ns_store_put_segment(st, s, split, NULL), NS_OK, "%s", ns_err_detail());
  ns_segment_free(s);
}

static ns_store *c3_store(const char *which) {
  ns_store *st = open_which(which);
  // cn1: job rows 0-99, idle 100-149 (contiguous), gap, job 200-229.
  put(st, "cn1", "11", 0, 100, "train");
  put(st, "cn1", NULL, 100, 50, "train");
  put(st, "cn1", "12", 200, 30, "train");
  // cn2: one idle stretch of 250 rows; cn3 in another split.
  put(st, "cn2", NULL, 0, 250, "train");
  put(st, "cn3", NULL, 0, 250, "test");
  return st;
}

static size_t count_split(ns_store *st, const char *split, int64_t **ids) {
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = cl;
  f.split = split;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(st, &f, ids, &n), NS_OK);
  return n;
}

static void cuts_and_rerun(const char *which) {
  ns_store *st = c3_store(which);
  size_t n = 0;
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 60 * IV, false, "train-c3", &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 6, "cn1: 150 rows -> 2, 30 rows -> 0; cn2: 250 -> 4; got %zu", n);
  int64_t *ids = NULL;
  cr_assert_eq(count_split(st, "train-c3", &ids), 6);
  int per_node[2] = {0, 0};
  for (size_t i = 0; i < 6; i++) {
    ns_segment *s = NULL;
    cr_assert_eq(ns_store_get_segment(st, ids[i], &s), NS_OK);
    cr_assert_eq(s->T, 60);
    cr_assert_eq(s->kind, NS_SEG_JOB);
    cr_assert_eq(s->interval_ms, IV);
    int64_t row0 = (s->start_ms - T0) / IV;
    char want[32];
    int k = strcmp(s->node, "cn1") == 0 ? 0 : 1;
    cr_assert(k == 1 || row0 < 150, "cn1 piece at row %lld crosses the gap", (long long)row0);
    snprintf(want, sizeof want, "c3-%s-%lld", s->node, (long long)(row0 / 60));
    cr_assert_str_eq(s->job_id, want);
    per_node[k]++;
    for (size_t t = 0; t < s->T; t++)
      cr_assert_float_eq(s->x[t * M + 2], (float)(row0 + (int64_t)t) + 0.5f, 1e-3, "row %zu", t);
    ns_segment_free(s);
  }
  cr_assert_eq(per_node[0], 2);
  cr_assert_eq(per_node[1], 4);
  free(ids);
  // The cuts feed the cluster library like prep's segments (all of kind job).
  ns_clib_params p = c2_params();
  p.k_min = 1;
  p.k_max = 2;
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = cl;
  f.split = "train-c3";
  ns_clib *lib = NULL;
  cr_assert_eq(ns_clib_build_store(st, &f, &p, NULL, NULL, &lib), NS_OK, "%s", ns_err_detail());
  size_t tot = 0;
  for (size_t c = 0; c < lib->n_clusters; c++) {
    cr_assert_eq(lib->clusters[c].kind, NS_SEG_JOB);
    tot += lib->clusters[c].size;
  }
  cr_assert_eq(tot, 6);
  ns_clib_free(lib);
  // Re-run: replaced, not doubled.
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 60 * IV, false, "train-c3", &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 6);
  cr_assert_eq(count_split(st, "train-c3", &ids), 6);
  free(ids);
  // Longer cuts replace the shorter ones.
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 100 * IV, false, "train-c3", &n), NS_OK);
  cr_assert_eq(n, 3, "150 -> 1, 250 -> 2; got %zu", n);
  cr_assert_eq(count_split(st, "train-c3", &ids), 3);
  free(ids);
  // A run that fails half-way (cut under 2 rows, found per segment) keeps the previous cuts.
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, IV, false, "train-c3", &n), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "2 rows"), "%s", ns_err_detail());
  cr_assert_eq(n, 0);
  cr_assert_eq(count_split(st, "train-c3", &ids), 3);
  free(ids);
  // Scoring cuts keep the tail: cn3's 250 rows -> 4 x 60 + 10, every row once.
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "test", 0, 0, 60 * IV, true, "test-c3", &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 5);
  cr_assert_eq(count_split(st, "test-c3", &ids), 5);
  size_t rows = 0, shortest = 1000;
  for (size_t i = 0; i < 5; i++) {
    ns_segment *s = NULL;
    cr_assert_eq(ns_store_get_segment(st, ids[i], &s), NS_OK);
    cr_assert_float_eq(s->x[2], (float)((s->start_ms - T0) / IV) + 0.5f, 1e-3);
    rows += s->T;
    shortest = s->T < shortest ? s->T : shortest;
    ns_segment_free(s);
    cr_assert_eq(ns_store_delete_segment(st, ids[i]), NS_OK);
  }
  free(ids);
  cr_assert_eq(rows, 250);
  cr_assert_eq(shortest, 10);
  // Source split NULL: all splits (cn3 too) but never earlier cuts.
  cr_assert_eq(ns_c3_equal_cuts(st, cl, NULL, 0, 0, 60 * IV, false, "train-c3", &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 10);
  cr_assert_eq(count_split(st, "train", &ids), 4, "sources untouched");
  free(ids);
  // The same pieces into a second split would give two rows one name: refused, nothing lost.
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 60 * IV, false, "other-c3", &n), NS_ERR_EXISTS);
  cr_assert(strstr(ns_err_detail(), "c3-cn1-0"), "%s", ns_err_detail());
  cr_assert_eq(count_split(st, "other-c3", &ids), 0);
  free(ids);
  cr_assert_eq(count_split(st, "train-c3", &ids), 10);
  free(ids);
  close_which(st);
}

Test(c3, cut_counts_lengths_and_rerun_sqlite) { cuts_and_rerun("sqlite"); }
Test(c3, cut_counts_lengths_and_rerun_pg) { cuts_and_rerun("pg"); }

Test(c3, time_range) {
  ns_store *st = c3_store("sqlite");
  size_t n = 0;
  // Rows 30..229: cn1 run 30..149 (120 rows -> 2), 200..229 (0); cn2 30..229 (200 -> 3).
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", T0 + 30 * IV, T0 + 229 * IV, 60 * IV, false, "c3r", &n), NS_OK,
               "%s", ns_err_detail());
  cr_assert_eq(n, 5);
  int64_t *ids = NULL;
  cr_assert_eq(count_split(st, "c3r", &ids), 5);
  ns_segment *s = NULL;
  cr_assert_eq(ns_store_get_segment(st, ids[0], &s), NS_OK);
  cr_assert_eq(s->start_ms, T0 + 30 * IV);
  ns_segment_free(s);
  free(ids);
  close_which(st);
}

Test(c3, bad_input) {
  ns_store *st = c3_store("sqlite");
  size_t n = 99;
  cr_assert_eq(ns_c3_equal_cuts(st, "nope", "train", 0, 0, 60 * IV, false, "train-c3", &n), NS_ERR_EMPTY);
  cr_assert(strstr(ns_err_detail(), "'nope'"), "%s", ns_err_detail());
  cr_assert_eq(n, 0);
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "nosplit", 0, 0, 60 * IV, false, "train-c3", &n), NS_ERR_EMPTY);
  cr_assert(strstr(ns_err_detail(), "'nosplit'"), "%s", ns_err_detail());
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, IV, false, "train-c3", &n), NS_ERR_RANGE);
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 0, false, "train-c3", &n), NS_ERR_RANGE);
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 60 * IV, false, "train", &n), NS_ERR_INVAL);
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 60 * IV, false, NULL, &n), NS_ERR_INVAL);
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", T0 + 10 * IV, T0, 60 * IV, false, "x", &n), NS_ERR_RANGE);
  cr_assert_eq(ns_c3_equal_cuts(NULL, cl, "train", 0, 0, 60 * IV, false, "x", &n), NS_ERR_INVAL);
  cr_assert_eq(ns_c3_equal_cuts(st, cl, "train", 0, 0, 60 * IV, false, "x", NULL), NS_ERR_INVAL);
  int64_t *ids = NULL;
  cr_assert_eq(count_split(st, "train-c3", &ids), 0, "failed runs leave nothing behind");
  free(ids);
  close_which(st);
}
