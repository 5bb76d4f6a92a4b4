/* Synthetic cluster generator: see ns_synth.h and docs/preprocessing.md. */
#include "ns_synth.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "ns_log.h"

#define NCORES 32
#define HZ 100.0
#define MEM_TOTAL_KB 268435456.0 /* 256 GiB */
#define SWAP_KB 8388608.0

/* ------------------------------------------------------------------ random */

static uint64_t sm64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }
static double urange(uint64_t *s, double a, double b) { return a + (b - a) * unif(s); }
/* Approximately standard normal from one draw (sum of four uniforms). */
static double gnoise(uint64_t *s) {
  uint64_t r = sm64(s);
  double a = (double)(r & 0xffff) + (double)((r >> 16) & 0xffff) + (double)((r >> 32) & 0xffff) + (double)(r >> 48);
  return (a / 65536.0 - 2.0) * 1.7320508075688772;
}
static uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t s = a ^ (b * 0xd1342543de82ef95ull);
  return sm64(&s);
}

/* ----------------------------------------------------------------- catalogue */

enum {
  CH_USER, CH_NICE, CH_SYS, CH_IDLE, CH_IOWAIT, CH_IRQ, CH_SOFTIRQ, CH_STEAL, CH_CTXT, CH_INTR, CH_FORKS,
  CH_RUNNING, CH_BLOCKED, CH_MEMTOTAL, CH_MEMFREE, CH_MEMAVAIL, CH_BUFFERS, CH_CACHED, CH_ACTIVE, CH_INACTIVE,
  CH_DIRTY, CH_ANON, CH_SLAB, CH_COMMITTED, CH_MAPPED, CH_SHMEM, CH_SWAPFREE, CH_PGFAULT, CH_MAJFAULT, CH_PGPGIN,
  CH_PGPGOUT, CH_PSWPIN, CH_NR_DIRTY, CH_NR_FREE, CH_NUMA_HIT, CH_NUMA_MISS, CH_ETH_RXB, CH_ETH_TXB, CH_ETH_RXP,
  CH_ETH_TXP, CH_IB_RXB, CH_IB_TXB, CH_DISK_RD, CH_DISK_RDSEC, CH_DISK_WR, CH_DISK_WRSEC, CH_DISK_TIME, CH_LOAD1,
  CH_LOAD5, CH_LOAD15, CH_PSI_CPU, CH_PSI_MEMS, CH_PSI_MEMF, CH_PSI_IOS, CH_PSI_IOF, CH_IPC, CH_LLC, CH_MEMBW,
  CH_CORE_USER, CH_CORE_SYS
};

typedef struct {
  const char *schema, *name;
  uint8_t counter;
  uint8_t ch;
} metric_def;

/* In priority order: fewer metrics keep a prefix. */
static const metric_def base_metrics[] = {
    {"procstat", "user", 1, CH_USER},          {"procstat", "sys", 1, CH_SYS},
    {"procstat", "idle", 1, CH_IDLE},          {"procstat", "iowait", 1, CH_IOWAIT},
    {"meminfo", "MemFree", 0, CH_MEMFREE},     {"meminfo", "Cached", 0, CH_CACHED},
    {"meminfo", "AnonPages", 0, CH_ANON},      {"vmstat", "pgfault", 1, CH_PGFAULT},
    {"procdiskstats", "sda_sectors_read", 1, CH_DISK_RDSEC},
    {"procdiskstats", "sda_sectors_written", 1, CH_DISK_WRSEC},
    {"procnetdev", "eth0_rx_bytes", 1, CH_ETH_RXB}, {"procnetdev", "eth0_tx_bytes", 1, CH_ETH_TXB},
    {"procnetdev", "ib0_rx_bytes", 1, CH_IB_RXB},   {"procnetdev", "ib0_tx_bytes", 1, CH_IB_TXB},
    {"loadavg", "load1min", 0, CH_LOAD1},      {"procstat", "context_switches", 1, CH_CTXT},
    {"psi", "cpu_some_avg10", 0, CH_PSI_CPU},  {"psi", "mem_some_avg10", 0, CH_PSI_MEMS},
    {"psi", "io_some_avg10", 0, CH_PSI_IOS},   {"perfevent", "ipc", 0, CH_IPC},
    {"perfevent", "llc_miss_rate", 0, CH_LLC}, {"perfevent", "mem_bw_gbps", 0, CH_MEMBW},
    {"procstat", "nice", 1, CH_NICE},          {"procstat", "irq", 1, CH_IRQ},
    {"procstat", "softirq", 1, CH_SOFTIRQ},    {"procstat", "steal", 1, CH_STEAL},
    {"procstat", "intr_count", 1, CH_INTR},    {"procstat", "processes", 1, CH_FORKS},
    {"procstat", "procs_running", 0, CH_RUNNING}, {"procstat", "procs_blocked", 0, CH_BLOCKED},
    {"meminfo", "MemTotal", 0, CH_MEMTOTAL},   {"meminfo", "MemAvailable", 0, CH_MEMAVAIL},
    {"meminfo", "Buffers", 0, CH_BUFFERS},     {"meminfo", "Active", 0, CH_ACTIVE},
    {"meminfo", "Inactive", 0, CH_INACTIVE},   {"meminfo", "Dirty", 0, CH_DIRTY},
    {"meminfo", "Slab", 0, CH_SLAB},           {"meminfo", "Committed_AS", 0, CH_COMMITTED},
    {"meminfo", "Mapped", 0, CH_MAPPED},       {"meminfo", "Shmem", 0, CH_SHMEM},
    {"meminfo", "SwapFree", 0, CH_SWAPFREE},   {"vmstat", "pgmajfault", 1, CH_MAJFAULT},
    {"vmstat", "pgpgin", 1, CH_PGPGIN},        {"vmstat", "pgpgout", 1, CH_PGPGOUT},
    {"vmstat", "pswpin", 1, CH_PSWPIN},        {"vmstat", "nr_dirty", 0, CH_NR_DIRTY},
    {"vmstat", "nr_free_pages", 0, CH_NR_FREE}, {"vmstat", "numa_hit", 1, CH_NUMA_HIT},
    {"vmstat", "numa_miss", 1, CH_NUMA_MISS},  {"procnetdev", "eth0_rx_packets", 1, CH_ETH_RXP},
    {"procnetdev", "eth0_tx_packets", 1, CH_ETH_TXP}, {"procdiskstats", "sda_reads_completed", 1, CH_DISK_RD},
    {"procdiskstats", "sda_writes_completed", 1, CH_DISK_WR}, {"procdiskstats", "sda_time_io", 1, CH_DISK_TIME},
    {"loadavg", "load5min", 0, CH_LOAD5},      {"loadavg", "load15min", 0, CH_LOAD15},
    {"psi", "mem_full_avg10", 0, CH_PSI_MEMF}, {"psi", "io_full_avg10", 0, CH_PSI_IOF},
};
#define NBASE (sizeof base_metrics / sizeof base_metrics[0])

static const char *const schemas[] = {"procstat", "meminfo", "vmstat", "procnetdev", "procdiskstats",
                                      "loadavg", "psi", "perfevent"};
#define NSCHEMA (sizeof schemas / sizeof schemas[0])

static const char *const arch_names[] = {"compute", "memory", "io", "comm", "idle"};
static const char *const anom_names[] = {"cpuoccupy", "memleak", "membw", "cachecopy", "iobandwidth", "netoccupy"};
const char *ns_synth_arch_name(ns_synth_arch a) { return (unsigned)a < NS_SYNTH_NARCH ? arch_names[a] : "?"; }
const char *ns_synth_anom_name(ns_synth_anom a) { return (unsigned)a < NS_ANOM_COUNT ? anom_names[a] : "?"; }

/* ------------------------------------------------------------------ model */

enum { PH_MAIN = 0, PH_READ, PH_WRITE };
#define MAXPH 6

/* Per-resource gains of an application's main phases. */
enum { G_CPU = 0, G_MEMBW, G_IO, G_NET, G_SCHED, NGAIN };

typedef struct {
  int arch;
  uint64_t seed;
  int64_t start, end;
  int nph;
  int64_t ph_end[MAXPH];
  uint8_t ph_kind[MAXPH];
  double ph_int[MAXPH];
  double level, period_s, ckpt_every_s, ckpt_len_s, mem;
  /* With --apps: the application (-1 without), its blended second archetype
   * (-1 none) and gains; the plain archetypes never touch these. */
  int app, arch2;
  double blend, gain[NGAIN];
} sjob;

/* An application: a fixed variant of an archetype that its jobs share. */
typedef struct {
  int arch, arch2, mains;
  double blend, gain[NGAIN], level, period_s, ckpt_every_s, read, write, mem, weight;
} sapp;

typedef struct {
  int type;
  int64_t start, end;
  double intensity;
} sanom;

typedef struct {
  int64_t start, end;
} soutage;

struct ns_synth {
  ns_synth_opts o;
  char *cluster;
  int64_t t0, t1, train_until;
  size_t N, M;
  char **node_names;
  char **metric_names;
  uint8_t *counters;
  uint8_t *ch;
  uint8_t *core;   /* core index for per-core metrics */
  uint8_t *schema; /* schema index */
  size_t nj;
  sjob *jobs;
  ns_job *job_rec;
  size_t *nj_start, *nj_idx; /* CSR: node -> job indices by start */
  size_t *na_start;          /* CSR: node -> anomalies (sorted) */
  sanom *anoms;
  size_t nl;
  ns_label *labels;
  size_t *no_start;
  soutage *outs;
};

void ns_synth_opts_default(ns_synth_opts *o) {
  memset(o, 0, sizeof *o);
  o->cluster = "synth";
  o->nodes = 8;
  o->days = 1;
  o->interval_ms = 15000;
  o->metrics = 82;
  o->seed = 1;
  o->anomaly_ratio = 0.02;
  o->contamination = 0;
  o->train_frac = 0.7;
  o->start_ms = 1767571200000LL; /* 2026-01-05 00:00:00 UTC */
  o->missing = 0.001;
  o->outages = 0.3;
  o->jitter_ms = 250;
}

void ns_synth_free(ns_synth *s) {
  if (!s) return;
  free(s->cluster);
  if (s->node_names)
    for (size_t i = 0; i < s->N; i++) free(s->node_names[i]);
  free(s->node_names);
  if (s->metric_names)
    for (size_t j = 0; j < s->M; j++) free(s->metric_names[j]);
  free(s->metric_names);
  free(s->counters), free(s->ch), free(s->core), free(s->schema);
  free(s->jobs);
  if (s->job_rec)
    for (size_t j = 0; j < s->nj; j++) {
      free(s->job_rec[j].cluster), free(s->job_rec[j].job_id), free(s->job_rec[j].nodelist);
      free(s->job_rec[j].state), free(s->job_rec[j].tag), free(s->job_rec[j].user), free(s->job_rec[j].partition);
    }
  free(s->job_rec);
  free(s->nj_start), free(s->nj_idx), free(s->na_start), free(s->anoms);
  if (s->labels)
    for (size_t i = 0; i < s->nl; i++) free(s->labels[i].cluster), free(s->labels[i].node), free(s->labels[i].job_id),
                                         free(s->labels[i].source), free(s->labels[i].note), free(s->labels[i].author);
  free(s->labels);
  free(s->no_start), free(s->outs);
  free(s);
}

const ns_synth_opts *ns_synth_get_opts(const ns_synth *s) { return &s->o; }
size_t ns_synth_n_nodes(const ns_synth *s) { return s->N; }
const char *ns_synth_node_name(const ns_synth *s, size_t i) { return i < s->N ? s->node_names[i] : NULL; }
size_t ns_synth_n_metrics(const ns_synth *s) { return s->M; }
char *const *ns_synth_metric_names(const ns_synth *s) { return s->metric_names; }
const uint8_t *ns_synth_metric_counters(const ns_synth *s) { return s->counters; }
const ns_job *ns_synth_jobs(const ns_synth *s, size_t *n) {
  *n = s->nj;
  return s->job_rec;
}
const ns_label *ns_synth_labels(const ns_synth *s, size_t *n) {
  *n = s->nl;
  return s->labels;
}
int64_t ns_synth_start(const ns_synth *s) { return s->t0; }
int64_t ns_synth_end(const ns_synth *s) { return s->t1; }
int64_t ns_synth_train_until(const ns_synth *s) { return s->train_until; }

static ns_status build_metrics(ns_synth *s) {
  size_t M = s->M;
  s->metric_names = calloc(M, sizeof *s->metric_names);
  s->counters = calloc(M, 1);
  s->ch = calloc(M, 1);
  s->core = calloc(M, 1);
  s->schema = calloc(M, 1);
  if (!s->metric_names || !s->counters || !s->ch || !s->core || !s->schema) return NS_ERR_NOMEM;
  for (size_t j = 0; j < M; j++) {
    char buf[96];
    const char *schema;
    if (j < NBASE) {
      const metric_def *d = &base_metrics[j];
      schema = d->schema;
      snprintf(buf, sizeof buf, "%s.%s", d->schema, d->name);
      s->counters[j] = d->counter;
      s->ch[j] = d->ch;
    } else {
      size_t k = j - NBASE, core = (k / 2) % 256;
      schema = "procstat";
      snprintf(buf, sizeof buf, "procstat.cpu%zu_%s", core, k % 2 ? "sys" : "user");
      s->counters[j] = 1;
      s->ch[j] = k % 2 ? CH_CORE_SYS : CH_CORE_USER;
      s->core[j] = (uint8_t)(core % NCORES);
      if (k / 2 >= 256) { /* beyond 256 cores: distinct names still */
        snprintf(buf, sizeof buf, "procstat.cpu%zu_%s", k / 2, k % 2 ? "sys" : "user");
      }
    }
    for (size_t q = 0; q < NSCHEMA; q++)
      if (strcmp(schemas[q], schema) == 0) s->schema[j] = (uint8_t)q;
    if (!(s->metric_names[j] = strdup(buf))) return NS_ERR_NOMEM;
  }
  return NS_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

typedef struct {
  int64_t free_at;
  uint64_t tie;
  size_t node;
} node_slot;
static int cmp_slot(const void *a, const void *b) {
  const node_slot *x = a, *y = b;
  if (x->free_at != y->free_at) return x->free_at < y->free_at ? -1 : 1;
  return (x->tie > y->tie) - (x->tie < y->tie);
}

static void make_phases(sjob *j, uint64_t *r) {
  int64_t dur = j->end - j->start;
  int n = 0;
  double read = urange(r, 0.02, 0.08), write = urange(r, 0.02, 0.05);
  int64_t t = j->start + (int64_t)(read * (double)dur);
  j->ph_kind[n] = PH_READ, j->ph_int[n] = urange(r, 0.6, 1.0), j->ph_end[n++] = t;
  int mains = 1 + (int)(unif(r) * 3);
  int64_t main_end = j->end - (int64_t)(write * (double)dur);
  for (int k = 0; k < mains; k++) {
    int64_t e = k == mains - 1 ? main_end : t + (int64_t)((double)(main_end - t) * urange(r, 0.3, 0.7));
    j->ph_kind[n] = PH_MAIN, j->ph_int[n] = urange(r, 0.7, 1.15), j->ph_end[n++] = e;
    t = e;
  }
  j->ph_kind[n] = PH_WRITE, j->ph_int[n] = urange(r, 0.6, 1.0), j->ph_end[n++] = j->end;
  j->nph = n;
}

/* The same read / main / write structure, but the application fixes the
 * number of main phases and the I/O fractions (jittered per job). */
static void make_phases_app(sjob *j, const sapp *a, uint64_t *r) {
  int64_t dur = j->end - j->start;
  int n = 0;
  double read = a->read * urange(r, 0.8, 1.2), write = a->write * urange(r, 0.8, 1.2);
  int64_t t = j->start + (int64_t)(read * (double)dur);
  j->ph_kind[n] = PH_READ, j->ph_int[n] = urange(r, 0.75, 0.95), j->ph_end[n++] = t;
  int64_t main_end = j->end - (int64_t)(write * (double)dur);
  for (int k = 0; k < a->mains; k++) {
    int64_t e = k == a->mains - 1 ? main_end : t + (int64_t)((double)(main_end - t) / (a->mains - k) * urange(r, 0.85, 1.15));
    /* alternating intensities give each application its own phase rhythm */
    j->ph_kind[n] = PH_MAIN, j->ph_int[n] = (k % 2 ? 0.8 : 1.05) * urange(r, 0.95, 1.05), j->ph_end[n++] = e;
    t = e;
  }
  j->ph_kind[n] = PH_WRITE, j->ph_int[n] = urange(r, 0.75, 0.95), j->ph_end[n++] = j->end;
  j->nph = n;
}

static ns_status build_apps(const ns_synth_opts *o, sapp **out) {
  *out = NULL;
  sapp *v = calloc((size_t)o->apps, sizeof *v);
  if (!v) return NS_ERR_NOMEM;
  uint64_t r = mix(o->seed, 0xa995);
  for (int a = 0; a < o->apps; a++) {
    sapp *p = &v[a];
    /* Busy archetypes in turn, so that even a few applications cover them;
     * about one in ten is an interactive (idle) session. */
    p->arch = unif(&r) < 0.1 ? NS_SYNTH_IDLEJOB : (int)(((unsigned)a + (unsigned)(unif(&r) * 2)) % 4);
    p->arch2 = -1;
    if (p->arch != NS_SYNTH_IDLEJOB && unif(&r) < 0.6) {
      p->arch2 = (p->arch + 1 + (int)(unif(&r) * 3)) % 4;
      p->blend = urange(&r, 0.15, 0.45);
    }
    for (int k = 0; k < NGAIN; k++) p->gain[k] = exp(urange(&r, -0.5, 0.5));
    p->level = urange(&r, 0.75, 1.0);
    p->period_s = exp(urange(&r, log(60), log(900)));
    p->ckpt_every_s = urange(&r, 1200, 3600);
    p->read = urange(&r, 0.02, 0.08), p->write = urange(&r, 0.02, 0.05);
    p->mains = 1 + (int)(unif(&r) * 4);
    p->mem = urange(&r, 0.1, 0.4);
    p->weight = 1.0 / pow((double)a + 1.0, 0.8); /* Zipf-like: a few popular codes, a long tail */
  }
  *out = v;
  return NS_OK;
}

static int pick_app(const sapp *v, int n, double wsum, uint64_t *r) {
  double u = unif(r) * wsum;
  for (int a = 0; a < n; a++)
    if ((u -= v[a].weight) < 0) return a;
  return n - 1;
}

static int pick_nnodes(uint64_t *r, size_t N) {
  double u = unif(r);
  int k = u < 0.55 ? 1 : u < 0.75 ? 2 : u < 0.85 ? 4 : u < 0.93 ? 8 : u < 0.98 ? 16 : 32;
  return k > (int)N ? (int)N : k;
}

static int pick_arch(uint64_t *r, int nnodes) {
  double u = unif(r);
  if (nnodes > 1) return u < 0.3 ? NS_SYNTH_COMPUTE : u < 0.45 ? NS_SYNTH_MEMORY : u < 0.55 ? NS_SYNTH_IO
                                                     : u < 0.95 ? NS_SYNTH_COMM : NS_SYNTH_IDLEJOB;
  return u < 0.35 ? NS_SYNTH_COMPUTE : u < 0.6 ? NS_SYNTH_MEMORY : u < 0.78 ? NS_SYNTH_IO
                                       : u < 0.9 ? NS_SYNTH_COMM : NS_SYNTH_IDLEJOB;
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static ns_status build_schedule(ns_synth *s) {
  const ns_synth_opts *o = &s->o;
  size_t N = s->N;
  double span = (double)(s->t1 - s->t0);
  int J = o->jobs > 0 ? o->jobs : (int)ceil(1.4 * (double)N * o->days);
  uint64_t r = mix(o->seed, 0x10b5);
  int64_t *arr = malloc((size_t)J * sizeof *arr);
  node_slot *slots = malloc(N * sizeof *slots);
  sjob *jobs = calloc((size_t)J, sizeof *jobs);
  size_t *assign = malloc((size_t)J * 32 * sizeof *assign);
  int *jn = calloc((size_t)J, sizeof *jn);
  sapp *apps = NULL;
  double wsum = 0;
  ns_status st = NS_OK;
  if (!arr || !slots || !jobs || !assign || !jn) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  if (o->apps > 0) {
    if ((st = build_apps(o, &apps))) goto done;
    for (int a = 0; a < o->apps; a++) wsum += apps[a].weight;
  }
  for (int j = 0; j < J; j++) arr[j] = s->t0 + (int64_t)(unif(&r) * span * 0.97);
  qsort(arr, (size_t)J, sizeof *arr, cmp_i64);
  for (size_t i = 0; i < N; i++) {
    slots[i].free_at = s->t0 + (int64_t)(unif(&r) * 3600e3);
    slots[i].node = i;
  }
  /* Mean duration so that about 70 % of node time is busy. */
  double mean_dur = 0.7 * (double)N * span / ((double)J * 3.4);
  if (mean_dur < 600e3) mean_dur = 600e3;
  size_t nj = 0;
  for (int j = 0; j < J; j++) {
    int k = pick_nnodes(&r, N);
    for (size_t i = 0; i < N; i++) slots[i].tie = mix(o->seed ^ (uint64_t)j, slots[i].node);
    /* k earliest-free nodes (partial selection by sorting a copy is fine: N small x J) */
    for (int q = 0; q < k; q++) {
      size_t best = (size_t)q;
      for (size_t i = (size_t)q + 1; i < N; i++)
        if (cmp_slot(&slots[i], &slots[best]) < 0) best = i;
      node_slot t = slots[q];
      slots[q] = slots[best], slots[best] = t;
    }
    int64_t start = arr[j];
    for (int q = 0; q < k; q++)
      if (slots[q].free_at > start) start = slots[q].free_at;
    start += (int64_t)urange(&r, 15e3, 120e3);
    double dur = mean_dur * exp(0.8 * gnoise(&r) - 0.32);
    if (dur < 300e3) dur = 300e3 + unif(&r) * 300e3;
    if (dur > 48 * 3600e3) dur = 48 * 3600e3;
    int64_t end = start + (int64_t)dur;
    if (end > s->t1) end = s->t1;
    uint64_t js = mix(o->seed, 0x70b0000ull + (uint64_t)j);
    if (end - start < 300e3) continue; /* did not fit before the end */
    sjob *jb = &jobs[nj];
    jb->start = start, jb->end = end, jb->seed = js;
    uint64_t jr = js;
    jb->app = jb->arch2 = -1;
    if (apps) {
      const sapp *a = &apps[pick_app(apps, o->apps, wsum, &jr)];
      jb->app = (int)(a - apps);
      jb->arch = a->arch, jb->arch2 = a->arch2, jb->blend = a->blend;
      memcpy(jb->gain, a->gain, sizeof jb->gain);
      jb->level = a->level * urange(&jr, 0.95, 1.05);
      jb->period_s = a->period_s * urange(&jr, 0.9, 1.1);
      jb->ckpt_every_s = a->ckpt_every_s * urange(&jr, 0.9, 1.1);
      jb->ckpt_len_s = urange(&jr, 45, 150);
      jb->mem = a->mem + urange(&jr, -0.03, 0.03);
      make_phases_app(jb, a, &jr);
    } else {
      jb->arch = pick_arch(&jr, k);
      jb->level = urange(&jr, 0.75, 1.0);
      jb->period_s = urange(&jr, 60, 900);
      jb->ckpt_every_s = urange(&jr, 1200, 3600);
      jb->ckpt_len_s = urange(&jr, 45, 150);
      jb->mem = urange(&jr, 0.1, 0.4);
      make_phases(jb, &jr);
    }
    for (int q = 0; q < k; q++) {
      assign[nj * 32 + (size_t)q] = slots[q].node;
      slots[q].free_at = end + (int64_t)urange(&r, 30e3, 1200e3);
    }
    jn[nj] = k;
    nj++;
  }
  s->nj = nj;
  s->jobs = jobs;
  jobs = NULL;
  s->job_rec = calloc(nj ? nj : 1, sizeof *s->job_rec);
  s->nj_start = calloc(N + 1, sizeof *s->nj_start);
  size_t total = 0;
  for (size_t j = 0; j < nj; j++) total += (size_t)jn[j];
  s->nj_idx = malloc((total ? total : 1) * sizeof *s->nj_idx);
  if (!s->job_rec || !s->nj_start || !s->nj_idx) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t j = 0; j < nj; j++)
    for (int q = 0; q < jn[j]; q++) s->nj_start[assign[j * 32 + (size_t)q] + 1]++;
  for (size_t i = 0; i < N; i++) s->nj_start[i + 1] += s->nj_start[i];
  size_t *fill = calloc(N, sizeof *fill);
  if (!fill) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  /* jobs are in start order per node? not necessarily (arrival order);
   * insert sorted by start. */
  for (size_t j = 0; j < nj; j++)
    for (int q = 0; q < jn[j]; q++) {
      size_t node = assign[j * 32 + (size_t)q], base = s->nj_start[node], pos = base + fill[node]++;
      while (pos > base && s->jobs[s->nj_idx[pos - 1]].start > s->jobs[j].start) {
        s->nj_idx[pos] = s->nj_idx[pos - 1];
        pos--;
      }
      s->nj_idx[pos] = j;
    }
  free(fill);
  for (size_t j = 0; j < nj; j++) {
    ns_job *rec = &s->job_rec[j];
    char id[32], *list = NULL;
    size_t len = 0, cap = 0;
    FILE *mf = open_memstream(&list, &len);
    if (!mf) {
      st = NS_ERR_NOMEM;
      goto done;
    }
    (void)cap;
    /* Node list in node order, comma-separated. */
    size_t nodes[32];
    for (int q = 0; q < jn[j]; q++) nodes[q] = assign[j * 32 + (size_t)q];
    for (int a = 1; a < jn[j]; a++)
      for (int b = a; b > 0 && nodes[b - 1] > nodes[b]; b--) {
        size_t t = nodes[b];
        nodes[b] = nodes[b - 1], nodes[b - 1] = t;
      }
    for (int q = 0; q < jn[j]; q++) fprintf(mf, "%s%s", q ? "," : "", s->node_names[nodes[q]]);
    fclose(mf);
    snprintf(id, sizeof id, "%zu", 1000 + j);
    rec->cluster = xstrdup(s->cluster);
    rec->job_id = xstrdup(id);
    rec->nodelist = list;
    rec->submit_ms = s->jobs[j].start - 10000;
    rec->start_ms = s->jobs[j].start;
    rec->end_ms = s->jobs[j].end;
    rec->nnodes = jn[j];
    rec->user = xstrdup("synth");
    rec->partition = xstrdup("batch");
    rec->state = xstrdup("COMPLETED");
    if (s->jobs[j].app >= 0) {
      char tag[48];
      snprintf(tag, sizeof tag, "app%02d-%s", s->jobs[j].app, arch_names[s->jobs[j].arch]);
      rec->tag = xstrdup(tag);
    } else {
      rec->tag = xstrdup(arch_names[s->jobs[j].arch]);
    }
    if (!rec->cluster || !rec->job_id || !rec->user || !rec->partition || !rec->state || !rec->tag) {
      st = NS_ERR_NOMEM;
      goto done;
    }
  }
done:
  free(arr), free(slots), free(jobs), free(assign), free(jn), free(apps);
  return st;
}

static const sjob *job_at(const ns_synth *s, size_t node, int64_t t) {
  for (size_t k = s->nj_start[node]; k < s->nj_start[node + 1]; k++) {
    const sjob *j = &s->jobs[s->nj_idx[k]];
    if (j->start > t) break;
    if (t <= j->end) return j;
  }
  return NULL;
}

static size_t job_index(const ns_synth *s, const sjob *j) { return (size_t)(j - s->jobs); }

/* Non-overlapping intervals of total length about ratio x [a, b). */
static ns_status place_anoms(ns_synth *s, size_t node, int64_t a, int64_t b, double ratio, uint64_t *r, sanom **v,
                             size_t *n, size_t *cap) {
  if (ratio <= 0 || b <= a) return NS_OK;
  double want = ratio * (double)(b - a), got = 0;
  int tries = 0;
  size_t first = *n;
  while (got < want && tries < 200) {
    tries++;
    double len = urange(r, 5 * 60e3, 45 * 60e3);
    if (len > want - got + 60e3) len = fmax(want - got, 2 * 60e3);
    if ((double)(b - a) <= len) break;
    int64_t st = a + (int64_t)(unif(r) * ((double)(b - a) - len));
    int64_t en = st + (int64_t)len;
    bool clash = false;
    for (size_t i = first; i < *n; i++)
      if (st <= (*v)[i].end + 60000 && en >= (*v)[i].start - 60000) clash = true;
    if (clash) continue;
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 64;
      sanom *nv = realloc(*v, *cap * sizeof *nv);
      if (!nv) return NS_ERR_NOMEM;
      *v = nv;
    }
    (*v)[(*n)++] = (sanom){(int)(unif(r) * NS_ANOM_COUNT) % NS_ANOM_COUNT, st, en, urange(r, 0.6, 1.0)};
    got += len;
  }
  (void)s, (void)node;
  return NS_OK;
}

static int cmp_anom(const void *a, const void *b) {
  const sanom *x = a, *y = b;
  return (x->start > y->start) - (x->start < y->start);
}

static ns_status build_anomalies(ns_synth *s) {
  const ns_synth_opts *o = &s->o;
  size_t n = 0, cap = 0;
  sanom *v = NULL;
  s->na_start = calloc(s->N + 1, sizeof *s->na_start);
  s->no_start = calloc(s->N + 1, sizeof *s->no_start);
  size_t on = 0, ocap = 0;
  soutage *ov = NULL;
  if (!s->na_start || !s->no_start) return NS_ERR_NOMEM;
  double weeks = (double)(s->t1 - s->t0) / (7 * 86400e3);
  for (size_t i = 0; i < s->N; i++) {
    uint64_t r = mix(o->seed ^ 0xa11a, i);
    /* Contamination draws from its own stream, so that the test period's
     * anomalies are the same at every contamination level. */
    uint64_t rc = mix(o->seed ^ 0xc0417a, i);
    size_t first = n;
    ns_status st;
    if ((st = place_anoms(s, i, s->t0, s->train_until, o->contamination, &rc, &v, &n, &cap)) ||
        (st = place_anoms(s, i, s->train_until, s->t1, o->anomaly_ratio, &r, &v, &n, &cap))) {
      free(v), free(ov);
      return st;
    }
    if (n > first) qsort(v + first, n - first, sizeof *v, cmp_anom);
    s->na_start[i + 1] = n;
    /* Outages: Poisson-ish count, 5-30 min each, not overlapping anomalies
     * (a label on data that is not there would be meaningless). */
    double lam = o->outages * weeks;
    int k = 0;
    double u = unif(&r), p = exp(-lam), c = p;
    while (u > c && k < 20) k++, p *= lam / k, c += p;
    for (int q = 0; q < k; q++) {
      int64_t len = (int64_t)urange(&r, 5 * 60e3, 30 * 60e3);
      int64_t st0 = s->t0 + (int64_t)(unif(&r) * (double)(s->t1 - s->t0 - len));
      bool clash = false;
      for (size_t a = first; a < n; a++)
        if (st0 <= v[a].end && st0 + len >= v[a].start) clash = true;
      for (size_t a = s->no_start[i]; a < on; a++)
        if (st0 <= ov[a].end && st0 + len >= ov[a].start) clash = true;
      if (clash) continue;
      if (on == ocap) {
        ocap = ocap ? ocap * 2 : 64;
        soutage *nv = realloc(ov, ocap * sizeof *nv);
        if (!nv) {
          free(v), free(ov);
          return NS_ERR_NOMEM;
        }
        ov = nv;
      }
      ov[on++] = (soutage){st0, st0 + len};
    }
    if (on > s->no_start[i]) qsort(ov + s->no_start[i], on - s->no_start[i], sizeof *ov, cmp_i64); /* by start */
    s->no_start[i + 1] = on;
  }
  s->anoms = v;
  s->outs = ov;
  s->nl = n;
  s->labels = calloc(n ? n : 1, sizeof *s->labels);
  if (!s->labels) return NS_ERR_NOMEM;
  for (size_t i = 0; i < s->N; i++)
    for (size_t a = s->na_start[i]; a < s->na_start[i + 1]; a++) {
      ns_label *l = &s->labels[a];
      const sjob *j = job_at(s, i, v[a].start);
      l->cluster = xstrdup(s->cluster);
      l->node = xstrdup(s->node_names[i]);
      l->job_id = j ? xstrdup(s->job_rec[job_index(s, j)].job_id) : NULL;
      l->start_ms = v[a].start;
      l->end_ms = v[a].end;
      l->label = 1;
      l->source = xstrdup("synth");
      l->author = xstrdup("synth");
      l->note = xstrdup(anom_names[v[a].type]);
      if (!l->cluster || !l->node || !l->source || !l->note || !l->author || (j && !l->job_id)) return NS_ERR_NOMEM;
    }
  return NS_OK;
}

ns_status ns_synth_create(const ns_synth_opts *o, ns_synth **out) {
  *out = NULL;
  if (!o) return ns_errorf(NS_ERR_INVAL, "no synth options");
  if (o->nodes < 1 || o->nodes > 100000) return ns_errorf(NS_ERR_RANGE, "--nodes %d outside 1..100000", o->nodes);
  if (!(o->days > 0) || o->days > 366) return ns_errorf(NS_ERR_RANGE, "--days %g outside (0, 366]", o->days);
  if (o->interval_ms < 1000 || o->interval_ms > 3600000)
    return ns_errorf(NS_ERR_RANGE, "--interval %lld ms outside 1 s..1 h", (long long)o->interval_ms);
  if (o->metrics < 16 || o->metrics > 4096) return ns_errorf(NS_ERR_RANGE, "--metrics %d outside 16..4096", o->metrics);
  if (o->jobs < 0 || o->jobs > 10000000) return ns_errorf(NS_ERR_RANGE, "--jobs %d outside 0..10000000", o->jobs);
  if (!(o->anomaly_ratio >= 0 && o->anomaly_ratio <= 0.5))
    return ns_errorf(NS_ERR_RANGE, "--anomaly-ratio %g outside [0, 0.5]", o->anomaly_ratio);
  if (!(o->contamination >= 0 && o->contamination <= 0.5))
    return ns_errorf(NS_ERR_RANGE, "--contamination %g outside [0, 0.5]", o->contamination);
  if (!(o->train_frac > 0 && o->train_frac < 1))
    return ns_errorf(NS_ERR_RANGE, "--train-frac %g outside (0, 1)", o->train_frac);
  if (!(o->missing >= 0 && o->missing < 0.5)) return ns_errorf(NS_ERR_RANGE, "--missing %g outside [0, 0.5)", o->missing);
  if (!(o->outages >= 0 && o->outages <= 100)) return ns_errorf(NS_ERR_RANGE, "--outages %g outside [0, 100]", o->outages);
  if (o->jitter_ms < 0 || o->jitter_ms >= o->interval_ms / 2)
    return ns_errorf(NS_ERR_RANGE, "jitter %lld ms must be below half the interval", (long long)o->jitter_ms);
  if (o->start_ms < 0) return ns_errorf(NS_ERR_RANGE, "start time before 1970");
  if (o->apps < 0 || o->apps > 1000) return ns_errorf(NS_ERR_RANGE, "--apps %d outside 0..1000", o->apps);
  ns_synth *s = calloc(1, sizeof *s);
  if (!s) return NS_ERR_NOMEM;
  s->o = *o;
  s->cluster = strdup(o->cluster && o->cluster[0] ? o->cluster : "synth");
  s->o.cluster = s->cluster;
  s->N = (size_t)o->nodes;
  s->M = (size_t)o->metrics;
  s->t0 = o->start_ms / o->interval_ms * o->interval_ms;
  int64_t steps = (int64_t)(o->days * 86400e3 / (double)o->interval_ms);
  if (steps < 2) steps = 2;
  s->t1 = s->t0 + steps * o->interval_ms;
  s->train_until = s->t0 + (int64_t)((double)(s->t1 - s->t0) * o->train_frac) / o->interval_ms * o->interval_ms;
  s->node_names = calloc(s->N, sizeof *s->node_names);
  ns_status st = NS_OK;
  if (!s->cluster || !s->node_names) {
    st = NS_ERR_NOMEM;
    goto fail;
  }
  int width = s->N >= 1000 ? 4 : 3;
  for (size_t i = 0; i < s->N; i++) {
    char b[32];
    snprintf(b, sizeof b, "cn%0*zu", width, i + 1);
    if (!(s->node_names[i] = strdup(b))) {
      st = NS_ERR_NOMEM;
      goto fail;
    }
  }
  if ((st = build_metrics(s)) || (st = build_schedule(s)) || (st = build_anomalies(s))) goto fail;
  *out = s;
  return NS_OK;
fail:
  ns_synth_free(s);
  return st;
}

/* -------------------------------------------------------------- generator */

typedef struct {
  double u, nice, sy, w, irq, sirq; /* CPU fractions */
  double mem, cache_target, dirty_target;
  double bw, llc, ipc;
  double rd, wr, rx, tx, ibrx, ibtx; /* bytes/s */
  double run, ctxt, intr, forks, pgf, majf;
  double psi_cpu, psi_ms, psi_mf, psi_is, psi_if;
} latent;

_Static_assert(sizeof(latent) % sizeof(double) == 0, "latent is blended as an array of doubles");

struct ns_synth_gen {
  const ns_synth *s;
  size_t node;
  int64_t k, nsteps;
  uint64_t rng;
  size_t jpos, apos, opos;
  double *cum;
  double load1, load5, load15, cache, dirty, leak;
  double bias_mem, noise, base_cpu, core_bias[NCORES];
  int daemon_phase;
  bool after_outage;
};

void ns_synth_gen_free(ns_synth_gen *g) {
  if (!g) return;
  free(g->cum);
  free(g);
}

ns_status ns_synth_gen_create(const ns_synth *s, size_t node, ns_synth_gen **out) {
  *out = NULL;
  if (!s || node >= s->N) return ns_errorf(NS_ERR_RANGE, "node index %zu outside the cluster", node);
  ns_synth_gen *g = calloc(1, sizeof *g);
  if (!g || !(g->cum = calloc(s->M, sizeof *g->cum))) {
    ns_synth_gen_free(g);
    return NS_ERR_NOMEM;
  }
  g->s = s;
  g->node = node;
  g->jpos = s->nj_start[node];
  g->nsteps = (s->t1 - s->t0) / s->o.interval_ms;
  uint64_t r = mix(s->o.seed ^ 0x40de, node);
  g->bias_mem = urange(&r, -0.03, 0.03);
  g->noise = urange(&r, 0.7, 1.3);
  g->base_cpu = urange(&r, 0.003, 0.015);
  g->daemon_phase = (int)(unif(&r) * 20);
  for (int c = 0; c < NCORES; c++) g->core_bias[c] = urange(&r, -0.02, 0.02);
  double uptime_s = urange(&r, 86400, 30 * 86400);
  for (size_t j = 0; j < s->M; j++)
    if (s->counters[j]) g->cum[j] = floor(uptime_s * urange(&r, 1, 50));
  g->cache = 0.1;
  g->rng = mix(s->o.seed ^ 0x5eed, node);
  g->load1 = g->load5 = g->load15 = 0.3;
  *out = g;
  return NS_OK;
}

static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }
static double pos(double x) { return x < 0 ? 0 : x; }

/* One archetype's main-phase activity (L holds the node's idle baseline). */
static void arch_latent(const ns_synth_gen *g, const sjob *j, int arch, double in, double wave, latent *L) {
  switch (arch) {
  case NS_SYNTH_COMPUTE:
    L->u = 0.93 * in, L->sy = 0.02, L->bw = 15 + 5 * wave, L->llc = 3e6, L->ipc = 2.1 + 0.1 * wave;
    L->run = NCORES * in, L->ctxt = 6e3, L->pgf = 3e3, L->psi_cpu = 2;
    break;
  case NS_SYNTH_MEMORY:
    L->u = 0.72 * in, L->sy = 0.05, L->mem = j->mem + 0.35 + g->bias_mem, L->bw = 75 * in + 8 * wave,
    L->llc = 4e7 * in, L->ipc = 0.55, L->run = NCORES * 0.9 * in, L->ctxt = 9e3, L->pgf = 4e4 * in,
    L->psi_ms = 6 * in, L->psi_mf = 1.5 * in, L->psi_cpu = 4;
    break;
  case NS_SYNTH_IO:
    L->u = 0.22 * in, L->sy = 0.1, L->w = 0.3 * in * (0.7 + 0.3 * wave), L->rd = 2.5e8 * in * (1 + 0.5 * wave),
    L->wr = 1.5e8 * in * (1 - 0.5 * wave), L->cache_target = 0.55, L->dirty_target = 2e6 * in, L->run = 8,
    L->psi_is = 30 * in, L->psi_if = 12 * in, L->ctxt = 3e4, L->majf = 20, L->ipc = 0.8, L->rx = 1e8 * in;
    break;
  case NS_SYNTH_COMM: {
    /* compute / exchange cycles, in step on every node of the job */
    double ex = wave > 0.3 ? 1 : 0.15;
    L->u = (0.5 + 0.35 * (1 - ex)) * in, L->sy = 0.1 + 0.1 * ex, L->sirq = 0.03 * ex;
    L->ibrx = 1.8e9 * in * ex, L->ibtx = 1.7e9 * in * ex, L->rx = 1e6, L->tx = 1e6;
    L->ctxt = 6e4 * ex + 8e3, L->intr = 4e4 * ex + 3e3, L->bw = 25, L->llc = 8e6, L->ipc = 1.3;
    L->run = NCORES * 0.8 * in, L->psi_cpu = 3;
    break;
  }
  default: /* idle job: interactive session, a shell */
    L->u = 0.02, L->sy = 0.01, L->run = 1, L->mem = 0.05 + j->mem * 0.2, L->forks = 3;
    break;
  }
}

static void base_latent(ns_synth_gen *g, int64_t t, latent *L) {
  const ns_synth *s = g->s;
  memset(L, 0, sizeof *L);
  /* Node idle: daemons, a small periodic housekeeping spike. */
  int64_t step = (t - s->t0) / s->o.interval_ms;
  bool daemon = (step % 20) == g->daemon_phase;
  L->u = g->base_cpu + (daemon ? 0.04 : 0);
  L->sy = 0.004 + (daemon ? 0.01 : 0);
  L->nice = 0.0005;
  L->irq = 0.001, L->sirq = 0.001;
  L->mem = 0.06 + g->bias_mem * 0.5;
  L->cache_target = 0.08;
  L->dirty_target = 2e4;
  L->bw = 0.5, L->llc = 2e5, L->ipc = 0.9;
  L->rd = 2e4, L->wr = 6e4 + (daemon ? 2e6 : 0);
  L->rx = 3e4, L->tx = 2e4, L->ibrx = 1e3, L->ibtx = 1e3;
  L->run = 0.2 + (daemon ? 1 : 0);
  L->ctxt = 2500, L->intr = 3000, L->forks = daemon ? 30 : 1;
  L->pgf = 400 + (daemon ? 5000 : 0), L->majf = 0.1;
  /* Job activity. */
  while (g->jpos < s->nj_start[g->node + 1] && s->jobs[s->nj_idx[g->jpos]].end < t) g->jpos++;
  const sjob *j = NULL;
  for (size_t k = g->jpos; k < s->nj_start[g->node + 1]; k++) {
    const sjob *c = &s->jobs[s->nj_idx[k]];
    if (c->start > t) break;
    if (t <= c->end) {
      j = c;
      break;
    }
  }
  if (!j) return;
  int ph = 0;
  while (ph < j->nph - 1 && t > j->ph_end[ph]) ph++;
  double in = j->ph_int[ph] * j->level, el = (double)(t - j->start) / 1000.0;
  double wave = sin(2 * M_PI * el / j->period_s);
  int kind = j->ph_kind[ph];
  L->mem = j->mem + g->bias_mem;
  L->forks = 5;
  if (kind == PH_READ) {
    L->u = 0.15 * in, L->sy = 0.06, L->w = 0.25 * in;
    L->rd = 3e8 * in, L->rx = 5e7 * in, L->cache_target = 0.35;
    L->run = 4 + 8 * in, L->psi_is = 20 * in, L->psi_if = 8 * in;
    L->pgf = 2e4, L->majf = 50 * in, L->ctxt = 2e4, L->mem = 0.5 * j->mem;
    return;
  }
  if (kind == PH_WRITE) {
    L->u = 0.1 * in, L->sy = 0.08, L->w = 0.3 * in;
    L->wr = 4e8 * in, L->tx = 4e7 * in, L->dirty_target = 4e6 * in;
    L->run = 3 + 6 * in, L->psi_is = 25 * in, L->psi_if = 10 * in, L->ctxt = 1.5e4;
    return;
  }
  /* An application blends a second archetype into its main phases: it
   * starts from the same baseline, so keep a copy only then. */
  latent B;
  if (j->app >= 0 && j->arch2 >= 0) B = *L;
  arch_latent(g, j, j->arch, in, wave, L);
  if (j->app >= 0) {
    /* An application: the second archetype blended in, then its gains. */
    if (j->arch2 >= 0) {
      arch_latent(g, j, j->arch2, in, wave, &B);
      double a[sizeof(latent) / sizeof(double)], b[sizeof(latent) / sizeof(double)];
      memcpy(a, L, sizeof a), memcpy(b, &B, sizeof b);
      for (size_t q = 0; q < sizeof a / sizeof *a; q++) a[q] = (1 - j->blend) * a[q] + j->blend * b[q];
      memcpy(L, a, sizeof a);
    }
    const double *G = j->gain;
    L->u = fmin(L->u * G[G_CPU], 0.97), L->ipc *= sqrt(G[G_CPU]);
    L->bw *= G[G_MEMBW], L->llc *= G[G_MEMBW], L->psi_ms *= G[G_MEMBW];
    L->rd *= G[G_IO], L->wr *= G[G_IO], L->w = fmin(L->w * G[G_IO], 0.6), L->psi_is *= G[G_IO], L->psi_if *= G[G_IO];
    L->ibrx *= G[G_NET], L->ibtx *= G[G_NET], L->rx *= G[G_NET], L->tx *= G[G_NET], L->intr *= G[G_NET];
    L->ctxt *= G[G_SCHED], L->pgf *= G[G_SCHED], L->run *= G[G_SCHED];
  }
  /* Checkpoint bursts in long compute/memory phases. */
  if ((j->arch == NS_SYNTH_COMPUTE || j->arch == NS_SYNTH_MEMORY) &&
      fmod(el, j->ckpt_every_s) < j->ckpt_len_s && el > j->ckpt_every_s) {
    L->wr = 3e8 * in, L->w = 0.08, L->psi_is = 10, L->dirty_target = 3e6, L->u *= 0.6;
  }
}

static void apply_anom(ns_synth_gen *g, const sanom *a, int64_t t, latent *L) {
  double x = a->intensity, el = (double)(t - a->start) / 1000.0;
  switch (a->type) {
  case NS_ANOM_CPUOCCUPY: {
    double add = x * 0.9 * pos(1 - L->u - L->sy - L->w);
    L->u += add, L->run += NCORES * x, L->ctxt *= 1.5, L->psi_cpu += 40 * x, L->ipc = L->ipc * (1 - add) + 1.8 * add;
    break;
  }
  case NS_ANOM_MEMLEAK: {
    /* HPAS memleak: grows steadily, never freed while it runs */
    double len = (double)(a->end - a->start) / 1000.0;
    g->leak = 0.45 * x * el / len;
    L->pgf += 5e4 * x, L->psi_ms += 3 * x * el / len;
    L->sy += 0.03 * x;
    break;
  }
  case NS_ANOM_MEMBW:
    L->bw += 70 * x, L->llc += 3e7 * x, L->ipc *= 1 - 0.5 * x, L->psi_ms += 12 * x, L->u += 0.06 * x, L->run += 1;
    break;
  case NS_ANOM_CACHECOPY:
    L->llc += 5e7 * x, L->ipc *= 1 - 0.4 * x, L->u += 0.05 * x, L->bw += 10 * x, L->run += 1;
    break;
  case NS_ANOM_IOBANDWIDTH:
    L->rd += 4e8 * x, L->wr += 4e8 * x, L->w += 0.2 * x, L->psi_is += 30 * x, L->psi_if += 15 * x, L->run += 2,
    L->dirty_target += 3e6 * x, L->ctxt += 2e4 * x;
    break;
  case NS_ANOM_NETOCCUPY:
    L->ibtx += 2e9 * x, L->ibrx += 2e9 * x, L->sirq += 0.05 * x, L->sy += 0.03 * x, L->intr += 5e4 * x,
    L->ctxt += 3e4 * x, L->tx += 1e8 * x, L->rx += 1e8 * x;
    break;
  }
}

/* One step. Returns false past the end. Skips missing samples/outages. */
bool ns_synth_gen_next(ns_synth_gen *g, int64_t *ts_ms, double *row, uint8_t *label) {
  const ns_synth *s = g->s;
  const int64_t I = s->o.interval_ms;
  const double dt = (double)I / 1000.0;
  for (;;) {
    if (g->k >= g->nsteps) return false;
    int64_t t = s->t0 + g->k * I;
    g->k++;
    /* Outage: no rows; the node reboots (counters restart). */
    while (g->opos < s->no_start[g->node + 1] - s->no_start[g->node] &&
           s->outs[s->no_start[g->node] + g->opos].end < t)
      g->opos++;
    const soutage *o = g->opos < s->no_start[g->node + 1] - s->no_start[g->node]
                           ? &s->outs[s->no_start[g->node] + g->opos] : NULL;
    if (o && t >= o->start && t <= o->end) {
      if (!g->after_outage)
        for (size_t j = 0; j < s->M; j++) g->cum[j] = 0;
      g->after_outage = true;
      g->load1 = g->load5 = g->load15 = 0;
      g->cache = 0.02;
      continue;
    }
    g->after_outage = false;
    latent L;
    base_latent(g, t, &L);
    const size_t na = s->na_start[g->node + 1] - s->na_start[g->node];
    const sanom *an = s->anoms + s->na_start[g->node];
    while (g->apos < na && an[g->apos].end < t) g->apos++, g->leak = 0;
    uint8_t lab = 0;
    if (g->apos < na && t >= an[g->apos].start && t <= an[g->apos].end) {
      apply_anom(g, &an[g->apos], t, &L);
      lab = 1;
    }
    /* Node-level normalisation and noise. */
    double nz = g->noise;
    uint64_t *r = &g->rng;
    L.u = clamp01(L.u * (1 + 0.03 * nz * gnoise(r)) + 0.003 * nz * gnoise(r));
    L.sy = clamp01(L.sy * (1 + 0.05 * nz * gnoise(r)));
    L.w = clamp01(L.w * (1 + 0.05 * nz * gnoise(r)));
    double busy = L.u + L.sy + L.w + L.irq + L.sirq + L.nice;
    if (busy > 0.995) {
      double f = 0.995 / busy;
      L.u *= f, L.sy *= f, L.w *= f, L.irq *= f, L.sirq *= f, L.nice *= f;
      busy = 0.995;
    }
    double idle = 1 - busy;
    double mem = clamp01(L.mem + g->leak + 0.004 * nz * gnoise(r));
    g->cache += (L.cache_target - g->cache) * 0.05;
    g->dirty += (L.dirty_target - g->dirty) * 0.3;
    if (mem + g->cache > 0.97) g->cache = pos(0.97 - mem);
    double a1 = 1 - exp(-dt / 60), a5 = 1 - exp(-dt / 300), a15 = 1 - exp(-dt / 900);
    double run = pos(L.run + 0.3 * nz * gnoise(r));
    g->load1 += (run - g->load1) * a1, g->load5 += (run - g->load5) * a5, g->load15 += (run - g->load15) * a15;
    const double jif = NCORES * HZ * dt;
    double memfree_kb = pos(1 - mem - g->cache - 0.012 - 0.01) * MEM_TOTAL_KB;
    double dirty_kb = floor(pos(g->dirty * (1 + 0.1 * gnoise(r))) / 1024.0);
    double cached_kb = g->cache * MEM_TOTAL_KB;
    double psi_noise = 0.2 * nz;
    for (size_t j = 0; j < s->M; j++) {
      double v = 0, rate = -1; /* rate >= 0: counter increment per second */
      switch (s->ch[j]) {
      case CH_USER: rate = L.u * jif / dt; break;
      case CH_NICE: rate = pos(L.nice * (1 + 0.3 * gnoise(r))) * jif / dt; break;
      case CH_SYS: rate = L.sy * jif / dt; break;
      case CH_IDLE: rate = idle * jif / dt; break;
      case CH_IOWAIT: rate = L.w * jif / dt; break;
      case CH_IRQ: rate = pos(L.irq * (1 + 0.1 * gnoise(r))) * jif / dt; break;
      case CH_SOFTIRQ: rate = pos(L.sirq * (1 + 0.1 * gnoise(r))) * jif / dt; break;
      case CH_STEAL: rate = 0; break;
      case CH_CTXT: rate = pos(L.ctxt * (1 + 0.05 * gnoise(r))); break;
      case CH_INTR: rate = pos(L.intr * (1 + 0.05 * gnoise(r))); break;
      case CH_FORKS: rate = pos(L.forks * (1 + 0.3 * gnoise(r))); break;
      case CH_RUNNING: v = floor(run + 0.5); break;
      case CH_BLOCKED: v = floor(L.w * NCORES * 0.5 + 0.5); break;
      case CH_MEMTOTAL: v = MEM_TOTAL_KB; break;
      case CH_MEMFREE: v = floor(memfree_kb); break;
      case CH_MEMAVAIL: v = floor(memfree_kb + 0.9 * cached_kb); break;
      case CH_BUFFERS: v = floor(0.004 * MEM_TOTAL_KB * (1 + 0.02 * gnoise(r))); break;
      case CH_CACHED: v = floor(cached_kb); break;
      case CH_ACTIVE: v = floor((mem * 0.8 + g->cache * 0.5) * MEM_TOTAL_KB); break;
      case CH_INACTIVE: v = floor((mem * 0.2 + g->cache * 0.5) * MEM_TOTAL_KB); break;
      case CH_DIRTY: v = dirty_kb; break;
      case CH_ANON: v = floor(mem * MEM_TOTAL_KB); break;
      case CH_SLAB: v = floor(0.01 * MEM_TOTAL_KB * (1 + 0.01 * gnoise(r)) + 0.02 * g->cache * MEM_TOTAL_KB); break;
      case CH_COMMITTED: v = floor(1.3 * mem * MEM_TOTAL_KB + 0.02 * MEM_TOTAL_KB); break;
      case CH_MAPPED: v = floor((0.015 + 0.05 * mem) * MEM_TOTAL_KB * (1 + 0.01 * gnoise(r))); break;
      case CH_SHMEM: v = floor(0.003 * MEM_TOTAL_KB * (1 + 0.01 * gnoise(r))); break;
      case CH_SWAPFREE: v = SWAP_KB - (mem > 0.9 ? (mem - 0.9) * 10 * SWAP_KB : 0); break;
      case CH_PGFAULT: rate = pos(L.pgf * (1 + 0.1 * gnoise(r))); break;
      case CH_MAJFAULT: rate = pos(L.majf * (1 + 0.3 * gnoise(r))); break;
      case CH_PGPGIN: rate = L.rd / 1024; break;
      case CH_PGPGOUT: rate = L.wr / 1024; break;
      case CH_PSWPIN: rate = mem > 0.9 ? 100 : 0; break;
      case CH_NR_DIRTY: v = floor(dirty_kb / 4); break;
      case CH_NR_FREE: v = floor(memfree_kb / 4); break;
      case CH_NUMA_HIT: rate = pos(L.bw * 1.5e4 * (1 + 0.05 * gnoise(r))); break;
      case CH_NUMA_MISS: rate = pos(L.bw * 300 * (1 + 0.2 * gnoise(r))); break;
      case CH_ETH_RXB: rate = pos(L.rx * (1 + 0.1 * gnoise(r))); break;
      case CH_ETH_TXB: rate = pos(L.tx * (1 + 0.1 * gnoise(r))); break;
      case CH_ETH_RXP: rate = pos(L.rx / 1100 * (1 + 0.1 * gnoise(r))); break;
      case CH_ETH_TXP: rate = pos(L.tx / 900 * (1 + 0.1 * gnoise(r))); break;
      case CH_IB_RXB: rate = pos(L.ibrx * (1 + 0.05 * gnoise(r))); break;
      case CH_IB_TXB: rate = pos(L.ibtx * (1 + 0.05 * gnoise(r))); break;
      case CH_DISK_RD: rate = pos(L.rd / 131072 * (1 + 0.1 * gnoise(r))); break;
      case CH_DISK_RDSEC: rate = pos(L.rd / 512 * (1 + 0.05 * gnoise(r))); break;
      case CH_DISK_WR: rate = pos(L.wr / 131072 * (1 + 0.1 * gnoise(r))); break;
      case CH_DISK_WRSEC: rate = pos(L.wr / 512 * (1 + 0.05 * gnoise(r))); break;
      case CH_DISK_TIME: rate = 1000 * clamp01((L.rd + L.wr) / 1e9 + 0.002); break;
      case CH_LOAD1: v = floor(g->load1 * 100 + 0.5) / 100; break;
      case CH_LOAD5: v = floor(g->load5 * 100 + 0.5) / 100; break;
      case CH_LOAD15: v = floor(g->load15 * 100 + 0.5) / 100; break;
      case CH_PSI_CPU: v = floor(pos(L.psi_cpu + psi_noise * gnoise(r)) * 100) / 100; break;
      case CH_PSI_MEMS: v = floor(pos(L.psi_ms + psi_noise * gnoise(r)) * 100) / 100; break;
      case CH_PSI_MEMF: v = floor(pos(L.psi_mf + 0.5 * psi_noise * gnoise(r)) * 100) / 100; break;
      case CH_PSI_IOS: v = floor(pos(L.psi_is + psi_noise * gnoise(r)) * 100) / 100; break;
      case CH_PSI_IOF: v = floor(pos(L.psi_if + 0.5 * psi_noise * gnoise(r)) * 100) / 100; break;
      case CH_IPC: v = pos(L.ipc * (1 + 0.03 * nz * gnoise(r))); break;
      case CH_LLC: v = pos(L.llc * (1 + 0.05 * nz * gnoise(r))); break;
      case CH_MEMBW: v = pos(L.bw * (1 + 0.04 * nz * gnoise(r))); break;
      case CH_CORE_USER: rate = clamp01(L.u + g->core_bias[s->core[j]] + 0.02 * nz * gnoise(r)) * HZ; break;
      case CH_CORE_SYS: rate = clamp01(L.sy + 0.2 * g->core_bias[s->core[j]] + 0.005 * nz * gnoise(r)) * HZ; break;
      }
      if (s->counters[j]) {
        g->cum[j] += floor(pos(rate) * dt + 0.5);
        v = g->cum[j];
      }
      row[j] = v;
    }
    /* Dropped samples consume the same randomness as kept ones. */
    bool drop = unif(r) < s->o.missing;
    int64_t jit = s->o.jitter_ms > 0 ? (int64_t)(unif(r) * (double)(s->o.jitter_ms + 1)) : 0;
    if (drop) continue;
    *ts_ms = t + jit;
    if (label) *label = lab;
    return true;
  }
}

ns_status ns_synth_node_mts(const ns_synth *s, size_t node, int64_t from_ms, int64_t to_ms, ns_mts **out) {
  *out = NULL;
  ns_synth_gen *g = NULL;
  ns_status st = ns_synth_gen_create(s, node, &g);
  if (st) return st;
  ns_mts *m = NULL;
  double *row = malloc(s->M * sizeof *row);
  if (!row) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  if ((st = ns_mts_create(s->node_names[node], s->M, s->metric_names, &m)) || (st = ns_mts_enable_labels(m))) goto done;
  memcpy(m->is_counter, s->counters, s->M);
  int64_t ts;
  uint8_t lab;
  while (ns_synth_gen_next(g, &ts, row, &lab)) {
    if (to_ms > 0 && ts >= to_ms) break;
    if (ts < from_ms) continue;
    if ((st = ns_mts_append(m, ts, row))) goto done;
    m->labels[m->T - 1] = lab;
  }
  *out = m;
  m = NULL;
done:
  ns_mts_free(m);
  free(row);
  ns_synth_gen_free(g);
  return st;
}

/* ---------------------------------------------------------------- writers */

static ns_status mkdir_p(const char *dir) {
  char buf[4096];
  if (strlen(dir) >= sizeof buf) return ns_errorf(NS_ERR_INVAL, "path too long: %s", dir);
  strcpy(buf, dir);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0755) && errno != EEXIST) return ns_errorf(NS_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
      *p = '/';
    }
  if (mkdir(buf, 0755) && errno != EEXIST) return ns_errorf(NS_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
  return NS_OK;
}

static FILE *open_in(const char *dir, const char *name, ns_status *st) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) *st = ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  return f;
}

static ns_status close_checked(FILE *f, const char *what) {
  if (!f) return NS_OK;
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0 || bad) return ns_errorf(NS_ERR_IO, "writing %s failed: %s", what, strerror(errno));
  return NS_OK;
}

static void fmt_time(int64_t ms, char *buf, size_t n, char sep) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, n, "%04d-%02d-%02d%c%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, sep, tm.tm_hour,
           tm.tm_min, tm.tm_sec);
}

/* Fast number printing: integers exactly, others with 6 significant digits. */
static int put_num(char *p, double v) {
  if (v == floor(v) && fabs(v) < 9e15) {
    char tmp[24];
    int n = 0;
    long long x = (long long)v;
    bool neg = x < 0;
    unsigned long long u = neg ? (unsigned long long)(-x) : (unsigned long long)x;
    do tmp[n++] = (char)('0' + u % 10), u /= 10;
    while (u);
    int w = 0;
    if (neg) p[w++] = '-';
    while (n) p[w++] = tmp[--n];
    return w;
  }
  return sprintf(p, "%.6g", v);
}

/* Standardised values: 4 decimals (1e-4 sigma), trailing zeros trimmed. */
static int put_fixed4(char *p, double v) {
  if (!(fabs(v) < 1e12)) return sprintf(p, "%.6g", v);
  long long q = llround(v * 10000.0);
  int w = 0;
  if (q < 0) p[w++] = '-', q = -q;
  w += put_num(p + w, (double)(q / 10000));
  int fp = (int)(q % 10000);
  if (fp) {
    char d[4];
    for (int k = 3; k >= 0; k--) d[k] = (char)('0' + fp % 10), fp /= 10;
    int last = 3;
    while (d[last] == '0') last--;
    p[w++] = '.';
    for (int k = 0; k <= last; k++) p[w++] = d[k];
  }
  return w;
}

static ns_status write_anomalies(const ns_synth *s, const char *dir, ns_synth_report *rep) {
  ns_status st = NS_OK;
  FILE *f = open_in(dir, "anomalies.csv", &st);
  if (!f) return st;
  fprintf(f, "node,start,end,type,job_id,split\n");
  for (size_t i = 0; i < s->nl; i++) {
    char a[64], b[64];
    fmt_time(s->labels[i].start_ms, a, sizeof a, 'T');
    fmt_time(s->labels[i].end_ms, b, sizeof b, 'T');
    fprintf(f, "%s,%s,%s,%s,%s,%s\n", s->labels[i].node, a, b, s->labels[i].note,
            s->labels[i].job_id ? s->labels[i].job_id : "", s->labels[i].start_ms < s->train_until ? "train" : "test");
  }
  if (rep) rep->files++, rep->labels += (int64_t)s->nl;
  return close_checked(f, "anomalies.csv");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

ns_status ns_synth_write_ldms(const ns_synth *s, const char *dir, ns_synth_report *rep) {
  double t_start = now_s();
  char ldir[4096];
  snprintf(ldir, sizeof ldir, "%s/ldms", dir);
  ns_status st = mkdir_p(ldir);
  if (st) return st;
  FILE *f[NSCHEMA] = {0};
  ns_synth_gen **g = calloc(s->N, sizeof *g);
  double *row = malloc(s->M * sizeof *row);
  int64_t *next_ts = malloc(s->N * sizeof *next_ts);
  double *rows = malloc(s->N * s->M * sizeof *rows);
  uint8_t *have = calloc(s->N, 1);
  char *line = malloc(s->M * 32 + 256);
  if (!g || !row || !next_ts || !rows || !have || !line) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  bool used[NSCHEMA] = {0};
  for (size_t j = 0; j < s->M; j++) used[s->schema[j]] = true;
  for (size_t q = 0; q < NSCHEMA; q++) {
    if (!used[q]) continue;
    char name[64];
    snprintf(name, sizeof name, "%s.csv", schemas[q]);
    if (!(f[q] = open_in(ldir, name, &st))) goto done;
    fprintf(f[q], "#Time,Time_usec,ProducerName,component_id,job_id,app_id");
    for (size_t j = 0; j < s->M; j++)
      if (s->schema[j] == q) fprintf(f[q], ",%s", strchr(s->metric_names[j], '.') + 1);
    fputc('\n', f[q]);
    if (rep) rep->files++;
  }
  for (size_t i = 0; i < s->N; i++) {
    if ((st = ns_synth_gen_create(s, i, &g[i]))) goto done;
    uint8_t lab;
    have[i] = ns_synth_gen_next(g[i], &next_ts[i], rows + i * s->M, &lab);
  }
  /* Time-major, as store_csv writes: step by step, every node's row that
   * falls in this step. */
  const int64_t I = s->o.interval_ms;
  for (int64_t t = s->t0; t < s->t1; t += I) {
    for (size_t i = 0; i < s->N; i++) {
      if (!have[i] || next_ts[i] >= t + I) continue;
      const double *r = rows + i * s->M;
      const sjob *jb = job_at(s, i, next_ts[i]);
      const char *jid = jb ? s->job_rec[job_index(s, jb)].job_id : "0";
      for (size_t q = 0; q < NSCHEMA; q++) {
        if (!f[q]) continue;
        int n = sprintf(line, "%lld.%06lld,%lld,%s,%zu,%s,0", (long long)(next_ts[i] / 1000),
                        (long long)(next_ts[i] % 1000) * 1000, (long long)(next_ts[i] % 1000) * 1000,
                        s->node_names[i], i + 1, jid);
        for (size_t j = 0; j < s->M; j++)
          if (s->schema[j] == q) {
            line[n++] = ',';
            n += put_num(line + n, r[j]);
          }
        line[n++] = '\n';
        fwrite(line, 1, (size_t)n, f[q]);
      }
      if (rep) rep->rows++, rep->points += (int64_t)s->M;
      uint8_t lab;
      have[i] = ns_synth_gen_next(g[i], &next_ts[i], rows + i * s->M, &lab);
    }
  }
  for (size_t q = 0; q < NSCHEMA; q++) {
    ns_status c = close_checked(f[q], schemas[q]);
    f[q] = NULL;
    if (c && !st) st = c;
  }
  if (st) goto done;
  /* Jobs as `sacct -P -X -o JobID,NodeList,Start,End,State,User,Partition,NNodes,JobName`. */
  FILE *jf = open_in(dir, "jobs.sacct", &st);
  if (!jf) goto done;
  fprintf(jf, "JobID|NodeList|Start|End|State|User|Partition|NNodes|JobName\n");
  for (size_t j = 0; j < s->nj; j++) {
    const ns_job *r = &s->job_rec[j];
    char a[64], b[64];
    fmt_time(r->start_ms, a, sizeof a, 'T');
    fmt_time(r->end_ms, b, sizeof b, 'T');
    fprintf(jf, "%s|%s|%s|%s|%s|%s|%s|%d|%s\n", r->job_id, r->nodelist, a, b, r->state, r->user, r->partition,
            r->nnodes, r->tag);
  }
  if (rep) rep->files++, rep->jobs += (int64_t)s->nj;
  if ((st = close_checked(jf, "jobs.sacct"))) goto done;
  st = write_anomalies(s, dir, rep);
done:
  for (size_t q = 0; q < NSCHEMA; q++)
    if (f[q]) fclose(f[q]);
  if (g)
    for (size_t i = 0; i < s->N; i++) ns_synth_gen_free(g[i]);
  free(g), free(row), free(next_ts), free(rows), free(have), free(line);
  if (rep) rep->seconds += now_s() - t_start;
  return st;
}

ns_status ns_synth_write_store(const ns_synth *s, ns_store *db, ns_synth_report *rep) {
  double t_start = now_s();
  ns_status st = ns_store_begin(db);
  if (st) return st;
  for (size_t j = 0; j < s->nj && !st; j++) st = ns_store_put_job(db, &s->job_rec[j]);
  for (size_t i = 0; i < s->nl && !st; i++) st = ns_store_put_label(db, &s->labels[i], NULL);
  if (st) {
    ns_store_rollback(db);
    return st;
  }
  if ((st = ns_store_commit(db))) return st;
  if (rep) rep->jobs += (int64_t)s->nj, rep->labels += (int64_t)s->nl;
  /* Raw telemetry node by node in day-sized chunks: memory stays at one
   * node-day whatever the cluster size. */
  const int64_t I = s->o.interval_ms;
  size_t chunk_rows = (size_t)(86400000 / I);
  if (chunk_rows < 16) chunk_rows = 16;
  double *row = malloc(s->M * sizeof *row);
  if (!row) return NS_ERR_NOMEM;
  for (size_t i = 0; i < s->N && !st; i++) {
    ns_synth_gen *g = NULL;
    if ((st = ns_synth_gen_create(s, i, &g))) break;
    if ((st = ns_store_begin(db))) {
      ns_synth_gen_free(g);
      break;
    }
    bool more = true;
    while (more && !st) {
      ns_mts *m = NULL;
      if ((st = ns_mts_create(s->node_names[i], s->M, s->metric_names, &m)) || (st = ns_mts_enable_labels(m))) {
        ns_mts_free(m);
        break;
      }
      memcpy(m->is_counter, s->counters, s->M);
      int64_t ts;
      uint8_t lab;
      while (m->T < chunk_rows && (more = ns_synth_gen_next(g, &ts, row, &lab))) {
        if ((st = ns_mts_append(m, ts, row))) break;
        m->labels[m->T - 1] = lab;
      }
      if (!st && m->T > 0) {
        st = ns_store_put_raw(db, s->cluster, m, "synth");
        if (rep) rep->rows += (int64_t)m->T, rep->points += (int64_t)(m->T * m->M);
      }
      ns_mts_free(m);
    }
    ns_synth_gen_free(g);
    if (st) ns_store_rollback(db);
    else st = ns_store_commit(db);
  }
  free(row);
  if (rep) rep->seconds += now_s() - t_start;
  return st;
}

static ns_status write_segment_csv(const ns_synth *s, const ns_segment *seg, const char *path, bool with_label) {
  FILE *f = fopen(path, "w");
  if (!f) return ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  fprintf(f, "timestamp");
  for (size_t m = 0; m < seg->M; m++) fprintf(f, ",%s", seg->metrics[m]);
  fprintf(f, with_label ? ",Label\n" : "\n");
  char line[64 + 16 * 4096];
  char *buf = seg->M > 4096 ? malloc(64 + 16 * seg->M) : line;
  if (!buf) {
    fclose(f);
    return NS_ERR_NOMEM;
  }
  for (size_t t = 0; t < seg->T; t++) {
    char ts[64];
    fmt_time(seg->start_ms + (int64_t)t * seg->interval_ms, ts, sizeof ts, ' ');
    int n = sprintf(buf, "%s", ts);
    for (size_t m = 0; m < seg->M; m++) {
      buf[n++] = ',';
      n += put_fixed4(buf + n, (double)seg->x[t * seg->M + m]);
    }
    if (with_label) n += sprintf(buf + n, ",%d", seg->labels ? seg->labels[t] : 0);
    buf[n++] = '\n';
    fwrite(buf, 1, (size_t)n, f);
  }
  if (buf != line) free(buf);
  (void)s;
  return close_checked(f, path);
}

ns_status ns_synth_write_nodesentry(const ns_synth *s, const char *dir, const ns_prep_opts *po,
                                    ns_synth_report *rep) {
  double t_start = now_s();
  char path[4096];
  ns_status st = mkdir_p(dir);
  if (st) return st;
  snprintf(path, sizeof path, "%s/Train", dir);
  if ((st = mkdir_p(path))) return st;
  snprintf(path, sizeof path, "%s/Test", dir);
  if ((st = mkdir_p(path))) return st;
  /* Pass 1: fit on the training period, one node at a time. */
  ns_prep_fit *fit = NULL;
  ns_prep_params *p = NULL;
  if ((st = ns_prep_fit_begin(po, &fit))) return st;
  for (size_t i = 0; i < s->N; i++) {
    ns_mts *m = NULL;
    if ((st = ns_synth_node_mts(s, i, 0, s->train_until, &m))) break;
    st = m->T ? ns_prep_fit_add(fit, m, NULL) : NS_OK;
    ns_mts_free(m);
    if (st) break;
  }
  if (st) {
    ns_prep_fit_free(fit);
    return st;
  }
  if ((st = ns_prep_fit_end(fit, &p))) return st;
  /* Pass 2: apply, cut job segments, write one file per (node, job). */
  uint8_t *written = calloc(s->nj ? s->nj : 1, 1);
  uint8_t *used = calloc(s->nj ? s->nj : 1, 1);
  if (!written || !used) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < s->N && !st; i++) {
    ns_mts *m = NULL, *pre = NULL;
    ns_segment **seg = NULL;
    size_t ns = 0;
    if ((st = ns_synth_node_mts(s, i, 0, 0, &m))) break;
    if (!(st = ns_prep_apply(p, m, &pre, NULL))) {
      /* Only this node's jobs: a small array view. */
      size_t a = s->nj_start[i], b = s->nj_start[i + 1];
      ns_job *mine = calloc(b - a + 1, sizeof *mine);
      if (!mine) st = NS_ERR_NOMEM;
      for (size_t k = a; !st && k < b; k++) mine[k - a] = s->job_rec[s->nj_idx[k]];
      if (!st) st = ns_prep_segment(p, pre, s->cluster, mine, b - a, &seg, &ns);
      free(mine);
    }
    memset(written, 0, s->nj);
    for (size_t q = 0; q < ns && !st; q++) {
      ns_segment *g = seg[q];
      if (g->kind != NS_SEG_JOB) continue;
      size_t jidx = (size_t)strtoul(g->job_id, NULL, 10) - 1000;
      if (jidx >= s->nj || written[jidx]) continue; /* one file per (node, job): the first piece */
      written[jidx] = 1;
      used[jidx] = 1;
      bool train = s->job_rec[jidx].start_ms < s->train_until;
      if (train) {
        snprintf(path, sizeof path, "%s/Train/%s", dir, s->node_names[i]);
        if ((st = mkdir_p(path))) break;
        snprintf(path, sizeof path, "%s/Train/%s/%s_Job-%s.csv", dir, s->node_names[i], s->node_names[i], g->job_id);
      } else {
        snprintf(path, sizeof path, "%s/Test/%s_Job-%s.csv", dir, s->node_names[i], g->job_id);
      }
      st = write_segment_csv(s, g, path, !train);
      if (rep && !st) rep->files++, rep->segments++, rep->rows += (int64_t)g->T, rep->points += (int64_t)(g->T * g->M);
    }
    ns_prep_segments_free(seg, ns);
    ns_mts_free(pre);
    ns_mts_free(m);
  }
  if (st) goto done;
  FILE *jf = open_in(dir, "Job", &st);
  if (!jf) goto done;
  fprintf(jf, "JobID|NodeList|Start|End|Tag\n");
  for (size_t j = 0; j < s->nj; j++) {
    if (!used[j]) continue; /* every listed job has at least one file */
    const ns_job *r = &s->job_rec[j];
    char a[64], b[64];
    fmt_time(r->start_ms, a, sizeof a, 'T');
    fmt_time(r->end_ms, b, sizeof b, 'T');
    fprintf(jf, "%s|%s|%s|%s|%s\n", r->job_id, r->nodelist, a, b, r->start_ms < s->train_until ? "train" : "test");
    if (rep) rep->jobs++;
  }
  if (rep) rep->files++;
  if ((st = close_checked(jf, "Job"))) goto done;
  st = write_anomalies(s, dir, rep);
done:
  free(written), free(used);
  ns_prep_params_free(p);
  if (rep) rep->seconds += now_s() - t_start;
  return st;
}
