/* nsentry-sampler: per-node telemetry sampler writing the on-disk ring spool.
 * Runs in the foreground (systemd Type=simple); one instance per spool, guarded
 * by a lock on spool_dir/sampler.pid. It also retries the epilog outbox by
 * running `nsentry-epilog --flush` now and then. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ns_build_config.h"
#include "ns_collect.h"
#include "ns_config.h"
#include "ns_log.h"
#include "ns_spool.h"

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static void die(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "nsentry: nsentry-sampler: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  exit(1);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: nsentry-sampler [-c FILE] [-s KEY=VALUE]... [options]\n"
          "  -c, --config FILE     configuration (default $NSENTRY_CONF, then /etc/nsentry/nsentry.conf)\n"
          "  -s, --set KEY=VALUE   override one key (sampler_interval, spool_dir, spool_retention, ...)\n"
          "      --count N         take N samples after priming, then exit (tests, benchmarks)\n"
          "      --proc-root DIR   read DIR/stat etc. instead of /proc (tests)\n"
          "      --no-perf         do not open hardware counters\n"
          "      --no-nvml         do not load NVML\n"
          "      --epilog PATH     nsentry-epilog used to retry the outbox (default: next to this program)\n"
          "      --flush-every D   outbox retry period (default 60s; 0 = never)\n"
          "  -v, --verbose         debug logging\n");
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the outbox retry detached from our loop; at most one at a time. */
static pid_t spawn_flush(const char *epilog, const char *conf, char **sets, int nsets) {
  pid_t pid = fork();
  if (pid != 0) return pid < 0 ? 0 : pid;
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  char *argv[8 + 2 * 64];
  int a = 0;
  argv[a++] = (char *)epilog;
  argv[a++] = (char *)"--flush";
  if (conf) argv[a++] = (char *)"-c", argv[a++] = (char *)conf;
  for (int i = 0; i < nsets && i < 64; i++) argv[a++] = (char *)"-s", argv[a++] = sets[i];
  argv[a] = NULL;
  execv(epilog, argv);
  _exit(127);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, 0, 'c'}, {"set", required_argument, 0, 's'},
      {"count", required_argument, 0, 'n'},  {"proc-root", required_argument, 0, 'P'},
      {"no-perf", no_argument, 0, 'p'},      {"no-nvml", no_argument, 0, 'g'},
      {"epilog", required_argument, 0, 'e'}, {"flush-every", required_argument, 0, 'f'},
      {"verbose", no_argument, 0, 'v'},      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *conf = getenv("NSENTRY_CONF"), *proc_root = "/proc", *epilog = NULL, *flush_s = "60s";
  char *sets[64];
  int nsets = 0, c, verbose = 0;
  long count = -1;
  unsigned flags = 0;
  ns_log_set_ident("nsentry-sampler");
  while ((c = getopt_long(argc, argv, "c:s:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': conf = optarg; break;
    case 's':
      if (nsets == 64) die("%s%s", "too many --set options", "");
      sets[nsets++] = optarg;
      break;
    case 'n': count = strtol(optarg, NULL, 10); break;
    case 'P': proc_root = optarg; break;
    case 'p': flags |= NS_COLLECT_NO_PERF; break;
    case 'g': flags |= NS_COLLECT_NO_NVML; break;
    case 'e': epilog = optarg; break;
    case 'f': flush_s = optarg; break;
    case 'v': verbose = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }
  ns_config *cfg = NULL;
  if (ns_config_create(&cfg)) die("%s%s", "out of memory", "");
  if (!conf && access("/etc/nsentry/nsentry.conf", R_OK) == 0) conf = "/etc/nsentry/nsentry.conf";
  ns_status st;
  if (conf && (st = ns_config_load_file(cfg, conf))) die("config: %s%s", ns_err_message(st), "");
  if ((st = ns_config_apply_args(cfg, nsets, sets))) die("--set: %s%s", ns_err_message(st), "");
  ns_log_level lvl;
  if (ns_log_parse_level(ns_cfg_str(cfg, NS_CFG_log_level), &lvl)) ns_log_set_level(lvl);
  if (verbose) ns_log_set_level(NS_LOG_DEBUG);
  if (ns_cfg_bool(cfg, NS_CFG_log_syslog)) ns_log_use_syslog(true);
  int64_t flush_ms = 0;
  if ((st = ns_parse_duration_ms(flush_s, &flush_ms))) die("--flush-every: %s%s", ns_err_message(st), "");

  int64_t interval = ns_cfg_int(cfg, NS_CFG_sampler_interval);
  const char *dir = ns_cfg_str(cfg, NS_CFG_spool_dir);
  ns_spool_opts so = {.retention_ms = ns_cfg_int(cfg, NS_CFG_spool_retention),
                      .max_bytes = ns_cfg_int(cfg, NS_CFG_spool_max_bytes)};
  ns_spool *sp = NULL;
  if ((st = ns_spool_open(dir, &so, &sp))) die("spool: %s%s", ns_err_message(st), "");

  /* one sampler per spool */
  char pidpath[4200];
  snprintf(pidpath, sizeof pidpath, "%s/" NS_SPOOL_PIDFILE, dir);
  int pfd = open(pidpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (pfd < 0) die("%s: %s", pidpath, strerror(errno));
  if (flock(pfd, LOCK_EX | LOCK_NB) != 0) {
    char old[32] = "";
    ssize_t r = pread(pfd, old, sizeof old - 1, 0);
    if (r > 0) old[r] = '\0';
    old[strcspn(old, "\n")] = '\0';
    die("another sampler is running on this spool (pid %s, %s)", old, pidpath);
  }
  char pidtxt[32];
  int pl = snprintf(pidtxt, sizeof pidtxt, "%ld\n", (long)getpid());
  if (ftruncate(pfd, 0) != 0 || pwrite(pfd, pidtxt, (size_t)pl, 0) != pl) die("%s: cannot write pid%s", pidpath, "");

  char selfdir[PATH_MAX] = "", epath[PATH_MAX + 32];
  if (!epilog) {
    ssize_t n = readlink("/proc/self/exe", selfdir, sizeof selfdir - 1);
    if (n > 0) {
      selfdir[n] = '\0';
      char *slash = strrchr(selfdir, '/');
      if (slash) *slash = '\0';
      snprintf(epath, sizeof epath, "%s/nsentry-epilog", selfdir);
      epilog = epath;
    }
  }

  ns_collect *col = NULL;
  if ((st = ns_collect_create(proc_root, flags, &col))) die("collect: %s%s", ns_err_message(st), "");
  ns_info("interval %" PRId64 " ms, spool %s (retention %" PRId64 " ms, cap %" PRId64 " bytes); %s; %s", interval, dir,
          so.retention_ms, so.max_bytes, ns_collect_perf_state(col), ns_collect_gpu_state(col));

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = SIG_IGN; /* nothing to reload; never die of a stray hangup */
  sigaction(SIGHUP, &sa, NULL);

  pid_t flusher = 0;
  int64_t last_flush = mono_ms(), last_marks = 0;
  long taken = 0, errors = 0;
  bool primed = false;
  while (!stop_flag) {
    /* ticks on wall-clock multiples of the interval, so nodes line up */
    int64_t now = ns_spool_now_ms();
    int64_t next = primed ? (now / interval + 1) * interval : now;
    if (next > now) {
      struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (long)(next % 1000) * 1000000};
      int r = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL);
      if (r == EINTR) continue;
    }
    int64_t ts_ms = ns_spool_now_ms();
    size_t M;
    char **names;
    float *vals;
    st = ns_collect_sample(col, ts_ms, &M, &names, &vals);
    primed = true;
    if (st == NS_OK) {
      st = ns_spool_append(sp, ts_ms, M, names, vals);
      if (st && (errors++ % 100) == 0) ns_warn("spool append: %s", ns_err_message(st));
      taken++;
    } else if (st != NS_ERR_EMPTY) {
      ns_warn("sample: %s", ns_err_message(st));
    }
    if (count >= 0 && taken >= count) break;

    int64_t m = mono_ms();
    if (flusher > 0 && waitpid(flusher, NULL, WNOHANG) == flusher) flusher = 0;
    if (flush_ms > 0 && epilog && flusher == 0 && m - last_flush >= flush_ms) {
      last_flush = m;
      ns_outbox_entry *ent = NULL;
      size_t n = 0;
      if (ns_outbox_list(dir, &ent, &n) == NS_OK && n > 0) {
        ns_debug("outbox holds %zu segment(s); running %s --flush", n, epilog);
        flusher = spawn_flush(epilog, conf, sets, nsets);
      }
      free(ent);
    }
    if (m - last_marks >= 3600 * 1000) {
      last_marks = m;
      int removed = 0;
      ns_spool_prune_marks(dir, so.retention_ms, &removed);
      if (removed) ns_info("removed %d stale job mark file(s)", removed);
    }
  }
  if (flusher > 0) waitpid(flusher, NULL, 0);
  ns_info("stopping after %ld samples", taken);
  ns_collect_free(col);
  ns_spool_close(sp);
  unlink(pidpath);
  close(pfd);
  ns_config_free(cfg);
  return 0;
}
