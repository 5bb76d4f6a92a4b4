#include "ns_detect.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_clib.h"
#include "ns_detect_internal.h"
#include "ns_model.h"
#include "ns_prep.h"
#include "ns_thresh.h"

int64_t ns_library_id(const ns_library *lib) { return lib ? lib->id : 0; }
const char *ns_library_version(const ns_library *lib) { return lib ? lib->version : ""; }

ns_status ns_library_set_precision(ns_library *lib, ns_precision p) {
  if (!lib) return ns_errorf(NS_ERR_INVAL, "ns_library_set_precision: NULL library");
  for (size_t c = 0; c < lib->n_models; c++) {
    if (!lib->models || !lib->models[c]) continue;
    ns_status s = ns_model_set_precision(lib->models[c], p);
    if (s) return ns_errorf(s, "model of cluster %zu: %s", c, ns_err_detail());
  }
  return NS_OK;
}
bool ns_library_has_prep(const ns_library *lib) { return lib && lib->prep; }
size_t ns_library_n_metrics(const ns_library *lib) { return lib ? lib->M : 0; }
const char *ns_library_metric(const ns_library *lib, size_t i) {
  return lib && i < lib->M ? lib->metrics[i] : NULL;
}

void ns_library_free(ns_library *lib) {
  if (!lib) return;
  ns_prep_params_free(lib->prep);
  ns_clib_free(lib->clib);
  for (size_t i = 0; i < lib->n_models; i++) {
    if (lib->models) ns_model_free(lib->models[i]);
    if (lib->baselines) ns_baseline_free(lib->baselines[i]);
  }
  free(lib->models);
  free(lib->baselines);
  if (lib->metrics)
    for (size_t i = 0; i < lib->M; i++) free(lib->metrics[i]);
  free(lib->metrics);
  free(lib);
}

ns_status ns_library_params_parse(const char *json, ns_library_params *p) {
  memset(p, 0, sizeof *p);
  cJSON *root = json ? cJSON_Parse(json) : NULL;
  if (!root) return ns_errorf(NS_ERR_CORRUPT, "model library parameters are not valid JSON");
  ns_status st = NS_OK;
  cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
  cJSON *var = cJSON_GetObjectItemCaseSensitive(root, "variant");
  cJSON *pc = cJSON_GetObjectItemCaseSensitive(root, "prep_cluster");
  cJSON *pv = cJSON_GetObjectItemCaseSensitive(root, "prep_version");
  cJSON *cv = cJSON_GetObjectItemCaseSensitive(root, "clib_version");
  if (!cJSON_IsNumber(fmt) || fmt->valueint != NS_LIBRARY_FORMAT)
    st = ns_errorf(NS_ERR_VERSION, "model library format %d, this build reads %d",
                   cJSON_IsNumber(fmt) ? fmt->valueint : -1, NS_LIBRARY_FORMAT);
  else if (!cJSON_IsString(var) || ns_variant_parse(var->valuestring, &p->variant))
    st = ns_errorf(NS_ERR_CORRUPT, "model library has no valid variant");
  if (!st) {
    snprintf(p->prep_cluster, sizeof p->prep_cluster, "%s", cJSON_IsString(pc) ? pc->valuestring : "");
    p->prep_version = cJSON_IsNumber(pv) ? (int64_t)pv->valuedouble : 0;
    p->clib_version = cJSON_IsNumber(cv) ? (int64_t)cv->valuedouble : 0;
  }
  cJSON_Delete(root);
  return st;
}

/* ---- a cluster's reconstruction model, whichever kind ----
 * Scoring reaches each cluster's model only through these calls, so the
 * Transformer (ns_model) and the baselines of variants zscore/ae
 * (ns_baseline) share matching, thresholds, intervals and top metrics. */

typedef struct recon {
  const ns_model *model; /* exactly one of the two is set */
  const ns_baseline *base;
} recon;

static recon cluster_recon(const ns_library *lib, size_t c) { return (recon){lib->models[c], lib->baselines[c]}; }

static bool recon_loaded(recon r) { return r.model || r.base; }

static const ns_score_stats *recon_stats(recon r) {
  return r.base ? ns_baseline_score_stats(r.base) : ns_model_score_stats(r.model);
}

/* Reconstruct x (T x M) as the cluster's representative `rep` would look,
 * then per-point scores and the per-metric terms that sum to them. */
static ns_status recon_score(recon r, const float *x, size_t T, size_t rep, float *xhat, float *score, float *merr) {
  ns_status s;
  if (r.base) {
    if (!(s = ns_baseline_reconstruct(r.base, x, T, xhat))) ns_baseline_score(r.base, x, xhat, T, score, merr);
    return s;
  }
  int nseg = ns_model_get_hparams(r.model)->n_segments;
  if (!(s = ns_model_reconstruct(r.model, x, T, (int)rep < nseg ? (int)rep : 0, xhat)))
    ns_model_score(r.model, x, xhat, T, score, merr);
  return s;
}

/* A models-row blob into cluster c's slot: a baseline when the library's
 * variant says so or the blob is one, else a Transformer. A zscore/ae
 * library holds baselines of its own kind only. */
static ns_status recon_load(ns_library *lib, size_t c, const void *blob, size_t n) {
  const char *const *names = (const char *const *)lib->metrics;
  ns_baseline_kind want;
  bool base_lib = ns_variant_baseline(lib->variant, &want);
  ns_model_free(lib->models[c]);
  lib->models[c] = NULL;
  ns_baseline_free(lib->baselines[c]);
  lib->baselines[c] = NULL;
  if (!base_lib && !ns_baseline_blob_is(blob, n)) return ns_model_load(blob, n, names, lib->M, &lib->models[c]);
  ns_status s = ns_baseline_load(blob, n, names, lib->M, &lib->baselines[c]);
  if (!s && base_lib && ns_baseline_get_kind(lib->baselines[c]) != want) {
    s = ns_errorf(NS_ERR_CORRUPT, "a %s baseline in a %s library",
                  ns_baseline_kind_name(ns_baseline_get_kind(lib->baselines[c])), ns_variant_name(lib->variant));
    ns_baseline_free(lib->baselines[c]);
    lib->baselines[c] = NULL;
  }
  return s;
}

static ns_status load_models(ns_store *st, ns_library *lib) {
  ns_db_stmt *q = NULL;
  bool row;
  lib->n_models = lib->clib->n_clusters;
  size_t nm = lib->n_models ? lib->n_models : 1;
  if (!(lib->models = calloc(nm, sizeof *lib->models)) || !(lib->baselines = calloc(nm, sizeof *lib->baselines)))
    return NS_ERR_NOMEM;
  ns_status s = ns_db_prepare(ns_store_db(st), "SELECT cluster_id, blob FROM models WHERE library_id = ?1 AND blob IS NOT NULL", &q);
  if (!s) s = ns_db_bind_int64(q, 1, lib->id);
  while (!s && !(s = ns_db_step(q, &row)) && row) {
    int64_t cid = ns_db_col_int64(q, 0);
    size_t n = 0;
    const void *blob = ns_db_col_blob(q, 1, &n);
    for (size_t c = 0; c < lib->clib->n_clusters; c++) {
      if (lib->clib->clusters[c].db_id != cid) continue;
      if ((s = recon_load(lib, c, blob, n)))
        s = ns_errorf(s, "model of cluster %lld: %s", (long long)cid, ns_err_detail());
      break;
    }
  }
  ns_db_finalize(q);
  if (s) return s;
  for (size_t c = 0; c < lib->n_models; c++) {
    if (recon_loaded(cluster_recon(lib, c))) continue;
    return ns_errorf(NS_ERR_NOTFOUND, "model library %s has no model for cluster %zu", lib->version, c);
  }
  return NS_OK;
}

ns_status ns_library_load(ns_store *st, int64_t library_id, ns_library **out) {
  *out = NULL;
  ns_db_stmt *q = NULL;
  bool row = false;
  ns_library *lib = calloc(1, sizeof *lib);
  if (!lib) return NS_ERR_NOMEM;
  lib->id = library_id;
  ns_library_params p;
  ns_status s = ns_db_prepare(ns_store_db(st), "SELECT version, params FROM model_libraries WHERE id = ?1", &q);
  if (!s) s = ns_db_bind_int64(q, 1, library_id);
  if (!s) s = ns_db_step(q, &row);
  if (!s && !row) s = ns_errorf(NS_ERR_NOTFOUND, "model library %lld not found", (long long)library_id);
  if (!s) {
    snprintf(lib->version, sizeof lib->version, "%s", ns_db_col_text(q, 0) ? ns_db_col_text(q, 0) : "");
    size_t n = 0;
    const char *blob = ns_db_col_blob(q, 1, &n);
    char *json = blob ? strndup(blob, n) : NULL;
    s = ns_library_params_parse(json, &p);
    free(json);
  }
  ns_db_finalize(q);
  if (s) goto fail;
  lib->variant = p.variant;
  if (p.prep_version > 0 && (s = ns_prep_store_load(st, p.prep_cluster, p.prep_version, &lib->prep))) goto fail;
  if ((s = ns_clib_load_for_library(st, library_id, &lib->clib))) goto fail;
  lib->M = lib->clib->M;
  if (!(lib->metrics = calloc(lib->M, sizeof *lib->metrics))) {
    s = NS_ERR_NOMEM;
    goto fail;
  }
  for (size_t m = 0; m < lib->M; m++)
    if (!(lib->metrics[m] = strdup(lib->clib->metrics[m]))) {
      s = NS_ERR_NOMEM;
      goto fail;
    }
  if ((s = load_models(st, lib))) goto fail;
  *out = lib;
  return NS_OK;
fail:
  ns_library_free(lib);
  return s;
}

ns_status ns_library_load_active(ns_store *st, ns_library **out) {
  *out = NULL;
  ns_db_stmt *q = NULL;
  bool row = false;
  ns_status s = ns_db_prepare(ns_store_db(st), "SELECT id FROM model_libraries WHERE active = 1 ORDER BY id DESC LIMIT 1", &q);
  if (!s) s = ns_db_step(q, &row);
  int64_t id = row ? ns_db_col_int64(q, 0) : 0;
  ns_db_finalize(q);
  if (s) return s;
  if (!row) return ns_errorf(NS_ERR_NOTFOUND, "no model library is active (run `nsentry train`)");
  return ns_library_load(st, id, out);
}

void ns_node_verdict_free(ns_node_verdict *v) {
  if (!v) return;
  free(v->intervals);
  free(v->score);
  free(v->flag);
  free(v);
}

typedef struct {
  size_t m;
  double v;
} contrib;

static int cmp_contrib(const void *a, const void *b) {
  double x = ((const contrib *)a)->v, y = ((const contrib *)b)->v;
  if (x != y) return (x < y) - (x > y);
  return (((const contrib *)a)->m > ((const contrib *)b)->m) - (((const contrib *)a)->m < ((const contrib *)b)->m);
}

/* Thresholds, intervals and top metrics from per-point scores. */
static ns_status summarise(const ns_score_stats *ss, const ns_segment *seg, const float *xhat, const float *merr,
                           const ns_config *cfg, ns_node_verdict *v) {
  v->noise_floor = ns_score_stats_quantile(ss, ns_cfg_double(cfg, NS_CFG_detect_noise_quantile));
  v->threshold = ns_cfg_double(cfg, NS_CFG_detect_level_factor) *
                 ns_score_stats_quantile(ss, ns_cfg_double(cfg, NS_CFG_detect_level_quantile));
  /* A new pattern is reconstructed by a model of another pattern: its error
   * level says little, so only the paper's change rule judges it (the
   * verdict still carries new_pattern for incremental training). */
  double level = v->new_pattern ? 0 : v->threshold;
  ns_thresh_params tp = {.k = ns_cfg_double(cfg, NS_CFG_detect_k),
                         .window_ms = ns_cfg_int(cfg, NS_CFG_detect_window),
                         .interval_ms = seg->interval_ms,
                         .noise_floor = v->noise_floor,
                         .level = level,
                         .level_min_ms = ns_cfg_int(cfg, NS_CFG_detect_level_min_duration)};
  ns_status s = ns_thresh_apply(v->score, v->T, &tp, v->flag);
  if (s) return s;
  ns_span *sp = NULL;
  size_t nsp = 0;
  if ((s = ns_thresh_spans(v->score, v->flag, v->T, seg->start_ms, seg->interval_ms,
                           ns_cfg_int(cfg, NS_CFG_detect_min_interval), &sp, &nsp)))
    return s;
  double sum = 0, mx = 0;
  for (size_t t = 0; t < v->T; t++) {
    sum += v->score[t];
    if (v->score[t] > mx) mx = v->score[t];
  }
  v->score_max = mx;
  v->score_mean = v->T ? sum / (double)v->T : 0;
  v->n_intervals = nsp;
  v->anomalous = nsp > 0;
  if (nsp && !(v->intervals = calloc(nsp, sizeof *v->intervals))) {
    free(sp);
    return NS_ERR_NOMEM;
  }
  contrib *c = malloc(seg->M * sizeof *c);
  if (!c) {
    free(sp);
    return NS_ERR_NOMEM;
  }
  for (size_t i = 0; i < nsp; i++) {
    ns_interval *iv = &v->intervals[i];
    iv->start_ms = sp[i].start_ms;
    iv->end_ms = sp[i].end_ms;
    iv->score_max = sp[i].score_max;
    for (size_t m = 0; m < seg->M; m++) {
      c[m].m = m;
      c[m].v = 0;
      for (size_t t = sp[i].t0; t <= sp[i].t1; t++) c[m].v += merr[t * seg->M + m];
    }
    qsort(c, seg->M, sizeof *c, cmp_contrib);
    iv->n_top = seg->M < NS_TOP_METRICS ? (int)seg->M : NS_TOP_METRICS;
    for (int k = 0; k < iv->n_top; k++) {
      size_t m = c[k].m;
      double dir = 0;
      for (size_t t = sp[i].t0; t <= sp[i].t1; t++) dir += seg->x[t * seg->M + m] - xhat[t * seg->M + m];
      snprintf(iv->top_metric[k], sizeof iv->top_metric[k], "%s", seg->metrics[m]);
      iv->top_direction[k] = dir >= 0 ? 1 : -1;
    }
  }
  free(c);
  free(sp);
  return NS_OK;
}

ns_status ns_detect_prepped(const ns_library *lib, const ns_segment *seg, const ns_config *cfg,
                            ns_node_verdict **out) {
  *out = NULL;
  if (!lib || !seg) return ns_errorf(NS_ERR_INVAL, "detect: no library or segment");
  if (seg->M != lib->M)
    return ns_errorf(NS_ERR_SCHEMA, "segment has %zu metrics, model library %s expects %zu", seg->M, lib->version,
                     lib->M);
  for (size_t m = 0; m < seg->M; m++)
    if (!seg->metrics[m] || strcmp(seg->metrics[m], lib->metrics[m]) != 0)
      return ns_errorf(NS_ERR_SCHEMA, "metric %zu is '%s', model library %s expects '%s'", m,
                       seg->metrics[m] ? seg->metrics[m] : "(none)", lib->version, lib->metrics[m]);
  ns_status s = ns_segment_check(seg);
  if (s) return s;
  ns_node_verdict *v = calloc(1, sizeof *v);
  if (!v) return NS_ERR_NOMEM;
  size_t T = seg->T, M = seg->M;
  float *xhat = NULL, *merr = NULL;
  v->T = T;
  v->start_ms = seg->start_ms;
  v->interval_ms = seg->interval_ms;
  v->cluster = -1;
  snprintf(v->model_version, sizeof v->model_version, "%s", lib->version);
  v->score = calloc(T, sizeof *v->score);
  v->flag = calloc(T, 1);
  if (!v->score || !v->flag) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  ns_clib_match best;
  size_t nbest = 0;
  if ((s = ns_clib_match_segment(lib->clib, seg, &best, 1, &nbest))) goto done;
  if (nbest == 0) {
    s = ns_errorf(NS_ERR_NOTFOUND, "model library %s has no cluster to match", lib->version);
    goto done;
  }
  recon model = cluster_recon(lib, best.cluster);
  v->cluster = best.label;
  v->cluster_db_id = best.db_id;
  v->new_pattern = best.unmatched;
  v->match_distance = best.distance;
  xhat = malloc(T * M * sizeof *xhat);
  merr = malloc(T * M * sizeof *merr);
  if (!xhat || !merr) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  if ((s = recon_score(model, seg->x, T, best.nearest_rep, xhat, v->score, merr))) goto done;
  s = summarise(recon_stats(model), seg, xhat, merr, cfg, v);
  v->scored = !s;
done:
  free(xhat);
  free(merr);
  if (s) {
    ns_node_verdict_free(v);
    return s;
  }
  *out = v;
  return NS_OK;
}

/* Several preprocessed pieces (a long gap split the shipped window) give
 * one verdict: per-point arrays are concatenated in time order. */
static ns_status merge_into(ns_node_verdict *acc, const ns_node_verdict *v) {
  size_t T = acc->T + v->T;
  float *sc = realloc(acc->score, T * sizeof *sc);
  if (!sc) return NS_ERR_NOMEM;
  acc->score = sc;
  uint8_t *fl = realloc(acc->flag, T);
  if (!fl) return NS_ERR_NOMEM;
  acc->flag = fl;
  memcpy(acc->score + acc->T, v->score, v->T * sizeof *sc);
  memcpy(acc->flag + acc->T, v->flag, v->T);
  if (v->n_intervals) {
    ns_interval *iv = realloc(acc->intervals, (acc->n_intervals + v->n_intervals) * sizeof *iv);
    if (!iv) return NS_ERR_NOMEM;
    acc->intervals = iv;
    memcpy(acc->intervals + acc->n_intervals, v->intervals, v->n_intervals * sizeof *iv);
    acc->n_intervals += v->n_intervals;
  }
  acc->score_mean = (acc->score_mean * (double)acc->T + v->score_mean * (double)v->T) / (double)T;
  if (v->score_max > acc->score_max) acc->score_max = v->score_max;
  acc->anomalous |= v->anomalous;
  acc->new_pattern |= v->new_pattern;
  acc->T = T;
  return NS_OK;
}

ns_status ns_detect_segment(const ns_library *lib, const ns_segment *raw, const ns_config *cfg,
                            ns_node_verdict **out) {
  *out = NULL;
  if (!lib) return ns_errorf(NS_ERR_STATE, "no model library loaded");
  if (!lib->prep) return ns_detect_prepped(lib, raw, cfg, out);
  ns_segment **pieces = NULL;
  size_t n = 0;
  ns_status s = ns_prep_apply_segment(lib->prep, raw, &pieces, &n, NULL);
  if (s) return s;
  ns_node_verdict *acc = NULL;
  for (size_t i = 0; i < n && !s; i++) {
    ns_node_verdict *v = NULL;
    if ((s = ns_detect_prepped(lib, pieces[i], cfg, &v))) break;
    if (!acc) acc = v;
    else {
      s = merge_into(acc, v);
      ns_node_verdict_free(v);
    }
  }
  ns_prep_segments_free(pieces, n);
  if (s) {
    ns_node_verdict_free(acc);
    return s;
  }
  if (!acc) {
    /* Too short or all gaps after cleaning: an honest "not scored". */
    if (!(acc = calloc(1, sizeof *acc))) return NS_ERR_NOMEM;
    acc->cluster = -1;
    acc->start_ms = raw->start_ms;
    acc->interval_ms = raw->interval_ms;
    snprintf(acc->model_version, sizeof acc->model_version, "%s", lib->version);
    snprintf(acc->note, sizeof acc->note, "too short to score after preprocessing (%zu points)", raw->T);
  }
  *out = acc;
  return NS_OK;
}

ns_status ns_node_verdict_json(const ns_node_verdict *v, char **out) {
  *out = NULL;
  cJSON *root = cJSON_CreateObject();
  if (!root) return NS_ERR_NOMEM;
  cJSON_AddBoolToObject(root, "scored", v->scored);
  if (v->note[0]) cJSON_AddStringToObject(root, "note", v->note);
  cJSON_AddBoolToObject(root, "anomalous", v->anomalous);
  cJSON_AddBoolToObject(root, "new_pattern", v->new_pattern);
  cJSON_AddNumberToObject(root, "score_max", v->score_max);
  cJSON_AddNumberToObject(root, "score_mean", v->score_mean);
  cJSON_AddNumberToObject(root, "cluster", v->cluster);
  cJSON_AddNumberToObject(root, "match_distance", isfinite(v->match_distance) ? v->match_distance : 0);
  cJSON_AddStringToObject(root, "model", v->model_version);
  cJSON_AddNumberToObject(root, "threshold", isfinite(v->threshold) ? v->threshold : 0);
  cJSON_AddNumberToObject(root, "noise_floor", isfinite(v->noise_floor) ? v->noise_floor : 0);
  cJSON_AddNumberToObject(root, "points", (double)v->T);
  cJSON *arr = cJSON_AddArrayToObject(root, "intervals");
  cJSON *all = cJSON_AddArrayToObject(root, "top_metrics"); /* every interval's, once each */
  for (size_t i = 0; arr && all && i < v->n_intervals; i++) {
    const ns_interval *iv = &v->intervals[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "start_ms", (double)iv->start_ms);
    cJSON_AddNumberToObject(o, "end_ms", (double)iv->end_ms);
    cJSON_AddNumberToObject(o, "score_max", isfinite(iv->score_max) ? iv->score_max : 0);
    cJSON *top = cJSON_AddArrayToObject(o, "top_metrics");
    for (int k = 0; top && k < iv->n_top; k++) {
      cJSON *t = cJSON_CreateObject();
      cJSON_AddStringToObject(t, "metric", iv->top_metric[k]);
      cJSON_AddStringToObject(t, "direction", iv->top_direction[k] > 0 ? "above" : "below");
      cJSON_AddItemToArray(top, t);
      bool seen = false;
      for (cJSON *x = all->child; x && !seen; x = x->next) seen = strcmp(x->valuestring, iv->top_metric[k]) == 0;
      if (!seen) cJSON_AddItemToArray(all, cJSON_CreateString(iv->top_metric[k]));
    }
    cJSON_AddItemToArray(arr, o);
  }
  *out = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return *out ? NS_OK : NS_ERR_NOMEM;
}

ns_status ns_detect_store_verdict(ns_store *st, const char *cluster, const char *job_id, const char *node,
                                  int64_t segment_id, const ns_node_verdict *v) {
  char *json = NULL;
  ns_status s = ns_node_verdict_json(v, &json);
  if (s) return s;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  ns_db *db = ns_store_db(st);
  ns_db_stmt *q = NULL;
  bool row;
  s = ns_db_prepare(db,
                    "INSERT INTO verdicts (cluster, job_id, node, segment_id, anomalous, score_max, score_mean,"
                    " new_pattern, pattern_id, model_version, details, created_ms, scores, threshold)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?9, ?11, ?12, ?13, ?14)"
                    " ON CONFLICT (cluster, job_id, node) DO UPDATE SET segment_id = excluded.segment_id,"
                    " anomalous = excluded.anomalous, score_max = excluded.score_max,"
                    " score_mean = excluded.score_mean, new_pattern = excluded.new_pattern,"
                    " pattern_id = excluded.pattern_id, model_version = excluded.model_version,"
                    " details = excluded.details, created_ms = excluded.created_ms, scores = excluded.scores,"
                    " threshold = excluded.threshold",
                    &q);
  if (!s) s = ns_db_bind_text(q, 1, cluster);
  if (!s) s = ns_db_bind_text(q, 2, job_id ? job_id : "");
  if (!s) s = ns_db_bind_text(q, 3, node);
  if (!s) s = segment_id > 0 ? ns_db_bind_int64(q, 4, segment_id) : ns_db_bind_null(q, 4);
  if (!s) s = ns_db_bind_int64(q, 5, v->anomalous);
  if (!s) s = ns_db_bind_double(q, 6, v->score_max);
  if (!s) s = ns_db_bind_double(q, 7, v->score_mean);
  if (!s) s = ns_db_bind_int64(q, 8, v->new_pattern);
  if (!s) s = ns_db_bind_text(q, 9, v->model_version);
  if (!s) s = v->cluster_db_id > 0 ? ns_db_bind_int64(q, 10, v->cluster_db_id) : ns_db_bind_null(q, 10);
  if (!s) s = ns_db_bind_text(q, 11, json);
  if (!s) s = ns_db_bind_int64(q, 12, now);
  if (!s) s = v->score && v->T ? ns_db_bind_blob(q, 13, v->score, v->T * sizeof *v->score) : ns_db_bind_null(q, 13);
  if (!s) s = isfinite(v->threshold) && v->scored ? ns_db_bind_double(q, 14, v->threshold) : ns_db_bind_null(q, 14);
  if (!s) s = ns_db_step(q, &row);
  ns_db_finalize(q);
  free(json);
  return s;
}
