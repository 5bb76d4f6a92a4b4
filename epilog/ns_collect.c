#include "ns_collect.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One value of a tick before rate conversion. */
typedef struct item {
  char name[48];
  double raw;
  double scale;   /* output = rate * scale (counters) or raw * scale (gauges) */
  bool counter;
} item;

enum { F_STAT, F_MEMINFO, F_VMSTAT, F_LOADAVG, F_DISKSTATS, F_NETDEV, F_PSI_CPU, F_PSI_MEM, F_PSI_IO, F_COUNT };
static const char *const file_names[F_COUNT] = {"stat",    "meminfo",  "vmstat",          "loadavg",        "diskstats",
                                                "net/dev", "pressure/cpu", "pressure/memory", "pressure/io"};

#define MAX_CORES 4096
#define N_PERF 5
#define MAX_GPUS 16

/* NVML, resolved at run time so that nodes without a GPU driver need nothing. */
typedef struct nvml_util { unsigned int gpu, memory; } nvml_util;
typedef struct nvml_mem { unsigned long long total, free, used; } nvml_mem;
typedef struct nvml_api {
  void *so;
  int (*init)(void);
  int (*shutdown)(void);
  int (*count)(unsigned int *);
  int (*handle)(unsigned int, void **);
  int (*util)(void *, nvml_util *);
  int (*mem)(void *, nvml_mem *);
  int (*power)(void *, unsigned int *);
  int (*temp)(void *, int, unsigned int *);
  unsigned int ngpu;
  void *dev[MAX_GPUS];
} nvml_api;

struct ns_collect {
  char root[512];
  int fd[F_COUNT];
  char *buf;
  size_t bufsz;
  /* /proc/stat per-core and total previous jiffies */
  unsigned long long prev_cpu[MAX_CORES + 1][8];
  bool have_prev_cpu[MAX_CORES + 1];
  double core_busy[MAX_CORES];
  /* items of this and the previous tick (matched by name) */
  item *cur, *prev;
  size_t ncur, nprev, cap;
  int64_t prev_ts;
  bool primed;
  /* output */
  char **out_names;
  float *out_vals;
  size_t out_M, out_cap;
  /* perf: one fd per (counter, cpu) */
  int ncpu_perf;
  int *perf_fd;
  bool perf_on[N_PERF];
  char perf_state[160];
  nvml_api nv;
  char gpu_state[160];
};

static ns_status add_item(ns_collect *c, const char *name, double raw, bool counter, double scale) {
  if (c->ncur == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 128;
    item *a = realloc(c->cur, cap * sizeof *a), *b;
    if (!a) return NS_ERR_NOMEM;
    c->cur = a;
    b = realloc(c->prev, cap * sizeof *b);
    if (!b) return NS_ERR_NOMEM;
    c->prev = b;
    c->cap = cap;
  }
  item *it = &c->cur[c->ncur++];
  snprintf(it->name, sizeof it->name, "%s", name);
  it->raw = raw, it->counter = counter, it->scale = scale;
  return NS_OK;
}

/* Whole file through a kept-open descriptor (procfs regenerates on pread at 0). */
static const char *slurp(ns_collect *c, int f) {
  if (c->fd[f] < 0) return NULL;
  for (;;) {
    ssize_t n = pread(c->fd[f], c->buf, c->bufsz - 1, 0);
    if (n < 0) return NULL;
    if ((size_t)n < c->bufsz - 1) {
      c->buf[n] = '\0';
      return c->buf;
    }
    char *nb = realloc(c->buf, c->bufsz * 2);
    if (!nb) return NULL;
    c->buf = nb, c->bufsz *= 2;
  }
}

/* ------------------------------------------------------------ /proc/stat */

static ns_status read_stat(ns_collect *c, double *core_busy_out, int *ncores_out, double pct_out[8]) {
  const char *b = slurp(c, F_STAT);
  *ncores_out = 0;
  for (int k = 0; k < 8; k++) pct_out[k] = NAN;
  if (!b) return NS_OK;
  ns_status s = NS_OK;
  for (const char *ln = b; ln && *ln; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
    if (strncmp(ln, "cpu", 3) == 0) {
      int idx;
      const char *p = ln + 3;
      if (*p == ' ') idx = 0;
      else {
        char *e;
        long core = strtol(p, &e, 10);
        if (e == p || core < 0 || core >= MAX_CORES) continue;
        idx = (int)core + 1;
        p = e;
      }
      unsigned long long v[8] = {0};
      char *e = (char *)p;
      for (int k = 0; k < 8; k++) v[k] = strtoull(e, &e, 10);
      unsigned long long tot = 0, ptot = 0;
      for (int k = 0; k < 8; k++) tot += v[k], ptot += c->prev_cpu[idx][k];
      if (c->have_prev_cpu[idx] && tot > ptot) {
        double dt = (double)(tot - ptot);
        if (idx == 0) {
          for (int k = 0; k < 8; k++)
            pct_out[k] = v[k] >= c->prev_cpu[idx][k] ? 100.0 * (double)(v[k] - c->prev_cpu[idx][k]) / dt : NAN;
        } else {
          double idle = (double)(v[3] + v[4]) - (double)(c->prev_cpu[idx][3] + c->prev_cpu[idx][4]);
          core_busy_out[(*ncores_out)++] = 100.0 * (1.0 - idle / dt);
        }
      }
      memcpy(c->prev_cpu[idx], v, sizeof v);
      c->have_prev_cpu[idx] = true;
    } else if (strncmp(ln, "ctxt ", 5) == 0) {
      s = s ? s : add_item(c, "ctxt_rate", strtod(ln + 5, NULL), true, 1);
    } else if (strncmp(ln, "intr ", 5) == 0) {
      s = s ? s : add_item(c, "intr_rate", strtod(ln + 5, NULL), true, 1);
    } else if (strncmp(ln, "processes ", 10) == 0) {
      s = s ? s : add_item(c, "forks_rate", strtod(ln + 10, NULL), true, 1);
    } else if (strncmp(ln, "procs_running ", 14) == 0) {
      s = s ? s : add_item(c, "procs_running", strtod(ln + 14, NULL), false, 1);
    } else if (strncmp(ln, "procs_blocked ", 14) == 0) {
      s = s ? s : add_item(c, "procs_blocked", strtod(ln + 14, NULL), false, 1);
    }
  }
  return s;
}

/* ------------------------------------------------------------ key/value files */

typedef struct kv_map { const char *key, *name; bool counter; double scale; } kv_map;

static const kv_map meminfo_map[] = {
    {"MemTotal", "mem_total", false, 1024},       {"MemFree", "mem_free", false, 1024},
    {"MemAvailable", "mem_available", false, 1024}, {"Buffers", "mem_buffers", false, 1024},
    {"Cached", "mem_cached", false, 1024},         {"Shmem", "mem_shmem", false, 1024},
    {"Slab", "mem_slab", false, 1024},             {"AnonPages", "mem_anon", false, 1024},
    {"Mapped", "mem_mapped", false, 1024},         {"Dirty", "mem_dirty", false, 1024},
    {"Writeback", "mem_writeback", false, 1024},   {"PageTables", "mem_pagetables", false, 1024},
    {"Committed_AS", "mem_committed", false, 1024}, {"Active", "mem_active", false, 1024},
    {"Inactive", "mem_inactive", false, 1024},
};

static const kv_map vmstat_map[] = {
    {"pgpgin", "vm_pgpgin_rate", true, 1024},   {"pgpgout", "vm_pgpgout_rate", true, 1024},
    {"pswpin", "vm_pswpin_rate", true, 1},      {"pswpout", "vm_pswpout_rate", true, 1},
    {"pgfault", "vm_pgfault_rate", true, 1},    {"pgmajfault", "vm_pgmajfault_rate", true, 1},
    {"pgfree", "vm_pgfree_rate", true, 1},      {"oom_kill", "vm_oom_kill_rate", true, 1},
    {"thp_fault_alloc", "vm_thp_fault_alloc_rate", true, 1}, {"numa_miss", "vm_numa_miss_rate", true, 1},
};

static ns_status read_meminfo(ns_collect *c) {
  const char *b = slurp(c, F_MEMINFO);
  if (!b) return NS_OK;
  double total = NAN, avail = NAN, stot = NAN, sfree = NAN;
  ns_status s = NS_OK;
  for (const char *ln = b; ln && *ln && !s; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
    const char *colon = strchr(ln, ':');
    if (!colon) continue;
    size_t kl = (size_t)(colon - ln);
    double v = strtod(colon + 1, NULL);
    if (kl == 8 && strncmp(ln, "MemTotal", 8) == 0) total = v;
    if (kl == 12 && strncmp(ln, "MemAvailable", 12) == 0) avail = v;
    if (kl == 9 && strncmp(ln, "SwapTotal", 9) == 0) stot = v;
    if (kl == 8 && strncmp(ln, "SwapFree", 8) == 0) sfree = v;
    for (size_t i = 0; i < sizeof meminfo_map / sizeof *meminfo_map; i++)
      if (strlen(meminfo_map[i].key) == kl && strncmp(ln, meminfo_map[i].key, kl) == 0)
        s = add_item(c, meminfo_map[i].name, v, false, meminfo_map[i].scale);
  }
  if (!s && !isnan(total) && !isnan(avail)) s = add_item(c, "mem_used", total - avail, false, 1024);
  if (!s && !isnan(stot) && !isnan(sfree)) s = add_item(c, "swap_used", stot - sfree, false, 1024);
  return s;
}

static ns_status read_vmstat(ns_collect *c) {
  const char *b = slurp(c, F_VMSTAT);
  if (!b) return NS_OK;
  double steal = 0, scan = 0;
  bool has_steal = false, has_scan = false;
  ns_status s = NS_OK;
  for (const char *ln = b; ln && *ln && !s; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
    const char *sp = strchr(ln, ' ');
    if (!sp) continue;
    size_t kl = (size_t)(sp - ln);
    double v = strtod(sp + 1, NULL);
    if (strncmp(ln, "pgsteal_", 8) == 0) steal += v, has_steal = true;
    if (strncmp(ln, "pgscan_", 7) == 0) scan += v, has_scan = true;
    for (size_t i = 0; i < sizeof vmstat_map / sizeof *vmstat_map; i++)
      if (strlen(vmstat_map[i].key) == kl && strncmp(ln, vmstat_map[i].key, kl) == 0)
        s = add_item(c, vmstat_map[i].name, v, true, vmstat_map[i].scale);
  }
  if (!s && has_steal) s = add_item(c, "vm_pgsteal_rate", steal, true, 1);
  if (!s && has_scan) s = add_item(c, "vm_pgscan_rate", scan, true, 1);
  return s;
}

static ns_status read_loadavg(ns_collect *c) {
  const char *b = slurp(c, F_LOADAVG);
  if (!b) return NS_OK;
  double l1, l5, l15;
  long run, tot;
  if (sscanf(b, "%lf %lf %lf %ld/%ld", &l1, &l5, &l15, &run, &tot) != 5) return NS_OK;
  ns_status s = add_item(c, "load1", l1, false, 1);
  if (!s) s = add_item(c, "load5", l5, false, 1);
  if (!s) s = add_item(c, "load15", l15, false, 1);
  if (!s) s = add_item(c, "procs_total", (double)tot, false, 1);
  return s;
}

/* Whole block devices only (partitions would count twice); no loop/ram/zram. */
static bool whole_disk(const ns_collect *c, const char *dev) {
  if (!strncmp(dev, "loop", 4) || !strncmp(dev, "ram", 3) || !strncmp(dev, "zram", 4)) return false;
  char p[700];
  struct stat st;
  if (strcmp(c->root, "/proc") != 0) return true; /* test trees list whole disks only */
  snprintf(p, sizeof p, "/sys/block/%s", dev);
  return stat(p, &st) == 0;
}

static ns_status read_diskstats(ns_collect *c) {
  const char *b = slurp(c, F_DISKSTATS);
  if (!b) return NS_OK;
  double rd = 0, rsec = 0, wr = 0, wsec = 0, ticks = 0, inflight = 0;
  int ndisk = 0;
  for (const char *ln = b; ln && *ln; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
    unsigned maj, mn;
    char dev[64];
    unsigned long long f[11];
    if (sscanf(ln, "%u %u %63s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &maj, &mn, dev, &f[0], &f[1],
               &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10]) != 14)
      continue;
    if (!whole_disk(c, dev)) continue;
    rd += (double)f[0], rsec += (double)f[2], wr += (double)f[4], wsec += (double)f[6];
    inflight += (double)f[8], ticks += (double)f[9];
    ndisk++;
  }
  if (!ndisk) return NS_OK;
  ns_status s = add_item(c, "disk_reads_rate", rd, true, 1);
  if (!s) s = add_item(c, "disk_read_bytes_rate", rsec, true, 512);
  if (!s) s = add_item(c, "disk_writes_rate", wr, true, 1);
  if (!s) s = add_item(c, "disk_write_bytes_rate", wsec, true, 512);
  /* io_ticks are ms busy; per second of wall time, averaged over disks, in % */
  if (!s) s = add_item(c, "disk_busy_pct", ticks, true, 0.1 / ndisk);
  if (!s) s = add_item(c, "disk_inflight", inflight, false, 1);
  return s;
}

static ns_status read_netdev(ns_collect *c) {
  const char *b = slurp(c, F_NETDEV);
  if (!b) return NS_OK;
  double acc[8] = {0};
  int nif = 0;
  for (const char *ln = b; ln && *ln; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
    const char *colon = strchr(ln, ':');
    const char *nl = strchr(ln, '\n');
    if (!colon || (nl && colon > nl)) continue;
    const char *n0 = ln;
    while (*n0 == ' ') n0++;
    if ((size_t)(colon - n0) == 2 && strncmp(n0, "lo", 2) == 0) continue;
    unsigned long long f[16];
    if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0],
               &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &f[11], &f[12], &f[13], &f[14],
               &f[15]) != 16)
      continue;
    const int pick[8] = {0, 1, 2, 3, 8, 9, 10, 11};
    for (int k = 0; k < 8; k++) acc[k] += (double)f[pick[k]];
    nif++;
  }
  if (!nif) return NS_OK;
  static const char *const nm[8] = {"net_rx_bytes_rate", "net_rx_packets_rate", "net_rx_errs_rate",
                                    "net_rx_drop_rate",  "net_tx_bytes_rate",   "net_tx_packets_rate",
                                    "net_tx_errs_rate",  "net_tx_drop_rate"};
  ns_status s = NS_OK;
  for (int k = 0; k < 8 && !s; k++) s = add_item(c, nm[k], acc[k], true, 1);
  return s;
}

/* PSI totals are cumulative microseconds stalled: the rate / 1e4 is a percentage. */
static ns_status read_psi(ns_collect *c, int f, const char *what) {
  const char *b = slurp(c, f);
  if (!b) return NS_OK;
  ns_status s = NS_OK;
  for (const char *ln = b; ln && *ln && !s; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
    const char *tot = strstr(ln, "total=");
    const char *nl = strchr(ln, '\n');
    if (!tot || (nl && tot > nl)) continue;
    char name[48];
    bool full = strncmp(ln, "full", 4) == 0;
    if (!full && strncmp(ln, "some", 4) != 0) continue;
    /* cpu "full" is all-zero on most kernels; keep it anyway for a stable set */
    snprintf(name, sizeof name, "psi_%s_%s_pct", what, full ? "full" : "some");
    s = add_item(c, name, strtod(tot + 6, NULL), true, 1e-4);
  }
  return s;
}

/* ------------------------------------------------------------ perf */

static const struct { uint64_t config; const char *name; } perf_ev[N_PERF] = {
    {PERF_COUNT_HW_CPU_CYCLES, "perf_cycles_rate"},
    {PERF_COUNT_HW_INSTRUCTIONS, "perf_instructions_rate"},
    {PERF_COUNT_HW_CACHE_REFERENCES, "perf_cache_refs_rate"},
    {PERF_COUNT_HW_CACHE_MISSES, "perf_cache_misses_rate"},
    {PERF_COUNT_HW_BRANCH_MISSES, "perf_branch_misses_rate"},
};

static void perf_open(ns_collect *c) {
  long ncpu = sysconf(_SC_NPROCESSORS_CONF);
  if (ncpu < 1) ncpu = 1;
  c->ncpu_perf = (int)ncpu;
  c->perf_fd = malloc(sizeof(int) * N_PERF * (size_t)ncpu);
  if (!c->perf_fd) {
    snprintf(c->perf_state, sizeof c->perf_state, "perf: unavailable (out of memory)");
    return;
  }
  int on = 0, first_err = 0;
  for (int e = 0; e < N_PERF; e++) {
    bool ok = true;
    for (int cpu = 0; cpu < ncpu; cpu++) {
      struct perf_event_attr a;
      memset(&a, 0, sizeof a);
      a.size = sizeof a;
      a.type = PERF_TYPE_HARDWARE;
      a.config = perf_ev[e].config;
      a.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
      long fd = syscall(SYS_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
      c->perf_fd[e * ncpu + cpu] = (int)fd;
      if (fd < 0) {
        /* an offline CPU is fine; anything else disables the counter */
        if (errno == ENODEV) continue;
        if (!first_err) first_err = errno;
        ok = false;
      }
    }
    c->perf_on[e] = ok;
    if (!ok)
      for (int cpu = 0; cpu < ncpu; cpu++)
        if (c->perf_fd[e * ncpu + cpu] >= 0) close(c->perf_fd[e * ncpu + cpu]), c->perf_fd[e * ncpu + cpu] = -1;
    on += ok;
  }
  if (on)
    snprintf(c->perf_state, sizeof c->perf_state, "perf: %d of %d hardware counters", on, N_PERF);
  else
    snprintf(c->perf_state, sizeof c->perf_state, "perf: unavailable (%s; perf_event_paranoid or no PMU)",
             strerror(first_err ? first_err : ENOENT));
}

static ns_status read_perf(ns_collect *c) {
  if (!c->perf_fd) return NS_OK;
  ns_status s = NS_OK;
  for (int e = 0; e < N_PERF && !s; e++) {
    if (!c->perf_on[e]) continue;
    double sum = 0;
    for (int cpu = 0; cpu < c->ncpu_perf; cpu++) {
      int fd = c->perf_fd[e * c->ncpu_perf + cpu];
      uint64_t v[3];
      if (fd < 0 || read(fd, v, sizeof v) != sizeof v) continue;
      /* scale for multiplexing */
      sum += v[2] && v[2] < v[1] ? (double)v[0] * ((double)v[1] / (double)v[2]) : (double)v[0];
    }
    s = add_item(c, perf_ev[e].name, sum, true, 1);
  }
  return s;
}

/* ------------------------------------------------------------ NVML */

static void nvml_open(ns_collect *c) {
  nvml_api *n = &c->nv;
  n->so = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!n->so) {
    snprintf(c->gpu_state, sizeof c->gpu_state, "gpu: no NVML library");
    return;
  }
  *(void **)&n->init = dlsym(n->so, "nvmlInit_v2");
  *(void **)&n->shutdown = dlsym(n->so, "nvmlShutdown");
  *(void **)&n->count = dlsym(n->so, "nvmlDeviceGetCount_v2");
  *(void **)&n->handle = dlsym(n->so, "nvmlDeviceGetHandleByIndex_v2");
  *(void **)&n->util = dlsym(n->so, "nvmlDeviceGetUtilizationRates");
  *(void **)&n->mem = dlsym(n->so, "nvmlDeviceGetMemoryInfo");
  *(void **)&n->power = dlsym(n->so, "nvmlDeviceGetPowerUsage");
  *(void **)&n->temp = dlsym(n->so, "nvmlDeviceGetTemperature");
  unsigned int cnt = 0;
  if (!n->init || !n->count || !n->handle || !n->util || !n->mem || n->init() != 0 || n->count(&cnt) != 0) {
    snprintf(c->gpu_state, sizeof c->gpu_state, "gpu: NVML present but not usable");
    dlclose(n->so);
    memset(n, 0, sizeof *n);
    return;
  }
  for (unsigned int i = 0; i < cnt && n->ngpu < MAX_GPUS; i++)
    if (n->handle(i, &n->dev[n->ngpu]) == 0) n->ngpu++;
  snprintf(c->gpu_state, sizeof c->gpu_state, "gpu: NVML, %u device(s)", n->ngpu);
}

static ns_status read_gpus(ns_collect *c) {
  nvml_api *n = &c->nv;
  ns_status s = NS_OK;
  char nm[48];
  for (unsigned int i = 0; i < n->ngpu && !s; i++) {
    nvml_util u;
    nvml_mem m;
    unsigned int p = 0, t = 0;
    double util = NAN, mutil = NAN, used = NAN, power = NAN, temp = NAN;
    if (n->util(n->dev[i], &u) == 0) util = u.gpu, mutil = u.memory;
    if (n->mem(n->dev[i], &m) == 0) used = (double)m.used;
    if (n->power && n->power(n->dev[i], &p) == 0) power = p / 1000.0;
    if (n->temp && n->temp(n->dev[i], 0 /* NVML_TEMPERATURE_GPU */, &t) == 0) temp = t;
    snprintf(nm, sizeof nm, "gpu%u_util_pct", i);
    s = add_item(c, nm, util, false, 1);
    snprintf(nm, sizeof nm, "gpu%u_mem_util_pct", i);
    if (!s) s = add_item(c, nm, mutil, false, 1);
    snprintf(nm, sizeof nm, "gpu%u_mem_used", i);
    if (!s) s = add_item(c, nm, used, false, 1);
    snprintf(nm, sizeof nm, "gpu%u_power_w", i);
    if (!s) s = add_item(c, nm, power, false, 1);
    snprintf(nm, sizeof nm, "gpu%u_temp_c", i);
    if (!s) s = add_item(c, nm, temp, false, 1);
  }
  return s;
}

/* ------------------------------------------------------------ lifecycle */

ns_status ns_collect_create(const char *proc_root, unsigned flags, ns_collect **out) {
  *out = NULL;
  ns_collect *c = calloc(1, sizeof *c);
  if (!c) return NS_ERR_NOMEM;
  snprintf(c->root, sizeof c->root, "%s", proc_root && *proc_root ? proc_root : "/proc");
  c->bufsz = 1 << 16;
  c->buf = malloc(c->bufsz);
  if (!c->buf) {
    free(c);
    return NS_ERR_NOMEM;
  }
  int opened = 0;
  for (int f = 0; f < F_COUNT; f++) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", c->root, file_names[f]);
    c->fd[f] = open(p, O_RDONLY | O_CLOEXEC);
    opened += c->fd[f] >= 0;
  }
  if (c->fd[F_STAT] < 0) {
    ns_status s = ns_errorf(NS_ERR_IO, "%s/stat: cannot open: %s", c->root, strerror(errno));
    ns_collect_free(c);
    return s;
  }
  (void)opened;
  if (flags & NS_COLLECT_NO_PERF) snprintf(c->perf_state, sizeof c->perf_state, "perf: disabled");
  else perf_open(c);
  if (flags & NS_COLLECT_NO_NVML) snprintf(c->gpu_state, sizeof c->gpu_state, "gpu: disabled");
  else nvml_open(c);
  *out = c;
  return NS_OK;
}

void ns_collect_free(ns_collect *c) {
  if (!c) return;
  for (int f = 0; f < F_COUNT; f++)
    if (c->fd[f] >= 0) close(c->fd[f]);
  if (c->perf_fd)
    for (int i = 0; i < N_PERF * c->ncpu_perf; i++)
      if (c->perf_fd[i] >= 0) close(c->perf_fd[i]);
  free(c->perf_fd);
  if (c->nv.so) {
    if (c->nv.shutdown) c->nv.shutdown();
    dlclose(c->nv.so);
  }
  if (c->out_names)
    for (size_t i = 0; i < c->out_cap; i++) free(c->out_names[i]);
  free(c->out_names);
  free(c->out_vals);
  free(c->cur);
  free(c->prev);
  free(c->buf);
  free(c);
}

const char *ns_collect_perf_state(const ns_collect *c) { return c->perf_state; }
const char *ns_collect_gpu_state(const ns_collect *c) { return c->gpu_state; }

static ns_status out_push(ns_collect *c, const char *name, double v) {
  if (c->out_M == c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap * 2 : 128;
    char **n = realloc(c->out_names, cap * sizeof *n);
    if (!n) return NS_ERR_NOMEM;
    memset(n + c->out_cap, 0, (cap - c->out_cap) * sizeof *n);
    c->out_names = n;
    float *f = realloc(c->out_vals, cap * sizeof *f);
    if (!f) return NS_ERR_NOMEM;
    c->out_vals = f;
    c->out_cap = cap;
  }
  char **slot = &c->out_names[c->out_M];
  if (!*slot || strcmp(*slot, name) != 0) {
    free(*slot);
    if (!(*slot = strdup(name))) return NS_ERR_NOMEM;
  }
  c->out_vals[c->out_M++] = (float)v;
  return NS_OK;
}

ns_status ns_collect_sample(ns_collect *c, int64_t ts_ms, size_t *M, char ***names, float **values) {
  *M = 0, *names = NULL, *values = NULL;
  c->ncur = 0;
  c->out_M = 0;
  double *core_busy = c->core_busy;
  int ncores = 0;
  double pct[8];
  ns_status s = read_stat(c, core_busy, &ncores, pct);
  if (!s) s = read_meminfo(c);
  if (!s) s = read_vmstat(c);
  if (!s) s = read_loadavg(c);
  if (!s) s = read_diskstats(c);
  if (!s) s = read_netdev(c);
  if (!s) s = read_psi(c, F_PSI_CPU, "cpu");
  if (!s) s = read_psi(c, F_PSI_MEM, "mem");
  if (!s) s = read_psi(c, F_PSI_IO, "io");
  if (!s) s = read_perf(c);
  if (!s) s = read_gpus(c);
  if (s) return s;
  double dt = (double)(ts_ms - c->prev_ts) / 1000.0;
  bool primed = c->primed && dt > 0;
  if (primed) {
    static const char *const cpu_names[8] = {"cpu_user", "cpu_nice", "cpu_system", "cpu_idle",
                                             "cpu_iowait", "cpu_irq", "cpu_softirq", "cpu_steal"};
    for (int k = 0; k < 8 && !s; k++) s = out_push(c, cpu_names[k], pct[k]);
    double mx = NAN, mn = NAN, sum = 0, sq = 0;
    for (int i = 0; i < ncores; i++) {
      double v = core_busy[i];
      if (isnan(mx) || v > mx) mx = v;
      if (isnan(mn) || v < mn) mn = v;
      sum += v, sq += v * v;
    }
    double mean = ncores ? sum / ncores : NAN;
    double sd = ncores ? sqrt(fmax(0, sq / ncores - mean * mean)) : NAN;
    if (!s) s = out_push(c, "cpu_core_busy_max", mx);
    if (!s) s = out_push(c, "cpu_core_busy_min", mn);
    if (!s) s = out_push(c, "cpu_core_busy_std", sd);
    double cyc = NAN, ins = NAN;
    for (size_t i = 0; i < c->ncur && !s; i++) {
      item *it = &c->cur[i];
      double v;
      if (it->counter) {
        /* the previous tick's item at the same position, else search by name */
        item *p = i < c->nprev && strcmp(c->prev[i].name, it->name) == 0 ? &c->prev[i] : NULL;
        for (size_t j = 0; !p && j < c->nprev; j++)
          if (strcmp(c->prev[j].name, it->name) == 0) p = &c->prev[j];
        v = p && it->raw >= p->raw ? (it->raw - p->raw) / dt * it->scale : NAN; /* reset/wrap = missing */
      } else {
        v = it->raw * it->scale;
      }
      if (strcmp(it->name, "perf_cycles_rate") == 0) cyc = v;
      if (strcmp(it->name, "perf_instructions_rate") == 0) ins = v;
      s = out_push(c, it->name, v);
    }
    if (!s && (c->perf_on[0] && c->perf_on[1])) s = out_push(c, "perf_ipc", cyc > 0 ? ins / cyc : NAN);
  }
  /* keep this tick's raw values for the next rates */
  item *t = c->prev;
  c->prev = c->cur, c->cur = t;
  c->nprev = c->ncur;
  c->prev_ts = ts_ms;
  c->primed = true;
  if (s) return s;
  if (!primed) return ns_errorf(NS_ERR_EMPTY, "first sample primes the counters");
  *M = c->out_M, *names = c->out_names, *values = c->out_vals;
  return NS_OK;
}
