/* Synthetic cluster generator, its writers, and preprocessing over a real
 * store (SQLite) fed by the generator and the importers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "ns_import.h"
#include "ns_prep.h"
#include "ns_store.h"
#include "ns_synth.h"

static ns_synth_opts small(uint64_t seed) {
  ns_synth_opts o;
  ns_synth_opts_default(&o);
  o.nodes = 6;
  o.days = 1;
  o.seed = seed;
  o.anomaly_ratio = 0.05;
  o.cluster = "t";
  return o;
}

static ns_synth *mk(const ns_synth_opts *o) {
  ns_synth *s = NULL;
  cr_assert_eq(ns_synth_create(o, &s), NS_OK, "%s", ns_err_detail());
  return s;
}

static char *tmpdir(void) {
  char *d = strdup("/tmp/ns_synth_XXXXXX");
  cr_assert_not_null(mkdtemp(d));
  return d;
}

static void rmrf(const char *d) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", d);
  cr_assert_eq(system(cmd), 0);
}

static bool same_mts(const ns_mts *a, const ns_mts *b) {
  if (a->T != b->T || a->M != b->M) return false;
  if (memcmp(a->ts_ms, b->ts_ms, a->T * sizeof *a->ts_ms)) return false;
  if (memcmp(a->x, b->x, a->T * a->M * sizeof *a->x)) return false;
  return memcmp(a->labels, b->labels, a->T) == 0;
}

Test(synth, deterministic_by_seed) {
  ns_synth_opts o = small(7);
  ns_synth *a = mk(&o), *b = mk(&o);
  o.seed = 8;
  ns_synth *c = mk(&o);
  size_t na, nb, nc;
  const ns_job *ja = ns_synth_jobs(a, &na), *jb = ns_synth_jobs(b, &nb), *jc = ns_synth_jobs(c, &nc);
  cr_assert_eq(na, nb);
  cr_assert_gt(na, 3);
  for (size_t j = 0; j < na; j++) {
    cr_assert_str_eq(ja[j].nodelist, jb[j].nodelist);
    cr_assert_eq(ja[j].start_ms, jb[j].start_ms);
    cr_assert_eq(ja[j].end_ms, jb[j].end_ms);
  }
  bool differ = na != nc;
  for (size_t j = 0; !differ && j < na; j++) differ = ja[j].start_ms != jc[j].start_ms;
  cr_assert(differ, "another seed gives another job stream");
  for (size_t i = 0; i < ns_synth_n_nodes(a); i++) {
    ns_mts *x = NULL, *y = NULL, *z = NULL;
    cr_assert_eq(ns_synth_node_mts(a, i, 0, 0, &x), NS_OK);
    cr_assert_eq(ns_synth_node_mts(b, i, 0, 0, &y), NS_OK);
    cr_assert_eq(ns_synth_node_mts(c, i, 0, 0, &z), NS_OK);
    cr_assert(same_mts(x, y), "node %zu differs between identical seeds", i);
    cr_assert(!same_mts(x, z), "node %zu identical under another seed", i);
    ns_mts_free(x), ns_mts_free(y), ns_mts_free(z);
  }
  ns_synth_free(a), ns_synth_free(b), ns_synth_free(c);
}

Test(synth, chunks_equal_the_whole) {
  ns_synth_opts o = small(3);
  ns_synth *s = mk(&o);
  ns_mts *all = NULL, *p1 = NULL, *p2 = NULL;
  int64_t mid = ns_synth_start(s) + 7 * 3600000LL;
  cr_assert_eq(ns_synth_node_mts(s, 2, 0, 0, &all), NS_OK);
  cr_assert_eq(ns_synth_node_mts(s, 2, 0, mid, &p1), NS_OK);
  cr_assert_eq(ns_synth_node_mts(s, 2, mid, 0, &p2), NS_OK);
  cr_assert_eq(p1->T + p2->T, all->T);
  cr_assert_eq(memcmp(all->x, p1->x, p1->T * p1->M * sizeof(double)), 0);
  cr_assert_eq(memcmp(all->x + p1->T * all->M, p2->x, p2->T * p2->M * sizeof(double)), 0);
  ns_mts_free(all), ns_mts_free(p1), ns_mts_free(p2);
  ns_synth_free(s);
}

Test(synth, catalogue_looks_like_node_telemetry) {
  ns_synth_opts o = small(1);
  o.metrics = 116;
  ns_synth *s = mk(&o);
  cr_assert_eq(ns_synth_n_metrics(s), 116);
  char *const *n = ns_synth_metric_names(s);
  const uint8_t *ctr = ns_synth_metric_counters(s);
  const char *want[] = {"procstat.user", "procstat.iowait", "meminfo.MemFree", "meminfo.Cached", "vmstat.pgfault",
                        "procnetdev.eth0_rx_bytes", "loadavg.load1min", "psi.io_some_avg10", "procstat.cpu0_user"};
  for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
    long at = -1;
    for (size_t j = 0; j < 116; j++)
      if (!strcmp(n[j], want[w])) at = (long)j;
    cr_assert_geq(at, 0, "%s missing", want[w]);
  }
  for (size_t j = 0; j < 116; j++) {
    for (size_t k = 0; k < j; k++) cr_assert_str_neq(n[j], n[k]);
    bool is_ctr = strstr(n[j], "procstat.user") || strstr(n[j], "vmstat.pgfault") || strstr(n[j], "_bytes");
    if (is_ctr) cr_assert(ctr[j], "%s should be a counter", n[j]);
    if (strstr(n[j], "meminfo.") || strstr(n[j], "loadavg.")) cr_assert(!ctr[j], "%s is a gauge", n[j]);
  }
  /* The importer's default counter rules agree with the flags. */
  for (size_t j = 0; j < 116; j++) {
    char schema[64];
    const char *dot = strchr(n[j], '.');
    snprintf(schema, sizeof schema, "%.*s", (int)(dot - n[j]), n[j]);
    bool c = false;
    cr_assert_eq(ns_import_is_counter(NULL, schema, dot + 1, &c), NS_OK);
    cr_assert_eq(c, ctr[j] != 0, "%s", n[j]);
  }
  ns_synth_free(s);
}

Test(synth, labels_inside_their_intervals_and_ratio) {
  ns_synth_opts o = small(5);
  o.nodes = 4;
  o.days = 2;
  o.anomaly_ratio = 0.05;
  ns_synth *s = mk(&o);
  size_t nl;
  const ns_label *l = ns_synth_labels(s, &nl);
  cr_assert_gt(nl, 0);
  int64_t tu = ns_synth_train_until(s);
  bool types[NS_ANOM_COUNT] = {0};
  for (size_t i = 0; i < nl; i++) {
    cr_assert_geq(l[i].start_ms, tu, "no contamination asked: anomalies only in the test period");
    cr_assert_lt(l[i].start_ms, l[i].end_ms);
    cr_assert_str_eq(l[i].source, "synth");
    cr_assert_eq(l[i].label, 1);
    for (int t = 0; t < NS_ANOM_COUNT; t++)
      if (!strcmp(l[i].note, ns_synth_anom_name((ns_synth_anom)t))) types[t] = true;
  }
  size_t anom = 0, test_rows = 0;
  for (size_t i = 0; i < ns_synth_n_nodes(s); i++) {
    ns_mts *m = NULL;
    cr_assert_eq(ns_synth_node_mts(s, i, 0, 0, &m), NS_OK);
    for (size_t t = 0; t < m->T; t++) {
      bool inside = false;
      for (size_t k = 0; k < nl; k++)
        if (!strcmp(l[k].node, m->node) && m->ts_ms[t] - 1000 <= l[k].end_ms && m->ts_ms[t] >= l[k].start_ms)
          inside = true;
      /* a labelled row is inside an interval of its node, and vice versa
       * (jitter < 1 s may push the last sample just past the end) */
      if (m->labels[t]) cr_assert(inside, "node %s row %zu labelled outside any interval", m->node, t);
      if (m->ts_ms[t] >= tu) test_rows++, anom += m->labels[t];
    }
    ns_mts_free(m);
  }
  double ratio = (double)anom / (double)test_rows;
  cr_assert(ratio > 0.03 && ratio < 0.08, "anomalous fraction %.4f, asked 0.05", ratio);
  size_t ntypes = 0;
  for (int t = 0; t < NS_ANOM_COUNT; t++) ntypes += types[t];
  cr_assert_geq(ntypes, 3, "anomaly types vary");
  /* Contamination puts anomalies in the training period too. */
  o.contamination = 0.05;
  ns_synth *c = mk(&o);
  const ns_label *lc = ns_synth_labels(c, &nl);
  size_t in_train = 0;
  for (size_t i = 0; i < nl; i++) in_train += lc[i].end_ms < tu;
  cr_assert_gt(in_train, 0);
  /* ... and leaves the test period's anomalies as they were, so that runs at
   * different contamination levels are scored against the same labels. */
  size_t nl0;
  const ns_label *l0 = ns_synth_labels(s, &nl0);
  size_t same = 0, test0 = 0;
  for (size_t i = 0; i < nl0; i++) {
    if (l0[i].end_ms < tu) continue;
    test0++;
    for (size_t k = 0; k < nl; k++)
      if (!strcmp(lc[k].node, l0[i].node) && lc[k].start_ms == l0[i].start_ms && lc[k].end_ms == l0[i].end_ms) {
        same++;
        break;
      }
  }
  cr_assert_gt(test0, 0);
  cr_assert_eq(same, test0, "%zu of %zu test-period anomalies unchanged by contamination", same, test0);
  ns_synth_free(c);
  ns_synth_free(s);
}

static long col(const ns_synth *s, const char *name) {
  for (size_t j = 0; j < ns_synth_n_metrics(s); j++)
    if (!strcmp(ns_synth_metric_names(s)[j], name)) return (long)j;
  return -1;
}

/* Mean counter rate of `metric` over rows of node i in [a, b]. */
static double mean_rate(const ns_mts *m, long j, int64_t a, int64_t b) {
  double sum = 0;
  size_t n = 0;
  for (size_t t = 1; t < m->T; t++) {
    if (m->ts_ms[t] < a || m->ts_ms[t] > b || m->ts_ms[t - 1] < a) continue;
    double d = m->x[t * m->M + j] - m->x[(t - 1) * m->M + j];
    if (d < 0) continue;
    sum += d / ((double)(m->ts_ms[t] - m->ts_ms[t - 1]) / 1000.0), n++;
  }
  return n ? sum / (double)n : NAN;
}

Test(synth, archetypes_and_anomalies_are_visible) {
  ns_synth_opts o = small(11);
  o.nodes = 16;
  o.days = 2;
  o.anomaly_ratio = 0.05;
  ns_synth *s = mk(&o);
  long iow = col(s, "procstat.iowait"), ib = col(s, "procnetdev.ib0_rx_bytes"), user = col(s, "procstat.user");
  cr_assert(iow >= 0 && ib >= 0 && user >= 0);
  size_t nj;
  const ns_job *jobs = ns_synth_jobs(s, &nj);
  double sum_iow[5] = {0}, sum_ib[5] = {0};
  int cnt[5] = {0};
  size_t multi = 0;
  for (size_t i = 0; i < ns_synth_n_nodes(s); i++) {
    ns_mts *m = NULL;
    cr_assert_eq(ns_synth_node_mts(s, i, 0, 0, &m), NS_OK);
    for (size_t j = 0; j < nj; j++) {
      if (!ns_prep_nodelist_has(jobs[j].nodelist, m->node)) continue;
      int a = !strcmp(jobs[j].tag, "compute") ? 0 : !strcmp(jobs[j].tag, "io") ? 2 : !strcmp(jobs[j].tag, "comm") ? 3 : -1;
      if (a < 0) continue;
      /* the middle half of the job: its main phase */
      int64_t q = (jobs[j].end_ms - jobs[j].start_ms) / 4;
      double x = mean_rate(m, iow, jobs[j].start_ms + q, jobs[j].end_ms - q);
      double y = mean_rate(m, ib, jobs[j].start_ms + q, jobs[j].end_ms - q);
      if (isnan(x) || isnan(y)) continue;
      sum_iow[a] += x, sum_ib[a] += y, cnt[a]++;
    }
    ns_mts_free(m);
  }
  for (size_t j = 0; j < nj; j++) multi += jobs[j].nnodes > 1;
  cr_assert_gt(multi, 0, "multi-node jobs exist");
  cr_assert(cnt[0] && cnt[2] && cnt[3], "compute %d io %d comm %d", cnt[0], cnt[2], cnt[3]);
  cr_assert_gt(sum_iow[2] / cnt[2], 3 * sum_iow[0] / cnt[0], "I/O jobs wait on I/O more than compute jobs: %g vs %g (%d, %d)", sum_iow[2] / cnt[2], sum_iow[0] / cnt[0], cnt[2], cnt[0]);
  cr_assert_gt(sum_ib[3] / cnt[3], 10 * sum_ib[0] / cnt[0], "communication jobs use the interconnect");
  /* cpuoccupy raises CPU user time against the same node just before. */
  size_t nl;
  const ns_label *l = ns_synth_labels(s, &nl);
  int checked = 0, raised = 0;
  for (size_t k = 0; k < nl; k++) {
    if (strcmp(l[k].note, "cpuoccupy") != 0) continue;
    size_t i = (size_t)atoi(l[k].node + 2) - 1;
    ns_mts *m = NULL;
    cr_assert_eq(ns_synth_node_mts(s, i, l[k].start_ms - 600000, l[k].end_ms + 1, &m), NS_OK);
    double in = mean_rate(m, user, l[k].start_ms + 30000, l[k].end_ms);
    double before = mean_rate(m, user, l[k].start_ms - 600000, l[k].start_ms - 15000);
    if (!isnan(in) && !isnan(before)) checked++, raised += in > before;
    ns_mts_free(m);
  }
  if (checked) cr_assert_geq(raised * 10, checked * 7, "cpuoccupy raised user time in %d of %d", raised, checked);
  ns_synth_free(s);
}

/* --apps: jobs come from N applications, each a fixed variant of an
 * archetype; jobs of one application look alike, applications of one
 * archetype do not. */
Test(synth, applications_are_distinct_and_deterministic) {
  ns_synth_opts o = small(5);
  o.nodes = 16;
  o.days = 3;
  o.anomaly_ratio = 0;
  o.apps = 12;
  ns_synth *s = mk(&o), *again = mk(&o);
  size_t nj, nj2;
  const ns_job *jobs = ns_synth_jobs(s, &nj), *jobs2 = ns_synth_jobs(again, &nj2);
  cr_assert_eq(nj, nj2);
  int per_app[12] = {0};
  char app_arch[12][16] = {{0}};
  for (size_t j = 0; j < nj; j++) {
    int a = -1;
    char arch[16] = "";
    cr_assert_eq(sscanf(jobs[j].tag, "app%d-%15s", &a, arch), 2, "tag '%s'", jobs[j].tag);
    cr_assert(a >= 0 && a < 12, "tag '%s'", jobs[j].tag);
    cr_assert(!strcmp(arch, "compute") || !strcmp(arch, "memory") || !strcmp(arch, "io") || !strcmp(arch, "comm") ||
              !strcmp(arch, "idle"), "tag '%s'", jobs[j].tag);
    cr_assert_str_eq(jobs[j].tag, jobs2[j].tag, "same seed, same applications");
    per_app[a]++;
    if (app_arch[a][0]) cr_assert_str_eq(app_arch[a], arch, "an application keeps its archetype");
    snprintf(app_arch[a], sizeof app_arch[a], "%s", arch);
  }
  int used = 0;
  for (int a = 0; a < 12; a++) used += per_app[a] > 0;
  cr_assert_geq(used, 8, "only %d of 12 applications ran", used);
  cr_assert_gt(per_app[0], per_app[11], "popularity falls along the list (%d vs %d)", per_app[0], per_app[11]);
  /* Main-phase CPU user time of single-node jobs: within each archetype,
   * the spread of its applications' means must dwarf the spread of jobs
   * within an application (nested one-way ANOVA, F well above 1). */
  long user = col(s, "procstat.user");
  cr_assert_geq(user, 0);
  double sum[12] = {0}, sq[12] = {0};
  int cnt[12] = {0};
  for (size_t i = 0; i < ns_synth_n_nodes(s); i++) {
    ns_mts *m = NULL, *m2 = NULL;
    cr_assert_eq(ns_synth_node_mts(s, i, 0, 0, &m), NS_OK);
    cr_assert_eq(ns_synth_node_mts(again, i, 0, 0, &m2), NS_OK);
    cr_assert(same_mts(m, m2), "node %zu differs between identical seeds", i);
    for (size_t j = 0; j < nj; j++) {
      if (jobs[j].nnodes != 1 || !ns_prep_nodelist_has(jobs[j].nodelist, m->node)) continue;
      int a = atoi(jobs[j].tag + 3);
      int64_t q = (jobs[j].end_ms - jobs[j].start_ms) / 4;
      double x = mean_rate(m, user, jobs[j].start_ms + q, jobs[j].end_ms - q);
      if (isnan(x)) continue;
      sum[a] += x, sq[a] += x * x, cnt[a]++;
    }
    ns_mts_free(m), ns_mts_free(m2);
  }
  double within = 0, between = 0;
  int df_b = 0, df_w = 0;
  for (int k = 0; k < NS_SYNTH_NARCH; k++) { /* applications nested in archetypes */
    const char *name = ns_synth_arch_name((ns_synth_arch)k);
    double grand = 0;
    int n = 0, groups = 0;
    for (int a = 0; a < 12; a++)
      if (cnt[a] >= 2 && !strcmp(app_arch[a], name)) grand += sum[a], n += cnt[a], groups++;
    if (groups < 2) continue;
    grand /= n;
    for (int a = 0; a < 12; a++) {
      if (cnt[a] < 2 || strcmp(app_arch[a], name)) continue;
      double mu = sum[a] / cnt[a];
      within += sq[a] - cnt[a] * mu * mu;
      between += cnt[a] * (mu - grand) * (mu - grand);
      df_w += cnt[a] - 1;
    }
    df_b += groups - 1;
  }
  cr_assert_geq(df_b, 2, "too few archetypes with several applications");
  double F = (between / df_b) / (within / df_w);
  cr_assert_gt(F, 20, "applications of one archetype are not distinct: F = %g (df %d, %d)", F, df_b, df_w);
  ns_synth_free(s), ns_synth_free(again);
}

Test(synth, bad_options_rejected) {
  ns_synth_opts o;
  ns_synth *s = NULL;
  o = small(1), o.nodes = 0;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "--nodes"));
  o = small(1), o.days = 0;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  o = small(1), o.metrics = 8;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "--metrics"));
  o = small(1), o.anomaly_ratio = 0.9;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  o = small(1), o.train_frac = 1;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  o = small(1), o.apps = -1;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), "--apps"));
  o = small(1), o.apps = 1001;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  o = small(1), o.interval_ms = 1000, o.jitter_ms = 600;
  cr_assert_eq(ns_synth_create(&o, &s), NS_ERR_RANGE);
  cr_assert_null(s);
  cr_assert_eq(ns_synth_create(NULL, &s), NS_ERR_INVAL);
  o = small(1);
  s = mk(&o);
  ns_synth_gen *g = NULL;
  cr_assert_eq(ns_synth_gen_create(s, 99, &g), NS_ERR_RANGE);
  cr_assert_eq(ns_synth_write_ldms(s, "/proc/nsentry-no/such", NULL), NS_ERR_IO);
  ns_synth_free(s);
  ns_synth_free(NULL);
}

static long maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

Test(synth, streaming_memory_is_bounded, .timeout = 240) {
  ns_synth_opts o = small(2);
  o.nodes = 48;
  o.days = 1;
  ns_synth *s = mk(&o);
  char *d = tmpdir();
  long before = maxrss_kb();
  ns_synth_report rep = {0};
  cr_assert_eq(ns_synth_write_ldms(s, d, &rep), NS_OK, "%s", ns_err_detail());
  long grew = maxrss_kb() - before;
  double held_mb = (double)rep.points * 8 / 1048576.0;
  cr_assert_gt(held_mb, 150);
  cr_assert_lt(grew, 48 * 1024, "RSS grew %ld kB writing %.0f MB of values", grew, held_mb);
  rmrf(d);
  free(d);
  ns_synth_free(s);
}

Test(synth, ldms_files_read_back_by_the_importer) {
  ns_synth_opts o = small(4);
  o.nodes = 3;
  o.days = 0.25;
  ns_synth *s = mk(&o);
  char *d = tmpdir();
  ns_synth_report rep = {0};
  cr_assert_eq(ns_synth_write_ldms(s, d, &rep), NS_OK);
  char ldms[256], sacct[256];
  snprintf(ldms, sizeof ldms, "%s/ldms", d);
  snprintf(sacct, sizeof sacct, "%s/jobs.sacct", d);
  char *paths[] = {ldms};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_opts io = NS_IMPORT_OPTS_DEFAULT;
  ns_import_report ir = {0};
  cr_assert_eq(ns_import_ldms(paths, 1, &io, &v, &n, &ir), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 3);
  for (size_t i = 0; i < n; i++) {
    ns_mts *ref = NULL;
    size_t node = (size_t)atoi(v[i]->node + 2) - 1;
    cr_assert_eq(ns_synth_node_mts(s, node, 0, 0, &ref), NS_OK);
    cr_assert_eq(v[i]->M, ref->M);
    cr_assert_eq(v[i]->T, ref->T);
    for (size_t j = 0; j < ref->M; j++) {
      long k = -1;
      for (size_t q = 0; q < v[i]->M; q++)
        if (!strcmp(v[i]->metrics[q], ref->metrics[j])) k = (long)q;
      cr_assert_geq(k, 0, "%s not imported", ref->metrics[j]);
      cr_assert_eq(v[i]->is_counter[k], ref->is_counter[j], "%s", ref->metrics[j]);
      for (size_t t = 0; t < ref->T; t += 97)
        cr_assert_float_eq(v[i]->x[t * v[i]->M + (size_t)k], ref->x[t * ref->M + j],
                           1e-5 * fabs(ref->x[t * ref->M + j]) + 1e-9, "%s row %zu", ref->metrics[j], t);
    }
    ns_mts_free(ref);
  }
  ns_import_mts_free(v, n);
  ns_job *jobs = NULL;
  size_t nj = 0, nj_ref;
  ns_synth_jobs(s, &nj_ref);
  cr_assert_eq(ns_import_sacct_file(sacct, "t", &io, &jobs, &nj, &ir), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(nj, nj_ref);
  ns_jobs_free(jobs, nj);
  rmrf(d);
  free(d);
  ns_synth_free(s);
}

static ns_store *tmp_store(char **dir) {
  *dir = tmpdir();
  char uri[300];
  snprintf(uri, sizeof uri, "sqlite:%s/t.db", *dir);
  ns_store *st = NULL;
  cr_assert_eq(ns_store_open(uri, &st), NS_OK, "%s", ns_err_detail());
  return st;
}

Test(synth, nodesentry_layout_read_back_by_the_importer) {
  ns_synth_opts o = small(6);
  o.nodes = 4;
  ns_synth *s = mk(&o);
  char *d = tmpdir();
  ns_prep_opts po;
  ns_prep_opts_default(&po);
  ns_synth_report rep = {0};
  cr_assert_eq(ns_synth_write_nodesentry(s, d, &po, &rep), NS_OK, "%s", ns_err_detail());
  cr_assert_gt(rep.segments, 0);
  char *sd = NULL;
  ns_store *st = tmp_store(&sd);
  ns_import_opts io = NS_IMPORT_OPTS_DEFAULT;
  ns_import_report ir = {0};
  cr_assert_eq(ns_import_nodesentry(d, st, "t", &io, &ir), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ir.segments, rep.segments);
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  int64_t *ids = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(st, &f, &ids, &n), NS_OK);
  cr_assert_eq((int64_t)n, rep.segments);
  ns_segment *g = NULL;
  cr_assert_eq(ns_store_get_segment(st, ids[0], &g), NS_OK);
  for (size_t i = 0; i < g->T * g->M; i++) cr_assert(fabsf(g->x[i]) <= 5.0f);
  ns_segment_free(g);
  free(ids);
  ns_store_close(st);
  rmrf(sd), rmrf(d);
  free(sd), free(d);
  ns_synth_free(s);
}

Test(prep_store, fit_apply_segment_over_sqlite, .timeout = 240) {
  ns_synth_opts o = small(9);
  o.nodes = 5;
  o.outages = 3; /* make gaps and counter resets likely */
  ns_synth *s = mk(&o);
  char *sd = NULL;
  ns_store *st = tmp_store(&sd);
  ns_synth_report rep = {0};
  cr_assert_eq(ns_synth_write_store(s, st, &rep), NS_OK, "%s", ns_err_detail());
  ns_prep_opts po;
  ns_prep_opts_default(&po);
  ns_prep_summary sum;
  int64_t tu = ns_synth_train_until(s);
  cr_assert_eq(ns_prep_run_store(st, "t", &po, false, tu, &sum, NULL, NULL), NS_OK, "%s", ns_err_detail());
  cr_assert(sum.fitted, "nothing stored yet: fitted");
  cr_assert_eq(sum.nodes, 5);
  cr_assert_eq(sum.metrics_in, 82);
  cr_assert_lt(sum.metrics_out, sum.metrics_reduced);
  cr_assert_gt(sum.job_segments, 0);
  cr_assert_gt(sum.idle_segments, 0);
  cr_assert_gt(sum.train_segments, 0);
  cr_assert_gt(sum.test_segments, 0);
  cr_assert_gt(sum.stats.counter_resets, 0);
  /* Stored segments: finite, clipped, split at train_until, labels from
   * the synth labels. */
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = "t";
  int64_t *ids = NULL;
  size_t n = 0, labelled = 0;
  cr_assert_eq(ns_store_list_segments(st, &f, &ids, &n), NS_OK);
  cr_assert_eq(n, sum.job_segments + sum.idle_segments);
  for (size_t i = 0; i < n; i++) {
    ns_segment *g = NULL;
    cr_assert_eq(ns_store_get_segment(st, ids[i], &g), NS_OK);
    cr_assert_eq(ns_segment_check(g), NS_OK, "%s", ns_err_detail());
    cr_assert(g->end_ms < tu || g->start_ms >= tu, "segment straddles the split");
    cr_assert_geq((int64_t)g->T * g->interval_ms, po.min_segment_ms);
    for (size_t k = 0; k < g->T * g->M; k++) cr_assert(fabsf(g->x[k]) <= (float)po.clip);
    if (g->labels)
      for (size_t t = 0; t < g->T; t++) labelled += g->labels[t];
    ns_segment_free(g);
  }
  free(ids);
  cr_assert_gt(labelled, 0);
  /* Second run: parameters loaded, same segments (idempotent). */
  ns_prep_summary again;
  cr_assert_eq(ns_prep_run_store(st, "t", &po, false, tu, &again, NULL, NULL), NS_OK);
  cr_assert(!again.fitted);
  cr_assert_eq(again.job_segments + again.idle_segments, n);
  cr_assert_eq(ns_store_list_segments(st, &f, &ids, &n), NS_OK);
  cr_assert_eq(n, sum.job_segments + sum.idle_segments);
  free(ids);
  /* A segment shipped by a node and one imported for a node without raw
   * telemetry: a refit must keep both. */
  ns_segment *keep = NULL;
  cr_assert_eq(ns_store_list_segments(st, &f, &ids, &n), NS_OK);
  cr_assert_eq(ns_store_get_segment(st, ids[0], &keep), NS_OK);
  free(ids);
  int64_t shipped = 0, imported = 0;
  cr_assert_eq(ns_store_put_segment(st, keep, NS_SPLIT_INGEST, &shipped), NS_OK, "%s", ns_err_detail());
  free(keep->node);
  keep->node = strdup("imported-node");
  cr_assert_eq(ns_store_put_segment(st, keep, "train", &imported), NS_OK, "%s", ns_err_detail());
  ns_segment_free(keep);
  /* Refit replaces them. */
  cr_assert_eq(ns_prep_run_store(st, "t", &po, true, tu, &again, NULL, NULL), NS_OK);
  cr_assert(again.fitted);
  cr_assert_eq(again.replaced_segments, n);
  ns_segment *still = NULL;
  cr_assert_eq(ns_store_get_segment(st, shipped, &still), NS_OK, "shipped segment lost: %s", ns_err_detail());
  ns_segment_free(still);
  cr_assert_eq(ns_store_get_segment(st, imported, &still), NS_OK, "imported segment lost: %s", ns_err_detail());
  ns_segment_free(still);
  cr_assert_eq(again.params_version, 2);
  /* Unknown cluster: no data. */
  cr_assert_neq(ns_prep_run_store(st, "nope", &po, true, tu, &again, NULL, NULL), NS_OK);
  ns_store_close(st);
  rmrf(sd);
  free(sd);
  ns_synth_free(s);
}

/* Training on a site's own jobs: shipped segments become raw telemetry that
 * prep fits and cuts by the job table. */
Test(prep_store, shipped_segments_to_raw_and_segments, .timeout = 120) {
  char *sd = NULL;
  ns_store *st = tmp_store(&sd);
  size_t ns = 0, nr = 0;
  cr_assert_eq(ns_prep_ingest_to_raw(st, "site", &ns, &nr), NS_ERR_EMPTY);
  static char *names[] = {"cpu_user", "mem_used", "net_rx"};
  for (int j = 0; j < 3; j++) {
    ns_segment *g = NULL;
    cr_assert_eq(ns_segment_create(120, 3, &g), NS_OK);
    cr_assert_eq(ns_segment_set_metrics(g, names), NS_OK);
    char job[8];
    snprintf(job, sizeof job, "%d", 10 + j);
    int64_t t0 = 1767225600000LL + j * 3 * 3600000LL;
    cr_assert_eq(ns_segment_set_meta(g, "site", "cn1", job, t0, 15000), NS_OK);
    for (size_t i = 0; i < 360; i++) g->x[i] = (float)(j + 0.01 * (double)(i % 17) + (i % 3));
    g->x[7] = NAN; /* a missing sample, as shipped */
    int64_t id;
    cr_assert_eq(ns_store_put_segment(st, g, NS_SPLIT_INGEST, &id), NS_OK, "%s", ns_err_detail());
    ns_job jb = {.cluster = "site", .job_id = job, .start_ms = t0, .end_ms = g->end_ms, .nnodes = 1, .nodelist = "cn1"};
    cr_assert_eq(ns_store_put_job(st, &jb), NS_OK);
    ns_segment_free(g);
  }
  cr_assert_eq(ns_prep_ingest_to_raw(st, "site", &ns, &nr), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(ns, 3);
  cr_assert_eq(nr, 360);
  /* Idempotent: the same rows again replace their chunks. */
  cr_assert_eq(ns_prep_ingest_to_raw(st, "site", &ns, &nr), NS_OK);
  ns_mts *raw = NULL;
  cr_assert_eq(ns_store_get_raw(st, "site", "cn1", 0, 0, &raw), NS_OK);
  cr_assert_eq(raw->T, 360);
  ns_mts_free(raw);
  ns_prep_opts po;
  ns_prep_opts_default(&po);
  ns_prep_summary sum;
  cr_assert_eq(ns_prep_run_store(st, "site", &po, true, 0, &sum, NULL, NULL), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(sum.job_segments, 3);
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = "site";
  f.split = "train";
  f.kind = NS_SEG_JOB;
  int64_t *ids = NULL;
  size_t n = 0;
  cr_assert_eq(ns_store_list_segments(st, &f, &ids, &n), NS_OK);
  cr_assert_eq(n, 3, "three job segments cut from the shipped telemetry, got %zu", n);
  free(ids);
  f.split = NS_SPLIT_INGEST;
  cr_assert_eq(ns_store_list_segments(st, &f, &ids, &n), NS_OK);
  cr_assert_eq(n, 3, "shipped segments stay");
  free(ids);
  ns_store_close(st);
  rmrf(sd);
  free(sd);
}

/* D2-like per-core metrics collapse into the same node-level groups as D1's. */
Test(synth, per_core_metrics_aggregate) {
  size_t red[2];
  int counts[2] = {82, 116};
  for (int q = 0; q < 2; q++) {
    ns_synth_opts o = small(12);
    o.nodes = 2;
    o.days = 0.25;
    o.metrics = counts[q];
    ns_synth *s = mk(&o);
    ns_prep_opts po;
    ns_prep_opts_default(&po);
    ns_prep_fit *f = NULL;
    cr_assert_eq(ns_prep_fit_begin(&po, &f), NS_OK);
    for (size_t i = 0; i < 2; i++) {
      ns_mts *m = NULL;
      cr_assert_eq(ns_synth_node_mts(s, i, 0, 0, &m), NS_OK);
      cr_assert_eq(ns_prep_fit_add(f, m, NULL), NS_OK, "%s", ns_err_detail());
      ns_mts_free(m);
    }
    ns_prep_params *p = NULL;
    cr_assert_eq(ns_prep_fit_end(f, &p), NS_OK);
    cr_assert_eq(ns_prep_n_inputs(p), (size_t)counts[q]);
    red[q] = ns_prep_n_reduced(p);
    for (size_t k = 0; k < ns_prep_n_outputs(p); k++)
      cr_assert_null(strstr(ns_prep_output_name(p, k), "cpu1_"), "per-core metric survived aggregation");
    ns_prep_params_free(p);
    ns_synth_free(s);
  }
  cr_assert_eq(red[0], red[1]);
}
