/* nsentry doctor: check a node (SPANK plugin, sampler, spool) and the site
 * (service, MUNGE, database, verdict writer's Slurm privileges), and say what
 * to fix for each failure. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "ns_commands.h"
#include "ns_db.h"
#include "ns_source.h"
#include "ns_spool.h"

typedef struct tally {
  int ok, warn, fail;
} tally;

static void report(tally *t, int level, const char *check, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void report(tally *t, int level, const char *check, const char *fix, const char *fmt, ...) {
  static const char *const tag[] = {"ok  ", "WARN", "FAIL"};
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printf("%s %-12s %s\n", tag[level], check, msg);
  if (level && fix) printf("     fix: %s\n", fix);
  if (level == 0) t->ok++;
  else if (level == 1) t->warn++;
  else t->fail++;
}

/* Run a command, first line of output into buf; returns the exit status (-1 = no run). */
static int run_line(const char *cmd, char *buf, size_t n) {
  buf[0] = '\0';
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  if (!fgets(buf, (int)n, p)) buf[0] = '\0';
  char sink[512];
  while (fgets(sink, sizeof sink, p)) {}
  int st = pclose(p);
  buf[strcspn(buf, "\n")] = '\0';
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A key's value from a Slurm-style "Key=Value" file (case-insensitive key). */
static bool conf_value(const char *path, const char *key, char *out, size_t n) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char line[4096];
  bool found = false;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f)) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (strncasecmp(p, key, kl) == 0 && p[kl] == '=') {
      p += kl + 1;
      p[strcspn(p, " \t#\r\n")] = '\0';
      snprintf(out, n, "%s", p);
      found = true;
    }
  }
  fclose(f);
  return found;
}

typedef struct plug {
  char so[1024], args[2048], from[1024];
  bool optional;
} plug;

/* Find the nsentry line in plugstack.conf, following "include" globs. */
static bool find_plugin(const char *path, plug *pl, int depth) {
  if (depth > 4) return false;
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char line[4096];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || !*p) continue;
    p[strcspn(p, "\r\n")] = '\0';
    if (strncmp(p, "include", 7) == 0 && (p[7] == ' ' || p[7] == '\t')) {
      char *pat = p + 8;
      while (*pat == ' ' || *pat == '\t') pat++;
      glob_t g;
      if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; !found && i < g.gl_pathc; i++) found = find_plugin(g.gl_pathv[i], pl, depth + 1);
        globfree(&g);
      }
      continue;
    }
    char kind[32], so[1024];
    int off = 0;
    if (sscanf(p, "%31s %1023s %n", kind, so, &off) >= 2 && strstr(so, "nsentry")) {
      snprintf(pl->so, sizeof pl->so, "%s", so);
      snprintf(pl->args, sizeof pl->args, "%s", off ? p + off : "");
      snprintf(pl->from, sizeof pl->from, "%s", path);
      pl->optional = strcmp(kind, "optional") == 0;
      found = true;
    }
  }
  fclose(f);
  return found;
}

static bool arg_value(const char *args, const char *key, char *out, size_t n) {
  size_t kl = strlen(key);
  for (const char *p = args; p && *p;) {
    while (*p == ' ' || *p == '\t') p++;
    if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
      const char *v = p + kl + 1;
      size_t vl = strcspn(v, " \t");
      snprintf(out, n, "%.*s", (int)vl, v);
      return true;
    }
    p += strcspn(p, " \t");
  }
  return false;
}

/* Is the .so mapped in a running slurmd (loaded at slurmd start in slurmd context)? */
static int slurmd_maps(const char *so, long *pid_out) {
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  int res = -1;
  char real[4096];
  if (!realpath(so, real)) snprintf(real, sizeof real, "%s", so);
  while ((e = readdir(d))) {
    char p[300], comm[64] = "";
    long pid = strtol(e->d_name, NULL, 10);
    if (pid <= 0) continue;
    snprintf(p, sizeof p, "/proc/%ld/comm", pid);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    if (!fgets(comm, sizeof comm, f)) comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    if (strcmp(comm, "slurmd") != 0) continue;
    *pid_out = pid;
    res = 0;
    snprintf(p, sizeof p, "/proc/%ld/maps", pid);
    f = fopen(p, "r");
    if (!f) continue;
    char line[4600];
    while (fgets(line, sizeof line, f))
      if (strstr(line, real)) res = 1;
    fclose(f);
    if (res == 1) break;
  }
  closedir(d);
  return res;
}

static void check_plugin(tally *t, const char *slurm_conf, const char *plugstack_arg, char *spool_from_plugin,
                         size_t sn) {
  char plugstack[1024];
  if (plugstack_arg) {
    snprintf(plugstack, sizeof plugstack, "%s", plugstack_arg);
  } else if (!conf_value(slurm_conf, "PlugStackConfig", plugstack, sizeof plugstack)) {
    snprintf(plugstack, sizeof plugstack, "%s", slurm_conf);
    char *slash = strrchr(plugstack, '/');
    snprintf(slash ? slash + 1 : plugstack, sizeof plugstack - (size_t)(slash ? slash + 1 - plugstack : 0),
             "plugstack.conf");
  }
  plug pl;
  memset(&pl, 0, sizeof pl);
  if (!find_plugin(plugstack, &pl, 0)) {
    report(t, 2, "plugstack", "install the one-line file (optional /path/nsentry_spank.so spool_dir=...) in "
                              "plugstack.conf.d and add 'include /etc/slurm/plugstack.conf.d/*' to plugstack.conf",
           "no nsentry line in %s (or its includes)", plugstack);
    return;
  }
  report(t, pl.optional ? 0 : 1, "plugstack",
         "use 'optional' so that a missing or broken plugin never stops jobs", "%s: %s %s (%s)", pl.from, pl.so,
         pl.args, pl.optional ? "optional" : "required");
  arg_value(pl.args, "spool_dir", spool_from_plugin, sn);
  char ep[1024];
  if (arg_value(pl.args, "epilog", ep, sizeof ep) && access(ep, X_OK) != 0)
    report(t, 2, "epilog", "install nsentry-epilog there or fix epilog= in the plugstack line", "%s: not executable",
           ep);
  void *h = dlopen(pl.so, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    report(t, 2, "plugin", "install the plugin at the path named in plugstack.conf", "cannot load %s: %s", pl.so,
           dlerror());
    return;
  }
  const unsigned int *ver = dlsym(h, "plugin_version");
  char line[256];
  unsigned maj = 0, min = 0, mic = 0;
  /* "slurm 22.05.8" upstream, "slurm-wlm 22.05.8" on Debian */
  if (run_line("sinfo -V 2>/dev/null", line, sizeof line) == 0) {
    const char *sp = strchr(line, ' ');
    if (sp) sscanf(sp + 1, "%u.%u.%u", &maj, &min, &mic);
  }
  if (!ver) {
    report(t, 2, "plugin", "rebuild nsentry_spank.so (SPANK_PLUGIN missing)", "%s has no plugin_version", pl.so);
  } else if (!maj) {
    report(t, 1, "plugin", "put Slurm's client commands in PATH", "built for Slurm %u.%02u.%u; sinfo -V failed",
           *ver >> 16, (*ver >> 8) & 0xff, *ver & 0xff);
  } else if ((*ver >> 16) != maj || ((*ver >> 8) & 0xff) != min) {
    report(t, 2, "plugin", "rebuild nsentry against the libslurm-dev of the running Slurm", "built for Slurm %u.%02u, running %u.%02u",
           *ver >> 16, (*ver >> 8) & 0xff, maj, min);
  } else {
    report(t, 0, "plugin", NULL, "%s built for Slurm %u.%02u.%u, running %s", pl.so, *ver >> 16, (*ver >> 8) & 0xff,
           *ver & 0xff, line);
  }
  dlclose(h);
  long pid = 0;
  int m = slurmd_maps(pl.so, &pid);
  if (m < 0) report(t, 1, "slurmd", "start slurmd on this node", "no slurmd process found");
  else if (m == 0)
    report(t, 2, "slurmd", "restart slurmd after installing the plugin (slurmd loads SPANK plugins at start)",
           "slurmd (pid %ld) has not loaded %s", pid, pl.so);
  else report(t, 0, "slurmd", NULL, "slurmd (pid %ld) has the plugin loaded", pid);
}

static void check_node(tally *t, ns_config *cfg, const char *spool) {
  int64_t interval = ns_cfg_int(cfg, NS_CFG_sampler_interval);
  /* sampler */
  char path[4200], buf[64] = "";
  snprintf(path, sizeof path, "%s/" NS_SPOOL_PIDFILE, spool);
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f) {
    if (fgets(buf, sizeof buf, f)) pid = strtol(buf, NULL, 10);
    fclose(f);
  }
  char comm[64] = "";
  if (pid > 0) {
    char cp[64];
    snprintf(cp, sizeof cp, "/proc/%ld/comm", pid);
    FILE *c = fopen(cp, "r");
    if (c) {
      if (!fgets(comm, sizeof comm, c)) comm[0] = '\0';
      fclose(c);
    }
    comm[strcspn(comm, "\n")] = '\0';
  }
  if (pid <= 0 || strncmp(comm, "nsentry-sampler", 15) != 0)
    report(t, 2, "sampler", "start it: systemctl enable --now nsentry-sampler (see docs/admin-guide.md)",
           "no nsentry-sampler running on spool %s", spool);
  else report(t, 0, "sampler", NULL, "pid %ld", pid);
  int64_t last = 0;
  ns_spool_last_ts(spool, &last);
  int64_t age = last ? ns_spool_now_ms() - last : -1;
  if (age < 0)
    report(t, 2, "spool-data", "start the sampler; check its log for errors", "no samples in %s/ring", spool);
  else if (age > 3 * interval)
    report(t, 2, "spool-data", "the sampler is stuck or cannot write: check its log and the disk",
           "newest sample is %.1f s old (interval %.1f s)", age / 1000.0, interval / 1000.0);
  else report(t, 0, "spool-data", NULL, "newest sample %.1f s old", age / 1000.0);
  /* spool writable, not full */
  snprintf(path, sizeof path, "%s/marks/.doctor.%ld", spool, (long)getpid());
  f = fopen(path, "w");
  if (!f)
    report(t, 2, "spool", "create it as root: install -d -m 0755 <spool_dir> (root writes marks from slurmstepd)",
           "%s/marks is not writable: %s", spool, strerror(errno));
  else {
    fclose(f);
    unlink(path);
    report(t, 0, "spool", NULL, "%s writable", spool);
  }
  ns_spool *sp = NULL;
  if (ns_spool_open(spool, NULL, &sp) == NS_OK) {
    int64_t bytes = ns_spool_ring_bytes(sp), cap = ns_cfg_int(cfg, NS_CFG_spool_max_bytes);
    ns_spool_close(sp);
    struct statvfs v;
    double freep = statvfs(spool, &v) == 0 && v.f_blocks ? 100.0 * (double)v.f_bavail / (double)v.f_blocks : 100;
    if (freep < 5)
      report(t, 2, "disk", "free space on the spool filesystem (the sampler stops writing below 5 %)",
             "%.1f %% free", freep);
    else report(t, 0, "disk", NULL, "ring %.1f MiB of %.1f MiB cap; filesystem %.1f %% free", bytes / 1048576.0,
                cap / 1048576.0, freep);
  }
  ns_outbox_entry *e = NULL;
  size_t n = 0;
  ns_outbox_list(spool, &e, &n);
  free(e);
  int64_t dropped = ns_outbox_dropped(spool);
  if (n || dropped)
    report(t, 1, "outbox", "make the service reachable; the sampler retries every minute",
           "%zu segment(s) waiting, %" PRId64 " dropped so far", n, dropped);
  else report(t, 0, "outbox", NULL, "empty");
}

static void check_site(tally *t, ns_config *cfg, const char *writer) {
  const char *url = ns_cfg_str(cfg, NS_CFG_service_url), *sock = ns_cfg_str(cfg, NS_CFG_munge_socket);
  char *cred = NULL;
  ns_status st = ns_munge_encode(sock, "doctor", &cred);
  free(cred);
  if (st)
    report(t, 2, "munge", "start munged with the site's key (or set munge_socket)", "%s", ns_err_message(st));
  else report(t, 0, "munge", NULL, "credential encoded (socket %s)", *sock ? sock : "default");
  long code = 0;
  st = ns_ship_get(url, "/healthz", 3000, &code);
  if (st) {
    report(t, 2, "service", "start nsentryd (systemctl start nsentryd) or fix service_url", "%s: %s", url,
           ns_err_message(st));
  } else {
    /* a valid credential on an empty body must get 400 (body), not 401/403 (auth) */
    st = ns_ship_post(url, "/v1/segments", sock, "{}", 2, 3000, &code);
    if (code == 400 || code == 422)
      report(t, 0, "service", NULL, "%s reachable, MUNGE credential accepted", url);
    else if (code == 401)
      report(t, 2, "service", "use the same munge.key on this node and the service host",
             "%s rejected the MUNGE credential: %s", url, ns_err_message(st));
    else if (code == 403)
      report(t, 2, "service", "add this node's epilog user (root) to ingest_uids of nsentryd",
             "%s: not authorised: %s", url, ns_err_message(st));
    else
      report(t, 2, "service", "check the nsentryd log", "%s: unexpected answer (HTTP %ld): %s", url, code,
             ns_err_message(st));
  }
  const char *uri = ns_cfg_str(cfg, NS_CFG_db);
  ns_db *db = NULL;
  st = ns_db_open(uri, &db);
  if (!st) st = ns_db_exec(db, "SELECT 1");
  if (st) report(t, 2, "db", "fix db= in nsentry.conf, or start the database", "%s: %s", uri, ns_err_message(st));
  else report(t, 0, "db", NULL, "%s reachable", uri);
  ns_db_close(db);
  /* the verdict writer needs root, SlurmUser, or AdminLevel Operator/Admin in slurmdbd */
  char line[512], slurm_user[128] = "";
  if (run_line("scontrol show config 2>/dev/null | sed -n 's/^SlurmUser *= *\\([^(]*\\).*/\\1/p'", slurm_user,
               sizeof slurm_user) != 0)
    slurm_user[0] = '\0';
  if (!strcmp(writer, "root") || (slurm_user[0] && !strcmp(writer, slurm_user))) {
    report(t, 0, "verdicts", NULL, "writer '%s' is root or SlurmUser", writer);
  } else {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "sacctmgr -n -P show user '%s' format=AdminLevel 2>&1", writer);
    int rc = run_line(cmd, line, sizeof line);
    if (rc != 0)
      report(t, 2, "verdicts", "check slurmdbd (sacctmgr must work from this host)", "sacctmgr failed: %s", line);
    else if (!strcasecmp(line, "Operator") || !strcasecmp(line, "Administrator"))
      report(t, 0, "verdicts", NULL, "writer '%s' has AdminLevel %s", writer, line);
    else
      report(t, 2, "verdicts", "sacctmgr -i modify user <writer> set AdminLevel=Operator",
             "writer '%s' has AdminLevel '%s': slurmdb_job_modify would be refused", writer,
             line[0] ? line : "none");
  }
}

int cmd_doctor(int argc, char **argv, ns_config *cfg) {
  bool node = true, site = true;
  const char *plugstack = NULL, *writer = NULL;
  const char *slurm_conf = getenv("SLURM_CONF") ? getenv("SLURM_CONF") : "/etc/slurm/slurm.conf";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--node")) site = false;
    else if (!strcmp(argv[i], "--site")) node = false;
    else if (!strcmp(argv[i], "--plugstack") && i + 1 < argc) plugstack = argv[++i];
    else if (!strcmp(argv[i], "--slurm-conf") && i + 1 < argc) slurm_conf = argv[++i];
    else if (!strcmp(argv[i], "--writer") && i + 1 < argc) writer = argv[++i];
    else {
      FILE *f = strcmp(argv[i], "--help") ? stderr : stdout;
      fprintf(f, "usage: nsentry doctor [--node | --site] [--plugstack FILE] [--slurm-conf FILE] [--writer USER]\n"
                 "  --node    only this node: SPANK plugin, sampler, spool, outbox\n"
                 "  --site    only the site: MUNGE, nsentryd, database, verdict writer privileges\n"
                 "  --writer  user nsentryd writes verdicts as (default: the current user)\n"
                 "Prints one line per check and a fix for each failure; exit 1 if any check failed.\n");
      return f == stdout ? 0 : 2;
    }
  }
  char me[128] = "root";
  struct passwd *pw = getpwuid(geteuid());
  if (pw) snprintf(me, sizeof me, "%s", pw->pw_name);
  if (!writer) writer = me;
  tally t = {0, 0, 0};
  const char *spool = ns_cfg_str(cfg, NS_CFG_spool_dir);
  char plug_spool[1024] = "";
  if (node) {
    check_plugin(&t, slurm_conf, plugstack, plug_spool, sizeof plug_spool);
    if (plug_spool[0] && strcmp(plug_spool, spool) != 0)
      report(&t, 2, "spool_dir", "use the same spool_dir in nsentry.conf and the plugstack line",
             "plugin writes marks to %s but nsentry.conf says spool_dir=%s", plug_spool, spool);
    check_node(&t, cfg, spool);
  }
  if (site) check_site(&t, cfg, writer);
  printf("doctor: %d ok, %d warning(s), %d failure(s)\n", t.ok, t.warn, t.fail);
  return t.fail ? 1 : 0;
}
