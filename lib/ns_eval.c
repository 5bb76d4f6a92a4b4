#include "ns_eval.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double safe_div(double a, double b) { return b > 0 ? a / b : NAN; }
static double f1_of(double p, double r) { return (isfinite(p) && isfinite(r) && p + r > 0) ? 2 * p * r / (p + r) : 0; }
static bool counted(const uint8_t *mask, size_t i) { return !mask || mask[i]; }

void ns_eval_point_adjust(const uint8_t *pred, const uint8_t *label, const uint8_t *mask, size_t n, uint8_t *adj) {
  for (size_t i = 0; i < n; i++) adj[i] = pred[i] && counted(mask, i);
  size_t i = 0;
  while (i < n) {
    if (!(label[i] && counted(mask, i))) {
      i++;
      continue;
    }
    size_t j = i;
    bool hit = false;
    while (j < n && label[j] && counted(mask, j)) hit |= pred[j] != 0, j++;
    if (hit)
      for (size_t k = i; k < j; k++) adj[k] = 1;
    i = j;
  }
}

typedef struct {
  float s;
  uint8_t y;
} scored;

static int cmp_scored(const void *a, const void *b) {
  float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
  return (x > y) - (x < y);
}

/* Collect counted, finite-score points sorted by score ascending. */
static scored *collect(const float *score, const uint8_t *label, const uint8_t *mask, size_t n, size_t *m,
                       size_t *npos) {
  scored *v = malloc((n ? n : 1) * sizeof *v);
  if (!v) return NULL;
  size_t k = 0, p = 0;
  for (size_t i = 0; i < n; i++) {
    if (!counted(mask, i)) continue;
    float s = isfinite(score[i]) ? score[i] : (score[i] > 0 ? INFINITY : -INFINITY);
    if (isnan(score[i])) continue;
    v[k].s = s;
    v[k].y = label[i] != 0;
    p += v[k].y;
    k++;
  }
  qsort(v, k, sizeof *v, cmp_scored);
  *m = k;
  *npos = p;
  return v;
}

double ns_eval_roc_auc(const float *score, const uint8_t *label, const uint8_t *mask, size_t n) {
  size_t m, npos;
  scored *v = collect(score, label, mask, n, &m, &npos);
  if (!v) return NAN;
  size_t nneg = m - npos;
  if (npos == 0 || nneg == 0) {
    free(v);
    return NAN;
  }
  double rank_sum = 0;  // sum of (average) ranks of positives, 1-based
  for (size_t i = 0; i < m;) {
    size_t j = i;
    size_t pos = 0;
    while (j < m && v[j].s == v[i].s) pos += v[j].y, j++;
    double avg_rank = (double)(i + 1 + j) / 2.0;
    rank_sum += avg_rank * (double)pos;
    i = j;
  }
  free(v);
  return (rank_sum - (double)npos * ((double)npos + 1) / 2.0) / ((double)npos * (double)nneg);
}

double ns_eval_pr_auc(const float *score, const uint8_t *label, const uint8_t *mask, size_t n) {
  size_t m, npos;
  scored *v = collect(score, label, mask, n, &m, &npos);
  if (!v) return NAN;
  if (npos == 0 || npos == m) {
    free(v);
    return npos == 0 ? NAN : 1.0;
  }
  /* Descending thresholds; ties enter together (sklearn's average precision). */
  double ap = 0, prev_r = 0;
  size_t tp = 0, fp = 0;
  for (size_t i = m; i > 0;) {
    size_t j = i;
    while (j > 0 && v[j - 1].s == v[i - 1].s) {
      if (v[j - 1].y) tp++;
      else fp++;
      j--;
    }
    double r = (double)tp / (double)npos, p = (double)tp / (double)(tp + fp);
    ap += (r - prev_r) * p;
    prev_r = r;
    i = j;
  }
  free(v);
  return ap;
}

ns_status ns_eval_metrics_compute(const float *score, const uint8_t *pred, const uint8_t *label,
                                  const uint8_t *mask, size_t n, ns_eval_metrics *out) {
  memset(out, 0, sizeof *out);
  if (!pred || !label) return ns_errorf(NS_ERR_INVAL, "evaluation needs predictions and labels");
  uint8_t *adj = malloc(n ? n : 1);
  if (!adj) return NS_ERR_NOMEM;
  ns_eval_point_adjust(pred, label, mask, n, adj);
  size_t atp = 0, afp = 0, afn = 0;
  for (size_t i = 0; i < n; i++) {
    if (!counted(mask, i)) continue;
    bool y = label[i] != 0, p = pred[i] != 0, a = adj[i] != 0;
    out->n++;
    out->n_pos += y;
    if (y && p) out->tp++;
    else if (!y && p) out->fp++;
    else if (y && !p) out->fn++;
    else out->tn++;
    atp += y && a;
    afp += !y && a;
    afn += y && !a;
  }
  free(adj);
  out->precision = safe_div((double)out->tp, (double)(out->tp + out->fp));
  out->recall = safe_div((double)out->tp, (double)(out->tp + out->fn));
  out->f1 = f1_of(out->precision, out->recall);
  out->pa_precision = safe_div((double)atp, (double)(atp + afp));
  out->pa_recall = safe_div((double)atp, (double)(atp + afn));
  out->pa_f1 = f1_of(out->pa_precision, out->pa_recall);
  if (out->n_pos > 0 && out->tp + out->fp == 0) out->precision = out->pa_precision = 0;
  if (out->n_pos == 0 && out->fp > 0) out->precision = out->pa_precision = 0;
  out->roc_auc = score ? ns_eval_roc_auc(score, label, mask, n) : NAN;
  out->pr_auc = score ? ns_eval_pr_auc(score, label, mask, n) : NAN;
  return NS_OK;
}

void ns_eval_report_clear(ns_eval_report *r) {
  if (!r) return;
  free(r->nodes);
  memset(r, 0, sizeof *r);
}

typedef struct {
  float *score;
  uint8_t *pred, *label, *mask;
  size_t n, cap;
} buf;

static ns_status buf_append(buf *b, const ns_eval_series *s, int64_t edge_ms) {
  if (b->n + s->T > b->cap) {
    size_t cap = (b->n + s->T) * 2;
    float *sc = realloc(b->score, cap * sizeof *sc);
    if (!sc) return NS_ERR_NOMEM;
    b->score = sc;
    uint8_t *p = realloc(b->pred, cap), *l, *m;
    if (!p) return NS_ERR_NOMEM;
    b->pred = p;
    if (!(l = realloc(b->label, cap))) return NS_ERR_NOMEM;
    b->label = l;
    if (!(m = realloc(b->mask, cap))) return NS_ERR_NOMEM;
    b->mask = m;
    b->cap = cap;
  }
  size_t edge = s->interval_ms > 0 ? (size_t)((edge_ms + s->interval_ms - 1) / s->interval_ms) : 0;
  for (size_t t = 0; t < s->T; t++) {
    size_t i = b->n + t;
    b->score[i] = s->score ? s->score[t] : 0.0f;
    b->pred[i] = s->pred[t];
    b->label[i] = s->label[t];
    b->mask[i] = t >= edge && t + edge < s->T;
  }
  b->n += s->T;
  return NS_OK;
}

static void buf_free(buf *b) {
  free(b->score), free(b->pred), free(b->label), free(b->mask);
  memset(b, 0, sizeof *b);
}

ns_status ns_eval_run(const ns_eval_series *s, size_t n, int64_t edge_ms, ns_eval_report *out) {
  memset(out, 0, sizeof *out);
  out->edge_ms = edge_ms;
  if (n == 0) return ns_errorf(NS_ERR_EMPTY, "nothing to evaluate");
  for (size_t i = 0; i < n; i++)
    if (!s[i].pred || !s[i].label || !s[i].node)
      return ns_errorf(NS_ERR_INVAL, "series %zu lacks node, predictions or labels", i);
  ns_status st = NS_OK;
  bool *done = calloc(n, sizeof *done);
  buf all = {0}, nb = {0};
  if (!done || !(out->nodes = calloc(n, sizeof *out->nodes))) {
    st = NS_ERR_NOMEM;
    goto cleanup;
  }
  double sp = 0, sr = 0, sa = 0;
  for (size_t i = 0; i < n; i++) {
    if (done[i]) continue;
    nb.n = 0;
    for (size_t j = i; j < n; j++) {
      if (done[j] || strcmp(s[j].node, s[i].node) != 0) continue;
      done[j] = true;
      if ((st = buf_append(&nb, &s[j], edge_ms)) || (st = buf_append(&all, &s[j], edge_ms))) goto cleanup;
    }
    ns_eval_node *en = &out->nodes[out->n_nodes++];
    snprintf(en->node, sizeof en->node, "%s", s[i].node);
    if ((st = ns_eval_metrics_compute(nb.score, nb.pred, nb.label, nb.mask, nb.n, &en->m))) goto cleanup;
    if (isfinite(en->m.pa_precision)) sp += en->m.pa_precision, out->paper_nodes_p++;
    if (isfinite(en->m.pa_recall)) sr += en->m.pa_recall, out->paper_nodes_r++;
    if (isfinite(en->m.roc_auc)) sa += en->m.roc_auc, out->paper_nodes_auc++;
  }
  out->paper_precision = out->paper_nodes_p ? sp / (double)out->paper_nodes_p : NAN;
  out->paper_recall = out->paper_nodes_r ? sr / (double)out->paper_nodes_r : NAN;
  out->paper_f1 = f1_of(out->paper_precision, out->paper_recall);
  out->paper_auc = out->paper_nodes_auc ? sa / (double)out->paper_nodes_auc : NAN;
  st = ns_eval_metrics_compute(all.score, all.pred, all.label, all.mask, all.n, &out->pooled);
cleanup:
  free(done);
  buf_free(&all);
  buf_free(&nb);
  if (st) ns_eval_report_clear(out);
  return st;
}

static void json_num(FILE *f, const char *key, double v, bool comma) {
  if (isfinite(v)) fprintf(f, "\"%s\":%.6g%s", key, v, comma ? "," : "");
  else fprintf(f, "\"%s\":null%s", key, comma ? "," : "");
}

static void json_metrics(FILE *f, const ns_eval_metrics *m) {
  fprintf(f, "{\"points\":%zu,\"anomalous_points\":%zu,\"tp\":%zu,\"fp\":%zu,\"fn\":%zu,\"tn\":%zu,", m->n,
          m->n_pos, m->tp, m->fp, m->fn, m->tn);
  json_num(f, "precision", m->precision, true);
  json_num(f, "recall", m->recall, true);
  json_num(f, "f1", m->f1, true);
  json_num(f, "pa_precision", m->pa_precision, true);
  json_num(f, "pa_recall", m->pa_recall, true);
  json_num(f, "pa_f1", m->pa_f1, true);
  json_num(f, "roc_auc", m->roc_auc, true);
  json_num(f, "pr_auc", m->pr_auc, false);
  fputc('}', f);
}

void ns_eval_print_json(const ns_eval_report *r, FILE *f) {
  fprintf(f, "{\"edge_ms\":%lld,\"paper\":{", (long long)r->edge_ms);
  json_num(f, "precision", r->paper_precision, true);
  json_num(f, "recall", r->paper_recall, true);
  json_num(f, "f1", r->paper_f1, true);
  json_num(f, "auc", r->paper_auc, false);
  fprintf(f, "},\"pooled\":");
  json_metrics(f, &r->pooled);
  fprintf(f, ",\"nodes\":[");
  for (size_t i = 0; i < r->n_nodes; i++) {
    fprintf(f, "%s{\"node\":\"", i ? "," : "");
    for (const char *c = r->nodes[i].node; *c; c++)
      if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
      else if ((unsigned char)*c >= 0x20) fputc(*c, f);
    fprintf(f, "\",\"metrics\":");
    json_metrics(f, &r->nodes[i].m);
    fputc('}', f);
  }
  fprintf(f, "]}\n");
}

static void cell(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, " %7.4f", v);
  else fprintf(f, " %7s", "-");
}

void ns_eval_print_table(const ns_eval_report *r, FILE *f) {
  fprintf(f, "paper protocol (point-adjusted, per-node averages, %llds edges excluded):\n",
          (long long)(r->edge_ms / 1000));
  fprintf(f, "  precision %.4f  recall %.4f  F1 %.4f  AUC %.4f  (nodes: P %zu, R %zu, AUC %zu)\n",
          r->paper_precision, r->paper_recall, r->paper_f1, r->paper_auc, r->paper_nodes_p, r->paper_nodes_r,
          r->paper_nodes_auc);
  fprintf(f, "%-20s %8s %6s %7s %7s %7s %7s %7s %7s\n", "node", "points", "anom", "P", "R", "F1", "PA-F1",
          "ROC-AUC", "PR-AUC");
  for (size_t i = 0; i <= r->n_nodes; i++) {
    const ns_eval_metrics *m = i < r->n_nodes ? &r->nodes[i].m : &r->pooled;
    fprintf(f, "%-20.20s %8zu %6zu", i < r->n_nodes ? r->nodes[i].node : "(pooled)", m->n, m->n_pos);
    cell(f, m->precision);
    cell(f, m->recall);
    cell(f, m->f1);
    cell(f, m->pa_f1);
    cell(f, m->roc_auc);
    cell(f, m->pr_auc);
    fputc('\n', f);
  }
}
