/* nsentry-epilog: cut a finished job's telemetry window on this node and ship
 * it to nsentryd; on any failure the segment waits in the spool's outbox.
 *
 * Used three ways:
 *   - started detached by the SPANK plugin's job_epilog (--job/--end/--node given);
 *   - as a plain slurmd Epilog= program (job from SLURM_JOB_ID, SLURMD_NODENAME);
 *     epilog_detach=yes (or --detach) returns to slurmd at once;
 *   - `--flush` to retry the outbox (run by the sampler every minute).
 * It never fails a job or drains a node: the exit status is always 0 (unless
 * --strict, for tests), and a hard alarm ends it at epilog_timeout + 1 s. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "ns_config.h"
#include "ns_log.h"
#include "ns_source.h"
#include "ns_spool.h"

#define SAFE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int64_t t0_mono;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "nsentry: nsentry-epilog: error: hard time limit reached; exiting\n";
  ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)r;
  _exit(0);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: nsentry-epilog [-c FILE] [-s KEY=VALUE]... [--job ID] [--start MS] [--end MS] [--node NAME]\n"
          "                      [--tag TAG] [--skip] [--detach] [--log FILE] [--strict]\n"
          "       nsentry-epilog [-c FILE] [-s KEY=VALUE]... --flush [--strict]\n"
          "Job, node, tag and skip default to SLURM_JOB_ID, SLURMD_NODENAME, SPANK_NSENTRY_TAG and\n"
          "SPANK_NSENTRY_SKIP; start and end to the SPANK marks in the spool (end: now).\n"
          "Always exits 0 unless --strict.\n");
}

typedef struct ctx {
  ns_config *cfg;
  const char *spool, *url, *sock;
  int64_t timeout_ms, outbox_max;
  bool strict;
} ctx;

static int64_t left_ms(const ctx *c) { return c->timeout_ms - (mono_ms() - t0_mono); }

/* Ship what waits in the outbox, oldest first, while time remains. */
static int flush_outbox(const ctx *c, int *sent_out) {
  ns_outbox_entry *v = NULL;
  size_t n = 0;
  int failed = 0, sent = 0;
  ns_status st = ns_outbox_list(c->spool, &v, &n);
  if (st) {
    ns_error("outbox: %s", ns_err_message(st));
    return 1;
  }
  for (size_t i = 0; i < n; i++) {
    int64_t left = left_ms(c);
    if (left < 50) {
      ns_info("outbox: out of time with %zu segment(s) left", n - i);
      failed++;
      break;
    }
    char *body = NULL;
    size_t len = 0;
    if (ns_outbox_read(&v[i], &body, &len)) continue; /* taken by a concurrent flush */
    long code = 0;
    st = ns_ship_post(c->url, "/v1/segments", c->sock, body, len, left, &code);
    free(body);
    if (st == NS_OK) {
      ns_outbox_remove(&v[i]);
      sent++;
      ns_info("outbox: delivered %s (HTTP %ld)", v[i].key, code);
    } else if (st == NS_ERR_INVAL) {
      /* the service will never take it: drop it, and say so */
      ns_error("outbox: %s rejected, dropping it: %s", v[i].key, ns_err_message(st));
      char dp[4200], line[400];
      snprintf(dp, sizeof dp, "%s/" NS_SPOOL_OUTBOX_DIR "/dropped", c->spool);
      int fd = open(dp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      int ln = snprintf(line, sizeof line, "%" PRId64 " %s rejected-HTTP-%ld\n", ns_spool_now_ms(), v[i].key, code);
      if (fd >= 0) {
        if (write(fd, line, (size_t)ln) < 0) ns_warn("outbox: %s: %s", dp, strerror(errno));
        close(fd);
      }
      ns_outbox_remove(&v[i]);
      failed++;
    } else {
      ns_warn("outbox: %s not delivered: %s", v[i].key, ns_err_message(st));
      failed++;
      /* unreachable service: the rest would fail the same way */
      if (st == NS_ERR_NET || st == NS_ERR_TIMEOUT) break;
    }
  }
  free(v);
  if (sent_out) *sent_out = sent;
  return failed ? 1 : 0;
}

/* StartTime of a job still in slurmctld (plain Epilog= use without the plugin). */
static int64_t scontrol_start(const char *job, int64_t budget_ms) {
  if (budget_ms < 200) return 0;
  /* absolute paths only: the caller's environment is not trusted */
  static const char *const dirs[] = {"/usr/bin", "/usr/local/bin", "/opt/slurm/bin", "/bin"};
  char scontrol[64] = "";
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs && !scontrol[0]; i++) {
    snprintf(scontrol, sizeof scontrol, "%s/scontrol", dirs[i]);
    if (access(scontrol, X_OK) != 0) scontrol[0] = '\0';
  }
  if (!scontrol[0] || access("/usr/bin/timeout", X_OK) != 0) return 0;
  char cmd[256];
  snprintf(cmd, sizeof cmd, "/usr/bin/timeout %.1f %s -o show job %s 2>/dev/null", budget_ms / 2000.0, scontrol, job);
  FILE *p = popen(cmd, "r");
  if (!p) return 0;
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = '\0';
  pclose(p);
  char *s = strstr(buf, " StartTime=");
  if (!s) return 0;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!strptime(s + 11, "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  tm.tm_isdst = -1;
  time_t t = mktime(&tm);
  return t > 0 ? (int64_t)t * 1000 : 0;
}

static const char *env_or(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

static int run_job(const ctx *c, const char *job, const char *node, const char *tag_arg, int64_t start_arg,
                   int64_t end_arg) {
  ns_status st;
  ns_job_marks mk;
  st = ns_spool_read_marks(c->spool, job, &mk);
  if (st && st != NS_ERR_NOTFOUND) ns_warn("job %s: marks: %s", job, ns_err_message(st));
  int64_t start = start_arg > 0 ? start_arg : mk.start_ms;
  int64_t end = end_arg > 0 ? end_arg : mk.end_ms > 0 ? mk.end_ms : ns_spool_now_ms();
  if (start <= 0) start = scontrol_start(job, left_ms(c));
  if (start <= 0 || end < start) {
    ns_error("job %s: no start mark for this node (is the SPANK plugin loaded?); nothing shipped", job);
    ns_spool_remove_marks(c->spool, job);
    return 1;
  }
  const char *tag = tag_arg ? tag_arg : mk.tag[0] ? mk.tag : env_or("SPANK_NSENTRY_TAG", NULL);
  ns_source_opts so;
  if ((st = ns_source_opts_from_config(c->cfg, &so))) {
    ns_error("config: %s", ns_err_message(st));
    return 1;
  }
  int64_t interval = ns_cfg_int(c->cfg, NS_CFG_sampler_interval);
  /* the sampler's last tick before the end may still be being written: wait for it if it fits */
  if (so.kind == NS_SOURCE_SPOOL) {
    int64_t wait_until = mono_ms() + (interval + 300 < left_ms(c) / 2 ? interval + 300 : left_ms(c) / 2);
    for (;;) {
      int64_t last = 0;
      ns_spool_last_ts(c->spool, &last);
      if (last + interval > end || mono_ms() >= wait_until) break;
      struct timespec ts = {0, 50 * 1000000};
      nanosleep(&ts, NULL);
    }
  }
  ns_mts *m = NULL;
  st = ns_source_cut(&so, node, start, end, left_ms(c) * 3 / 4, &m);
  if (st) {
    ns_error("job %s: cutting [%" PRId64 ", %" PRId64 "] from %s: %s; nothing shipped", job, start, end,
             ns_source_kind_name(so.kind), ns_err_message(st));
    ns_spool_remove_marks(c->spool, job);
    return 1;
  }
  const char *cluster = ns_cfg_str(c->cfg, NS_CFG_cluster_name);
  if (strcmp(cluster, ns_config_desc(NS_CFG_cluster_name)->def) == 0) cluster = env_or("SLURM_CLUSTER_NAME", cluster);
  ns_ship_meta meta = {.cluster = cluster,
                       .job_id = job,
                       .node = node,
                       .job_nodes = atoi(env_or("SLURM_JOB_NUM_NODES", "1")),
                       .start_ms = start,
                       .end_ms = end,
                       .interval_ms = interval,
                       .user = getenv("SLURM_JOB_USER"),
                       .partition = getenv("SLURM_JOB_PARTITION"),
                       .account = getenv("SLURM_JOB_ACCOUNT"),
                       .tag = tag,
                       .nodelist = getenv("SLURM_JOB_NODELIST") ? getenv("SLURM_JOB_NODELIST") : getenv("SLURM_NODELIST")};
  if (meta.job_nodes < 1) meta.job_nodes = 1;
  if (getenv("SLURM_JOB_EXIT_CODE")) meta.has_exit_code = true, meta.exit_code = atoi(getenv("SLURM_JOB_EXIT_CODE"));
  char *body = NULL;
  size_t len = 0;
  st = ns_segment_body(&meta, m, &body, &len);
  size_t rows = m->T;
  ns_mts_free(m);
  if (st) {
    ns_error("job %s: %s; nothing shipped", job, ns_err_message(st));
    ns_spool_remove_marks(c->spool, job);
    return 1;
  }
  char key[200];
  snprintf(key, sizeof key, "%s.%s.%s", cluster, job, node);
  int rc = 0;
  long code = 0;
  st = left_ms(c) > 50 ? ns_ship_post(c->url, "/v1/segments", c->sock, body, len, left_ms(c), &code)
                       : ns_errorf(NS_ERR_TIMEOUT, "no time left to ship");
  if (st == NS_OK) {
    ns_info("job %s on %s: shipped %zu samples of [%" PRId64 ", %" PRId64 "] (%zu bytes, HTTP %ld)", job, node, rows,
            start, end, len, code);
    int sent = 0;
    if (left_ms(c) > 100) flush_outbox(c, &sent); /* the service is up: catch up */
  } else if (st == NS_ERR_INVAL) {
    ns_error("job %s: the service rejected the segment: %s", job, ns_err_message(st));
    rc = 1;
  } else {
    int dropped = 0;
    ns_status q = ns_outbox_put(c->spool, key, body, len, c->outbox_max, &dropped);
    if (q) {
      ns_error("job %s: not shipped (%s) and not queued: %s", job, ns_err_message(st), ns_err_message(q));
    } else {
      ns_warn("job %s on %s: [%" PRId64 ", %" PRId64 "] not shipped (%s); queued in the outbox%s", job, node, start, end,
              ns_err_message(st),
              dropped ? " (older entries dropped to make room)" : "");
    }
    rc = 1;
  }
  free(body);
  ns_spool_remove_marks(c->spool, job);
  return rc;
}

/* epilog_detach from the config, read early (before forking). */
static int config_detach(const char *conf, char **sets, int nsets) {
  ns_config *cfg = NULL;
  int d = 0;
  if (ns_config_create(&cfg)) return 0;
  if (!conf && access("/etc/nsentry/nsentry.conf", R_OK) == 0) conf = "/etc/nsentry/nsentry.conf";
  if ((!conf || ns_config_load_file(cfg, conf) == NS_OK) && ns_config_apply_args(cfg, nsets, sets) == NS_OK)
    d = ns_cfg_bool(cfg, NS_CFG_epilog_detach);
  ns_config_free(cfg);
  return d;
}

int main(int argc, char **argv) {
  t0_mono = mono_ms();
  /* slurmd gives epilogs no PATH: never rely on the caller's environment */
  setenv("PATH", SAFE_PATH, 1);
  umask(022);
  static const struct option opts[] = {
      {"config", required_argument, 0, 'c'}, {"set", required_argument, 0, 's'},  {"job", required_argument, 0, 'j'},
      {"start", required_argument, 0, 'S'},  {"end", required_argument, 0, 'E'},  {"node", required_argument, 0, 'N'},
      {"tag", required_argument, 0, 't'},    {"skip", no_argument, 0, 'k'},       {"flush", no_argument, 0, 'F'},
      {"detach", no_argument, 0, 'd'},       {"log", required_argument, 0, 'l'},  {"strict", no_argument, 0, 'x'},
      {"verbose", no_argument, 0, 'v'},      {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
  const char *conf = getenv("NSENTRY_CONF"), *job = NULL, *node = NULL, *tag = NULL, *logf = NULL;
  char *sets[64];
  int nsets = 0, c, flush = 0, detach = 0, skip = 0, verbose = 0;
  int64_t start = 0, end = 0;
  ctx cx = {0};
  ns_log_set_ident("nsentry-epilog");
  while ((c = getopt_long(argc, argv, "c:s:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': conf = optarg; break;
    case 's':
      if (nsets < 64) sets[nsets++] = optarg;
      break;
    case 'j': job = optarg; break;
    case 'S': start = strtoll(optarg, NULL, 10); break;
    case 'E': end = strtoll(optarg, NULL, 10); break;
    case 'N': node = optarg; break;
    case 't': tag = optarg; break;
    case 'k': skip = 1; break;
    case 'F': flush = 1; break;
    case 'd': detach = 1; break;
    case 'l': logf = optarg; break;
    case 'x': cx.strict = true; break;
    case 'v': verbose = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return cx.strict ? 2 : 0;
    }
  }
  if (logf) {
    int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0) dup2(fd, STDERR_FILENO), close(fd);
  }
  /* Epilog= takes no arguments: epilog_detach in the config asks for --detach there */
  const char *sctx = getenv("SLURM_SCRIPT_CONTEXT");
  bool as_epilog = sctx && strcmp(sctx, "epilog_slurmd") == 0;
  if (!detach && as_epilog && !flush) detach = config_detach(conf, sets, nsets);
  if (detach) {
    /* hand the work to a grandchild and let slurmd go on at once */
    pid_t p = fork();
    if (p < 0) ns_warn("fork failed (%s); running in the foreground", strerror(errno));
    if (p > 0) {
      waitpid(p, NULL, 0);
      return 0;
    }
    if (p == 0) {
      setsid();
      if (fork() != 0) _exit(0);
      int dn = open("/dev/null", O_RDWR);
      if (dn >= 0) dup2(dn, STDIN_FILENO), dup2(dn, STDOUT_FILENO), close(dn);
      t0_mono = mono_ms();
    }
  }
  ns_config *cfg = NULL;
  ns_status st = ns_config_create(&cfg);
  if (!st && !conf && access("/etc/nsentry/nsentry.conf", R_OK) == 0) conf = "/etc/nsentry/nsentry.conf";
  if (!st && conf) st = ns_config_load_file(cfg, conf);
  if (!st) st = ns_config_apply_args(cfg, nsets, sets);
  if (st) {
    ns_error("config: %s", ns_err_message(st));
    ns_config_free(cfg);
    return cx.strict ? 1 : 0;
  }
  ns_log_level lvl;
  if (ns_log_parse_level(ns_cfg_str(cfg, NS_CFG_log_level), &lvl)) ns_log_set_level(lvl);
  if (verbose) ns_log_set_level(NS_LOG_DEBUG);
  if (ns_cfg_bool(cfg, NS_CFG_log_syslog) && !logf) ns_log_use_syslog(true);
  cx.cfg = cfg;
  cx.spool = ns_cfg_str(cfg, NS_CFG_spool_dir);
  cx.url = ns_cfg_str(cfg, NS_CFG_service_url);
  cx.sock = ns_cfg_str(cfg, NS_CFG_munge_socket);
  cx.timeout_ms = ns_cfg_int(cfg, NS_CFG_epilog_timeout);
  cx.outbox_max = ns_cfg_int(cfg, NS_CFG_outbox_max_bytes);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  alarm((unsigned)((cx.timeout_ms + 999) / 1000 + 1));
  curl_global_init(CURL_GLOBAL_DEFAULT);

  int rc = 0;
  if (flush) {
    int sent = 0;
    rc = flush_outbox(&cx, &sent);
    int64_t dropped = ns_outbox_dropped(cx.spool);
    if (sent || dropped) ns_info("outbox: %d delivered; %" PRId64 " dropped so far", sent, dropped);
  } else {
    if (!job) job = getenv("SLURM_JOB_ID");
    if (!node) node = getenv("SLURMD_NODENAME");
    char host[256];
    if (!node && gethostname(host, sizeof host) == 0) {
      host[sizeof host - 1] = '\0';
      host[strcspn(host, ".")] = '\0';
      node = host;
    }
    const char *sk = getenv("SPANK_NSENTRY_SKIP");
    if (sk && *sk && strcmp(sk, "0") != 0) skip = 1;
    if (!ns_spool_id_ok(job)) {
      ns_error("no valid job id (--job or SLURM_JOB_ID): '%s'", job ? job : "");
      rc = 1;
    } else if (skip) {
      ns_info("job %s: --nsentry-skip; nothing recorded", job);
      ns_spool_remove_marks(cx.spool, job);
    } else if (tag && !ns_spool_id_ok(tag)) {
      ns_error("job %s: bad tag '%s'; shipping without it", job, tag);
      rc = run_job(&cx, job, node, NULL, start, end);
    } else {
      rc = run_job(&cx, job, node, tag, start, end);
    }
  }
  curl_global_cleanup();
  ns_config_free(cfg);
  return cx.strict ? rc : 0;
}
