/* Helper for the service's shell tests.
 *   svc_tool seed DBURI CLUSTER JOB NODE SCORE   store a segment and a node verdict
 *        (what a worker records after scoring), finalise the job, queue the token
 *   svc_tool write CLUSTER JOB FIELD TOKEN      svc_slurm_write (exit 0 ok, 3 retryable,
 *        4 permanent, 5 job not found)
 *   svc_tool read CLUSTER JOB FIELD             print the field
 *   svc_tool segjson DBURI SEGID CLUSTER JOB NODE NODES   print a stored segment as a
 *        POST /v1/segments body (for scoring end-to-end against a trained library)
 *   svc_tool rawjson DBURI CLUSTER JOB NODE NODES   a job's raw telemetry on NODE as the
 *        epilog ships it (counters turned into per-second rates, NaN as null)
 * SLURM_CONF selects the lab. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "svc.h"

static int code_of(ns_status st) {
  if (st == NS_OK) return 0;
  if (st == NS_ERR_NOTFOUND) return 5;
  if (st == NS_ERR_INVAL || st == NS_ERR_FORBIDDEN) return 4;
  return 3;
}

static int segjson(char **argv) {
  ns_store *s = NULL;
  ns_segment *g = NULL;
  ns_status st = ns_store_open(argv[2], &s);
  if (!st) st = ns_store_get_segment(s, atoll(argv[3]), &g);
  if (st) return fprintf(stderr, "segjson: %s\n", ns_err_message(st)), 1;
  printf("{\"cluster\":\"%s\",\"job_id\":\"%s\",\"node\":\"%s\",\"job_nodes\":%s,\"start_ms\":%lld,"
         "\"end_ms\":%lld,\"interval_ms\":%lld,\"metrics\":[",
         argv[4], argv[5], argv[6], argv[7], (long long)g->start_ms, (long long)g->end_ms, (long long)g->interval_ms);
  for (size_t m = 0; m < g->M; m++) printf("%s\"%s\"", m ? "," : "", g->metrics[m]);
  printf("],\"values\":[");
  for (size_t t = 0; t < g->T; t++) {
    printf("%s[", t ? "," : "");
    for (size_t m = 0; m < g->M; m++) {
      float v = g->x[t * g->M + m];
      if (v != v) printf("%snull", m ? "," : "");
      else printf("%s%.9g", m ? "," : "", v);
    }
    printf("]");
  }
  printf("]}\n");
  ns_segment_free(g);
  ns_store_close(s);
  return 0;
}

static int rawjson(char **argv) {
  ns_store *s = NULL;
  ns_job *j = NULL;
  ns_mts *m = NULL;
  ns_status st = ns_store_open(argv[2], &s);
  if (!st) st = ns_store_get_job(s, argv[3], argv[4], &j);
  if (!st) st = ns_store_get_raw(s, argv[3], argv[5], j->start_ms, j->end_ms, &m);
  if (st) return fprintf(stderr, "rawjson: %s\n", ns_err_message(st)), 1;
  if (m->T < 2) return fprintf(stderr, "rawjson: %zu rows\n", m->T), 1;
  int64_t iv = (m->ts_ms[m->T - 1] - m->ts_ms[0]) / (int64_t)(m->T - 1);
  printf("{\"cluster\":\"%s\",\"job_id\":\"%s\",\"node\":\"%s\",\"job_nodes\":%s,\"start_ms\":%lld,"
         "\"end_ms\":%lld,\"interval_ms\":%lld,\"metrics\":[",
         argv[3], argv[4], argv[5], argv[6], (long long)m->ts_ms[0], (long long)m->ts_ms[m->T - 1], (long long)iv);
  for (size_t k = 0; k < m->M; k++) printf("%s\"%s\"", k ? "," : "", m->metrics[k]);
  printf("],\"timestamps_ms\":[");
  for (size_t t = 0; t < m->T; t++) printf("%s%lld", t ? "," : "", (long long)m->ts_ms[t]);
  printf("],\"values\":[");
  for (size_t t = 0; t < m->T; t++) {
    printf("%s[", t ? "," : "");
    for (size_t k = 0; k < m->M; k++) {
      double v = m->x[t * m->M + k];
      if (m->is_counter && m->is_counter[k])
        v = t == 0 ? NAN : (v - m->x[(t - 1) * m->M + k]) / ((m->ts_ms[t] - m->ts_ms[t - 1]) / 1000.0);
      if (v != v || v > 3e38 || v < -3e38) printf("%snull", k ? "," : "");
      else printf("%s%.9g", k ? "," : "", v);
    }
    printf("]");
  }
  printf("]}\n");
  ns_mts_free(m);
  ns_job_free(j);
  ns_store_close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 7 && !strcmp(argv[1], "rawjson")) return rawjson(argv);
  if (argc == 8 && !strcmp(argv[1], "segjson")) return segjson(argv);
  if (argc == 7 && !strcmp(argv[1], "seed")) {
    ns_store *s = NULL;
    ns_status st = ns_store_open(argv[2], &s);
    if (st) return fprintf(stderr, "open: %s\n", ns_err_message(st)), 1;
    char b[1024];
    snprintf(b, sizeof b,
             "{\"cluster\":\"%s\",\"job_id\":\"%s\",\"node\":\"%s\",\"job_nodes\":1,\"start_ms\":1000,"
             "\"end_ms\":31000,\"interval_ms\":15000,\"metrics\":[\"a\"],\"values\":[[1],[2],[3]]}",
             argv[3], argv[4], argv[5]);
    svc_limits lim = {1 << 20, 100, 1000};
    svc_ingest *in = NULL;
    int64_t id, q, seg;
    bool dup;
    int nf = 0, na, nn;
    double score = atof(argv[6]);
    if ((st = svc_ingest_parse(b, strlen(b), &lim, &in)) || (st = svc_db_ingest(s, in, svc_now_ms(), &id, &dup)) ||
        (st = svc_db_claim(s, "svc_tool", svc_now_ms(), 60000, &q, &seg)) ||
        (st = svc_db_put_node_verdict(s, q, seg, argv[3], argv[4], argv[5],
                                      &(ns_node_verdict){.anomalous = score > 1, .scored = true, .score_max = score,
                                                         .score_mean = score / 2, .cluster = -1},
                                      "r3", svc_now_ms())) ||
        (st = svc_db_finalise(s, svc_now_ms(), 0, "admincomment", &nf, &na, &nn)))
      return fprintf(stderr, "seed: %s\n", ns_err_message(st)), 1;
    svc_ingest_free(in);
    ns_store_close(s);
    printf("finalised %d\n", nf);
    return nf == 1 ? 0 : 1;
  }
  if ((argc == 6 && !strcmp(argv[1], "write")) || (argc == 5 && !strcmp(argv[1], "read"))) {
    svc_slurm *sl = NULL;
    ns_status st = svc_slurm_create(NULL, &sl);
    if (st) return fprintf(stderr, "slurm: %s\n", ns_err_message(st)), 1;
    if (argc == 6) {
      st = svc_slurm_write(sl, argv[2], argv[3], argv[4], argv[5]);
      printf("%s%s%s\n", ns_status_name(st), st ? ": " : "", st ? ns_err_detail() : "");
    } else {
      char *v = NULL;
      st = svc_slurm_read(sl, argv[2], argv[3], argv[4], &v);
      printf("%s\n", st ? ns_err_message(st) : v);
      free(v);
    }
    svc_slurm_free(sl);
    return code_of(st);
  }
  fprintf(stderr, "usage: see the comment at the top of svc_tool.c\n");
  return 2;
}
