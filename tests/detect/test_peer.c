/* Peer reference scores (ns_peer.h): a stretch on one node of a job stands
 * out against the job's other nodes; single-node jobs have no reference;
 * idle segments are judged against other idle nodes; nodes sampling at their
 * own phase still line up; calibration trimming marks only long runs; store
 * errors come back. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ns_db.h"
#include "ns_peer.h"
#include "ns_store.h"
#include "../tmp_store.h"

#define NM 4
#define NT 128
#define IV 15000
#define W 32
#define T0 1700000000000LL

static char *names[NM] = {"cpu_user", "mem_used", "net_rx", "io_wait"};
static ns_store *store;
static ns_model *model;
static char dbpath[64];

/* job NULL: idle. offset_ms shifts the sampling phase. */
static ns_segment *put(const char *node, const char *job, int64_t offset_ms, int bump_from, int bump_to) {
  ns_segment *s = NULL;
  cr_assert_eq(ns_segment_create(NT, NM, &s), NS_OK);
  cr_assert_eq(ns_segment_set_metrics(s, names), NS_OK);
  cr_assert_eq(ns_segment_set_meta(s, "lab", node, job, T0 + offset_ms, IV), NS_OK);
  for (int t = 0; t < NT; t++)
    for (int m = 0; m < NM; m++) s->x[t * NM + m] = (float)(0.5 * sin(t / (6.0 + m)));
  for (int t = bump_from; t < bump_to; t++) s->x[t * NM + 1] = 4.5f;
  cr_assert_eq(ns_store_put_segment(store, s, "train", &s->id), NS_OK, "%s", ns_err_detail());
  return s;
}

static void setup(void) {
  store = tmp_store_open("peer", dbpath);
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = NM, hp.window = W, hp.n_layers = 1, hp.n_heads = 2, hp.threads = 1;
  cr_assert_eq(ns_model_create(&hp, (const char *const *)names, NULL, &model), NS_OK, "%s", ns_err_detail());
}

static void teardown(void) {
  ns_model_free(model);
  ns_store_close(store);
  tmp_store_remove(dbpath);
}

TestSuite(peer, .init = setup, .fini = teardown, .timeout = 60);

static void series_of(ns_segment *const *seg, size_t n, ns_train_series *ser) {
  for (size_t i = 0; i < n; i++) ser[i] = (ns_train_series){seg[i]->x, seg[i]->T, 1.0f, 0, NULL};
}

/* Window ratios of every series of seg (n <= 8), windows in canonical order. */
static void ratios(ns_segment *const *seg, size_t n, int max_peers, float *out, size_t *nw_out) {
  ns_train_series ser[8];
  series_of(seg, n, ser);
  ns_train_window *w = NULL;
  size_t nw = 0;
  cr_assert_eq(ns_train_list_windows(ser, n, W, &w, &nw), NS_OK);
  float err[64];
  cr_assert_leq(nw, 64);
  cr_assert_eq(ns_train_evaluate(model, ser, n, NULL, 0, err, NULL), NS_OK, "%s", ns_err_detail());
  float **ref = NULL;
  cr_assert_eq(ns_peer_ref(store, NULL, model, seg, ser, n, max_peers, &ref), NS_OK, "%s", ns_err_detail());
  ns_peer_window_ratio(err, w, nw, W, ser, ref, out);
  ns_peer_ref_free(ref, n);
  free(w);
  *nw_out = nw;
}

Test(peer, stretch_on_one_node_stands_out_against_the_job) {
  ns_segment *seg[4] = {put("cn01", "7", 0, -1, -1), put("cn02", "7", 0, 34, 94), put("cn03", "7", 0, -1, -1),
                        put("cn04", "7", 0, -1, -1)};
  float r[64];
  size_t nw = 0;
  ratios(seg, 4, 8, r, &nw);
  cr_assert_eq(nw, 16); /* 4 windows per series */
  for (size_t k = 0; k < nw; k++) {
    cr_assert(isfinite(r[k]), "window %zu has no reference", k);
    bool bumped = k == 5 || k == 6; /* cn02, rows 32-63 and 64-95 */
    if (bumped) cr_assert_gt(r[k], 3.0, "window %zu: %g", k, r[k]);
    else cr_assert(r[k] > 0.5 && r[k] < 2.0, "window %zu: %g", k, r[k]);
  }
  /* The same stretch on every node is the job's regime, not contamination. */
  ns_segment *all[3] = {put("cn05", "9", 0, 40, 70), put("cn06", "9", 0, 40, 70), put("cn07", "9", 0, 40, 70)};
  ratios(all, 3, 8, r, &nw);
  for (size_t k = 0; k < nw; k++) cr_assert(r[k] > 0.5 && r[k] < 2.0, "window %zu: %g", k, r[k]);
  for (int i = 0; i < 4; i++) ns_segment_free(seg[i]);
  for (int i = 0; i < 3; i++) ns_segment_free(all[i]);
}

Test(peer, single_node_job_has_no_reference_and_idle_uses_other_idle_nodes) {
  ns_segment *solo = put("cn01", "8", 0, 40, 70);
  float r[64];
  size_t nw = 0;
  ratios(&solo, 1, 8, r, &nw);
  for (size_t k = 0; k < nw; k++) cr_assert(isnan(r[k]), "window %zu: %g", k, r[k]);
  /* Idle: other nodes idle at the same time; the job segment above is not one. */
  ns_segment *idle[3] = {put("cn02", NULL, 0, 40, 70), put("cn03", NULL, 0, -1, -1), put("cn04", NULL, 0, -1, -1)};
  ratios(idle, 3, 8, r, &nw);
  cr_assert_gt(r[1], 3.0);
  cr_assert(r[0] > 0.5 && r[0] < 2.0, "%g", r[0]);
  ns_segment_free(solo);
  for (int i = 0; i < 3; i++) ns_segment_free(idle[i]);
}

Test(peer, nodes_sampling_at_their_own_phase_line_up) {
  /* cn02 samples 5 s later (nearest row), cn03 half an hour later (only
   * the overlap has a reference). */
  ns_segment *seg[3] = {put("cn01", "7", 0, -1, -1), put("cn02", "7", 5000, -1, -1),
                        put("cn03", "7", 1800000, -1, -1)};
  ns_train_series ser[3];
  series_of(seg, 3, ser);
  float **ref = NULL;
  cr_assert_eq(ns_peer_ref(store, NULL, model, seg, ser, 3, 1, &ref), NS_OK, "%s", ns_err_detail());
  for (size_t t = 0; t < NT; t++) cr_assert(isfinite(ref[0][t]), "cn01 row %zu", t); /* cn02 covers it */
  /* max_peers 1: cn03's only peer (cn01, first in time order) ends 120 rows
   * after cn03's start; the last rows of cn03 have none. */
  size_t last = (size_t)(NT - 1);
  cr_assert(isfinite(ref[2][0]));
  cr_assert(isnan(ref[2][last]));
  ns_peer_ref_free(ref, 3);
  for (int i = 0; i < 3; i++) ns_segment_free(seg[i]);
}

Test(peer, calibration_trim_marks_only_long_runs_above_the_reference) {
  float score[20], ref[20];
  uint8_t skip[20] = {0};
  for (int t = 0; t < 20; t++) score[t] = 1, ref[t] = 1;
  for (int t = 2; t < 4; t++) score[t] = 10;   /* 2 points: too short */
  for (int t = 8; t < 14; t++) score[t] = 10;  /* 6 points: trimmed */
  score[16] = score[17] = score[18] = score[19] = 10;
  ref[17] = NAN;                               /* no reference breaks the run */
  skip[9] = 1;                                 /* already left out: not counted twice */
  cr_assert_eq(ns_peer_trim(score, ref, 20, 3.0, 4, skip), 5);
  for (int t = 0; t < 20; t++) cr_assert_eq(skip[t], t >= 8 && t < 14, "row %d", t);
  /* Equal to rel x ref is not above it. */
  uint8_t none[20] = {0};
  for (int t = 0; t < 20; t++) score[t] = 3, ref[t] = 1;
  cr_assert_eq(ns_peer_trim(score, ref, 20, 3.0, 1, none), 0);
}

Test(peer, bad_arguments_and_store_errors) {
  ns_segment *seg = put("cn01", "7", 0, -1, -1);
  ns_train_series ser;
  series_of(&seg, 1, &ser);
  float **ref = (float **)1;
  cr_assert_eq(ns_peer_ref(store, NULL, model, &seg, &ser, 1, 0, &ref), NS_ERR_RANGE);
  cr_assert_null(ref);
  cr_assert_eq(ns_peer_ref(store, NULL, model, &seg, &ser, 1, 65, &ref), NS_ERR_RANGE);
  cr_assert_eq(ns_peer_ref(NULL, NULL, model, &seg, &ser, 1, 8, &ref), NS_ERR_INVAL);
  cr_assert_eq(ns_peer_ref(store, NULL, model, &seg, &ser, 1, 8, NULL), NS_ERR_INVAL);
  /* A store that cannot list segments: the error, and no output. */
  cr_assert_eq(ns_db_exec(ns_store_db(store), "ALTER TABLE segments RENAME TO gone"), NS_OK, "%s", ns_err_detail());
  ref = (float **)1;
  ns_status s = ns_peer_ref(store, NULL, model, &seg, &ser, 1, 8, &ref);
  cr_assert_neq(s, NS_OK);
  cr_assert_null(ref);
  cr_assert(strstr(ns_err_detail(), "segments") != NULL, "%s", ns_err_detail());
  ns_segment_free(seg);
}

Test(peer, spans_follow_the_segment_list_and_the_cache_gives_the_same_reference) {
  ns_segment *idle[3] = {put("cn03", NULL, 0, -1, -1), put("cn02", NULL, 0, 40, 70), put("cn04", NULL, 60000, -1, -1)};
  ns_segment *job = put("cn01", "7", 0, -1, -1);
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = "lab", f.kind = NS_SEG_IDLE;
  int64_t *ids = NULL;
  ns_seg_span *sp = NULL;
  size_t n = 0, ns = 0;
  cr_assert_eq(ns_store_list_segments(store, &f, &ids, &n), NS_OK);
  cr_assert_eq(ns_store_list_spans(store, &f, &sp, &ns), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 3);
  cr_assert_eq(ns, 3);
  for (size_t i = 0; i < n; i++) cr_assert_eq(sp[i].id, ids[i]);
  /* (start, node) order: cn02 before cn03 at the same start, cn04 a minute later */
  cr_assert_str_eq(sp[0].node, "cn02");
  cr_assert_str_eq(sp[1].node, "cn03");
  cr_assert_eq(sp[2].start_ms, T0 + 60000);
  cr_assert_eq(sp[2].end_ms, T0 + 60000 + (int64_t)(NT - 1) * IV);
  free(ids);
  ns_seg_spans_free(sp, ns);
  f.kind = 7;
  cr_assert_eq(ns_store_list_spans(store, &f, &sp, &ns), NS_ERR_INVAL);
  cr_assert_null(sp);

  ns_train_series ser[4];
  ns_segment *all[4] = {idle[0], idle[1], idle[2], job};
  series_of(all, 4, ser);
  ns_peer_cache *c = NULL;
  cr_assert_eq(ns_peer_cache_create(&c), NS_OK);
  float **a = NULL, **b = NULL, **d = NULL;
  cr_assert_eq(ns_peer_ref(store, NULL, model, all, ser, 4, 8, &a), NS_OK);
  cr_assert_eq(ns_peer_ref(store, c, model, all, ser, 4, 8, &b), NS_OK);
  cr_assert_eq(ns_peer_ref(store, c, model, all, ser, 4, 8, &d), NS_OK); /* from the cache */
  for (size_t i = 0; i < 4; i++)
    for (size_t t = 0; t < NT; t++) {
      cr_assert(a[i][t] == b[i][t] || (isnan(a[i][t]) && isnan(b[i][t])), "series %zu row %zu", i, t);
      cr_assert(b[i][t] == d[i][t] || (isnan(b[i][t]) && isnan(d[i][t])), "series %zu row %zu", i, t);
    }
  cr_assert(isfinite(a[0][10]));
  cr_assert(isnan(a[3][10])); /* the job's only node */
  ns_peer_ref_free(a, 4);
  ns_peer_ref_free(b, 4);
  ns_peer_ref_free(d, 4);
  ns_peer_cache_free(c);
  ns_peer_cache_free(NULL);
  for (int i = 0; i < 4; i++) ns_segment_free(all[i]);
}
