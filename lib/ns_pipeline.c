#include "ns_pipeline.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ns_clib.h"
#include "ns_clib_random.h"
#include "ns_peer.h"
#include "ns_baseline.h"
#include "ns_detect_internal.h"
#include "ns_log.h"
#include "ns_model.h"
#include "ns_prep.h"
#include "ns_train.h"

static const char *const variant_names[] = {"full", "c1", "c2", "c3", "c4", "c5", "zscore", "ae"};
_Static_assert(sizeof variant_names / sizeof *variant_names == NS_VARIANT_COUNT_, "one name per ns_variant");

const char *ns_variant_name(ns_variant v) { return (unsigned)v < NS_VARIANT_COUNT_ ? variant_names[v] : "?"; }

ns_status ns_variant_parse(const char *s, ns_variant *out) {
  for (int i = 0; i < NS_VARIANT_COUNT_; i++)
    if (s && strcmp(s, variant_names[i]) == 0) {
      *out = (ns_variant)i;
      return NS_OK;
    }
  return ns_errorf(NS_ERR_RANGE, "unknown variant '%s' (full, c1, c2, c3, c4, c5, zscore, ae)", s ? s : "");
}

bool ns_variant_baseline(ns_variant v, ns_baseline_kind *kind) {
  ns_baseline_kind k = v == NS_VARIANT_ZSCORE ? NS_BASELINE_ZSCORE : NS_BASELINE_DENSE_AE;
  if (v != NS_VARIANT_ZSCORE && v != NS_VARIANT_AE) return false;
  if (kind) *kind = k;
  return true;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ns_train_summary_clear(ns_train_summary *s) {
  if (!s) return;
  free(s->clusters);
  memset(s, 0, sizeof *s);
}

/* ---- one cluster's training data ---- */

typedef struct rep_data {
  size_t n;
  ns_segment **seg;
  ns_train_series *series;
  uint8_t **excluded; /* per series, per row: inside an expert "anomalous" label */
} rep_data;

static void rep_data_free(rep_data *r) {
  for (size_t i = 0; i < r->n; i++) {
    ns_segment_free(r->seg[i]);
    free(r->excluded[i]);
  }
  free(r->seg);
  free(r->series);
  free(r->excluded);
  memset(r, 0, sizeof *r);
}

/* Expert labels are the only ones that steer training: imported and
 * synthetic labels are evaluation ground truth and must not leak in. */
static ns_status mark_expert_anomalies(ns_store *st, const ns_segment *s, uint8_t *rows) {
  ns_label *l = NULL;
  size_t n = 0;
  ns_status e = ns_store_list_labels(st, s->cluster, s->node, s->start_ms, s->end_ms, &l, &n);
  if (e) return e;
  for (size_t i = 0; i < n; i++) {
    if (l[i].label != 1 || !l[i].source || strcmp(l[i].source, "expert") != 0) continue;
    for (size_t t = 0; t < s->T; t++) {
      int64_t ms = s->start_ms + (int64_t)t * s->interval_ms;
      if (ms >= l[i].start_ms && ms <= l[i].end_ms) rows[t] = 1;
    }
  }
  ns_labels_free(l, n);
  return NS_OK;
}

/* Loads member mi as training series r->n. */
static ns_status load_member(ns_store *st, const ns_clib_cluster *c, const ns_clib *lib, size_t mi, rep_data *r,
                             uint8_t *used, size_t window, size_t *windows) {
  size_t i = r->n;
  ns_status s = ns_store_get_segment(st, c->members[mi], &r->seg[i]);
  if (s) return s;
  used[mi] = 1;
  r->n = i + 1;
  if (r->seg[i]->M != lib->M)
    return ns_errorf(NS_ERR_SCHEMA, "segment %lld has %zu metrics, the cluster library %zu",
                     (long long)c->members[mi], r->seg[i]->M, lib->M);
  if (!(r->excluded[i] = calloc(r->seg[i]->T ? r->seg[i]->T : 1, 1))) return NS_ERR_NOMEM;
  if ((s = mark_expert_anomalies(st, r->seg[i], r->excluded[i]))) return s;
  size_t T = r->seg[i]->T;
  *windows += T >= window ? (T + window - 1) / window : 0;
  r->series[i] = (ns_train_series){r->seg[i]->x, T, mi < c->n_rep ? c->rep_weight[mi] : 1.0f, (int)i, r->excluded[i]};
  return NS_OK;
}

/* The cluster's K representatives (the paper's nearest-to-centroid members,
 * with their closeness weights), then, when they hold fewer than
 * min_windows training windows, further members spread evenly over the rest
 * of the cluster by distance to the centroid, up to max_series. Large
 * clusters are heterogeneous: members near the centroid alone leave the
 * model blind to the rest of its own cluster. Coverage members weigh 1.
 * Then each sub-pattern of the cluster (ns_clib.h step 7) left with fewer
 * than per_stratum members is given its most central ones: a broad cluster
 * holds patterns that the evenly spaced members miss when the window budget
 * stops them early. Segment code = position in this list. `used` marks
 * members trained on. */
static ns_status load_reps(ns_store *st, const ns_clib_cluster *c, const ns_clib *lib, size_t window,
                           size_t min_windows, size_t max_series, size_t per_stratum, rep_data *r, uint8_t *used) {
  memset(r, 0, sizeof *r);
  size_t cap = c->size < max_series ? c->size : max_series;
  if (cap < c->n_rep) cap = c->n_rep;
  size_t total = cap + c->n_strata * per_stratum;
  if (total > c->size) total = c->size;
  r->seg = calloc(total ? total : 1, sizeof *r->seg);
  r->series = calloc(total ? total : 1, sizeof *r->series);
  r->excluded = calloc(total ? total : 1, sizeof *r->excluded);
  if (!r->seg || !r->series || !r->excluded) return NS_ERR_NOMEM;
  size_t windows = 0, rest = c->size - c->n_rep, extra_cap = cap - c->n_rep;
  ns_status s = NS_OK;
  for (size_t i = 0; i < cap && !s; i++) {
    if (i >= c->n_rep && windows >= min_windows) break;
    /* Coverage member j of up to extra_cap: evenly spaced over the rest. */
    size_t mi = i < c->n_rep ? i : c->n_rep + (size_t)((double)(i - c->n_rep) * (double)rest / (double)extra_cap);
    s = load_member(st, c, lib, mi, r, used, window, &windows);
  }
  if (s || !c->n_strata || !per_stratum) return s;
  size_t *have = calloc(c->n_strata, sizeof *have);
  if (!have) return NS_ERR_NOMEM;
  for (size_t m = 0; m < c->size; m++)
    if (used[m] && c->stratum[m] >= 0) have[c->stratum[m]]++;
  for (size_t q = 0; q < c->n_cover && !s && r->n < total; q++) {
    size_t mi = c->cover[q];
    if (used[mi] || have[c->stratum[mi]] >= per_stratum) continue;
    have[c->stratum[mi]]++;
    s = load_member(st, c, lib, mi, r, used, window, &windows);
  }
  free(have);
  return s;
}

/* load_reps with the configured budget. */
static ns_status load_training(ns_store *st, const ns_config *cfg, const ns_clib_cluster *c, const ns_clib *lib,
                               size_t window, rep_data *r, uint8_t *used) {
  return load_reps(st, c, lib, window, (size_t)ns_cfg_int(cfg, NS_CFG_train_min_windows),
                   (size_t)ns_cfg_int(cfg, NS_CFG_train_max_series),
                   (size_t)ns_cfg_int(cfg, NS_CFG_train_strata_members), r, used);
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static double percentile(const float *err, const size_t *idx, size_t n, double pct) {
  if (!n) return NAN;
  float *v = malloc(n * sizeof *v);
  if (!v) return NAN;
  for (size_t i = 0; i < n; i++) v[i] = err[idx ? idx[i] : i];
  qsort(v, n, sizeof *v, cmp_float);
  double pos = pct / 100.0 * (double)(n - 1);
  size_t i = (size_t)pos;
  double r = i + 1 < n ? v[i] + (pos - (double)i) * (v[i + 1] - v[i]) : v[i];
  free(v);
  return r;
}

/* The level rule as configured for detection, in points of the training
 * interval; min_run 0 (plain statistics) when train_calib_robust is off. */
static ns_calib_rule calib_rule(const ns_config *cfg) {
  ns_calib_rule r = {.quantile = ns_cfg_double(cfg, NS_CFG_detect_level_quantile),
                     .factor = ns_cfg_double(cfg, NS_CFG_detect_level_factor),
                     .relative = ns_cfg_double(cfg, NS_CFG_train_calib_relative)};
  int64_t iv = ns_cfg_int(cfg, NS_CFG_prep_interval), dur = ns_cfg_int(cfg, NS_CFG_detect_level_min_duration);
  if (ns_cfg_bool(cfg, NS_CFG_train_calib_robust)) r.min_run = iv > 0 && dur > iv ? (size_t)((dur + iv - 1) / iv) : 1;
  return r;
}

/* Held-out members whose scores set a cluster's thresholds (more members
 * were measured and not made the default: docs/detection.md). */
static size_t calib_members(const ns_config *cfg) { return (size_t)ns_cfg_int(cfg, NS_CFG_train_calib_members); }

/* Clusters of short jobs (median training series shorter than the window):
 * the window shrinks to the shortest series of at least 8 points, so that
 * every one of them gives windows. Shrinking to the median left the shorter
 * half untrained, and in a cluster of short jobs the shortest are often one
 * whole kind of job, which was then flagged from start to end. */
static ns_status cluster_window(const rep_data *r, int window, int *out) {
  *out = window;
  if (r->n == 0) return NS_OK;
  size_t *len = malloc(r->n * sizeof *len);
  if (!len) return NS_ERR_NOMEM;
  for (size_t i = 0; i < r->n; i++) len[i] = r->series[i].T;
  for (size_t i = 1; i < r->n; i++)
    for (size_t j = i; j > 0 && len[j - 1] > len[j]; j--) {
      size_t t = len[j];
      len[j] = len[j - 1];
      len[j - 1] = t;
    }
  size_t median = len[r->n / 2], shortest = 8;
  for (size_t i = 0; i < r->n; i++)
    if (len[i] >= 8) {
      shortest = len[i];
      break;
    }
  free(len);
  if (median < (size_t)window) *out = (int)shortest;
  return NS_OK;
}

/* Robust ranking of the windows: error over the same times on the
 * segment's peers where it has some (ns_peer.h), else over its own segment's
 * median window error; train_robust_relative = 0: absolute error. */
static ns_status robust_rank(ns_store *st, ns_peer_cache *pc, const ns_config *cfg, const ns_model *m, const rep_data *r,
                             const ns_train_window *w, size_t nw, int window, const float *err, const size_t *cand,
                             size_t ncand, float *rank) {
  int peers = (int)ns_cfg_int(cfg, NS_CFG_train_robust_peers);
  if (!(ns_cfg_double(cfg, NS_CFG_train_robust_relative) > 0)) {
    memcpy(rank, err, nw * sizeof *rank);
    return NS_OK;
  }
  ns_status s = ns_train_relative_error(err, w, nw, cand, ncand, r->n, rank);
  if (s || peers == 0) return s;
  float **ref = NULL, *pr = malloc((nw ? nw : 1) * sizeof *pr);
  if (!pr) return NS_ERR_NOMEM;
  if (!(s = ns_peer_ref(st, pc, m, r->seg, r->series, r->n, peers, &ref))) {
    ns_peer_window_ratio(err, w, nw, window, r->series, ref, pr);
    for (size_t i = 0; i < nw; i++)
      if (isfinite(pr[i])) rank[i] = pr[i];
  }
  ns_peer_ref_free(ref, r->n);
  free(pr);
  return s;
}

/* The calibration rule, with the peer step where it is on: stretches (at
 * least the level rule's minimum duration) above train_calib_peer_relative x
 * the peers' score at the same times are contamination the thresholds would
 * otherwise be raised by. *ref (free with ns_peer_ref_free) stays NULL when
 * the step is off: no peers, train_calib_robust = no or the factor 0. */
static ns_status calib_rule_peers(ns_store *st, ns_peer_cache *pc, const ns_config *cfg, const ns_model *m,
                                  ns_segment *const *segs, const ns_train_series *ser, size_t n, ns_calib_rule *rule,
                                  float ***ref) {
  *ref = NULL;
  *rule = calib_rule(cfg);
  int peers = (int)ns_cfg_int(cfg, NS_CFG_train_robust_peers);
  double rel = ns_cfg_double(cfg, NS_CFG_train_calib_peer_relative);
  if (peers == 0 || rule->min_run == 0 || !(rel > 0) || n == 0) return NS_OK;
  ns_status s = ns_peer_ref(st, pc, m, segs, ser, n, peers, ref);
  if (!s) rule->peer_ref = *ref, rule->peer_relative = rel;
  return s;
}

/* Train one cluster's model: windows inside expert anomaly labels are never
 * used; with robust training on, rounds drop the windows whose error is
 * above the percentile and fine-tune on the rest, until the threshold moves
 * less than 5 % or the round limit (Refine). */
static ns_status train_cluster(ns_store *st, const ns_config *cfg, const ns_model_hparams *hp0, const ns_clib *lib, size_t ci,
                               rep_data *r, bool holdout, ns_model **out, ns_train_cluster_summary *sum) {
  *out = NULL;
  const ns_clib_cluster *c = &lib->clusters[ci];
  ns_model_hparams hp = *hp0;
  hp.n_segments = (int)(r->n > 0 ? r->n : 1);
  ns_status s = cluster_window(r, hp0->window, &hp.window);
  if (s) return s;
  if (hp.n_segments < hp0->n_segments) hp.n_segments = hp0->n_segments;
  ns_train_window *w = NULL;
  size_t nw = 0, nkeep = 0;
  size_t *keep = NULL;
  ns_train_result res = {0};
  ns_model *m = NULL;
  ns_peer_cache *pc = NULL;
  if ((s = ns_train_list_windows(r->series, r->n, hp.window, &w, &nw))) return s;
  sum->windows_total = nw;
  sum->window = hp.window;
  if (!(keep = malloc((nw ? nw : 1) * sizeof *keep))) {
    free(w);
    return NS_ERR_NOMEM;
  }
  for (size_t i = 0; i < nw; i++) {
    const uint8_t *ex = r->excluded[w[i].series];
    bool bad = false;
    for (uint32_t t = w[i].start; t < w[i].start + (uint32_t)hp.window && t < r->series[w[i].series].T; t++)
      bad |= ex[t] != 0;
    if (bad) sum->windows_labelled++;
    else keep[nkeep++] = i;
  }
  /* No member left out of training to calibrate thresholds on: hold out
   * every fifth window instead (never trained on, scored afterwards). */
  size_t *calib = NULL, ncalib = 0;
  if (holdout && nkeep >= 10) {
    if (!(calib = malloc(nkeep * sizeof *calib))) {
      free(keep);
      free(w);
      return NS_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nkeep; i++)
      if (i % 5 == 4) calib[ncalib++] = keep[i];
      else keep[k++] = keep[i];
    nkeep = k;
  }
  if (nkeep == 0) {
    s = ns_errorf(NS_ERR_TOO_SHORT, "cluster %d has no training window of %d points (representatives too short "
                  "or all labelled anomalous)", c->label, hp.window);
    goto done;
  }
  ns_train_opts opts = {.windows = keep, .n_windows = nkeep};
  if ((s = ns_train_model(&hp, (const char *const *)lib->metrics, c->mac_weight, r->series, r->n, &opts, &m, &res)))
    goto done;
  sum->rounds = 1;
  bool robust = ns_cfg_bool(cfg, NS_CFG_train_robust);
  double pct = ns_cfg_double(cfg, NS_CFG_train_robust_percentile);
  double rel_min = ns_cfg_double(cfg, NS_CFG_train_robust_relative);
  int max_rounds = (int)ns_cfg_int(cfg, NS_CFG_train_robust_rounds);
  float *rank = NULL;
  if (robust && !(rank = malloc((nw ? nw : 1) * sizeof *rank))) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  if ((s = ns_peer_cache_create(&pc))) {
    free(rank);
    goto done;
  }
  while (robust && sum->rounds < max_rounds) {
    if ((s = robust_rank(st, pc, cfg, m, r, w, nw, hp.window, res.window_error, keep, nkeep, rank))) break;
    double thr = percentile(rank, keep, nkeep, pct);
    size_t k = 0;
    // relative: only windows also clearly above their reference go
    for (size_t i = 0; i < nkeep; i++)
      if (rank[keep[i]] <= thr || (rel_min > 0 && rank[keep[i]] <= rel_min)) keep[k++] = keep[i];
    if (k == nkeep || k == 0) break; /* the kept set stopped changing */
    nkeep = k;
    /* From scratch: a model that has fitted the contamination keeps most of
     * it through fine-tuning on the kept windows. */
    ns_model_free(m);
    m = NULL;
    ns_train_result_free(&res);
    memset(&res, 0, sizeof res);
    ns_train_opts ro = {.windows = keep, .n_windows = nkeep};
    if ((s = ns_train_model(&hp, (const char *const *)lib->metrics, c->mac_weight, r->series, r->n, &ro, &m, &res)))
      break;
    sum->rounds++;
  }
  free(rank);
  if (s) goto done;
  if (ncalib) {
    ns_score_stats stats;
    ns_calib_rule rule;
    float **pref = NULL;
    s = calib_rule_peers(st, pc, cfg, m, r->seg, r->series, r->n, &rule, &pref);
    if (!s) s = ns_train_calibrate(m, r->series, r->n, calib, ncalib, &rule, &stats, &sum->calibration_trimmed);
    ns_peer_ref_free(pref, r->n);
    if (s) goto done;
    ns_model_set_score_stats(m, &stats);
    res.stats = stats;
    sum->calibration_windows = ncalib;
  }
  sum->windows_used = nkeep;
  sum->train_loss = res.train_loss;
  sum->score_mean = res.stats.mean;
  sum->score_q99 = ns_score_stats_quantile(&res.stats, 0.99);
  *out = m;
  m = NULL;
done:
  ns_peer_cache_free(pc);
  ns_train_result_free(&res);
  ns_model_free(m);
  free(calib);
  free(keep);
  free(w);
  return s;
}

/* Up to cap of the cluster's members not trained on (used[i] == 0), spread
 * evenly over them, as series in *ser (*seg holds the *n slots, *k filled;
 * free with free_calibration). Nothing to load: *n == 0. */
static ns_status load_calibration(ns_store *st, const ns_clib_cluster *c, const ns_clib *lib, const uint8_t *used,
                                  size_t cap, ns_segment ***seg_out, ns_train_series **ser_out, size_t *n_out,
                                  size_t *k_out) {
  *seg_out = NULL, *ser_out = NULL, *n_out = *k_out = 0;
  size_t avail = 0;
  for (size_t i = 0; i < c->size; i++) avail += !used[i];
  size_t n = avail < cap ? avail : cap;
  if (n == 0) return NS_OK;
  ns_segment **seg = calloc(n, sizeof *seg);
  ns_train_series *ser = calloc(n, sizeof *ser);
  *seg_out = seg, *ser_out = ser, *n_out = n;
  if (!seg || !ser) return NS_ERR_NOMEM;
  ns_status s = NS_OK;
  size_t k = 0, seen = 0, next = 0;
  for (size_t i = 0; i < c->size && k < n; i++) {
    if (used[i]) continue;
    if (seen++ != next) continue;
    next = (size_t)((double)(k + 1) * (double)avail / (double)n);
    if ((s = ns_store_get_segment(st, c->members[i], &seg[k]))) break;
    if (seg[k]->M != lib->M || seg[k]->T < 2) {
      ns_segment_free(seg[k]);
      seg[k] = NULL;
      continue;
    }
    /* Expert-labelled anomalies would raise the thresholds they are meant to exceed. */
    uint8_t *skip = calloc(seg[k]->T, 1);
    if (!skip) {
      s = NS_ERR_NOMEM;
      break;
    }
    ser[k] = (ns_train_series){seg[k]->x, seg[k]->T, 1.0f, 0, skip};
    k++;
    if ((s = mark_expert_anomalies(st, seg[k - 1], skip))) break;
  }
  *k_out = k;
  return s;
}

static void free_calibration(ns_segment **seg, ns_train_series *ser, size_t n) {
  for (size_t i = 0; seg && i < n; i++) ns_segment_free(seg[i]);
  for (size_t i = 0; ser && i < n; i++) free((void *)ser[i].skip);
  free(seg);
  free(ser);
}

/* Thresholds come from scores the model has not been fitted to: up to `cap`
 * of the cluster's members it was not trained on, spread evenly over them. A
 * cluster whose members were all trained on keeps the training statistics. */
static ns_status calibrate(ns_store *st, const ns_config *cfg, const ns_clib_cluster *c, const ns_clib *lib,
                           ns_model *m, const uint8_t *used, size_t cap, size_t *n_used, size_t *trimmed) {
  *n_used = 0;
  ns_segment **seg = NULL;
  ns_train_series *ser = NULL;
  float **pref = NULL;
  ns_calib_rule rule;
  size_t n = 0, k = 0;
  ns_status s = load_calibration(st, c, lib, used, cap, &seg, &ser, &n, &k);
  if (!s && k > 0) s = calib_rule_peers(st, NULL, cfg, m, seg, ser, k, &rule, &pref);
  if (!s && k > 0) {
    ns_score_stats stats;
    size_t cut = 0;
    s = ns_train_calibrate(m, ser, k, NULL, 0, &rule, &stats, &cut);
    if (!s) {
      *trimmed = cut;
      ns_model_set_score_stats(m, &stats);
      *n_used = k;
    } else if (s == NS_ERR_EMPTY || s == NS_ERR_TOO_SHORT) {
      ns_err_clear();
      s = NS_OK;  /* too short to window: keep the training statistics */
    }
  }
  ns_peer_ref_free(pref, k);
  free_calibration(seg, ser, n);
  return s;
}

/* ---- saving ---- */

static ns_status next_version(ns_db *db, char *buf, size_t n) {
  ns_db_stmt *q = NULL;
  bool row;
  ns_status s = ns_db_prepare(db, "SELECT COUNT(*) FROM model_libraries", &q);
  if (!s) s = ns_db_step(q, &row);
  int64_t k = !s && row ? ns_db_col_int64(q, 0) : 0;
  ns_db_finalize(q);
  snprintf(buf, n, "r%lld", (long long)k + 1);
  return s;
}

static ns_status insert_library(ns_db *db, const char *version, const char *params, const char *notes, int64_t *id) {
  ns_db_stmt *q = NULL;
  bool row = false;
  ns_status s = ns_db_prepare(db,
                              "INSERT INTO model_libraries (version, created_ms, active, notes, params)"
                              " VALUES (?1, ?2, 0, ?3, ?4) RETURNING id",
                              &q);
  if (!s) s = ns_db_bind_text(q, 1, version);
  if (!s) s = ns_db_bind_int64(q, 2, wall_ms());
  if (!s) s = ns_db_bind_text(q, 3, notes);
  if (!s) s = ns_db_bind_blob(q, 4, params, strlen(params));
  if (!s) s = ns_db_step(q, &row);
  if (!s && row) *id = ns_db_col_int64(q, 0);
  ns_db_finalize(q);
  return s;
}

/* b: a baseline instead of m (variants zscore, ae); its blob goes where the
 * Transformer's does, loaders tell the two apart by their magic. */
static ns_status insert_model(ns_db *db, int64_t lib_id, int64_t cluster_db_id, const ns_model *m,
                              const ns_baseline *b) {
  void *buf = NULL;
  size_t n = 0;
  ns_status s = b ? ns_baseline_save(b, &buf, &n) : ns_model_save(m, &buf, &n);
  ns_db_stmt *q = NULL;
  bool row;
  if (!s) s = ns_db_prepare(db,
                            "INSERT INTO models (library_id, cluster_id, blob, needs_retrain, created_ms)"
                            " VALUES (?1, ?2, ?3, 0, ?4)",
                            &q);
  if (!s) s = ns_db_bind_int64(q, 1, lib_id);
  if (!s) s = cluster_db_id > 0 ? ns_db_bind_int64(q, 2, cluster_db_id) : ns_db_bind_null(q, 2);
  if (!s) s = ns_db_bind_blob(q, 3, buf, n);
  if (!s) s = ns_db_bind_int64(q, 4, wall_ms());
  if (!s) s = ns_db_step(q, &row);
  ns_db_finalize(q);
  free(buf);
  return s;
}

static ns_status delete_library(ns_db *db, int64_t id) {
  ns_db_stmt *q = NULL;
  bool row;
  ns_status s = ns_db_prepare(db, "DELETE FROM model_libraries WHERE id = ?1", &q);
  if (!s) s = ns_db_bind_int64(q, 1, id);
  if (!s) s = ns_db_step(q, &row);
  ns_db_finalize(q);
  return s;
}

ns_status ns_library_activate(ns_store *st, int64_t library_id) {
  ns_db *db = ns_store_db(st);
  ns_db_stmt *q = NULL;
  bool row = false;
  ns_status s = ns_store_begin(st);
  if (s) return s;
  s = ns_db_prepare(db, "SELECT id FROM model_libraries WHERE id = ?1", &q);
  if (!s) s = ns_db_bind_int64(q, 1, library_id);
  if (!s) s = ns_db_step(q, &row);
  ns_db_finalize(q);
  q = NULL;
  if (!s && !row) s = ns_errorf(NS_ERR_NOTFOUND, "model library %lld not found", (long long)library_id);
  if (!s) s = ns_db_prepare(db, "UPDATE model_libraries SET active = CASE WHEN id = ?1 THEN 1 ELSE 0 END", &q);
  if (!s) s = ns_db_bind_int64(q, 1, library_id);
  if (!s) s = ns_db_step(q, &row);
  ns_db_finalize(q);
  if (s) {
    ns_store_rollback(st);
    return s;
  }
  return ns_store_commit(st);
}

static char *library_params_json(ns_variant v, const char *prep_cluster, int64_t prep_version, int64_t clib_version) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "format", NS_LIBRARY_FORMAT);
  cJSON_AddStringToObject(o, "variant", ns_variant_name(v));
  cJSON_AddStringToObject(o, "prep_cluster", prep_cluster ? prep_cluster : "");
  cJSON_AddNumberToObject(o, "prep_version", (double)prep_version);
  cJSON_AddNumberToObject(o, "clib_version", (double)clib_version);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* The preprocessing parameters the stored segments were made with: the
 * latest "prep" artifact of the cluster, if its output schema is the
 * library's. Imported already-preprocessed segments have none. */
static ns_status find_prep(ns_store *st, const char *cluster, const ns_clib *lib, int64_t *version) {
  *version = 0;
  if (!cluster) return NS_OK;
  void *data = NULL;
  size_t n = 0;
  int64_t v = 0;
  ns_status s = ns_store_get_artifact(st, "prep", cluster, 0, &data, &n, &v);
  if (s == NS_ERR_NOTFOUND) {
    ns_err_clear();
    return NS_OK;
  }
  if (s) return s;
  ns_prep_params *p = NULL;
  s = ns_prep_load(data, n, &p);
  free(data);
  if (s) return s;
  bool same = ns_prep_n_outputs(p) == lib->M;
  for (size_t m = 0; same && m < lib->M; m++) same = strcmp(ns_prep_output_name(p, m), lib->metrics[m]) == 0;
  ns_prep_params_free(p);
  if (same) *version = v;
  else ns_warn("preprocessing parameters of %s do not produce the training segments' metrics; "
               "the library will score preprocessed input only", cluster);
  return NS_OK;
}

static void progress(const ns_train_plan *plan, const char *stage, size_t done, size_t total) {
  if (plan->progress) plan->progress(plan->progress_ctx, stage, done, total);
}

/* Saved as a new, inactive library; activated only once complete. A
 * failure leaves nothing behind. */
static ns_status save_library(ns_store *st, const ns_train_plan *plan, ns_clib *lib, ns_model **models,
                              ns_baseline **bases, int64_t prep_version, const char *prep_cluster,
                              ns_train_summary *out) {
  ns_db *db = ns_store_db(st);
  int64_t lib_id = 0;
  char *params = NULL;
  ns_status s = next_version(db, out->version, sizeof out->version);
  if (!s && !(params = library_params_json(plan->variant, prep_cluster, prep_version, 0))) s = NS_ERR_NOMEM;
  if (!s)
    s = insert_library(db, out->version, params,
                       plan->notes ? plan->notes : plan->incremental ? "incremental" : ns_variant_name(plan->variant),
                       &lib_id);
  if (!s) s = ns_clib_save(st, lib, lib_id);
  free(params);
  params = NULL;
  if (!s && !(params = library_params_json(plan->variant, prep_cluster, prep_version, lib->version))) s = NS_ERR_NOMEM;
  if (!s && !(s = ns_store_begin(st))) {
    ns_db_stmt *q = NULL;
    bool row;
    s = ns_db_prepare(db, "UPDATE model_libraries SET params = ?1 WHERE id = ?2", &q);
    if (!s) s = ns_db_bind_blob(q, 1, params, strlen(params));
    if (!s) s = ns_db_bind_int64(q, 2, lib_id);
    if (!s) s = ns_db_step(q, &row);
    ns_db_finalize(q);
    for (size_t c = 0; !s && c < lib->n_clusters; c++)
      s = insert_model(db, lib_id, lib->clusters[c].db_id, models ? models[c] : NULL, bases ? bases[c] : NULL);
    if (s) ns_store_rollback(st);
    else s = ns_store_commit(st);
  }
  if (!s && plan->activate) s = ns_library_activate(st, lib_id);
  free(params);
  if (s) {
    if (lib_id) delete_library(db, lib_id);
    return s;
  }
  out->library_id = lib_id;
  return NS_OK;
}

/* ---- incremental training (paper §3.5) ---- */

typedef struct inc_bucket {
  int64_t *ids;
  float *dist;
  size_t n, cap;
} inc_bucket;

static ns_status bucket_add(inc_bucket *b, int64_t id, float d) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    int64_t *ids = realloc(b->ids, cap * sizeof *ids);
    if (!ids) return NS_ERR_NOMEM;
    b->ids = ids;
    float *dd = realloc(b->dist, cap * sizeof *dd);
    if (!dd) return NS_ERR_NOMEM;
    b->dist = dd;
    b->cap = cap;
  }
  b->ids[b->n] = id;
  b->dist[b->n++] = d;
  return NS_OK;
}

static ns_status library_members(ns_db *db, int64_t lib_id, int64_t **ids, size_t *n) {
  *ids = NULL;
  *n = 0;
  ns_db_stmt *q = NULL;
  bool row;
  size_t cap = 0;
  ns_status s = ns_db_prepare(db,
                              "SELECT m.segment_id FROM cluster_members m JOIN clusters c ON c.id = m.cluster_id"
                              " WHERE c.library_id = ?1 ORDER BY m.segment_id",
                              &q);
  if (!s) s = ns_db_bind_int64(q, 1, lib_id);
  while (!s && !(s = ns_db_step(q, &row)) && row) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 256;
      int64_t *v = realloc(*ids, cap * sizeof *v);
      if (!v) {
        s = NS_ERR_NOMEM;
        break;
      }
      *ids = v;
    }
    (*ids)[(*n)++] = ns_db_col_int64(q, 0);
  }
  ns_db_finalize(q);
  return s;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Append matched segments to a cluster's members (after the existing ones;
 * representatives stay as they were) and widen its radius if needed. */
static ns_status append_members(ns_clib_cluster *c, const inc_bucket *b) {
  int64_t *m = realloc(c->members, (c->size + b->n) * sizeof *m);
  if (!m) return NS_ERR_NOMEM;
  c->members = m;
  float *d = realloc(c->member_dist, (c->size + b->n) * sizeof *d);
  if (!d) return NS_ERR_NOMEM;
  c->member_dist = d;
  for (size_t i = 0; i < b->n; i++) {
    c->members[c->size + i] = b->ids[i];
    c->member_dist[c->size + i] = b->dist[i];
    if (b->dist[i] > c->radius) c->radius = b->dist[i];
  }
  if (c->n_strata) { /* new members belong to no sub-pattern until the next full training */
    int32_t *g = realloc(c->stratum, (c->size + b->n) * sizeof *g);
    if (!g) return NS_ERR_NOMEM;
    c->stratum = g;
    for (size_t i = 0; i < b->n; i++) c->stratum[c->size + i] = -1;
  }
  c->size += b->n;
  return NS_OK;
}

/* Fine-tune a copy of `base` on the cluster's representatives plus the new
 * segments (the representatives keep it from forgetting). */
static ns_status finetune_cluster(ns_store *st, const ns_config *cfg, const ns_clib *lib, size_t ci,
                                  const ns_model *base, const inc_bucket *b, ns_model **out,
                                  ns_train_cluster_summary *cs) {
  *out = NULL;
  const ns_clib_cluster *c = &lib->clusters[ci];
  rep_data r = {0};
  uint8_t *used = calloc(c->size ? c->size : 1, 1);
  ns_model *m = NULL;
  ns_status s = used ? NS_OK : NS_ERR_NOMEM;
  int nseg = ns_model_get_hparams(base)->n_segments;
  size_t n = c->n_rep + b->n;
  if (!s) {
    r.seg = calloc(n, sizeof *r.seg);
    r.series = calloc(n, sizeof *r.series);
    r.excluded = calloc(n, sizeof *r.excluded);
    if (!r.seg || !r.series || !r.excluded) s = NS_ERR_NOMEM;
  }
  for (size_t i = 0; !s && i < n; i++) {
    int64_t id = i < c->n_rep ? c->members[i] : b->ids[i - c->n_rep];
    if ((s = ns_store_get_segment(st, id, &r.seg[i]))) break;
    r.n = i + 1;
    if (!(r.excluded[i] = calloc(r.seg[i]->T ? r.seg[i]->T : 1, 1))) {
      s = NS_ERR_NOMEM;
      break;
    }
    if ((s = mark_expert_anomalies(st, r.seg[i], r.excluded[i]))) break;
    /* New segments take the code of the nearest representative slot (0). */
    int code = i < c->n_rep && (int)i < nseg ? (int)i : 0;
    r.series[i] = (ns_train_series){r.seg[i]->x, r.seg[i]->T, i < c->n_rep ? c->rep_weight[i] : 1.0f, code, r.excluded[i]};
  }
  ns_train_window *w = NULL;
  size_t nw = 0, nkeep = 0, *keep = NULL;
  int window = ns_model_get_hparams(base)->window;
  if (!s) s = ns_train_list_windows(r.series, r.n, window, &w, &nw);
  if (!s && !(keep = malloc((nw ? nw : 1) * sizeof *keep))) s = NS_ERR_NOMEM;
  for (size_t i = 0; !s && i < nw; i++) {
    bool bad = false;
    for (uint32_t t = w[i].start; t < w[i].start + (uint32_t)window && t < r.series[w[i].series].T; t++)
      bad |= r.excluded[w[i].series][t] != 0;
    if (bad) cs->windows_labelled++;
    else keep[nkeep++] = i;
  }
  cs->windows_total = nw;
  cs->window = window;
  if (!s && nkeep == 0) s = ns_errorf(NS_ERR_TOO_SHORT, "no window of %d points to fine-tune on", window);
  if (!s) s = ns_model_clone(base, &m);
  if (!s) {
    int epochs = (int)ns_cfg_int(cfg, NS_CFG_model_epochs) / 5;
    ns_train_opts o = {.windows = keep, .n_windows = nkeep, .epochs = epochs > 2 ? epochs : 2};
    ns_train_result res = {0};
    const ns_score_stats keep_stats = *ns_model_score_stats(base);
    s = ns_train_finetune(m, r.series, r.n, &o, &res);
    /* Thresholds stay calibrated on held-out data, not on what was just fitted. */
    if (!s) ns_model_set_score_stats(m, &keep_stats);
    cs->train_loss = res.train_loss;
    ns_train_result_free(&res);
  }
  cs->windows_used = nkeep;
  cs->n_series = r.n;
  cs->finetuned = true;
  cs->rounds = 1;
  free(keep);
  free(w);
  free(used);
  rep_data_free(&r);
  if (s) {
    ns_model_free(m);
    return s;
  }
  *out = m;
  return NS_OK;
}

static ns_status train_incremental(ns_store *st, const ns_config *cfg, const ns_train_plan *plan,
                                   ns_train_summary *out) {
  double t0 = now_s();
  ns_db *db = ns_store_db(st);
  ns_library *old = NULL;
  ns_clib *lib = NULL, *sub = NULL;
  ns_model **models = NULL;
  inc_bucket *buckets = NULL, unmatched = {0};
  int64_t *known = NULL, *ids = NULL;
  size_t nknown = 0, nids = 0, nnew = 0;
  ns_featset *fs = NULL;
  float *feat = NULL;
  ns_status s = ns_library_load_active(st, &old);
  if (s) return ns_errorf(s, "incremental training needs an active library: %s", ns_err_detail());
  for (size_t c = 0; c < old->n_models; c++)
    if (!old->models[c]) {
      s = ns_errorf(NS_ERR_STATE, "incremental training fine-tunes Transformer models; the active library %s is "
                    "the %s baseline (train a new one instead)", ns_library_version(old), ns_variant_name(old->variant));
      ns_library_free(old);
      return s;
    }
  void *buf = NULL;
  size_t nbuf = 0;
  /* Work on a deep copy of the cluster library. */
  if ((s = ns_clib_serialize(old->clib, &buf, &nbuf))) goto done;
  s = ns_clib_deserialize(buf, nbuf, &lib);
  free(buf);
  if (s) goto done;
  if (!(buckets = calloc(lib->n_clusters, sizeof *buckets))) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  if ((s = library_members(db, old->id, &known, &nknown))) goto done;
  ns_seg_filter f = {plan->cluster, NULL, NULL, -1, plan->split, plan->from_ms, plan->to_ms};
  if ((s = ns_store_list_segments(st, &f, &ids, &nids))) goto done;
  for (size_t i = 0; i < nids; i++) {
    if (bsearch(&ids[i], known, nknown, sizeof *known, cmp_i64)) continue;
    progress(plan, "matching", i, nids);
    ns_segment *seg = NULL;
    if ((s = ns_store_get_segment(st, ids[i], &seg))) goto done;
    if (seg->M != lib->M) {
      ns_segment_free(seg);
      s = ns_errorf(NS_ERR_SCHEMA, "segment %lld has %zu metrics, the library %zu", (long long)ids[i], seg->M, lib->M);
      goto done;
    }
    ns_seg_kind kind = seg->kind;
    s = ns_clib_segment_features(seg, &lib->params, &feat);
    ns_segment_free(seg);
    if (s == NS_ERR_TOO_SHORT) {
      ns_err_clear();
      s = NS_OK;
      continue;  /* too short to describe: nothing to learn from */
    }
    if (s) goto done;
    ns_clib_match best;
    size_t nb = 0;
    if ((s = ns_clib_match_features(lib, kind, feat, &best, 1, &nb))) goto done;
    nnew++;
    if (nb && !best.unmatched) {
      if ((s = bucket_add(&buckets[best.cluster], ids[i], (float)best.distance))) goto done;
      free(feat);
    } else {
      /* New pattern: clustered among the other new ones below. */
      free(feat);
      if ((s = bucket_add(&unmatched, ids[i], 0))) goto done;
    }
    feat = NULL;
  }
  if (nnew == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "no new segments: every selected segment is already in library %s",
                  ns_library_version(old));
    goto done;
  }
  if (!(models = calloc(lib->n_clusters, sizeof *models)) ||
      !(out->clusters = calloc(lib->n_clusters + (unmatched.n ? unmatched.n : 0), sizeof *out->clusters))) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  size_t n_old = lib->n_clusters;
  for (size_t c = 0; c < n_old; c++) {
    ns_train_cluster_summary *cs = &out->clusters[c];
    cs->label = lib->clusters[c].label;
    cs->kind = lib->clusters[c].kind;
    progress(plan, "fine-tuning", c, n_old);
    if (buckets[c].n == 0) {
      if ((s = ns_model_clone(old->models[c], &models[c]))) goto done;
    } else {
      if ((s = finetune_cluster(st, cfg, lib, c, old->models[c], &buckets[c], &models[c], cs))) goto done;
      if ((s = append_members(&lib->clusters[c], &buckets[c]))) goto done;
    }
    cs->size = lib->clusters[c].size;
    cs->n_rep = lib->clusters[c].n_rep;
  }
  out->n_clusters = n_old;
  size_t min_size = lib->params.min_size > 2 ? lib->params.min_size : 2;
  if (unmatched.n >= min_size) {
    /* New patterns: cluster them among themselves; new clusters, new models. */
    if ((s = ns_featset_create(unmatched.n, lib->M, &fs))) goto done;
    for (size_t i = 0; i < unmatched.n; i++) {
      ns_segment *seg = NULL;
      float *f1 = NULL;
      if ((s = ns_store_get_segment(st, unmatched.ids[i], &seg))) goto done;
      s = ns_clib_segment_features(seg, &lib->params, &f1);
      fs->ids[i] = seg->id;
      fs->kind[i] = seg->kind;
      ns_segment_free(seg);
      if (s) goto done;
      memcpy(fs->f + i * lib->M * NS_CLIB_NFEAT, f1, lib->M * NS_CLIB_NFEAT * sizeof *f1);
      free(f1);
    }
    ns_clib_params sp = lib->params;
    if (sp.k_max > unmatched.n / 2) sp.k_max = unmatched.n / 2 > 1 ? unmatched.n / 2 : 1;
    if (sp.k_min > sp.k_max) sp.k_min = sp.k_max;
    if ((s = ns_clib_build(fs, (const char *const *)lib->metrics, &sp, plan->progress, plan->progress_ctx, &sub)))
      goto done;
    ns_model_hparams hp;
    ns_model_hparams_default(&hp);
    long thr = ns_cfg_int(cfg, NS_CFG_threads);
    hp.threads = (int)(thr > 0 ? thr : sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1);
    if ((s = ns_model_hparams_from_config(cfg, &hp))) goto done;
    hp.n_metrics = (int)lib->M;
    ns_clib_cluster *nc = realloc(lib->clusters, (n_old + sub->n_clusters) * sizeof *nc);
    ns_model **nm = realloc(models, (n_old + sub->n_clusters) * sizeof *nm);
    if (!nc || !nm) {
      if (nc) lib->clusters = nc;
      if (nm) models = nm;
      s = NS_ERR_NOMEM;
      goto done;
    }
    lib->clusters = nc;
    models = nm;
    int next_label[2] = {0, 0};
    for (size_t c = 0; c < n_old; c++)
      if (lib->clusters[c].label + 1 > next_label[lib->clusters[c].kind])
        next_label[lib->clusters[c].kind] = lib->clusters[c].label + 1;
    for (size_t c = 0; c < sub->n_clusters; c++) {
      size_t ci = n_old + c;
      models[ci] = NULL;
      lib->clusters[ci] = sub->clusters[c];
      memset(&sub->clusters[c], 0, sizeof sub->clusters[c]);
      lib->clusters[ci].label = next_label[lib->clusters[ci].kind]++;
      lib->clusters[ci].db_id = 0;
      lib->n_clusters = ci + 1;
      /* MAC weights of the new cluster from its representatives. */
      ns_segment **reps = calloc(lib->clusters[ci].n_rep, sizeof *reps);
      if (!reps) {
        s = NS_ERR_NOMEM;
        goto done;
      }
      for (size_t k = 0; !s && k < lib->clusters[ci].n_rep; k++)
        s = ns_store_get_segment(st, lib->clusters[ci].members[k], &reps[k]);
      if (!s) s = ns_clib_set_mac(lib, ci, (const ns_segment *const *)reps);
      for (size_t k = 0; k < lib->clusters[ci].n_rep; k++) ns_segment_free(reps[k]);
      free(reps);
      if (s) goto done;
      ns_train_cluster_summary *cs = &out->clusters[ci];
      cs->label = lib->clusters[ci].label;
      cs->kind = lib->clusters[ci].kind;
      cs->size = lib->clusters[ci].size;
      cs->n_rep = lib->clusters[ci].n_rep;
      cs->is_new = true;
      rep_data r = {0};
      uint8_t *used = calloc(lib->clusters[ci].size, 1);
      s = used ? NS_OK : NS_ERR_NOMEM;
      if (!s)
        s = load_training(st, cfg, &lib->clusters[ci], lib, (size_t)hp.window, &r, used);
      if (!s) s = train_cluster(st, cfg, &hp, lib, ci, &r, r.n >= lib->clusters[ci].size, &models[ci], cs);
      cs->n_series = r.n;
      rep_data_free(&r);
      if (!s) s = calibrate(st, cfg, &lib->clusters[ci], lib, models[ci], used, calib_members(cfg), &cs->calibration_segments,
                                 &cs->calibration_trimmed);
      free(used);
      if (s) goto done;
    }
    sub->n_clusters = 0;
    out->n_clusters = lib->n_clusters;
  }
  out->n_unmatched = unmatched.n;
  out->n_segments = nnew;
  out->seconds_models = now_s() - t0;
  s = save_library(st, plan, lib, models, NULL, old->prep ? 1 : 0, plan->cluster, out);
  if (!s && old->prep) {
    /* Same preprocessing as the library we extend. */
    ns_db_stmt *q = NULL;
    bool row;
    char *params = NULL;
    ns_db_stmt *r0 = NULL;
    s = ns_db_prepare(db, "SELECT params FROM model_libraries WHERE id = ?1", &r0);
    if (!s) s = ns_db_bind_int64(r0, 1, old->id);
    if (!s) s = ns_db_step(r0, &row);
    ns_library_params lp = {0};
    if (!s && row) {
      size_t nb = 0;
      const char *blob = ns_db_col_blob(r0, 0, &nb);
      char *json = blob ? strndup(blob, nb) : NULL;
      s = ns_library_params_parse(json, &lp);
      free(json);
    }
    ns_db_finalize(r0);
    if (!s && !(params = library_params_json(plan->variant, lp.prep_cluster, lp.prep_version, lib->version)))
      s = NS_ERR_NOMEM;
    if (!s) s = ns_db_prepare(db, "UPDATE model_libraries SET params = ?1 WHERE id = ?2", &q);
    if (!s) s = ns_db_bind_blob(q, 1, params, strlen(params));
    if (!s) s = ns_db_bind_int64(q, 2, out->library_id);
    if (!s) s = ns_db_step(q, &row);
    ns_db_finalize(q);
    free(params);
  }
  out->seconds = now_s() - t0;
done:
  if (models)
    for (size_t c = 0; lib && c < lib->n_clusters; c++) ns_model_free(models[c]);
  free(models);
  for (size_t c = 0; buckets && old && c < old->clib->n_clusters; c++) free(buckets[c].ids), free(buckets[c].dist);
  free(buckets);
  free(unmatched.ids);
  free(unmatched.dist);
  free(known);
  free(ids);
  free(feat);
  ns_featset_free(fs);
  ns_clib_free(sub);
  ns_clib_free(lib);
  ns_library_free(old);
  if (s) {
    free(out->clusters);
    out->clusters = NULL;
  }
  return s;
}

/* ---- baseline variants (zscore, ae) ----
 * The full method's cluster library, but every cluster gets an ns_baseline
 * instead of a Transformer. It is trained once (no robust rounds: those
 * refine the Transformer's windows) on the rows of exactly the windows
 * train_cluster() would train on, and calibrated on the same held-out data:
 * every fifth window when all members were trained on, then up to train_calib_members unused
 * members picked as calibrate() picks them, with the same trimming. */

/* Per-point scores of b over the rows of s[0..n) whose role has bit `bit`
 * (role NULL = every row covered by a window of `window` points, as
 * ns_train_calibrate scores held-out segments). *out malloc'ed. */
static ns_status baseline_scores(const ns_baseline *b, const ns_train_series *s, size_t n, uint8_t *const *role,
                                 uint8_t bit, int window, float **out, size_t *n_out, size_t **starts_out,
                                 size_t *n_starts) {
  *out = NULL;
  *n_out = 0;
  *starts_out = NULL;
  *n_starts = 0;
  size_t M = ns_baseline_n_metrics(b), tot = 0, maxT = 0, k = 0;
  for (size_t i = 0; i < n; i++) {
    tot += s[i].T;
    if (s[i].T > maxT) maxT = s[i].T;
  }
  float *sc = malloc((tot ? tot : 1) * sizeof *sc), *xh = malloc((maxT ? maxT : 1) * M * sizeof *xh),
        *pt = malloc((maxT ? maxT : 1) * sizeof *pt);
  size_t *starts = malloc((n ? n : 1) * sizeof *starts), ns = 0;
  ns_status st = sc && xh && pt && starts ? NS_OK : NS_ERR_NOMEM;
  for (size_t i = 0; !st && i < n; i++) {
    size_t T = s[i].T, lo = 0;
    if (T == 0) continue;
    /* Windowing without a role: rows [0, T) when the series holds a window. */
    if (!role && T < (size_t)window) continue;
    if (role) {
      while (lo < T && !(role[i][lo] & bit)) lo++;
      if (lo == T) continue;
    }
    if ((st = ns_baseline_reconstruct(b, s[i].x, T, xh))) break;
    ns_baseline_score(b, s[i].x, xh, T, pt, NULL);
    starts[ns++] = k; // the calibration's runs and per-segment medians stop at series boundaries
    // points inside expert "anomalous" labels stay out, as for the Transformer
    for (size_t t = lo; t < T; t++)
      if ((!role || (role[i][t] & bit)) && !(s[i].skip && s[i].skip[t])) sc[k++] = pt[t];
  }
  free(xh);
  free(pt);
  if (st) {
    free(sc);
    free(starts);
    return st;
  }
  *out = sc;
  *n_out = k;
  *starts_out = starts;
  *n_starts = ns;
  return NS_OK;
}

static ns_status train_baseline_cluster(const ns_config *cfg, ns_baseline_kind kind, const ns_baseline_opts *bo,
                                        int window0, const ns_clib *lib, size_t ci, rep_data *r, bool holdout,
                                        ns_baseline **out, int *window_out, ns_train_cluster_summary *sum) {
  *out = NULL;
  const ns_clib_cluster *c = &lib->clusters[ci];
  int window;
  ns_status s = cluster_window(r, window0, &window);
  if (s) return s;
  *window_out = window;
  ns_train_window *w = NULL;
  ns_train_series *runs = NULL;
  size_t nw = 0, nkeep = 0, ntrain = 0, ncalib = 0, nruns = 0, nsc = 0, *keep = NULL, *starts = NULL, nstarts = 0;
  float *sc = NULL;
  ns_baseline *b = NULL;
  /* Per series and row: bit 1 = in a training window, bit 2 = in a calibration window. */
  uint8_t **role = calloc(r->n ? r->n : 1, sizeof *role);
  s = role ? ns_train_list_windows(r->series, r->n, window, &w, &nw) : NS_ERR_NOMEM;
  if (!s && !(keep = malloc((nw ? nw : 1) * sizeof *keep))) s = NS_ERR_NOMEM;
  for (size_t i = 0; !s && i < r->n; i++)
    if (!(role[i] = calloc(r->series[i].T ? r->series[i].T : 1, 1))) s = NS_ERR_NOMEM;
  if (s) goto done;
  sum->windows_total = nw;
  sum->window = window;
  for (size_t i = 0; i < nw; i++) {
    const uint8_t *ex = r->excluded[w[i].series];
    bool bad = false;
    for (uint32_t t = w[i].start; t < w[i].start + (uint32_t)window && t < r->series[w[i].series].T; t++)
      bad |= ex[t] != 0;
    if (bad) sum->windows_labelled++;
    else keep[nkeep++] = i;
  }
  bool split = holdout && nkeep >= 10;
  for (size_t k = 0; k < nkeep; k++) {
    const ns_train_window *x = &w[keep[k]];
    uint8_t bit = split && k % 5 == 4 ? 2 : 1;
    if (bit == 2) ncalib++;
    else ntrain++;
    for (size_t t = x->start; t < x->start + (size_t)window && t < r->series[x->series].T; t++)
      role[x->series][t] |= bit;
  }
  if (ntrain == 0) {
    s = ns_errorf(NS_ERR_TOO_SHORT, "cluster %d has no training window of %d points (representatives too short "
                  "or all labelled anomalous)", c->label, window);
    goto done;
  }
  /* The training rows as runs of consecutive rows: the baselines see points,
   * not windows, so a run stands for its series (same weight). */
  for (size_t i = 0; i < r->n; i++)
    for (size_t t = 0; t < r->series[i].T; t++) nruns += (role[i][t] & 1) && (t == 0 || !(role[i][t - 1] & 1));
  if (!(runs = malloc(nruns * sizeof *runs))) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  size_t M = lib->M, k = 0;
  for (size_t i = 0; i < r->n; i++)
    for (size_t t = 0; t < r->series[i].T; t++) {
      if (!(role[i][t] & 1)) continue;
      if (t == 0 || !(role[i][t - 1] & 1))
        runs[k++] = (ns_train_series){r->series[i].x + t * M, 0, r->series[i].weight, 0, NULL};
      runs[k - 1].T++;
    }
  if ((s = ns_baseline_train(kind, (const char *const *)lib->metrics, M, c->mac_weight, runs, nruns, bo, &b)))
    goto done;
  sum->rounds = 1;
  sum->windows_used = ntrain;
  sum->train_loss = ns_baseline_score_stats(b)->mean; /* mean training score: a baseline has no other loss */
  if (ncalib) {
    ns_score_stats stats;
    if ((s = baseline_scores(b, r->series, r->n, role, 2, window, &sc, &nsc, &starts, &nstarts))) goto done;
    if ((s = ns_score_stats_calibrate(sc, NULL, nsc, starts, nstarts, (ns_calib_rule[]){calib_rule(cfg)}, &stats,
                                            &sum->calibration_trimmed)))
      goto done;
    ns_baseline_set_score_stats(b, &stats);
    sum->calibration_windows = ncalib;
  }
  const ns_score_stats *ss = ns_baseline_score_stats(b);
  sum->score_mean = ss->mean;
  sum->score_q99 = ns_score_stats_quantile(ss, 0.99);
  *out = b;
  b = NULL;
done:
  ns_baseline_free(b);
  for (size_t i = 0; role && i < r->n; i++) free(role[i]);
  free(role);
  free(runs);
  free(sc);
  free(starts);
  free(keep);
  free(w);
  return s;
}

/* calibrate() for a baseline: the same held-out members, the same windows
 * (`window` points), the same trimming. */
static ns_status calibrate_baseline(ns_store *st, const ns_clib_cluster *c, const ns_clib *lib, ns_baseline *b,
                                    const uint8_t *used, size_t cap, int window, const ns_calib_rule *rule, size_t *n_used,
                                    size_t *trimmed) {
  *n_used = 0;
  ns_segment **seg = NULL;
  ns_train_series *ser = NULL;
  size_t n = 0, k = 0;
  ns_status s = load_calibration(st, c, lib, used, cap, &seg, &ser, &n, &k);
  float *sc = NULL;
  size_t nsc = 0, *starts = NULL, nstarts = 0;
  if (!s && k > 0) s = baseline_scores(b, ser, k, NULL, 0, window, &sc, &nsc, &starts, &nstarts);
  if (!s && nsc > 0) {
    ns_score_stats stats;
    size_t cut = 0;
    s = ns_score_stats_calibrate(sc, NULL, nsc, starts, nstarts, rule, &stats, &cut);
    if (!s) {
      *trimmed = cut;
      ns_baseline_set_score_stats(b, &stats);
      *n_used = k;
    } else if (s == NS_ERR_EMPTY) {
      ns_err_clear();
      s = NS_OK; /* nothing finite to calibrate on: keep the training statistics */
    }
  }
  free_calibration(seg, ser, n);
  free(sc);
  free(starts);
  return s;
}

static ns_status train_baseline_library(ns_store *st, const ns_config *cfg, const ns_train_plan *plan,
                                        ns_baseline_kind kind, ns_train_summary *out) {
  double t0 = now_s();
  ns_clib_params cp;
  ns_model_hparams hp; /* for the window the Transformer would use */
  ns_baseline_opts bo;
  ns_clib *lib = NULL;
  ns_baseline **bases = NULL;
  int64_t prep_version = 0;
  ns_model_hparams_default(&hp);
  ns_status s = ns_clib_params_from_config(cfg, &cp);
  if (!s) s = ns_model_hparams_from_config(cfg, &hp);
  if (!s) s = ns_baseline_opts_from_config(cfg, &bo);
  if (s) return s;
  ns_seg_filter f = {plan->cluster, NULL, NULL, -1, plan->split, plan->from_ms, plan->to_ms};
  if ((s = ns_clib_build_store(st, &f, &cp, plan->progress, plan->progress_ctx, &lib))) return s;
  out->seconds_features = now_s() - t0;
  out->n_clusters = lib->n_clusters;
  for (size_t c = 0; c < lib->n_clusters; c++) out->n_segments += lib->clusters[c].size;
  if ((s = find_prep(st, plan->cluster, lib, &prep_version))) goto done;
  if (!(out->clusters = calloc(lib->n_clusters, sizeof *out->clusters)) ||
      !(bases = calloc(lib->n_clusters, sizeof *bases))) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  double t1 = now_s();
  ns_calib_rule trim = calib_rule(cfg);
  for (size_t c = 0; c < lib->n_clusters; c++) {
    progress(plan, "models", c, lib->n_clusters);
    const ns_clib_cluster *cl = &lib->clusters[c];
    ns_train_cluster_summary *cs = &out->clusters[c];
    cs->label = cl->label;
    cs->kind = cl->kind;
    cs->size = cl->size;
    cs->n_rep = cl->n_rep;
    rep_data r = {0};
    int window = hp.window;
    uint8_t *used = calloc(cl->size ? cl->size : 1, 1);
    s = used ? NS_OK : NS_ERR_NOMEM;
    if (!s)
      s = load_training(st, cfg, cl, lib, (size_t)hp.window, &r, used);
    if (!s) s = train_baseline_cluster(cfg, kind, &bo, hp.window, lib, c, &r, r.n >= cl->size, &bases[c], &window, cs);
    cs->n_series = r.n;
    rep_data_free(&r);
    if (!s)
      s = calibrate_baseline(st, cl, lib, bases[c], used, calib_members(cfg), window, &trim, &cs->calibration_segments,
                             &cs->calibration_trimmed);
    free(used);
    if (!s && cs->calibration_segments) {
      const ns_score_stats *ss = ns_baseline_score_stats(bases[c]);
      cs->score_mean = ss->mean;
      cs->score_q99 = ns_score_stats_quantile(ss, 0.99);
    }
    if (s) {
      s = ns_errorf(s, "cluster %s-%d: %s", cl->kind == NS_SEG_JOB ? "job" : "idle", cl->label, ns_err_detail());
      goto done;
    }
  }
  progress(plan, "models", lib->n_clusters, lib->n_clusters);
  out->seconds_models = now_s() - t1;
  if ((s = save_library(st, plan, lib, NULL, bases, prep_version, plan->cluster, out))) goto done;
  out->seconds = now_s() - t0;
done:
  for (size_t c = 0; bases && c < lib->n_clusters; c++) ns_baseline_free(bases[c]);
  free(bases);
  ns_clib_free(lib);
  if (s) {
    free(out->clusters);
    out->clusters = NULL;
  }
  return s;
}

ns_status ns_pipeline_train(ns_store *st, const ns_config *cfg, const ns_train_plan *plan, ns_train_summary *out) {
  memset(out, 0, sizeof *out);
  ns_baseline_kind bkind;
  bool baseline = ns_variant_baseline(plan->variant, &bkind);
  if (baseline && plan->incremental)
    return ns_errorf(NS_ERR_INVAL, "variant %s: baselines are trained anew, not incrementally",
                     ns_variant_name(plan->variant));
  if (baseline) return train_baseline_library(st, cfg, plan, bkind, out);
  if (plan->incremental) return train_incremental(st, cfg, plan, out);
  double t0 = now_s();
  ns_clib_params cp;
  ns_model_hparams hp;
  ns_clib *lib = NULL;
  ns_model **models = NULL;
  char *params = NULL;
  int64_t prep_version = 0;
  ns_model_hparams_default(&hp);
  long thr = ns_cfg_int(cfg, NS_CFG_threads);
  hp.threads = (int)(thr > 0 ? thr : sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1);
  ns_status s = ns_clib_params_from_config(cfg, &cp);
  if (!s) s = ns_model_hparams_from_config(cfg, &hp);
  if (s) return s;
  if (plan->variant == NS_VARIANT_C1) {
    /* One global model: a single cluster of every segment, job and idle
     * alike (separating the kinds is already a clustering), trained on as
     * many representatives as the full method's clusters together usually
     * get. */
    cp.k_min = cp.k_max = 1;
    cp.one_pool = true;
    cp.n_rep = cp.n_rep * 4;
  }
  if (plan->variant == NS_VARIANT_C4) hp.between_pos = false;
  if (plan->variant == NS_VARIANT_C5) hp.moe = false;
  ns_seg_filter f = {plan->cluster, NULL, NULL, -1, plan->split, plan->from_ms, plan->to_ms};
  if (plan->variant == NS_VARIANT_C3) {
    /* Equal-length cuts of each node's timeline replace the job segments. */
    size_t ncut = 0;
    if ((s = ns_c3_equal_cuts(st, plan->cluster, plan->split, plan->from_ms, plan->to_ms,
                              ns_cfg_int(cfg, NS_CFG_ablation_cut), false, "train-c3", &ncut)))
      return s;
    if (ncut == 0)
      return ns_errorf(NS_ERR_EMPTY, "C3: no node's timeline is as long as ablation_cut (%lld s)",
                       (long long)(ns_cfg_int(cfg, NS_CFG_ablation_cut) / 1000));
    f.split = "train-c3";
    /* The test period is cut the same way (tails kept: every point is
     * scored), so that C3 is scored on pieces of the kind its clusters hold,
     * not on job segments. No test split: nothing to cut. */
    s = ns_c3_equal_cuts(st, plan->cluster, "test", 0, 0, ns_cfg_int(cfg, NS_CFG_ablation_cut), true, "test-c3",
                         &out->n_c3_test_cuts);
    if (s == NS_ERR_EMPTY) ns_err_clear(), s = NS_OK;
    if (s) return s;
  }
  if (plan->variant == NS_VARIANT_C2)
    s = ns_clib_random_build_store(st, &f, &cp, (uint64_t)ns_cfg_int(cfg, NS_CFG_ablation_seed), plan->progress,
                                   plan->progress_ctx, &lib, NULL);
  else
    s = ns_clib_build_store(st, &f, &cp, plan->progress, plan->progress_ctx, &lib);
  if (s) return s;
  out->seconds_features = now_s() - t0;
  out->n_clusters = lib->n_clusters;
  for (size_t c = 0; c < lib->n_clusters; c++) out->n_segments += lib->clusters[c].size;
  if ((s = find_prep(st, plan->cluster, lib, &prep_version))) goto fail;
  hp.n_metrics = (int)lib->M;
  if (!(out->clusters = calloc(lib->n_clusters, sizeof *out->clusters)) ||
      !(models = calloc(lib->n_clusters, sizeof *models))) {
    s = NS_ERR_NOMEM;
    goto fail;
  }
  double t1 = now_s();
  for (size_t c = 0; c < lib->n_clusters; c++) {
    progress(plan, "models", c, lib->n_clusters);
    ns_train_cluster_summary *cs = &out->clusters[c];
    cs->label = lib->clusters[c].label;
    cs->kind = lib->clusters[c].kind;
    cs->size = lib->clusters[c].size;
    cs->n_rep = lib->clusters[c].n_rep;
    rep_data r = {0};
    uint8_t *used = calloc(lib->clusters[c].size ? lib->clusters[c].size : 1, 1);
    s = used ? NS_OK : NS_ERR_NOMEM;
    if (!s)
      s = load_training(st, cfg, &lib->clusters[c], lib, (size_t)hp.window, &r, used);
    if (!s) s = train_cluster(st, cfg, &hp, lib, c, &r, r.n >= lib->clusters[c].size, &models[c], cs);
    cs->n_series = r.n;
    rep_data_free(&r);
    if (!s) s = calibrate(st, cfg, &lib->clusters[c], lib, models[c], used, calib_members(cfg), &cs->calibration_segments,
                                 &cs->calibration_trimmed);
    free(used);
    if (!s && cs->calibration_segments) {
      const ns_score_stats *ss = ns_model_score_stats(models[c]);
      cs->score_mean = ss->mean;
      cs->score_q99 = ns_score_stats_quantile(ss, 0.99);
    }
    if (s) {
      s = ns_errorf(s, "cluster %s-%d: %s", lib->clusters[c].kind == NS_SEG_JOB ? "job" : "idle",
                    lib->clusters[c].label, ns_err_detail());
      goto fail;
    }
  }
  progress(plan, "models", lib->n_clusters, lib->n_clusters);
  out->seconds_models = now_s() - t1;
  if ((s = save_library(st, plan, lib, models, NULL, prep_version, plan->cluster, out))) goto fail;
  out->seconds = now_s() - t0;
  for (size_t c = 0; c < lib->n_clusters; c++) ns_model_free(models[c]);
  free(models);
  free(params);
  ns_clib_free(lib);
  return NS_OK;
fail:
  if (models)
    for (size_t c = 0; lib && c < lib->n_clusters; c++) ns_model_free(models[c]);
  free(models);
  free(params);
  ns_clib_free(lib);
  free(out->clusters);
  out->clusters = NULL;
  return s;
}

ns_status ns_library_list(ns_store *st, ns_library_info **out, size_t *n) {
  *out = NULL;
  *n = 0;
  ns_db_stmt *q = NULL;
  bool row;
  size_t cap = 0, cnt = 0;
  ns_library_info *v = NULL;
  ns_status s = ns_db_prepare(ns_store_db(st),
                              "SELECT l.id, l.version, l.created_ms, l.active, l.notes, l.params,"
                              " (SELECT COUNT(*) FROM clusters c WHERE c.library_id = l.id)"
                              " FROM model_libraries l ORDER BY l.id",
                              &q);
  while (!s && !(s = ns_db_step(q, &row)) && row) {
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      ns_library_info *nv = realloc(v, cap * sizeof *nv);
      if (!nv) {
        s = NS_ERR_NOMEM;
        break;
      }
      v = nv;
    }
    ns_library_info *li = &v[cnt++];
    memset(li, 0, sizeof *li);
    li->id = ns_db_col_int64(q, 0);
    snprintf(li->version, sizeof li->version, "%s", ns_db_col_text(q, 1) ? ns_db_col_text(q, 1) : "");
    li->created_ms = ns_db_col_int64(q, 2);
    li->active = ns_db_col_int64(q, 3) != 0;
    snprintf(li->notes, sizeof li->notes, "%s", ns_db_col_text(q, 4) ? ns_db_col_text(q, 4) : "");
    size_t nb = 0;
    const char *blob = ns_db_col_blob(q, 5, &nb);
    char *json = blob ? strndup(blob, nb) : NULL;
    ns_library_params p;
    if (json && ns_library_params_parse(json, &p) == NS_OK)
      snprintf(li->variant, sizeof li->variant, "%s", ns_variant_name(p.variant));
    else
      snprintf(li->variant, sizeof li->variant, "?");
    free(json);
    li->n_clusters = (int)ns_db_col_int64(q, 6);
  }
  ns_db_finalize(q);
  if (s) {
    free(v);
    return s;
  }
  *out = v;
  *n = cnt;
  return NS_OK;
}
