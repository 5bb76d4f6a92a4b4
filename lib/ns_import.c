#include "ns_import.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "ns_csv.h"
#include "ns_hostlist.h"
#include "ns_log.h"

/* Repairs are logged for the first few occurrences per input, then only counted. */
#define WARN_MAX 5

/* ---- small helpers ---- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static ns_status grow(void *pp, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return NS_OK;
  size_t nc = *cap ? *cap : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(*(void **)pp, nc * elem);
  if (!p) return NS_ERR_NOMEM;
  *(void **)pp = p;
  *cap = nc;
  return NS_OK;
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static char *path_join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *p = malloc(la + lb + 2);
  if (!p) return NULL;
  memcpy(p, a, la);
  size_t k = la;
  if (k && p[k - 1] != '/') p[k++] = '/';
  memcpy(p + k, b, lb + 1);
  return p;
}

static bool field_is(const char *f, const char *word) { return strcasecmp(f, word) == 0; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the entries of `dir` (files when want_dirs is false,
 * subdirectories otherwise); hidden entries are skipped. */
static ns_status list_dir(const char *dir, bool want_dirs, char ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return ns_errorf(NS_ERR_IO, "%s: %s", dir, strerror(errno));
  char **v = NULL;
  size_t cnt = 0, cap = 0;
  ns_status st = NS_OK;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *full = path_join(dir, e->d_name);
    struct stat sb;
    if (!full) {
      st = NS_ERR_NOMEM;
      break;
    }
    bool keep = stat(full, &sb) == 0 && (want_dirs ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
    free(full);
    if (!keep) continue;
    if ((st = grow(&v, &cap, cnt + 1, sizeof *v))) break;
    if (!(v[cnt] = strdup(e->d_name))) {
      st = NS_ERR_NOMEM;
      break;
    }
    cnt++;
  }
  closedir(d);
  if (st) {
    ns_hostlist_free(v, cnt);
    return st;
  }
  if (cnt) qsort(v, cnt, sizeof *v, cmp_str);
  *out = v;
  *n = cnt;
  return NS_OK;
}

/* ---- report ---- */

int64_t ns_import_repairs(const ns_import_report *r) {
  return r->dup_rows + r->truncated_lines + r->repeated_headers + r->missing_values + r->counter_resets +
         r->skipped_jobs + r->shared_jobs + r->unknown_nodes;
}

void ns_import_report_format(const ns_import_report *r, char *buf, size_t n) {
  int k = snprintf(buf, n, "files %lld, rows %lld, points %lld, nodes %lld, jobs %lld, segments %lld, labels %lld, "
                   "%.2f s, repairs %lld",
                   (long long)r->files, (long long)r->rows, (long long)r->points, (long long)r->nodes,
                   (long long)r->jobs, (long long)r->segments, (long long)r->labels, r->seconds,
                   (long long)ns_import_repairs(r));
  if (k < 0 || (size_t)k >= n || !ns_import_repairs(r)) return;
  static const struct {
    const char *name;
    size_t off;
  } parts[] = {
      {"duplicate rows", offsetof(ns_import_report, dup_rows)},
      {"truncated lines", offsetof(ns_import_report, truncated_lines)},
      {"repeated headers", offsetof(ns_import_report, repeated_headers)},
      {"missing values", offsetof(ns_import_report, missing_values)},
      {"counter resets", offsetof(ns_import_report, counter_resets)},
      {"skipped jobs", offsetof(ns_import_report, skipped_jobs)},
      {"shared jobs", offsetof(ns_import_report, shared_jobs)},
      {"unknown nodes", offsetof(ns_import_report, unknown_nodes)},
  };
  const char *sep = " (";
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    int64_t v = *(const int64_t *)((const char *)r + parts[i].off);
    if (!v) continue;
    int w = snprintf(buf + k, n - (size_t)k, "%s%s %lld", sep, parts[i].name, (long long)v);
    if (w < 0 || (size_t)(k + w) >= n) return;
    k += w;
    sep = ", ";
  }
  snprintf(buf + k, n - (size_t)k, ")");
}

/* ---- counter rules ---- */

ns_status ns_import_is_counter(const char *rules, const char *schema, const char *metric, bool *out) {
  *out = false;
  if (!rules) rules = NS_IMPORT_DEFAULT_COUNTER_RULES;
  char key[512];
  snprintf(key, sizeof key, "%s:%s", schema ? schema : "", metric ? metric : "");
  const char *p = rules;
  for (;;) {
    const char *q = strchr(p, ',');
    size_t len = q ? (size_t)(q - p) : strlen(p);
    while (len && isblank((unsigned char)*p)) p++, len--;
    while (len && isblank((unsigned char)p[len - 1])) len--;
    bool neg = len && *p == '!';
    if (neg) p++, len--;
    if (!len || len >= 256)
      return ns_errorf(NS_ERR_INVAL, "counter rules: empty or overlong pattern in '%s'", rules);
    char pat[256];
    memcpy(pat, p, len);
    pat[len] = '\0';
    if (fnmatch(pat, key, 0) == 0) {
      *out = !neg;
      return NS_OK;
    }
    if (!q) return NS_OK;
    p = q + 1;
  }
}

/* ---- jobs ---- */

typedef struct {
  ns_job j;
  char **nodes;   /* expanded node list */
  size_t nn;
  int64_t line;   /* source line */
} jobrec;

static void job_clear(ns_job *j) {
  free(j->cluster), free(j->job_id), free(j->nodelist), free(j->user), free(j->partition), free(j->account),
      free(j->state), free(j->tag);
  memset(j, 0, sizeof *j);
}


static void jobrecs_free(jobrec *v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) {
    job_clear(&v[i].j);
    ns_hostlist_free(v[i].nodes, v[i].nn);
  }
  free(v);
}

/* Job ids as Slurm prints them: 123, 123_4, 123_[1-3%2], 123+0. */
static bool valid_job_id(const char *s) {
  const char *p = s;
  if (!isdigit((unsigned char)*p)) return false;
  while (isdigit((unsigned char)*p)) p++;
  if (!*p) return true;
  if (*p == '+') {
    p++;
    if (!isdigit((unsigned char)*p)) return false;
    while (isdigit((unsigned char)*p)) p++;
    return !*p;
  }
  if (*p != '_') return false;
  p++;
  if (isdigit((unsigned char)*p)) {
    while (isdigit((unsigned char)*p)) p++;
    return !*p;
  }
  if (*p != '[') return false;
  for (p++; *p && *p != ']'; p++)
    if (!isdigit((unsigned char)*p) && !strchr(",-%:", *p)) return false;
  return p[0] == ']' && p[1] == '\0';
}

static bool is_step_id(const char *s) {
  const char *dot = strchr(s, '.');
  if (!dot || dot == s) return false;
  for (const char *p = s; p < dot; p++)
    if (!isdigit((unsigned char)*p) && !strchr("_+", *p)) return false;
  return dot[1] != '\0';
}

/* Per-node sweep: sort (node, start) pairs; a job starting before the
 * latest end seen on that node overlaps it. end 0 = still running. */
typedef struct {
  const char *node;
  size_t job;
  int64_t start, end;
} nodejob;

static int cmp_nodejob(const void *a, const void *b) {
  const nodejob *x = a, *y = b;
  int c = strcmp(x->node, y->node);
  if (c) return c;
  return x->start < y->start ? -1 : x->start > y->start;
}

static ns_status mark_overlaps(jobrec *jr, size_t n, ns_import_report *rep) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += jr[i].nn;
  if (!total) return NS_OK;
  nodejob *v = malloc(total * sizeof *v);
  if (!v) return NS_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t m = 0; m < jr[i].nn; m++)
      v[k++] = (nodejob){jr[i].nodes[m], i, jr[i].j.start_ms, jr[i].j.end_ms ? jr[i].j.end_ms : INT64_MAX};
  qsort(v, total, sizeof *v, cmp_nodejob);
  int warned = 0;
  size_t i = 0;
  while (i < total) {
    size_t j, owner = v[i].job;
    int64_t maxend = v[i].end;
    for (j = i + 1; j < total && strcmp(v[j].node, v[i].node) == 0; j++) {
      if (v[j].start < maxend && v[j].job != owner) {
        ns_job *a = &jr[owner].j, *b = &jr[v[j].job].j;
        for (int t = 0; t < 2; t++) {
          ns_job *x = t ? b : a;
          if (!x->shared) {
            x->shared = true;
            if (rep) rep->shared_jobs++;
          }
        }
        if (warned++ < WARN_MAX)
          ns_warn("jobs %s and %s overlap on node %s: both marked shared", a->job_id, b->job_id, v[j].node);
      }
      if (v[j].end > maxend) {
        maxend = v[j].end;
        owner = v[j].job;
      }
    }
    i = j;
  }
  free(v);
  return NS_OK;
}

ns_status ns_import_mark_overlaps(ns_job *jobs, size_t n, ns_import_report *rep) {
  jobrec *jr = calloc(n ? n : 1, sizeof *jr);
  if (!jr) return NS_ERR_NOMEM;
  ns_status st = NS_OK;
  for (size_t i = 0; !st && i < n; i++) {
    jr[i].j = jobs[i];
    if (jobs[i].nodelist && jobs[i].nodelist[0]) st = ns_hostlist_expand(jobs[i].nodelist, &jr[i].nodes, &jr[i].nn);
  }
  if (!st) st = mark_overlaps(jr, n, rep);
  for (size_t i = 0; i < n; i++) {
    jobs[i].shared = jr[i].j.shared;
    ns_hostlist_free(jr[i].nodes, jr[i].nn);
  }
  free(jr);
  return st;
}

static int cmp_rec_id(const void *a, const void *b) {
  const jobrec *x = *(jobrec *const *)a, *y = *(jobrec *const *)b;
  int c = strcmp(x->j.job_id, y->j.job_id);
  if (c) return c;
  return x->line < y->line ? -1 : x->line > y->line;
}

/* A job listed again (sacct --duplicates, requeues): the later record wins.
 * Compacts recs in place, keeping file order. */
static ns_status dedupe_jobs(const char *path, jobrec *recs, size_t *n, ns_import_report *rep) {
  if (*n < 2) return NS_OK;
  jobrec **idx = malloc(*n * sizeof *idx);
  if (!idx) return NS_ERR_NOMEM;
  for (size_t i = 0; i < *n; i++) idx[i] = &recs[i];
  qsort(idx, *n, sizeof *idx, cmp_rec_id);
  int warned = 0;
  for (size_t i = 0; i + 1 < *n; i++)
    if (strcmp(idx[i]->j.job_id, idx[i + 1]->j.job_id) == 0) {
      rep->dup_rows++;
      if (warned++ < WARN_MAX)
        ns_warn("%s:%lld: job %s listed again (first at line %lld): the later record wins", path,
                (long long)idx[i + 1]->line, idx[i]->j.job_id, (long long)idx[i]->line);
      idx[i]->line = -1; /* drop */
    }
  free(idx);
  size_t k = 0;
  for (size_t i = 0; i < *n; i++) {
    if (recs[i].line < 0) {
      job_clear(&recs[i].j);
      ns_hostlist_free(recs[i].nodes, recs[i].nn);
      continue;
    }
    recs[k++] = recs[i];
  }
  *n = k;
  return NS_OK;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

enum { SC_JOBID, SC_NODELIST, SC_START, SC_END, SC_STATE, SC_SUBMIT, SC_USER, SC_PARTITION, SC_ACCOUNT,
       SC_EXITCODE, SC_NNODES, SC_JOBNAME, SC_TAG, SC_COUNT };
static const char *const sacct_cols[SC_COUNT] = {"JobID", "NodeList", "Start",    "End",    "State",
                                                 "Submit", "User",    "Partition", "Account", "ExitCode",
                                                 "NNodes", "JobName", "Tag"};

static bool is_unknown_time(const char *s) {
  return !*s || field_is(s, "Unknown") || field_is(s, "None") || field_is(s, "N/A");
}

/* Shared by sacct and the NodeSentry Job file: `|`-separated job lines. */
static ns_status read_job_list(const char *path, const char *cluster, const ns_import_opts *opts, bool need_header,
                               ns_job **jobs, size_t *njobs, ns_import_report *rep) {
  *jobs = NULL;
  *njobs = 0;
  ns_import_opts o = opts ? *opts : NS_IMPORT_OPTS_DEFAULT;
  ns_csv *r = NULL;
  jobrec *recs = NULL;
  size_t nrec = 0, rcap = 0;
  ns_job j = {0};
  char **nodes = NULL, **known = NULL;
  size_t nn = 0;
  int col[SC_COUNT];
  size_t ncols = 0;
  bool got, header = false;
  int warned = 0;
  ns_status st = ns_csv_open(path, '|', &r);
  if (st) return st;
  if (o.known_nodes && o.n_known_nodes) {
    if (!(known = malloc(o.n_known_nodes * sizeof *known))) {
      st = NS_ERR_NOMEM;
      goto done;
    }
    memcpy(known, o.known_nodes, o.n_known_nodes * sizeof *known);
    qsort(known, o.n_known_nodes, sizeof *known, cmp_cstr);
  }
  for (int i = 0; i < SC_COUNT; i++) col[i] = -1;
  while (!(st = ns_csv_next(r, &got)) && got) {
    int64_t line = ns_csv_line(r);
    size_t nf = ns_csv_nfields(r);
    if (!header && (ncols == 0)) {
      bool is_header = false;
      for (size_t i = 0; i < nf; i++) is_header = is_header || field_is(ns_csv_field(r, i, NULL), "JobID");
      if (is_header) {
        for (size_t i = 0; i < nf; i++) {
          const char *name = ns_csv_field(r, i, NULL);
          if (!*name && i + 1 == nf && i > 0) break; /* `sacct -p` ends lines with '|' */
          for (int c = 0; c < SC_COUNT; c++)
            if (field_is(name, sacct_cols[c])) {
              if (col[c] >= 0) {
                st = ns_errorf(NS_ERR_FORMAT, "%s:%lld:%zu: column '%s' appears twice", path, (long long)line,
                               ns_csv_col(r, i), name);
                goto done;
              }
              col[c] = (int)i;
            }
          ncols = i + 1;
        }
        for (int c = SC_JOBID; c <= SC_END; c++)
          if (col[c] < 0) {
            st = ns_errorf(NS_ERR_FORMAT, "%s:%lld: header lacks the %s column", path, (long long)line, sacct_cols[c]);
            goto done;
          }
        header = true;
        continue;
      }
      if (need_header) {
        st = ns_errorf(NS_ERR_FORMAT, "%s:%lld:1: expected the header JobID|NodeList|Start|End|Tag", path,
                       (long long)line);
        goto done;
      }
      /* No header: the documented order JobID|NodeList|Start|End[|State]. */
      ncols = nf == 4 || (nf == 5 && !*ns_csv_field(r, 4, NULL)) ? 4 : 5;
      for (int c = 0; c < (int)ncols; c++) col[c] = c;
    }
    if (!need_header && ns_csv_unterminated(r)) {
      /* sacct ends every line with a newline: a last line without one was cut
       * (e.g. "COMPLE"), and its fields cannot be trusted. */
      st = ns_errorf(NS_ERR_FORMAT, "%s:%lld:%zu: last line has no newline (truncated file?)", path, (long long)line,
                     ns_csv_col(r, nf - 1));
      goto done;
    }
    if (nf == ncols + 1 && !*ns_csv_field(r, ncols, NULL)) nf = ncols; /* trailing '|' */
    if (nf != ncols) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: expected %zu fields, got %zu", path, (long long)line,
                     ns_csv_col(r, nf < ncols ? nf - 1 : ncols), ncols, nf);
      goto done;
    }
#define F(c) (col[c] >= 0 ? ns_csv_field(r, (size_t)col[c], NULL) : NULL)
#define COL(c) ns_csv_col(r, (size_t)col[c])
    const char *id = F(SC_JOBID), *nl = F(SC_NODELIST), *start = F(SC_START), *end = F(SC_END);
    if (is_step_id(id)) {
      rep->skipped_jobs++;
      if (warned++ < WARN_MAX) ns_warn("%s:%lld: job step %s skipped (use sacct -X)", path, (long long)line, id);
      continue;
    }
    if (!need_header && !valid_job_id(id)) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad job id '%s'", path, (long long)line, COL(SC_JOBID), id);
      goto done;
    }
    if (need_header && (!*id || strpbrk(id, " \t"))) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad job id '%s'", path, (long long)line, COL(SC_JOBID), id);
      goto done;
    }
    if (!*nl || field_is(nl, "None assigned") || field_is(nl, "(null)") || is_unknown_time(start)) {
      rep->skipped_jobs++;
      if (warned++ < WARN_MAX) ns_warn("%s:%lld: job %s never started: skipped", path, (long long)line, id);
      continue;
    }
    if ((st = ns_hostlist_expand(nl, &nodes, &nn))) {
      char d[1024];
      snprintf(d, sizeof d, "%s", ns_err_detail());
      st = ns_errorf(st, "%s:%lld:%zu: %s", path, (long long)line, COL(SC_NODELIST), d);
      goto done;
    }
    for (size_t i = 0; known && i < nn; i++)
      if (!bsearch(&nodes[i], known, o.n_known_nodes, sizeof *known, cmp_cstr)) {
        if (!o.allow_unknown_nodes) {
          st = ns_errorf(NS_ERR_NOTFOUND, "%s:%lld:%zu: job %s: unknown node '%s' (no telemetry for it)", path,
                         (long long)line, COL(SC_NODELIST), id, nodes[i]);
          goto done;
        }
        rep->unknown_nodes++;
        if (warned++ < WARN_MAX) ns_warn("%s:%lld: job %s: unknown node '%s' kept", path, (long long)line, id, nodes[i]);
      }
    if (ns_parse_time_ms(start, strlen(start), o.local_time, &j.start_ms)) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad start time '%s'", path, (long long)line, COL(SC_START), start);
      goto done;
    }
    if (!is_unknown_time(end) && ns_parse_time_ms(end, strlen(end), o.local_time, &j.end_ms)) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad end time '%s'", path, (long long)line, COL(SC_END), end);
      goto done;
    }
    if (j.end_ms && j.end_ms < j.start_ms) {
      st = ns_errorf(NS_ERR_RANGE, "%s:%lld:%zu: job %s ends (%s) before it starts (%s)", path, (long long)line,
                     COL(SC_END), id, end, start);
      goto done;
    }
    const char *sub = F(SC_SUBMIT);
    if (sub && !is_unknown_time(sub) && ns_parse_time_ms(sub, strlen(sub), o.local_time, &j.submit_ms)) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad submit time '%s'", path, (long long)line, COL(SC_SUBMIT), sub);
      goto done;
    }
    const char *ec = F(SC_EXITCODE);
    if (ec && *ec) {
      char *e = NULL;
      long v = strtol(ec, &e, 10);
      if (e == ec || (*e && *e != ':')) {
        st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad exit code '%s'", path, (long long)line, COL(SC_EXITCODE), ec);
        goto done;
      }
      j.exit_code = (int)v;
    }
    j.nnodes = (int)nn;
    j.cluster = xstrdup(cluster);
    j.job_id = xstrdup(id);
    j.nodelist = xstrdup(nl);
    j.state = xstrdup(F(SC_STATE));
    j.user = xstrdup(F(SC_USER));
    j.partition = xstrdup(F(SC_PARTITION));
    j.account = xstrdup(F(SC_ACCOUNT));
    j.tag = xstrdup(F(SC_TAG));
#undef F
#undef COL
    if (!j.cluster || !j.job_id || !j.nodelist) {
      st = NS_ERR_NOMEM;
      goto done;
    }
    if ((st = grow(&recs, &rcap, nrec + 1, sizeof *recs))) goto done;
    recs[nrec++] = (jobrec){j, nodes, nn, line};
    memset(&j, 0, sizeof j);
    nodes = NULL;
    nn = 0;
  }
  if (st) goto done;
  if (!header && ncols == 0 && need_header) {
    st = ns_errorf(NS_ERR_EMPTY, "%s: empty job list", path);
    goto done;
  }
  if ((st = dedupe_jobs(path, recs, &nrec, rep)) || (st = mark_overlaps(recs, nrec, rep))) goto done;
  ns_job *out = calloc(nrec ? nrec : 1, sizeof *out);
  if (!out) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < nrec; i++) {
    out[i] = recs[i].j;
    memset(&recs[i].j, 0, sizeof recs[i].j);
  }
  rep->files++;
  rep->jobs += (int64_t)nrec;
  *jobs = out;
  *njobs = nrec;
done:
  job_clear(&j);
  ns_hostlist_free(nodes, nn);
  jobrecs_free(recs, nrec);
  free(known);
  ns_csv_close(r);
  return st;
}

ns_status ns_import_sacct_file(const char *path, const char *cluster, const ns_import_opts *opts, ns_job **jobs,
                               size_t *n, ns_import_report *rep) {
  ns_import_report dummy = {0};
  return read_job_list(path, cluster, opts, false, jobs, n, rep ? rep : &dummy);
}

ns_status ns_nodesentry_read_jobs(const char *path, const char *cluster, const ns_import_opts *opts, ns_job **jobs,
                                  size_t *n, ns_import_report *rep) {
  ns_import_report dummy = {0};
  return read_job_list(path, cluster, opts, true, jobs, n, rep ? rep : &dummy);
}

/* ---- wide CSV (generic and NodeSentry segments) ---- */

enum { WIDE_STRICT = 1, WIDE_REGULAR = 2, WIDE_TS_NAMED = 4 };

/* Row-equality for duplicate detection: NaN equals NaN. */
static bool same_row(const double *a, const double *b, size_t M) {
  for (size_t m = 0; m < M; m++)
    if (!(a[m] == b[m] || (isnan(a[m]) && isnan(b[m])))) return false;
  return true;
}

static ns_status parse_label(const char *f, size_t len, uint8_t *out) {
  double v;
  if (ns_parse_double(f, len, &v) || (v != 0.0 && v != 1.0)) return NS_ERR_PARSE;
  *out = v != 0.0;
  return NS_OK;
}

/* Header checks shared by the wide readers: non-empty, unique metric names. */
static ns_status check_names(const char *path, ns_csv *r, size_t first, size_t count) {
  for (size_t i = first; i < first + count; i++) {
    const char *a = ns_csv_field(r, i, NULL);
    if (!*a)
      return ns_errorf(NS_ERR_FORMAT, "%s:%lld:%zu: empty column name", path, (long long)ns_csv_line(r),
                       ns_csv_col(r, i));
    for (size_t k = first; k < i; k++)
      if (strcmp(a, ns_csv_field(r, k, NULL)) == 0)
        return ns_errorf(NS_ERR_FORMAT, "%s:%lld:%zu: column '%s' appears twice", path, (long long)ns_csv_line(r),
                         ns_csv_col(r, i), a);
  }
  return NS_OK;
}

/* With a sink, rows go to it in pieces of about `budget` values (the sink
 * takes each piece) and *out stays NULL: memory stays bounded for big files. */
static ns_status read_wide(const char *path, const char *node, const ns_import_opts *opts, int flags, ns_mts **out,
                           int64_t *interval_ms, ns_import_report *rep, ns_import_sink sink, void *ctx,
                           int64_t budget) {
  if (out) *out = NULL;
  ns_import_opts o = opts ? *opts : NS_IMPORT_OPTS_DEFAULT;
  ns_csv *r = NULL;
  ns_mts *m = NULL;
  double *row = NULL, *prev = NULL;
  char **names = NULL;
  bool has_prev = false;
  int64_t prev_ts = 0;
  uint8_t prev_lab = 0;
  size_t ncols = 0, M = 0;
  bool got, has_label = false;
  int64_t last_line = 0, step = 0, rows = 0, missing = 0, dups = 0;
  int warned = 0;
  ns_status st = ns_csv_open(path, ',', &r);
  if (st) return st;
  int64_t total_bytes = 0;
  struct stat sb;
  if (o.progress && stat(path, &sb) == 0) total_bytes = (int64_t)sb.st_size;
  if ((st = ns_csv_next(r, &got))) goto done;
  if (!got) {
    st = ns_errorf(NS_ERR_EMPTY, "%s: empty file (no header)", path);
    goto done;
  }
  ncols = ns_csv_nfields(r);
  if ((flags & WIDE_TS_NAMED) && !field_is(ns_csv_field(r, 0, NULL), "timestamp")) {
    st = ns_errorf(NS_ERR_FORMAT, "%s:%lld:1: first column must be 'timestamp', not '%s'", path,
                   (long long)ns_csv_line(r), ns_csv_field(r, 0, NULL));
    goto done;
  }
  has_label = ncols >= 3 && field_is(ns_csv_field(r, ncols - 1, NULL), "label");
  M = ncols - 1 - (has_label ? 1 : 0);
  if (ncols < 2 || M == 0) {
    st = ns_errorf(NS_ERR_FORMAT, "%s:%lld: header needs a timestamp and at least one metric column", path,
                   (long long)ns_csv_line(r));
    goto done;
  }
  if ((st = check_names(path, r, 1, M))) goto done;
  names = calloc(M, sizeof *names);
  row = malloc(M * sizeof *row);
  prev = malloc(M * sizeof *prev);
  if (!names || !row || !prev) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < M; i++)
    if (!(names[i] = strdup(ns_csv_field(r, i + 1, NULL)))) {
      st = NS_ERR_NOMEM;
      goto done;
    }
  if ((st = ns_mts_create(node, M, names, &m))) goto done;
  if (has_label && (st = ns_mts_enable_labels(m))) goto done;
  while (!(st = ns_csv_next(r, &got)) && got) {
    int64_t line = ns_csv_line(r);
    size_t nf = ns_csv_nfields(r);
    if (nf != ncols) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: expected %zu fields, got %zu%s", path, (long long)line,
                     ns_csv_col(r, (nf < ncols ? nf : ncols) - 1), ncols, nf,
                     ns_csv_unterminated(r) ? " (truncated last line?)" : "");
      goto done;
    }
    size_t len;
    int64_t row_missing = 0;
    const char *f = ns_csv_field(r, 0, &len);
    int64_t ts;
    if (ns_parse_time_ms(f, len, o.local_time, &ts)) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%lld:1: bad timestamp '%.64s'", path, (long long)line, f);
      goto done;
    }
    for (size_t i = 0; i < M; i++) {
      f = ns_csv_field(r, i + 1, &len);
      double v;
      if (len == 0) {
        v = NAN;
      } else if (ns_parse_double(f, len, &v)) {
        st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad number '%.64s' (metric %s)", path, (long long)line,
                       ns_csv_col(r, i + 1), f, m->metrics[i]);
        goto done;
      }
      if (isinf(v) || ((flags & WIDE_STRICT) && isnan(v))) {
        st = ns_errorf(NS_ERR_NONFINITE, "%s:%lld:%zu: %s value for metric %s", path, (long long)line,
                       ns_csv_col(r, i + 1), len ? f : "missing", m->metrics[i]);
        goto done;
      }
      if (isnan(v)) row_missing++;
      row[i] = v;
    }
    uint8_t lab = 0;
    if (has_label) {
      f = ns_csv_field(r, ncols - 1, &len);
      if (parse_label(f, len, &lab)) {
        st = ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: label must be 0 or 1, not '%.32s'", path, (long long)line,
                       ns_csv_col(r, ncols - 1), f);
        goto done;
      }
    }
    if (has_prev) {
      if (ts == prev_ts) {
        if (same_row(row, prev, M) && (!has_label || prev_lab == lab)) {
          dups++;
          if (warned++ < WARN_MAX)
            ns_warn("%s:%lld: exact duplicate of line %lld dropped", path, (long long)line, (long long)last_line);
          continue;
        }
        st = ns_errorf(NS_ERR_PARSE, "%s:%lld:1: duplicate timestamp '%s' with different values (line %lld)", path,
                       (long long)line, ns_csv_field(r, 0, NULL), (long long)last_line);
        goto done;
      }
      if (ts < prev_ts) {
        st = ns_errorf(NS_ERR_PARSE, "%s:%lld:1: timestamp '%s' goes back in time (line %lld is later)", path,
                       (long long)line, ns_csv_field(r, 0, NULL), (long long)last_line);
        goto done;
      }
      if (flags & WIDE_REGULAR) {
        if (!step) {
          step = ts - prev_ts;
        } else if (ts - prev_ts != step) {
          st = ns_errorf(NS_ERR_FORMAT, "%s:%lld:1: irregular sampling: step %.3f s, expected %.3f s", path,
                         (long long)line, (double)(ts - prev_ts) / 1000.0, (double)step / 1000.0);
          goto done;
        }
      }
    }
    if ((st = ns_mts_append(m, ts, row))) goto done;
    if (has_label) m->labels[m->T - 1] = lab;
    memcpy(prev, row, M * sizeof *row);
    prev_ts = ts, prev_lab = lab, has_prev = true;
    last_line = line;
    missing += row_missing;
    rows++;
    if (o.progress && (rows & 0xffff) == 0) o.progress(o.progress_ctx, ns_csv_offset(r), total_bytes);
    if (sink && (int64_t)(m->T * M) >= budget) {
      ns_mts *piece = m;
      m = NULL;
      if ((st = sink(ctx, piece)) || (st = ns_mts_create(node, M, names, &m))) goto done;
      if (has_label && (st = ns_mts_enable_labels(m))) goto done;
    }
  }
  if (st) goto done;
  if (rows == 0) {
    st = ns_errorf(NS_ERR_EMPTY, "%s: no data rows", path);
    goto done;
  }
  if (sink && m->T) {
    ns_mts *piece = m;
    m = NULL;
    if ((st = sink(ctx, piece))) goto done;
  }
  if (interval_ms) *interval_ms = step;
  if (o.progress) o.progress(o.progress_ctx, ns_csv_offset(r), total_bytes);
  rep->files++;
  rep->rows += rows;
  rep->points += rows * (int64_t)M;
  rep->missing_values += missing;
  rep->dup_rows += dups;
  if (out) {
    *out = m;
    m = NULL;
  }
done:
  if (names)
    for (size_t i = 0; i < M; i++) free(names[i]);
  free(names);
  free(row);
  free(prev);
  ns_mts_free(m);
  ns_csv_close(r);
  return st;
}

ns_status ns_import_csv_wide(const char *path, const char *node, const ns_import_opts *opts, ns_mts **out,
                             ns_import_report *rep) {
  *out = NULL;
  ns_import_report dummy = {0};
  if (!node || !*node) return ns_errorf(NS_ERR_INVAL, "%s: a node name is required", path);
  return read_wide(path, node, opts, 0, out, NULL, rep ? rep : &dummy, NULL, NULL, 0);
}

ns_status ns_import_csv_stream(const char *path, const char *node, const ns_import_opts *opts, int64_t budget_values,
                               ns_import_sink sink, void *ctx, ns_import_report *rep) {
  ns_import_report dummy = {0};
  if (!node || !*node) return ns_errorf(NS_ERR_INVAL, "%s: a node name is required", path);
  if (!sink) return ns_errorf(NS_ERR_INVAL, "%s: no sink", path);
  return read_wide(path, node, opts, 0, NULL, NULL, rep ? rep : &dummy, sink, ctx, budget_values < 1 ? 1 : budget_values);
}

ns_status ns_nodesentry_read_segment(const char *path, const char *cluster, const char *node, const char *job_id,
                                     const ns_import_opts *opts, ns_segment **out, ns_import_report *rep) {
  *out = NULL;
  ns_import_report dummy = {0}, local = {0};
  ns_mts *m = NULL;
  ns_segment *seg = NULL;
  int64_t step = 0;
  ns_status st =
      read_wide(path, node, opts, WIDE_STRICT | WIDE_REGULAR | WIDE_TS_NAMED, &m, &step, &local, NULL, NULL, 0);
  if (st) return st;
  if (m->T < 2) {
    st = ns_errorf(NS_ERR_TOO_SHORT, "%s: %zu row(s); a segment needs 2 to fix its interval", path, m->T);
    goto done;
  }
  if ((st = ns_segment_create(m->T, m->M, &seg)) ||
      (st = ns_segment_set_meta(seg, cluster, node, job_id, m->ts_ms[0], step)) ||
      (st = ns_segment_set_metrics(seg, m->metrics)))
    goto done;
  for (size_t i = 0; i < m->T * m->M; i++) {
    float v = (float)m->x[i];
    if (!isfinite(v)) {
      st = ns_errorf(NS_ERR_NONFINITE, "%s: row %zu, metric %s: %g does not fit a float", path, i / m->M,
                     m->metrics[i % m->M], m->x[i]);
      goto done;
    }
    seg->x[i] = v;
  }
  if (m->labels) {
    if ((st = ns_segment_alloc_labels(seg))) goto done;
    memcpy(seg->labels, m->labels, m->T);
  }
  if (!rep) rep = &dummy;
  rep->files += local.files, rep->rows += local.rows, rep->points += local.points;
  rep->dup_rows += local.dup_rows;
  rep->segments++;
  *out = seg;
  seg = NULL;
done:
  ns_mts_free(m);
  ns_segment_free(seg);
  return st;
}

/* ---- LDMS store_csv ---- */

/* One producer's pending rows of one schema: [head, n) not joined yet. */
typedef struct {
  int64_t *ts;
  double *x;
  size_t head, n, cap;
  bool has_prev;         /* last row read (kept for duplicate / order checks) */
  int64_t prev_ts, prev_line;
  size_t prev_file;
  double *prev;
} lrows;

typedef struct {
  char *name;            /* schema (file name without rollover / .csv suffix) */
  char **hdr;            /* header fields of the first file */
  size_t nhdr, M;
  int *metric_of;        /* per header column: metric index or -1 */
  int c_time, c_usec, c_prod;
  char **metrics;        /* M metric names */
  uint8_t *is_counter;
  lrows *prod;           /* per producer id */
  size_t nprod;
  char *first_file;
} lschema;

typedef struct {
  char **names;
  size_t n, cap;
  size_t *slots;         /* open addressing: id + 1, 0 = empty */
  size_t nslots;
} producers;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static ns_status producer_id(producers *p, const char *name, size_t *id) {
  if (p->n * 2 >= p->nslots) {
    size_t ns = p->nslots ? p->nslots * 2 : 64;
    size_t *sl = calloc(ns, sizeof *sl);
    if (!sl) return NS_ERR_NOMEM;
    for (size_t i = 0; i < p->n; i++) {
      size_t h = (size_t)hash_str(p->names[i]) & (ns - 1);
      while (sl[h]) h = (h + 1) & (ns - 1);
      sl[h] = i + 1;
    }
    free(p->slots);
    p->slots = sl;
    p->nslots = ns;
  }
  size_t h = (size_t)hash_str(name) & (p->nslots - 1);
  while (p->slots[h]) {
    if (strcmp(p->names[p->slots[h] - 1], name) == 0) {
      *id = p->slots[h] - 1;
      return NS_OK;
    }
    h = (h + 1) & (p->nslots - 1);
  }
  ns_status st = grow(&p->names, &p->cap, p->n + 1, sizeof *p->names);
  if (st) return st;
  if (!(p->names[p->n] = strdup(name))) return NS_ERR_NOMEM;
  p->slots[h] = p->n + 1;
  *id = p->n++;
  return NS_OK;
}

static void schema_free(lschema *s) {
  free(s->name);
  ns_hostlist_free(s->hdr, s->nhdr);
  free(s->metric_of);
  ns_hostlist_free(s->metrics, s->M);
  free(s->is_counter);
  for (size_t i = 0; i < s->nprod; i++) free(s->prod[i].ts), free(s->prod[i].x), free(s->prod[i].prev);
  free(s->prod);
  free(s->first_file);
}

/* "meminfo", "meminfo.csv", "meminfo.1518124125" -> "meminfo". */
static char *schema_of(const char *path) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  char *s = strdup(b);
  if (!s) return NULL;
  for (;;) {
    size_t l = strlen(s);
    char *dot = strrchr(s, '.');
    if (!dot || dot == s) break;
    bool digits = dot[1] != '\0';
    for (char *c = dot + 1; *c; c++) digits = digits && isdigit((unsigned char)*c);
    if (digits || strcmp(dot, ".csv") == 0)
      *dot = '\0';
    else
      break;
    if (strlen(s) == l) break;
  }
  return s;
}

static bool is_header_file(const char *name) {
  const char *h = strstr(name, ".HEADER");
  return h && (h[7] == '\0' || h[7] == '.');
}

/* store_csv with altheader=1 keeps the header in "<file>.HEADER" or, for a
 * rollover file "<schema>.<ts>", in "<schema>.HEADER.<ts>". */
static ns_status read_alt_header(const char *path, ns_csv **hr) {
  *hr = NULL;
  char buf[4096];
  snprintf(buf, sizeof buf, "%s.HEADER", path);
  if (access(buf, R_OK) != 0) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return NS_ERR_NOTFOUND;
    snprintf(buf, sizeof buf, "%.*s.HEADER%s", (int)(dot - path), path, dot);
    if (access(buf, R_OK) != 0) return NS_ERR_NOTFOUND;
  }
  bool got;
  ns_status st = ns_csv_open(buf, ',', hr);
  if (!st) st = ns_csv_next(*hr, &got);
  if (!st && !got) st = ns_errorf(NS_ERR_FORMAT, "%s: empty header file", buf);
  if (st) {
    ns_csv_close(*hr);
    *hr = NULL;
  }
  return st;
}

static bool header_matches(const lschema *s, ns_csv *r) {
  if (ns_csv_nfields(r) != s->nhdr) return false;
  for (size_t i = 0; i < s->nhdr; i++) {
    size_t len;
    const char *f = ns_csv_field(r, i, &len);
    while (len && isblank((unsigned char)*f)) f++, len--;
    while (len && isblank((unsigned char)f[len - 1])) len--;
    if (strlen(s->hdr[i]) != len || memcmp(s->hdr[i], f, len) != 0) return false;
  }
  return true;
}

static ns_status schema_init(lschema *s, ns_csv *r, const char *path, const char *rules) {
  size_t nf = ns_csv_nfields(r);
  int64_t line = ns_csv_line(r);
  if (!(s->hdr = calloc(nf, sizeof *s->hdr)) || !(s->metric_of = malloc(nf * sizeof *s->metric_of)) ||
      !(s->metrics = calloc(nf, sizeof *s->metrics)) || !(s->is_counter = calloc(nf, 1)) ||
      !(s->first_file = strdup(path)))
    return NS_ERR_NOMEM;
  s->nhdr = nf;
  s->c_time = s->c_usec = s->c_prod = -1;
  for (size_t i = 0; i < nf; i++) {
    size_t len;
    const char *f = ns_csv_field(r, i, &len);
    while (len && isblank((unsigned char)*f)) f++, len--;
    while (len && isblank((unsigned char)f[len - 1])) len--;
    if (!(s->hdr[i] = strndup(f, len))) return NS_ERR_NOMEM;
    const char *h = s->hdr[i];
    s->metric_of[i] = -1;
    if (i == 0 && strcmp(h, "#Time") == 0)
      s->c_time = 0;
    else if (field_is(h, "Time_usec"))
      s->c_usec = (int)i;
    else if (field_is(h, "ProducerName"))
      s->c_prod = (int)i;
    else if (field_is(h, "component_id") || field_is(h, "job_id") || field_is(h, "app_id"))
      continue; /* identifiers, not telemetry */
    else if (!*h)
      return ns_errorf(NS_ERR_FORMAT, "%s:%lld:%zu: empty column name", path, (long long)line, ns_csv_col(r, i));
    else {
      for (size_t k = 0; k < s->M; k++)
        if (strcmp(s->metrics[k], h) == 0)
          return ns_errorf(NS_ERR_FORMAT, "%s:%lld:%zu: column '%s' appears twice", path, (long long)line,
                           ns_csv_col(r, i), h);
      bool c;
      ns_status st = ns_import_is_counter(rules, s->name, h, &c);
      if (st) return st;
      if (!(s->metrics[s->M] = strdup(h))) return NS_ERR_NOMEM;
      s->is_counter[s->M] = c;
      s->metric_of[i] = (int)s->M++;
    }
  }
  if (s->c_time != 0 || s->c_prod < 0)
    return ns_errorf(NS_ERR_FORMAT, "%s:%lld:1: not an LDMS store_csv header (needs #Time first and ProducerName)",
                     path, (long long)line);
  if (s->M == 0) return ns_errorf(NS_ERR_FORMAT, "%s:%lld: header has no metric columns", path, (long long)line);
  return NS_OK;
}

/* "1518124125.001592" (+ Time_usec) -> ms. */
static bool ldms_time(const char *t, size_t tl, const char *us, size_t ul, bool have_us, int64_t *ms) {
  size_t i = 0;
  int64_t sec = 0;
  if (!tl) return false;
  for (; i < tl && isdigit((unsigned char)t[i]); i++) {
    if (sec > INT64_MAX / 10000) return false;
    sec = sec * 10 + (t[i] - '0');
  }
  if (i == 0) return false;
  int frac = 0, k = 0;
  if (i < tl && t[i] == '.') {
    for (i++; i < tl && isdigit((unsigned char)t[i]); i++, k++)
      if (k < 3) frac = frac * 10 + (t[i] - '0');
  }
  if (i != tl) return false;
  for (; k < 3; k++) frac *= 10;
  if (have_us) {
    int64_t u = 0;
    if (!ul || ul > 7) return false;
    for (size_t j = 0; j < ul; j++) {
      if (!isdigit((unsigned char)us[j])) return false;
      u = u * 10 + (us[j] - '0');
    }
    if (u > 999999) return false;
    frac = (int)(u / 1000);
  }
  *ms = sec * 1000 + frac;
  return true;
}

/* Streaming: every schema is one stream (its files in name order). The
 * streams are read in lockstep, in blocks of data time; a producer's rows
 * up to the block end are joined and appended to its output, which goes to
 * the sink when the buffered output passes a budget (or at the end). Memory
 * is bounded by the block plus the budget, not by the input size. Rows may
 * lag the file's time order by up to LDMS_LAG_MS. */
#define LDMS_BLOCK_MS INT64_C(600000)
#define LDMS_LAG_MS INT64_C(300000)

typedef struct {
  lschema sc;
  char **files;
  size_t nfiles, fi;
  ns_csv *r;
  bool pending_first;    /* alt-header file: the current record is data */
  char *where;           /* name for messages after a seek, else NULL */
  int64_t closed_bytes;  /* input bytes of the files already finished (for progress) */
  bool eof;
  int64_t mark;          /* latest time read */
  double *row;
  int warned;
} lstream;

typedef struct {
  ns_mts *out;           /* joined rows not yet given to the sink */
  uint8_t *included;     /* per stream: its metrics are columns of out */
  int64_t last_emitted;
  bool emitted;
} lprod_state;

typedef struct {
  const ns_import_opts *o;
  ns_import_report *rep;
  int64_t window;
  lstream *st;
  size_t nst;
  producers prods;
  lprod_state *ps;
  size_t pscap;
  int64_t buffered;      /* values in all ps[].out */
} ldms_run;

/* Files this big are entered by binary search when a start time is given. */
#define LDMS_SEEK_MIN_BYTES ((int64_t)4 << 20)

/* Seconds of the first whole line starting at or after `off`. */
static bool probe_time(FILE *f, int64_t off, int64_t *sec) {
  char buf[4096];
  if (fseeko(f, (off_t)(off > 0 ? off - 1 : 0), SEEK_SET) != 0) return false;
  size_t n = fread(buf, 1, sizeof buf, f);
  const char *p = buf, *e = buf + n;
  if (off > 0) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) return false;
    p = nl + 1;
  }
  int64_t v = 0;
  const char *d = p;
  while (p < e && isdigit((unsigned char)*p) && p - d < 15) v = v * 10 + (*p++ - '0');
  if (p == d || p == e || (*p != '.' && *p != ',')) return false;
  *sec = v;
  return true;
}

/* With opts->from_ms, skip the part of a big file that lies before the
 * window (rows lag their file's order by at most LDMS_LAG_MS). */
static ns_status ldms_seek_window(ldms_run *R, lstream *st, const char *path) {
  int64_t target = R->o->from_ms - LDMS_LAG_MS - R->window;
  struct stat sb;
  if (R->o->from_ms <= 0 || stat(path, &sb) != 0 || sb.st_size < LDMS_SEEK_MIN_BYTES) return NS_OK;
  FILE *f = fopen(path, "rb");
  if (!f) return NS_OK; /* the reader has it open; plain reading still works */
  int64_t lo = st->pending_first ? 0 : ns_csv_offset(st->r), hi = (int64_t)sb.st_size, start = lo;
  while (hi - lo > 65536) {
    int64_t mid = lo + (hi - lo) / 2, t;
    if (probe_time(f, mid, &t) && t * 1000 < target)
      lo = mid;
    else
      hi = mid;
  }
  fclose(f);
  if (lo <= start) return NS_OK;
  ns_status s = ns_csv_seek(st->r, lo);
  if (s) return s;
  st->pending_first = false;
  char buf[1200];
  snprintf(buf, sizeof buf, "%s (lines counted from byte %lld)", path, (long long)lo);
  free(st->where);
  st->where = strdup(buf);
  return NS_OK;
}

static ns_status ldms_open_next(ldms_run *R, lstream *st) {
  ns_csv *hr = NULL;
  bool got;
  const char *path = st->files[st->fi];
  ns_status s = ns_csv_open(path, ',', &st->r);
  if (!s) s = ns_csv_next(st->r, &got);
  if (s) goto fail;
  if (!got) {
    ns_warn("%s: empty file skipped", path);
    goto skip;
  }
  bool inline_header = strcmp(ns_csv_field(st->r, 0, NULL), "#Time") == 0;
  if (inline_header && ns_csv_unterminated(st->r)) {
    R->rep->truncated_lines++;
    ns_warn("%s:%lld: truncated header line, file skipped", path, (long long)ns_csv_line(st->r));
    goto skip;
  }
  ns_csv *h = st->r;
  if (!inline_header) {
    s = read_alt_header(path, &hr);
    if (s == NS_ERR_NOTFOUND) {
      s = ns_errorf(NS_ERR_FORMAT, "%s:%lld:1: no '#Time,...' header line and no .HEADER file", path,
                    (long long)ns_csv_line(st->r));
      goto fail;
    }
    if (s) goto fail;
    h = hr;
  }
  if (!st->sc.hdr) {
    if ((s = schema_init(&st->sc, h, ns_csv_name(h), R->o->counter_rules))) goto fail;
    if (!(st->row = malloc(st->sc.M * sizeof *st->row))) {
      s = NS_ERR_NOMEM;
      goto fail;
    }
  } else if (!header_matches(&st->sc, h)) {
    s = ns_errorf(NS_ERR_SCHEMA, "%s:%lld: header differs from the one of %s (same schema '%s')", ns_csv_name(h),
                  (long long)ns_csv_line(h), st->sc.first_file, st->sc.name);
    goto fail;
  }
  ns_csv_close(hr);
  hr = NULL;
  st->pending_first = !inline_header;
  R->rep->files++;
  free(st->where);
  st->where = NULL;
  if ((s = ldms_seek_window(R, st, path))) goto fail;
  return NS_OK;
skip:
  R->rep->files++;
  st->closed_bytes += ns_csv_offset(st->r);
  ns_csv_close(st->r);
  st->r = NULL;
  st->fi++;
  return NS_OK;
fail:
  ns_csv_close(hr);
  ns_csv_close(st->r);
  st->r = NULL;
  return s;
}

static ns_status prod_state_for(ldms_run *R, size_t pid) {
  if (pid < R->pscap) return NS_OK;
  size_t cap = R->pscap;
  ns_status s = grow(&R->ps, &cap, pid + 1, sizeof *R->ps);
  if (s) return s;
  memset(R->ps + R->pscap, 0, (cap - R->pscap) * sizeof *R->ps);
  for (size_t i = R->pscap; i < cap; i++)
    if (!(R->ps[i].included = calloc(R->nst, 1))) {
      R->pscap = i;
      return NS_ERR_NOMEM;
    }
  R->pscap = cap;
  return NS_OK;
}

/* Read and buffer one data row of the stream (or reach its end). */
static ns_status ldms_read_row(ldms_run *R, lstream *st) {
  bool got;
  ns_status s;
  for (;;) {
    if (!st->r) {
      if (st->fi >= st->nfiles) {
        st->eof = true;
        return NS_OK;
      }
      if ((s = ldms_open_next(R, st))) return s;
      continue;
    }
    ns_csv *r = st->r;
    const char *path = st->where ? st->where : st->files[st->fi];
    if (st->pending_first) {
      st->pending_first = false;
    } else {
      if ((s = ns_csv_next(r, &got))) return s;
      if (!got) {
        st->closed_bytes += ns_csv_offset(r);
        ns_csv_close(r);
        st->r = NULL;
        st->fi++;
        continue;
      }
    }
    lschema *sc = &st->sc;
    int64_t line = ns_csv_line(r);
    size_t nf = ns_csv_nfields(r);
    if (ns_csv_unterminated(r)) {
      /* store_csv always ends lines with '\n': a final line without one is a
       * partial write (the sampler is still running or crashed). */
      R->rep->truncated_lines++;
      ns_warn("%s:%lld: unterminated last line dropped", path, (long long)line);
      continue; /* the reader reports the end next */
    }
    const char *f0 = ns_csv_field(r, 0, NULL);
    if (f0[0] == '#') {
      if (strcmp(f0, "#Time") == 0 && header_matches(sc, r)) {
        R->rep->repeated_headers++;
        continue;
      }
      return ns_errorf(NS_ERR_FORMAT, "%s:%lld:1: %s", path, (long long)line,
                       strcmp(f0, "#Time") == 0 ? "header changed in the middle of the file" : "unexpected '#' line");
    }
    if (nf != sc->nhdr)
      return ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: expected %zu fields, got %zu", path, (long long)line,
                       ns_csv_col(r, (nf < sc->nhdr ? nf : sc->nhdr) - 1), sc->nhdr, nf);
    size_t tl, ul = 0, pl;
    const char *t = ns_csv_field(r, 0, &tl), *us = sc->c_usec >= 0 ? ns_csv_field(r, (size_t)sc->c_usec, &ul) : NULL;
    const char *pn = ns_csv_field(r, (size_t)sc->c_prod, &pl);
    int64_t ts;
    if (!ldms_time(t, tl, us, ul, sc->c_usec >= 0, &ts))
      return ns_errorf(NS_ERR_PARSE, "%s:%lld:1: bad time '%.40s%s%.10s'", path, (long long)line, t,
                       us ? "', usec '" : "", us ? us : "");
    if (!pl)
      return ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: empty ProducerName", path, (long long)line,
                       ns_csv_col(r, (size_t)sc->c_prod));
    if (ts > st->mark) st->mark = ts;
    const ns_import_opts *o = R->o;
    if ((o->only_node && strcmp(pn, o->only_node) != 0) || (o->from_ms && ts < o->from_ms) ||
        (o->to_ms && ts > o->to_ms))
      continue;
    int64_t row_missing = 0;
    for (size_t i = 0; i < nf; i++) {
      int mi = sc->metric_of[i];
      if (mi < 0) continue;
      size_t len;
      const char *f = ns_csv_field(r, i, &len);
      double v;
      if (!len) {
        v = NAN;
      } else if (ns_parse_double(f, len, &v)) {
        return ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: bad number '%.40s' (metric %s)", path, (long long)line,
                         ns_csv_col(r, i), f, sc->metrics[mi]);
      } else if (isinf(v)) {
        return ns_errorf(NS_ERR_NONFINITE, "%s:%lld:%zu: infinite value (metric %s)", path, (long long)line,
                         ns_csv_col(r, i), sc->metrics[mi]);
      }
      if (isnan(v)) row_missing++;
      st->row[mi] = v;
    }
    size_t pid;
    if ((s = producer_id(&R->prods, pn, &pid)) || (s = prod_state_for(R, pid))) return s;
    if (pid >= sc->nprod) {
      size_t cap = sc->nprod;
      if ((s = grow(&sc->prod, &cap, pid + 1, sizeof *sc->prod))) return s;
      memset(sc->prod + sc->nprod, 0, (cap - sc->nprod) * sizeof *sc->prod);
      sc->nprod = cap;
    }
    lrows *pr = &sc->prod[pid];
    if (pr->has_prev) {
      if (ts == pr->prev_ts && same_row(st->row, pr->prev, sc->M)) {
        R->rep->dup_rows++;
        if (st->warned++ < WARN_MAX) ns_warn("%s:%lld: exact duplicate row of %s dropped", path, (long long)line, pn);
        continue;
      }
      if (ts <= pr->prev_ts)
        return ns_errorf(NS_ERR_PARSE, "%s:%lld:1: time %.3f of %s is %s line %lld%s", path, (long long)line,
                         (double)ts / 1000.0, pn, ts == pr->prev_ts ? "the same as (with different values)" : "before",
                         (long long)pr->prev_line, pr->prev_file == st->fi ? "" : " of an earlier file");
    }
    lprod_state *ps = &R->ps[pid];
    if (ps->emitted && ts <= ps->last_emitted)
      return ns_errorf(NS_ERR_PARSE, "%s:%lld:1: time %.3f of %s lies behind rows already joined (more than %lld s "
                       "out of the file's time order)", path, (long long)line, (double)ts / 1000.0, pn,
                       (long long)(LDMS_LAG_MS / 1000));
    if (!pr->prev && !(pr->prev = malloc(sc->M * sizeof *pr->prev))) return NS_ERR_NOMEM;
    size_t cap = pr->cap;
    if ((s = grow(&pr->ts, &cap, pr->n + 1, sizeof *pr->ts))) return s;
    if (cap != pr->cap) {
      double *x = realloc(pr->x, cap * sc->M * sizeof *x);
      if (!x) return NS_ERR_NOMEM;
      pr->x = x;
      pr->cap = cap;
    }
    pr->ts[pr->n] = ts;
    memcpy(pr->x + pr->n * sc->M, st->row, sc->M * sizeof *st->row);
    pr->n++;
    memcpy(pr->prev, st->row, sc->M * sizeof *st->row);
    pr->has_prev = true;
    pr->prev_ts = ts;
    pr->prev_line = line;
    pr->prev_file = st->fi;
    R->rep->rows++;
    R->rep->points += (int64_t)sc->M;
    R->rep->missing_values += row_missing;
    return NS_OK;
  }
}

static ns_status ldms_read_until(ldms_run *R, lstream *st, int64_t limit) {
  ns_status s = NS_OK;
  while (!s && !st->eof && st->mark <= limit) s = ldms_read_row(R, st);
  return s;
}

/* (Re)build producer pid's output with the streams in ps->included. */
static ns_status ldms_layout(ldms_run *R, size_t pid) {
  lprod_state *ps = &R->ps[pid];
  size_t M = 0;
  for (size_t k = 0; k < R->nst; k++)
    if (ps->included[k]) M += R->st[k].sc.M;
  char **names = calloc(M, sizeof *names);
  ns_mts *m = NULL;
  ns_status s = names ? NS_OK : NS_ERR_NOMEM;
  size_t j = 0;
  for (size_t k = 0; !s && k < R->nst; k++) {
    if (!ps->included[k]) continue;
    const lschema *sc = &R->st[k].sc;
    for (size_t i = 0; i < sc->M; i++, j++) {
      size_t l = strlen(sc->name) + strlen(sc->metrics[i]) + 2;
      if (!(names[j] = malloc(l))) {
        s = NS_ERR_NOMEM;
        break;
      }
      snprintf(names[j], l, "%s.%s", sc->name, sc->metrics[i]);
    }
  }
  if (!s) s = ns_mts_create(R->prods.names[pid], M, names, &m);
  for (size_t k = 0, off = 0; !s && k < R->nst; k++) {
    if (!ps->included[k]) continue;
    memcpy(m->is_counter + off, R->st[k].sc.is_counter, R->st[k].sc.M);
    off += R->st[k].sc.M;
  }
  /* Carry rows already joined (a schema appearing late for this node). */
  ns_mts *old = ps->out;
  double *row = !s && old ? malloc(M * sizeof *row) : NULL;
  size_t *to = !s && old ? malloc((old->M ? old->M : 1) * sizeof *to) : NULL;
  if (!s && old && (!row || !to)) s = NS_ERR_NOMEM;
  for (size_t c = 0; !s && old && c < old->M; c++) /* the old columns keep their names */
    for (to[c] = 0; to[c] < M && strcmp(m->metrics[to[c]], old->metrics[c]) != 0; to[c]++) {
    }
  for (size_t t = 0; !s && old && t < old->T; t++) {
    for (size_t i = 0; i < M; i++) row[i] = NAN;
    for (size_t c = 0; c < old->M; c++)
      if (to[c] < M) row[to[c]] = old->x[t * old->M + c];
    s = ns_mts_append(m, old->ts_ms[t], row);
  }
  free(row);
  free(to);
  if (names)
    for (size_t i = 0; i < M; i++) free(names[i]);
  free(names);
  if (s) {
    ns_mts_free(m);
    return s;
  }
  if (old) R->buffered += (int64_t)(m->T * m->M) - (int64_t)(old->T * old->M);
  ns_mts_free(old);
  ps->out = m;
  return NS_OK;
}

/* Join producer pid's buffered rows with times <= limit. */
static ns_status ldms_emit(ldms_run *R, size_t pid, int64_t limit) {
  lprod_state *ps = &R->ps[pid];
  ns_status s = NS_OK;
  double *row = NULL;
  size_t rowcap = 0;
  for (;;) {
    int64_t t0 = INT64_MAX;
    for (size_t k = 0; k < R->nst; k++) {
      lschema *sc = &R->st[k].sc;
      if (pid < sc->nprod && sc->prod[pid].head < sc->prod[pid].n && sc->prod[pid].ts[sc->prod[pid].head] < t0)
        t0 = sc->prod[pid].ts[sc->prod[pid].head];
    }
    if (t0 == INT64_MAX || t0 > limit) break;
    bool relayout = !ps->out;
    for (size_t k = 0; k < R->nst; k++) {
      lschema *sc = &R->st[k].sc;
      if (pid < sc->nprod && sc->prod[pid].head < sc->prod[pid].n &&
          sc->prod[pid].ts[sc->prod[pid].head] - t0 <= R->window && !ps->included[k])
        ps->included[k] = 1, relayout = true;
    }
    if (relayout && (s = ldms_layout(R, pid))) break;
    ns_mts *m = ps->out;
    if (rowcap < m->M) {
      free(row);
      rowcap = m->M;
      if (!(row = malloc(rowcap * sizeof *row))) {
        s = NS_ERR_NOMEM;
        break;
      }
    }
    for (size_t i = 0; i < m->M; i++) row[i] = NAN;
    for (size_t k = 0, off = 0; k < R->nst; k++) {
      if (!ps->included[k]) continue;
      lschema *sc = &R->st[k].sc;
      lrows *pr = pid < sc->nprod ? &sc->prod[pid] : NULL;
      if (pr && pr->head < pr->n && pr->ts[pr->head] - t0 <= R->window) {
        memcpy(row + off, pr->x + pr->head * sc->M, sc->M * sizeof *row);
        pr->head++;
      }
      off += sc->M;
    }
    if ((s = ns_mts_append(m, t0, row))) break;
    R->buffered += (int64_t)m->M;
    ps->last_emitted = t0;
    ps->emitted = true;
  }
  free(row);
  /* Drop joined rows from the input buffers. */
  for (size_t k = 0; k < R->nst; k++) {
    lschema *sc = &R->st[k].sc;
    if (pid >= sc->nprod || !sc->prod[pid].head) continue;
    lrows *pr = &sc->prod[pid];
    size_t left = pr->n - pr->head;
    memmove(pr->ts, pr->ts + pr->head, left * sizeof *pr->ts);
    memmove(pr->x, pr->x + pr->head * sc->M, left * sc->M * sizeof *pr->x);
    pr->n = left;
    pr->head = 0;
  }
  return s;
}

static ns_status ldms_flush(ldms_run *R, ns_import_sink sink, void *ctx) {
  for (size_t p = 0; p < R->prods.n; p++) {
    lprod_state *ps = &R->ps[p];
    if (!ps->out || !ps->out->T) continue;
    ns_mts *m = ps->out;
    ps->out = NULL;
    R->buffered -= (int64_t)(m->T * m->M);
    ns_status s = sink(ctx, m); /* takes m */
    if (s) return s;
  }
  return NS_OK;
}

static int cmp_path_schema(const void *a, const void *b) {
  char *const *x = a, *const *y = b;
  char *sx = schema_of(*x), *sy = schema_of(*y);
  int c = sx && sy ? strcmp(sx, sy) : 0;
  free(sx), free(sy);
  return c ? c : strcmp(*x, *y);
}

ns_status ns_import_ldms_stream(char *const *paths, size_t npaths, const ns_import_opts *opts, int64_t budget_values,
                                ns_import_sink sink, void *ctx, ns_import_report *rep) {
  ns_import_report dummy = {0};
  ns_import_opts o = opts ? *opts : NS_IMPORT_OPTS_DEFAULT;
  ldms_run R = {.o = &o, .rep = rep ? rep : &dummy};
  R.window = o.join_window_ms < 0 ? 500 : o.join_window_ms;
  char **files = NULL;
  size_t nfiles = 0, fcap = 0;
  bool dummy_rule;
  ns_status st = ns_import_is_counter(o.counter_rules, "x", "y", &dummy_rule);
  if (st) return st;
  for (size_t i = 0; i < npaths; i++) {
    struct stat sb;
    if (stat(paths[i], &sb) != 0) {
      st = ns_errorf(NS_ERR_IO, "%s: %s", paths[i], strerror(errno));
      goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
      char **names = NULL;
      size_t nn = 0;
      if ((st = list_dir(paths[i], false, &names, &nn))) goto done;
      for (size_t k = 0; !st && k < nn; k++) {
        if (is_header_file(names[k])) continue;
        if (!(st = grow(&files, &fcap, nfiles + 1, sizeof *files)))
          if (!(files[nfiles++] = path_join(paths[i], names[k]))) st = NS_ERR_NOMEM, nfiles--;
      }
      ns_hostlist_free(names, nn);
      if (st) goto done;
    } else {
      if ((st = grow(&files, &fcap, nfiles + 1, sizeof *files))) goto done;
      if (!(files[nfiles] = strdup(paths[i]))) {
        st = NS_ERR_NOMEM;
        goto done;
      }
      nfiles++;
    }
  }
  if (!nfiles) {
    st = ns_errorf(NS_ERR_EMPTY, "no LDMS files given");
    goto done;
  }
  /* One stream per schema, schemas in name order, files in name order. */
  qsort(files, nfiles, sizeof *files, cmp_path_schema);
  if (!(R.st = calloc(nfiles, sizeof *R.st))) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < nfiles;) {
    char *name = schema_of(files[i]);
    size_t j = i + 1;
    while (name && j < nfiles) {
      char *n2 = schema_of(files[j]);
      bool same = n2 && strcmp(n2, name) == 0;
      free(n2);
      if (!same) break;
      j++;
    }
    if (!name) {
      st = NS_ERR_NOMEM;
      goto done;
    }
    lstream *sm = &R.st[R.nst++];
    sm->sc.name = name;
    sm->files = files + i;
    sm->nfiles = j - i;
    sm->mark = INT64_MIN;
    i = j;
  }
  int64_t total_bytes = 0;
  for (size_t i = 0; o.progress && i < nfiles; i++) {
    struct stat sb;
    if (stat(files[i], &sb) == 0) total_bytes += (int64_t)sb.st_size;
  }
  for (size_t k = 0; k < R.nst; k++)
    if ((st = ldms_read_until(&R, &R.st[k], INT64_MIN))) goto done;
  int64_t B = INT64_MAX;
  for (size_t k = 0; k < R.nst; k++)
    if (!R.st[k].eof && R.st[k].mark < B) B = R.st[k].mark;
  if (B != INT64_MAX) B += LDMS_BLOCK_MS;
  for (;;) {
    bool all_eof = true;
    for (size_t k = 0; k < R.nst; k++) {
      if (B != INT64_MAX && (st = ldms_read_until(&R, &R.st[k], B + LDMS_LAG_MS))) goto done;
      all_eof = all_eof && R.st[k].eof;
    }
    if (all_eof) B = INT64_MAX;
    for (size_t p = 0; p < R.prods.n; p++)
      if ((st = ldms_emit(&R, p, B))) goto done;
    if (all_eof || R.buffered > budget_values)
      if ((st = ldms_flush(&R, sink, ctx))) goto done;
    if (o.progress) {
      int64_t done_bytes = 0;
      for (size_t k = 0; k < R.nst; k++) done_bytes += R.st[k].closed_bytes + (R.st[k].r ? ns_csv_offset(R.st[k].r) : 0);
      o.progress(o.progress_ctx, done_bytes, total_bytes);
    }
    if (all_eof) break;
    int64_t lo = INT64_MAX;
    for (size_t k = 0; k < R.nst; k++)
      if (!R.st[k].eof && R.st[k].mark < lo) lo = R.st[k].mark;
    B = B + LDMS_BLOCK_MS > lo - LDMS_LAG_MS ? B + LDMS_BLOCK_MS : lo - LDMS_LAG_MS;
  }
  size_t nodes = 0;
  for (size_t p = 0; p < R.prods.n; p++) nodes += R.ps[p].emitted;
  if (!nodes) {
    st = ns_errorf(NS_ERR_EMPTY, "%s%s: no LDMS data rows", files[0], nfiles > 1 ? " ..." : "");
    goto done;
  }
  R.rep->nodes += (int64_t)nodes;
done:
  for (size_t k = 0; k < R.nst; k++) {
    ns_csv_close(R.st[k].r);
    free(R.st[k].where);
    free(R.st[k].row);
    schema_free(&R.st[k].sc);
  }
  free(R.st);
  for (size_t p = 0; p < R.pscap; p++) {
    ns_mts_free(R.ps[p].out);
    free(R.ps[p].included);
  }
  free(R.ps);
  ns_hostlist_free(R.prods.names, R.prods.n);
  free(R.prods.slots);
  ns_hostlist_free(files, nfiles);
  return st;
}

void ns_import_mts_free(ns_mts **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) ns_mts_free(v[i]);
  free(v);
}

typedef struct {
  ns_mts **v;
  size_t n, cap;
} mts_list;

static ns_status collect_sink(void *ctx, ns_mts *m) {
  mts_list *l = ctx;
  ns_status s = grow(&l->v, &l->cap, l->n + 1, sizeof *l->v);
  if (s) {
    ns_mts_free(m);
    return s;
  }
  l->v[l->n++] = m;
  return NS_OK;
}

static int cmp_mts_node(const void *a, const void *b) {
  return strcmp((*(ns_mts *const *)a)->node, (*(ns_mts *const *)b)->node);
}

ns_status ns_import_ldms(char *const *paths, size_t npaths, const ns_import_opts *opts, ns_mts ***out, size_t *n,
                         ns_import_report *rep) {
  *out = NULL;
  *n = 0;
  mts_list l = {0};
  ns_status st = ns_import_ldms_stream(paths, npaths, opts, INT64_MAX, collect_sink, &l, rep);
  if (st) {
    ns_import_mts_free(l.v, l.n);
    return st;
  }
  qsort(l.v, l.n, sizeof *l.v, cmp_mts_node);
  *out = l.v;
  *n = l.n;
  return NS_OK;
}

ns_status ns_import_counters_to_rates(ns_mts *m, ns_import_report *rep) {
  if (!m) return ns_errorf(NS_ERR_INVAL, "no series");
  int warned = 0;
  for (size_t j = 0; j < m->M; j++) {
    if (!m->is_counter[j]) continue;
    double prev = NAN;
    int64_t prev_t = 0;
    for (size_t t = 0; t < m->T; t++) {
      double v = m->x[t * m->M + j], r = NAN;
      if (t > 0 && !isnan(v) && !isnan(prev) && m->ts_ms[t] > prev_t) {
        if (v >= prev) {
          r = (v - prev) * 1000.0 / (double)(m->ts_ms[t] - prev_t);
        } else {
          if (rep) rep->counter_resets++;
          if (warned++ < WARN_MAX)
            ns_warn("%s: counter %s decreased at row %zu (reset): rate set missing", m->node ? m->node : "?",
                    m->metrics[j], t);
        }
      }
      m->x[t * m->M + j] = r;
      if (!isnan(v)) prev = v, prev_t = m->ts_ms[t];
      else prev = NAN;
    }
    m->is_counter[j] = 0;
  }
  return NS_OK;
}

/* ---- store importers ---- */

/* Run `body` inside one transaction; roll back on any error. The rollback's
 * own failure must not mask the first error's detail. */
static ns_status finish_tx(ns_store *s, ns_status st) {
  if (!st) return ns_store_commit(s);
  char d[1024];
  snprintf(d, sizeof d, "%s", ns_err_detail());
  ns_store_rollback(s);
  ns_errorf(st, "%s", d);
  return st;
}

ns_status ns_import_sacct_store(ns_store *s, const char *path, const char *cluster, const ns_import_opts *opts,
                                ns_import_report *rep) {
  ns_import_report dummy = {0};
  if (!rep) rep = &dummy;
  double t0 = now_s();
  ns_import_opts o = opts ? *opts : NS_IMPORT_OPTS_DEFAULT;
  char **known = NULL;
  size_t nknown = 0;
  ns_job *jobs = NULL;
  size_t n = 0;
  ns_status st = NS_OK;
  if (!o.known_nodes) {
    /* Once the cluster has telemetry, a job on a node without any is most
     * likely a typo or the wrong cluster. */
    if ((st = ns_store_list_raw_nodes(s, cluster, &known, &nknown))) return st;
    if (nknown) o.known_nodes = known, o.n_known_nodes = nknown;
  }
  if ((st = ns_import_sacct_file(path, cluster, &o, &jobs, &n, rep))) goto done;
  if ((st = ns_store_begin(s))) goto done;
  for (size_t i = 0; !st && i < n; i++) st = ns_store_put_job(s, &jobs[i]);
  st = finish_tx(s, st);
done:
  ns_jobs_free(jobs, n);
  ns_strings_free(known, nknown);
  rep->seconds += now_s() - t0;
  return st;
}

typedef struct {
  ns_store *s;
  const char *cluster, *source;
} raw_sink_ctx;

static ns_status raw_sink(void *ctx, ns_mts *m) {
  raw_sink_ctx *c = ctx;
  ns_status st = ns_store_put_raw(c->s, c->cluster, m, c->source);
  ns_mts_free(m);
  return st;
}

/* Values buffered before they go to the store (8 bytes each). */
#define LDMS_STORE_BUDGET INT64_C(16000000)



ns_status ns_import_ldms_store(ns_store *s, char *const *paths, size_t npaths, const char *cluster,
                               const ns_import_opts *opts, ns_import_report *rep) {
  ns_import_report dummy = {0};
  if (!rep) rep = &dummy;
  double t0 = now_s();
  raw_sink_ctx c = {s, cluster, "ldms"};
  ns_status st = ns_store_begin(s);
  if (!st) {
    st = ns_import_ldms_stream(paths, npaths, opts, LDMS_STORE_BUDGET, raw_sink, &c, rep);
    st = finish_tx(s, st);
  }
  rep->seconds += now_s() - t0;
  return st;
}

ns_status ns_import_csv_store(ns_store *s, const char *path, const char *node, const char *cluster,
                              const ns_import_opts *opts, ns_import_report *rep) {
  ns_import_report dummy = {0};
  if (!rep) rep = &dummy;
  double t0 = now_s();
  if (!node || !*node) return ns_errorf(NS_ERR_INVAL, "%s: a node name is required", path);
  raw_sink_ctx c = {s, cluster, "csv"};
  ns_status st = ns_store_begin(s);
  if (!st) {
    st = ns_import_csv_stream(path, node, opts, LDMS_STORE_BUDGET, raw_sink, &c, rep);
    st = finish_tx(s, st);
  }
  if (!st) rep->nodes++;
  rep->seconds += now_s() - t0;
  return st;
}

/* ---- NodeSentry dataset folder ---- */

/* The job a file names: "Job-13" matches JobID "13" (or "Job-13" itself). */
static long find_job(const ns_job *jobs, size_t n, const char *part) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(jobs[i].job_id, part) == 0) return (long)i;
  const char *p = part;
  while (*p && !isdigit((unsigned char)*p)) p++;
  if (p == part || !*p) return -1;
  for (size_t i = 0; i < n; i++)
    if (strcmp(jobs[i].job_id, p) == 0) return (long)i;
  return -1;
}

static bool ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Store one label row per run of equal labels, unless an identical
 * imported row exists (re-importing stays idempotent). */
static ns_status put_label_runs(ns_store *s, const ns_segment *seg, const char *file, ns_import_report *rep) {
  ns_label *have = NULL;
  size_t nh = 0;
  /* One query per segment: the labels overlapping it. */
  int64_t end_ms = seg->start_ms + (int64_t)(seg->T ? seg->T - 1 : 0) * seg->interval_ms;
  ns_status st = ns_store_list_labels(s, seg->cluster, seg->node, seg->start_ms, end_ms, &have, &nh);
  size_t t = 0;
  while (!st && t < seg->T) {
    size_t e = t;
    while (e + 1 < seg->T && seg->labels[e + 1] == seg->labels[t]) e++;
    ns_label l = {0};
    l.cluster = seg->cluster;
    l.node = seg->node;
    l.job_id = seg->job_id;
    l.start_ms = seg->start_ms + (int64_t)t * seg->interval_ms;
    l.end_ms = seg->start_ms + (int64_t)e * seg->interval_ms;
    l.label = seg->labels[t];
    l.author = "nsentry import";
    l.source = "import";
    l.note = (char *)file;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    l.created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    bool exists = false;
    for (size_t i = 0; i < nh; i++)
      if (have[i].start_ms == l.start_ms && have[i].end_ms == l.end_ms && have[i].label == l.label &&
          have[i].source && strcmp(have[i].source, "import") == 0)
        exists = true;
    if (!exists) {
      int64_t id;
      if ((st = ns_store_put_label(s, &l, &id))) break;
      rep->labels++;
    }
    t = e + 1;
  }
  ns_labels_free(have, nh);
  return st;
}

/* Shared state of one NodeSentry folder import. */
typedef struct {
  ns_store *s;
  const char *cluster;
  const ns_import_opts *opts;
  ns_import_report *rep;
  ns_job *jobs;
  size_t njobs;
  char ***jnodes;     /* expanded node list per job */
  size_t *jnn;
  char **seen;        /* nodes with segments */
  size_t nseen, seencap;
  int64_t bytes_done, bytes_total; /* progress over the whole folder */
} nsdir;

/* Per-file progress -> progress over the folder. */
static void nsdir_progress(void *ctx, int64_t done, int64_t total) {
  nsdir *d = ctx;
  (void)total;
  d->opts->progress(d->opts->progress_ctx, d->bytes_done + done, d->bytes_total);
}

/* Input bytes of the folder's *.csv files (for progress). */
static int64_t nsdir_bytes(const char *train, const char *test) {
  int64_t total = 0;
  char **a = NULL, **b = NULL;
  size_t na = 0, nb = 0;
  struct stat sb;
  if (list_dir(train, true, &a, &na) == NS_OK)
    for (size_t i = 0; i < na; i++) {
      char *sub = path_join(train, a[i]);
      if (sub && list_dir(sub, false, &b, &nb) == NS_OK) {
        for (size_t k = 0; k < nb; k++) {
          char *f = path_join(sub, b[k]);
          if (f && stat(f, &sb) == 0) total += (int64_t)sb.st_size;
          free(f);
        }
        ns_hostlist_free(b, nb);
      }
      free(sub);
    }
  ns_hostlist_free(a, na);
  if (list_dir(test, false, &b, &nb) == NS_OK) {
    for (size_t k = 0; k < nb; k++) {
      char *f = path_join(test, b[k]);
      if (f && stat(f, &sb) == 0) total += (int64_t)sb.st_size;
      free(f);
    }
    ns_hostlist_free(b, nb);
  }
  ns_err_clear();
  return total;
}

static ns_status import_ns_file(nsdir *d, const char *path, const char *fname, const char *node, const char *jobpart,
                                const char *split) {
  long j = find_job(d->jobs, d->njobs, jobpart);
  if (j < 0) return ns_errorf(NS_ERR_NOTFOUND, "%s: job '%s' is not in the Job file", path, jobpart);
  bool member = false;
  for (size_t k = 0; k < d->jnn[j]; k++) member = member || strcmp(d->jnodes[j][k], node) == 0;
  if (!member)
    return ns_errorf(NS_ERR_NOTFOUND, "%s: node '%s' is not in job %s's node list '%s'", path, node,
                     d->jobs[j].job_id, d->jobs[j].nodelist);
  ns_segment *seg = NULL;
  ns_import_opts o = d->opts ? *d->opts : NS_IMPORT_OPTS_DEFAULT;
  if (o.progress) o.progress = nsdir_progress, o.progress_ctx = d;
  ns_status st = ns_nodesentry_read_segment(path, d->cluster, node, d->jobs[j].job_id, &o, &seg, d->rep);
  struct stat sb;
  if (stat(path, &sb) == 0) d->bytes_done += (int64_t)sb.st_size;
  if (st) return st;
  int64_t id;
  if (!(st = ns_store_put_segment(d->s, seg, split, &id)) && seg->labels) st = put_label_runs(d->s, seg, fname, d->rep);
  ns_segment_free(seg);
  bool known = false;
  for (size_t i = 0; i < d->nseen; i++) known = known || strcmp(d->seen[i], node) == 0;
  if (!st && !known && !(st = grow(&d->seen, &d->seencap, d->nseen + 1, sizeof *d->seen))) {
    if (!(d->seen[d->nseen] = strdup(node))) return NS_ERR_NOMEM;
    d->nseen++;
  }
  return st;
}

ns_status ns_import_nodesentry(const char *dir, ns_store *s, const char *cluster, const ns_import_opts *opts,
                               ns_import_report *rep) {
  ns_import_report dummy = {0};
  if (!rep) rep = &dummy;
  double t0 = now_s();
  char *jobpath = path_join(dir, "Job"), *train = path_join(dir, "Train"), *test = path_join(dir, "Test");
  ns_job *jobs = NULL;
  size_t njobs = 0;
  char ***jnodes = NULL;
  size_t *jnn = NULL;
  char **nodes = NULL, **files = NULL;
  size_t nnodes = 0, nfiles = 0;
  char *sub = NULL, *fp = NULL;
  bool in_tx = false;
  nsdir d = {0};
  struct stat sb;
  ns_status st = jobpath && train && test ? NS_OK : NS_ERR_NOMEM;
  if (st) goto done;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    st = ns_errorf(NS_ERR_IO, "%s: not a directory", dir);
    goto done;
  }
  bool have_train = stat(train, &sb) == 0 && S_ISDIR(sb.st_mode);
  bool have_test = stat(test, &sb) == 0 && S_ISDIR(sb.st_mode);
  if (!have_train && !have_test) {
    st = ns_errorf(NS_ERR_FORMAT, "%s: neither Train/ nor Test/ found (not a NodeSentry dataset)", dir);
    goto done;
  }
  if ((st = ns_nodesentry_read_jobs(jobpath, cluster, opts, &jobs, &njobs, rep))) goto done;
  if (!(jnodes = calloc(njobs ? njobs : 1, sizeof *jnodes)) || !(jnn = calloc(njobs ? njobs : 1, sizeof *jnn))) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < njobs; i++)
    if ((st = ns_hostlist_expand(jobs[i].nodelist, &jnodes[i], &jnn[i]))) goto done;
  d = (nsdir){.s = s, .cluster = cluster, .opts = opts, .rep = rep, .jobs = jobs, .njobs = njobs, .jnodes = jnodes,
              .jnn = jnn};
  if (opts && opts->progress) d.bytes_total = nsdir_bytes(train, test);
  if ((st = ns_store_begin(s))) goto done;
  in_tx = true;
  for (size_t i = 0; i < njobs; i++)
    if ((st = ns_store_put_job(s, &jobs[i]))) goto done;
  if (have_train) {
    if ((st = list_dir(train, true, &nodes, &nnodes))) goto done;
    for (size_t i = 0; i < nnodes; i++) {
      if (!(sub = path_join(train, nodes[i]))) {
        st = NS_ERR_NOMEM;
        goto done;
      }
      if ((st = list_dir(sub, false, &files, &nfiles))) goto done;
      size_t nl = strlen(nodes[i]);
      for (size_t k = 0; k < nfiles; k++) {
        if (!ends_with(files[k], ".csv")) continue;
        if (!(fp = path_join(sub, files[k]))) {
          st = NS_ERR_NOMEM;
          goto done;
        }
        if (strncmp(files[k], nodes[i], nl) != 0 || files[k][nl] != '_' || strlen(files[k]) <= nl + 5) {
          st = ns_errorf(NS_ERR_FORMAT, "%s: name is not <node>_<job>.csv for node folder '%s'", fp, nodes[i]);
          goto done;
        }
        char *jobpart = strndup(files[k] + nl + 1, strlen(files[k]) - nl - 5);
        if (!jobpart) {
          st = NS_ERR_NOMEM;
          goto done;
        }
        st = import_ns_file(&d, fp, files[k], nodes[i], jobpart, "train");
        free(jobpart);
        free(fp);
        fp = NULL;
        if (st) goto done;
      }
      ns_hostlist_free(files, nfiles);
      files = NULL, nfiles = 0;
      free(sub);
      sub = NULL;
    }
  }
  if (have_test) {
    if ((st = list_dir(test, false, &files, &nfiles))) goto done;
    for (size_t k = 0; k < nfiles; k++) {
      if (!ends_with(files[k], ".csv")) continue;
      if (!(fp = path_join(test, files[k]))) {
        st = NS_ERR_NOMEM;
        goto done;
      }
      const char *us = strchr(files[k], '_');
      if (!us || us == files[k] || strlen(us) <= 5) {
        st = ns_errorf(NS_ERR_FORMAT, "%s: name is not <node>_<job>.csv", fp);
        goto done;
      }
      char *node = strndup(files[k], (size_t)(us - files[k]));
      char *jobpart = strndup(us + 1, strlen(us + 1) - 4);
      st = node && jobpart ? import_ns_file(&d, fp, files[k], node, jobpart, "test") : NS_ERR_NOMEM;
      free(node);
      free(jobpart);
      free(fp);
      fp = NULL;
      if (st) goto done;
    }
  }
  rep->nodes += (int64_t)d.nseen;
done:
  if (in_tx) st = finish_tx(s, st);
  for (size_t i = 0; jnodes && i < njobs; i++) ns_hostlist_free(jnodes[i], jnn[i]);
  free(jnodes);
  free(jnn);
  ns_jobs_free(jobs, njobs);
  ns_hostlist_free(nodes, nnodes);
  ns_hostlist_free(files, nfiles);
  free(sub), free(fp), free(jobpath), free(train), free(test);
  ns_hostlist_free(d.seen, d.nseen);
  rep->seconds += now_s() - t0;
  return st;
}
