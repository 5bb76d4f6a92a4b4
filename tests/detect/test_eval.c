#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_eval.h"

Test(eval, auc_known_values) {
  /* Perfect ranking, reversed ranking, all ties. */
  float s1[] = {0.1f, 0.2f, 0.3f, 0.9f, 0.8f};
  uint8_t y1[] = {0, 0, 0, 1, 1};
  cr_assert_float_eq(ns_eval_roc_auc(s1, y1, NULL, 5), 1.0, 1e-12);
  cr_assert_float_eq(ns_eval_pr_auc(s1, y1, NULL, 5), 1.0, 1e-12);
  float s2[] = {0.9f, 0.8f, 0.7f, 0.1f, 0.2f};
  cr_assert_float_eq(ns_eval_roc_auc(s2, y1, NULL, 5), 0.0, 1e-12);
  float s3[] = {1, 1, 1, 1, 1};
  cr_assert_float_eq(ns_eval_roc_auc(s3, y1, NULL, 5), 0.5, 1e-12);
  cr_assert_float_eq(ns_eval_pr_auc(s3, y1, NULL, 5), 0.4, 1e-12);
  /* Hand-computed: scores 0.1(-) 0.4(+) 0.35(-) 0.8(+): pairs (+>-): 0.4>0.1, 0.4>0.35, 0.8>0.1, 0.8>0.35 → 1.0;
   * with 0.4(+) below 0.5(-): */
  float s4[] = {0.1f, 0.4f, 0.5f, 0.8f};
  uint8_t y4[] = {0, 1, 0, 1};
  cr_assert_float_eq(ns_eval_roc_auc(s4, y4, NULL, 4), 0.75, 1e-12);
  /* AP: thresholds 0.8 → P=1,R=.5; 0.5 → P=.5,R=.5; 0.4 → P=2/3,R=1 → 0.5*1 + 0.5*(2/3) */
  cr_assert_float_eq(ns_eval_pr_auc(s4, y4, NULL, 4), 0.5 + 0.5 * 2.0 / 3.0, 1e-12);
  uint8_t none[] = {0, 0, 0, 0};
  cr_assert(isnan(ns_eval_roc_auc(s4, none, NULL, 4)));
  /* A mask removes points from consideration. */
  uint8_t mask[] = {1, 1, 0, 1};
  cr_assert_float_eq(ns_eval_roc_auc(s4, y4, mask, 4), 1.0, 1e-12);
}

Test(eval, point_adjustment) {
  uint8_t label[] = {0, 1, 1, 1, 0, 0, 1, 1, 0};
  uint8_t pred[] = {0, 0, 1, 0, 0, 1, 0, 0, 0};
  uint8_t adj[9];
  ns_eval_point_adjust(pred, label, NULL, 9, adj);
  uint8_t want[] = {0, 1, 1, 1, 0, 1, 0, 0, 0};
  cr_assert_arr_eq(adj, want, 9);
  ns_eval_metrics m;
  cr_assert_eq(ns_eval_metrics_compute(NULL, pred, label, NULL, 9, &m), NS_OK);
  cr_assert_eq(m.tp, 1);
  cr_assert_eq(m.fp, 1);
  cr_assert_eq(m.fn, 4);
  cr_assert_float_eq(m.precision, 0.5, 1e-12);
  cr_assert_float_eq(m.recall, 0.2, 1e-12);
  cr_assert_float_eq(m.pa_precision, 0.75, 1e-12);
  cr_assert_float_eq(m.pa_recall, 0.6, 1e-12);
  cr_assert_float_eq(m.pa_f1, 2 * 0.75 * 0.6 / 1.35, 1e-12);
}

Test(eval, paper_protocol_averages_and_edges) {
  /* Two nodes at 15 s; 60 s edges = 4 points excluded at each end of a segment. */
  enum { T = 20 };
  float sc[T] = {0};
  uint8_t la[T] = {0}, pa[T] = {0}, lb[T] = {0}, pb[T] = {0};
  la[10] = la[11] = 1;
  pa[11] = 1;     /* node a: found → PA P = 1, R = 1 */
  pa[1] = 1;      /* in the edge: ignored */
  lb[2] = 1;      /* node b: its only anomaly is in the edge → no positives counted */
  pb[8] = 1;      /* a false positive */
  for (int t = 0; t < T; t++) sc[t] = (float)t;
  ns_eval_series s[] = {{"a", T, 15000, sc, pa, la}, {"b", T, 15000, sc, pb, lb}};
  ns_eval_report r;
  cr_assert_eq(ns_eval_run(s, 2, 60000, &r), NS_OK);
  cr_assert_eq(r.n_nodes, 2);
  cr_assert_eq(r.nodes[0].m.n, T - 8);
  cr_assert_float_eq(r.nodes[0].m.pa_recall, 1.0, 1e-12);
  cr_assert_float_eq(r.nodes[0].m.pa_precision, 1.0, 1e-12);
  cr_assert_eq(r.nodes[1].m.n_pos, 0);
  cr_assert_float_eq(r.nodes[1].m.pa_precision, 0.0, 1e-12);  /* flags without labels: all false */
  cr_assert(isnan(r.nodes[1].m.pa_recall));
  cr_assert_eq(r.paper_nodes_p, 2);
  cr_assert_eq(r.paper_nodes_r, 1);
  cr_assert_float_eq(r.paper_precision, 0.5, 1e-12);
  cr_assert_float_eq(r.paper_recall, 1.0, 1e-12);
  cr_assert_float_eq(r.paper_f1, 2 * 0.5 / 1.5, 1e-12);
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  ns_eval_print_json(&r, f);
  ns_eval_print_table(&r, f);
  fclose(f);
  cr_assert(strstr(buf, "\"paper\":{\"precision\":0.5,") != NULL, "%s", buf);
  cr_assert(strstr(buf, "\"recall\":null") != NULL);
  free(buf);
  ns_eval_report_clear(&r);
}

Test(eval, two_segments_of_one_node_pool) {
  float sc[6] = {1, 2, 3, 4, 5, 6};
  uint8_t l1[6] = {0, 0, 1, 0, 0, 0}, p1[6] = {0, 0, 1, 0, 0, 0}, l2[6] = {0}, p2[6] = {0};
  ns_eval_series s[] = {{"n", 6, 1000, sc, p1, l1}, {"n", 6, 1000, sc, p2, l2}};
  ns_eval_report r;
  cr_assert_eq(ns_eval_run(s, 2, 0, &r), NS_OK);
  cr_assert_eq(r.n_nodes, 1);
  cr_assert_eq(r.nodes[0].m.n, 12);
  cr_assert_eq(r.pooled.tp, 1);
  ns_eval_report_clear(&r);
}

Test(eval, bad_input) {
  ns_eval_report r;
  cr_assert_eq(ns_eval_run(NULL, 0, 0, &r), NS_ERR_EMPTY);
  uint8_t l[2] = {0};
  ns_eval_series s = {"n", 2, 1000, NULL, NULL, l};
  cr_assert_eq(ns_eval_run(&s, 1, 0, &r), NS_ERR_INVAL);
  ns_eval_report_clear(&r);
}
