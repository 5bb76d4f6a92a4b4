/* Evaluation with the NodeSentry paper's protocol and the usual extras.
 *
 * Input is a list of scored series (one per segment), each tagged with its
 * node. Per node, the series are concatenated after each segment's edge
 * exclusion (points in the first and last `edge_ms` of every segment are left
 * out of every metric, labels and predictions alike).
 *
 * Paper protocol: per node, point-adjusted precision and recall (a labelled
 * anomaly interval counts as found, every point of it, if any point in it is
 * flagged) and ROC-AUC of the raw score; P, R and AUC averaged over nodes;
 * F1 from the averaged P and R.
 * Conventions for undefined per-node values: precision is skipped for a node
 * with nothing flagged and nothing labelled (0/0), and is 0 for a node with
 * flags but no labels (every flag is a false positive); recall and AUC are
 * skipped for nodes without labelled anomalies. Pooled metrics concatenate
 * all nodes. */
#ifndef NS_EVAL_H
#define NS_EVAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "ns_api.h"
#include "ns_status.h"

typedef struct ns_eval_series {
  const char *node;
  size_t T;
  int64_t interval_ms;
  const float *score;   /* raw anomaly score (for AUC) */
  const uint8_t *pred;  /* 1 = flagged */
  const uint8_t *label; /* 1 = labelled anomalous */
} ns_eval_series;

typedef struct ns_eval_metrics {
  size_t n, n_pos, tp, fp, fn, tn;  /* point-wise counts */
  double precision, recall, f1;     /* point-wise */
  double pa_precision, pa_recall, pa_f1; /* point-adjusted */
  double roc_auc, pr_auc;           /* NaN when undefined */
} ns_eval_metrics;

typedef struct ns_eval_node {
  char node[128];
  ns_eval_metrics m;
} ns_eval_node;

typedef struct ns_eval_report {
  /* Paper protocol. */
  double paper_precision, paper_recall, paper_f1, paper_auc;
  size_t paper_nodes_p, paper_nodes_r, paper_nodes_auc; /* nodes averaged */
  ns_eval_metrics pooled;
  size_t n_nodes;
  ns_eval_node *nodes;
  int64_t edge_ms;
} ns_eval_report;

/* Point-wise and point-adjusted metrics of one series (mask: NULL or 1 =
 * counted). */
NS_API ns_status ns_eval_metrics_compute(const float *score, const uint8_t *pred, const uint8_t *label,
                                         const uint8_t *mask, size_t n, ns_eval_metrics *out);
/* ROC-AUC (Mann-Whitney, ties averaged) and average precision (ties
 * grouped); NaN when only one class is present. */
NS_API double ns_eval_roc_auc(const float *score, const uint8_t *label, const uint8_t *mask, size_t n);
NS_API double ns_eval_pr_auc(const float *score, const uint8_t *label, const uint8_t *mask, size_t n);
/* Point adjustment: every labelled interval with at least one flagged
 * (counted) point becomes fully flagged. `adj` receives the adjusted preds. */
NS_API void ns_eval_point_adjust(const uint8_t *pred, const uint8_t *label, const uint8_t *mask, size_t n,
                                 uint8_t *adj);

NS_API ns_status ns_eval_run(const ns_eval_series *s, size_t n, int64_t edge_ms, ns_eval_report *out);
NS_API void ns_eval_report_clear(ns_eval_report *r);
NS_API void ns_eval_print_table(const ns_eval_report *r, FILE *f);
NS_API void ns_eval_print_json(const ns_eval_report *r, FILE *f);

#endif
