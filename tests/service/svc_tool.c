/* Helper for the service's shell tests.
 *   svc_tool seed DBURI CLUSTER JOB NODE SCORE   store a segment and a node verdict
 *        (what a worker records after scoring), finalise the job, queue the token
 *   svc_tool write CLUSTER JOB FIELD TOKEN      svc_slurm_write (exit 0 ok, 3 retryable,
 *        4 permanent, 5 job not found)
 *   svc_tool read CLUSTER JOB FIELD             print the field
 * SLURM_CONF selects the lab. */
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

int main(int argc, char **argv) {
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
        (st = svc_db_put_node_verdict(s, q, seg, argv[3], argv[4], argv[5], score > 1, false, score, score / 2, "r3",
                                      "{}", svc_now_ms())) ||
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
