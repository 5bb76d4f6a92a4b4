/* The verdict writer: slurmdb_job_modify() through slurmdbd. It keeps case
 * and works for finished jobs (sacctmgr lower-cases on 22.05; scontrol is
 * refused once a job ended). libslurm is not thread-safe: one thread only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurmdb.h>
#include "ns_verdict.h"
#include "svc.h"

struct svc_slurm {
  int inited;
};

ns_status svc_slurm_create(const char *slurm_conf, svc_slurm **out) {
  *out = NULL;
  svc_slurm *s = calloc(1, sizeof *s);
  if (!s) return NS_ERR_NOMEM;
  /* slurm_init() is fatal on a broken slurm.conf: check it is readable first. */
  const char *conf = slurm_conf && *slurm_conf ? slurm_conf : getenv("SLURM_CONF");
  if (conf && *conf && access(conf, R_OK) != 0) {
    free(s);
    return ns_errorf(NS_ERR_IO, "slurm_conf '%s' is not readable", conf);
  }
  slurm_init(slurm_conf && *slurm_conf ? slurm_conf : NULL);
  s->inited = 1;
  *out = s;
  return NS_OK;
}

void svc_slurm_free(svc_slurm *s) {
  if (!s) return;
  if (s->inited) slurm_fini();
  free(s);
}

/* "123", "123_4" (array task), "123+1" (het component). */
static ns_status parse_job_id(const char *id, slurm_selected_step_t *sel) {
  memset(sel, 0, sizeof *sel);
  sel->array_task_id = NO_VAL;
  sel->het_job_offset = NO_VAL;
  sel->step_id.step_id = NO_VAL;
  sel->step_id.step_het_comp = NO_VAL;
  char *end = NULL;
  errno = 0;
  unsigned long j = strtoul(id, &end, 10);
  if (end == id || errno || j == 0 || j >= NO_VAL) return ns_errorf(NS_ERR_INVAL, "job id '%s' is not numeric", id);
  sel->step_id.job_id = (uint32_t)j;
  if (*end == '_' || *end == '+') {
    char kind = *end;
    const char *p = end + 1;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p || errno || v >= NO_VAL) return ns_errorf(NS_ERR_INVAL, "job id '%s' is malformed", id);
    if (kind == '_')
      sel->array_task_id = (uint32_t)v;
    else
      sel->het_job_offset = (uint32_t)v;
  }
  if (*end) return ns_errorf(NS_ERR_INVAL, "job id '%s' is malformed", id);
  return NS_OK;
}

typedef struct cond_holder {
  slurmdb_job_cond_t cond;
  slurm_selected_step_t sel;
  char *cluster;
} cond_holder;

static ns_status make_cond(cond_holder *h, const char *cluster, const char *job_id) {
  memset(h, 0, sizeof *h);
  ns_status st = parse_job_id(job_id, &h->sel);
  if (st) return st;
  h->cluster = strdup(cluster);
  h->cond.cluster_list = slurm_list_create(NULL);
  h->cond.step_list = slurm_list_create(NULL);
  if (!h->cluster || !h->cond.cluster_list || !h->cond.step_list) return NS_ERR_NOMEM;
  slurm_list_append(h->cond.cluster_list, h->cluster);
  slurm_list_append(h->cond.step_list, &h->sel);
  h->cond.flags = JOBCOND_FLAG_NO_STEP | JOBCOND_FLAG_NO_TRUNC;
  /* 0 would filter on "no scheduling flags"; NOTSET means "don't filter" (as sacct does). */
  h->cond.db_flags = SLURMDB_JOB_FLAG_NOTSET;
  return NS_OK;
}

static void free_cond(cond_holder *h) {
  if (h->cond.cluster_list) slurm_list_destroy(h->cond.cluster_list);
  if (h->cond.step_list) slurm_list_destroy(h->cond.step_list);
  free(h->cluster);
}

static ns_status read_field(void *conn, cond_holder *h, const char *field, char **out) {
  *out = NULL;
  errno = 0;
  List jobs = slurmdb_jobs_get(conn, &h->cond);
  if (!jobs)
    return ns_errorf(NS_ERR_SLURM, "slurmdb_jobs_get: %s", errno ? slurm_strerror(errno) : "slurmdbd unavailable");
  ns_status st = NS_OK;
  if (slurm_list_count(jobs) == 0) {
    st = ns_errorf(NS_ERR_NOTFOUND, "job not (yet) in the accounting database");
    goto done;
  }
  /* Several records = requeued job: the newest is last. */
  slurmdb_job_rec_t *rec = NULL;
  ListIterator it = slurm_list_iterator_create(jobs);
  for (slurmdb_job_rec_t *r; (r = slurm_list_next(it));) rec = r;
  slurm_list_iterator_destroy(it);
  const char *v = strcmp(field, "systemcomment") == 0 ? rec->system_comment : rec->admin_comment;
  *out = strdup(v ? v : "");
  if (!*out) st = NS_ERR_NOMEM;
done:
  slurm_list_destroy(jobs);
  return st;
}

ns_status svc_slurm_read(svc_slurm *s, const char *cluster, const char *job_id, const char *field, char **out) {
  *out = NULL;
  (void)s;
  cond_holder h;
  ns_status st = make_cond(&h, cluster, job_id);
  void *conn = NULL;
  if (st) goto done;
  errno = 0;
  if (!(conn = slurmdb_connection_get(NULL))) {
    st = ns_errorf(NS_ERR_NET, "cannot connect to slurmdbd: %s", slurm_strerror(errno));
    goto done;
  }
  st = read_field(conn, &h, field, out);
done:
  if (conn) slurmdb_connection_close(&conn);
  free_cond(&h);
  return st;
}

ns_status svc_slurm_write(svc_slurm *s, const char *cluster, const char *job_id, const char *field,
                          const char *token) {
  (void)s;
  if (strcmp(field, "admincomment") != 0 && strcmp(field, "systemcomment") != 0)
    return ns_errorf(NS_ERR_INVAL, "verdict field '%s' is not admincomment or systemcomment", field);
  if (!ns_verdict_text_safe(token)) return ns_errorf(NS_ERR_INVAL, "token holds characters unsafe for slurmdbd");
  cond_holder h;
  char *old = NULL, *merged = NULL;
  void *conn = NULL;
  List res = NULL;
  ns_status st = make_cond(&h, cluster, job_id);
  if (st) goto done;
  errno = 0;
  if (!(conn = slurmdb_connection_get(NULL))) {
    st = ns_errorf(NS_ERR_NET, "cannot connect to slurmdbd: %s", slurm_strerror(errno));
    goto done;
  }
  if ((st = read_field(conn, &h, field, &old))) goto done;
  if ((st = ns_verdict_merge(old, token, &merged))) goto done;
  if (strcmp(old, merged) == 0) goto done; /* already there (retry after a lost reply) */
  slurmdb_job_rec_t rec;
  memset(&rec, 0, sizeof rec);
  rec.derived_ec = NO_VAL;
  if (strcmp(field, "systemcomment") == 0)
    rec.system_comment = merged;
  else
    rec.admin_comment = merged;
  errno = 0;
  res = slurmdb_job_modify(conn, &h.cond, &rec);
  if (!res) {
    int e = errno;
    st = ns_errorf(e == ESLURM_ACCESS_DENIED || e == ESLURM_USER_ID_MISSING ? NS_ERR_FORBIDDEN : NS_ERR_SLURM,
                   "slurmdb_job_modify: %s", e ? slurm_strerror(e) : "failed");
    goto done;
  }
  if (slurm_list_count(res) == 0) {
    st = ns_errorf(NS_ERR_NOTFOUND, "slurmdb_job_modify changed nothing (job unknown or no privilege)");
    goto done;
  }
  slurmdb_connection_commit(conn, 1);
done:
  if (res) slurm_list_destroy(res);
  if (conn) slurmdb_connection_close(&conn);
  free(old);
  free(merged);
  free_cond(&h);
  return st;
}
