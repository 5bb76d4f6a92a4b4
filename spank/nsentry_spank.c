/* nsentry SPANK plugin (spank.h only; no libslurm, no libnsentry).
 *
 * - Options --nsentry-skip and --nsentry-tag=TAG (sbatch/srun/salloc), passed to
 *   the node side as SPANK_NSENTRY_SKIP / SPANK_NSENTRY_TAG through the job
 *   control environment.
 * - slurm_spank_job_prolog / slurm_spank_job_epilog (root, job_script context,
 *   once per node per job): append "start <ms> <node>" / "end <ms> <node>" to
 *   <spool_dir>/marks/<job_id> (format in lib/ns_spool.h), and at the end start a
 *   detached nsentry-epilog (double fork) so slurmd never waits on the network.
 * - Every callback returns 0 on the node: nsentry must never fail a job or
 *   drain a node. Errors are logged with the "nsentry:" prefix.
 *
 * plugstack.conf arguments (strict key=value; unknown keys are logged once):
 *   spool_dir=DIR  (default /var/spool/nsentry)   epilog=PATH (default /usr/sbin/nsentry-epilog)
 *   conf=FILE      (passed to the epilog as -c)    log=FILE   (the epilog's stderr; default none)
 *   spawn=yes|no   (no: marks only, for sites running nsentry-epilog as Epilog=)
 * init is not called in job_script context, so arguments are parsed in every callback. */
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <slurm/spank.h>

SPANK_PLUGIN(nsentry, 1);

#define TAG_MAX 64

typedef struct nsargs {
  char spool_dir[1024];
  char epilog[1024];
  char conf[1024];
  char log[1024];
  int spawn;
} nsargs;

static int opt_skip;
static char opt_tag[TAG_MAX + 1];
static int warned_args;

static int tag_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > TAG_MAX) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
          *s == '.' || *s == '-'))
      return 0;
  return 1;
}

static int opt_cb(int val, const char *optarg, int remote) {
  (void)remote;
  if (val == 1) {
    opt_skip = 1;
    return 0;
  }
  if (!optarg || !tag_ok(optarg)) {
    slurm_error("nsentry: --nsentry-tag must be 1-%d characters of [A-Za-z0-9._-]", TAG_MAX);
    return -1; /* a bad option is refused at submission, never on the node */
  }
  snprintf(opt_tag, sizeof opt_tag, "%s", optarg);
  return 0;
}

static struct spank_option opt_skip_def = {"nsentry-skip", NULL, "Do not record nsentry telemetry for this job",
                                           0, 1, opt_cb};
static struct spank_option opt_tag_def = {"nsentry-tag", "tag", "Attach TAG to this job's nsentry telemetry", 1, 2,
                                          opt_cb};

static void set_str(char *dst, size_t n, const char *v, const char *key) {
  if ((size_t)snprintf(dst, n, "%s", v) >= n && !warned_args)
    slurm_error("nsentry: plugstack argument %s is too long; truncated", key);
}

/* Strict key=value; unknown or malformed arguments are logged once per process. */
static void parse_args(int ac, char **av, nsargs *a) {
  memset(a, 0, sizeof *a);
  snprintf(a->spool_dir, sizeof a->spool_dir, "/var/spool/nsentry");
  snprintf(a->epilog, sizeof a->epilog, "/usr/sbin/nsentry-epilog");
  a->spawn = 1;
  for (int i = 0; i < ac; i++) {
    const char *eq = strchr(av[i], '=');
    size_t kl = eq ? (size_t)(eq - av[i]) : 0;
    const char *v = eq ? eq + 1 : "";
#define KEY(k) (kl == sizeof(k) - 1 && strncmp(av[i], k, kl) == 0)
    if (!eq) {
      if (!warned_args) slurm_error("nsentry: plugstack argument '%s' is not key=value; ignored", av[i]);
    } else if (KEY("spool_dir")) {
      set_str(a->spool_dir, sizeof a->spool_dir, v, "spool_dir");
    } else if (KEY("epilog")) {
      set_str(a->epilog, sizeof a->epilog, v, "epilog");
    } else if (KEY("conf")) {
      set_str(a->conf, sizeof a->conf, v, "conf");
    } else if (KEY("log")) {
      set_str(a->log, sizeof a->log, v, "log");
    } else if (KEY("spawn")) {
      if (!strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "true")) a->spawn = 1;
      else if (!strcmp(v, "no") || !strcmp(v, "0") || !strcmp(v, "false")) a->spawn = 0;
      else if (!warned_args) slurm_error("nsentry: plugstack argument spawn=%s: expected yes or no", v);
    } else if (!warned_args) {
      slurm_error("nsentry: unknown plugstack argument '%.*s' ignored (known: spool_dir, epilog, conf, log, spawn)",
                  (int)kl, av[i]);
    }
#undef KEY
  }
  warned_args = 1;
}

int slurm_spank_init(spank_t sp, int ac, char **av) {
  nsargs a;
  parse_args(ac, av, &a);
  if (spank_option_register(sp, &opt_skip_def) != ESPANK_SUCCESS ||
      spank_option_register(sp, &opt_tag_def) != ESPANK_SUCCESS)
    slurm_error("nsentry: cannot register the --nsentry-* options");
  return 0;
}

/* In sbatch/salloc/srun the options are known now: hand them to the node side. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av) {
  nsargs a;
  parse_args(ac, av, &a);
  spank_context_t ctx = spank_context();
  if (ctx != S_CTX_ALLOCATOR && ctx != S_CTX_LOCAL) return 0;
  if (opt_skip && spank_job_control_setenv(sp, "NSENTRY_SKIP", "1", 1) != ESPANK_SUCCESS)
    slurm_error("nsentry: cannot pass --nsentry-skip to the job");
  if (opt_tag[0] && spank_job_control_setenv(sp, "NSENTRY_TAG", opt_tag, 1) != ESPANK_SUCCESS)
    slurm_error("nsentry: cannot pass --nsentry-tag to the job");
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int job_skipped(spank_t sp) {
  const char *e = getenv("SPANK_NSENTRY_SKIP");
  if (e && *e && strcmp(e, "0") != 0) return 1;
  char *arg = NULL;
  return spank_option_getopt(sp, &opt_skip_def, &arg) == ESPANK_SUCCESS;
}

static const char *job_tag(spank_t sp) {
  const char *e = getenv("SPANK_NSENTRY_TAG");
  if (e && tag_ok(e)) return e;
  char *arg = NULL;
  if (spank_option_getopt(sp, &opt_tag_def, &arg) == ESPANK_SUCCESS && arg && tag_ok(arg)) return arg;
  return NULL;
}

static const char *node_name(void) {
  const char *n = getenv("SLURMD_NODENAME");
  return n && *n && !strchr(n, ' ') && !strchr(n, '\n') ? n : "-";
}

static int ensure_dir(const char *p) { return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1; }

/* One O_APPEND write per line: concurrent writers never interleave. */
static int write_mark(const nsargs *a, uint32_t job, const char *what, int64_t ms, const char *tag) {
  char path[1200], line[512];
  snprintf(path, sizeof path, "%s/marks", a->spool_dir);
  if (ensure_dir(a->spool_dir) || ensure_dir(path)) {
    slurm_error("nsentry: cannot create %s: %s", path, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/marks/%" PRIu32, a->spool_dir, job);
  int n = snprintf(line, sizeof line, "%s %" PRId64 " %s\n", what, ms, node_name());
  if (tag) n += snprintf(line + n, sizeof line - (size_t)n, "tag %s\n", tag);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    slurm_error("nsentry: job %" PRIu32 ": cannot open %s: %s", job, path, strerror(errno));
    return -1;
  }
  ssize_t w = write(fd, line, (size_t)n);
  int err = errno;
  close(fd);
  if (w != n) {
    slurm_error("nsentry: job %" PRIu32 ": cannot write %s: %s", job, path, strerror(err));
    return -1;
  }
  return 0;
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av) {
  int64_t t = now_ms(); /* first: the mark is the job's start on this node */
  nsargs a;
  parse_args(ac, av, &a);
  uint32_t job = 0;
  if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS) {
    slurm_error("nsentry: job_prolog: no job id; nothing recorded");
    return 0;
  }
  if (job_skipped(sp)) {
    slurm_info("nsentry: job %" PRIu32 ": --nsentry-skip; nothing recorded", job);
    return 0;
  }
  write_mark(&a, job, "start", t, NULL);
  return 0;
}

extern char **environ;

static void spawn_epilog(const nsargs *a, uint32_t job, int64_t end, const char *tag) {
  if (access(a->epilog, X_OK) != 0) {
    slurm_error("nsentry: job %" PRIu32 ": epilog %s is not executable (%s); segment not shipped", job, a->epilog,
                strerror(errno));
    return;
  }
  /* Everything the children need is built before fork: slurmstepd may have
   * other threads, so the children only make async-signal-safe calls. */
  char jb[16], eb[24];
  snprintf(jb, sizeof jb, "%" PRIu32, job);
  snprintf(eb, sizeof eb, "%" PRId64, end);
  char *argv[16];
  int i = 0;
  argv[i++] = (char *)a->epilog;
  argv[i++] = (char *)"--job", argv[i++] = jb;
  argv[i++] = (char *)"--end", argv[i++] = eb;
  argv[i++] = (char *)"--node", argv[i++] = (char *)node_name();
  if (tag) argv[i++] = (char *)"--tag", argv[i++] = (char *)tag;
  if (a->conf[0]) argv[i++] = (char *)"-c", argv[i++] = (char *)a->conf;
  argv[i] = NULL;
  size_t ne = 0;
  while (environ && environ[ne]) ne++;
  char **envp = calloc(ne + 2, sizeof *envp);
  if (!envp) {
    slurm_error("nsentry: job %" PRIu32 ": out of memory; segment not shipped", job);
    return;
  }
  size_t k = 0;
  static char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  envp[k++] = path_env;
  for (size_t j = 0; j < ne; j++)
    if (strncmp(environ[j], "PATH=", 5) != 0) envp[k++] = environ[j];
  envp[k] = NULL;
  sigset_t none;
  sigemptyset(&none);
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;

  pid_t p = fork();
  if (p < 0) {
    slurm_error("nsentry: job %" PRIu32 ": fork failed: %s", job, strerror(errno));
    free(envp);
    return;
  }
  if (p > 0) {
    int st;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {}
    free(envp);
    return;
  }
  /* child: new session, then the grandchild runs the epilog; slurmstepd waits
   * only for this short-lived child */
  setsid();
  sigaction(SIGHUP, &ign, NULL);
  if (fork() != 0) _exit(0);
  int dn = open("/dev/null", O_RDWR);
  if (dn >= 0) {
    dup2(dn, 0), dup2(dn, 1), dup2(dn, 2);
    if (dn > 2) close(dn);
  }
  if (a->log[0]) {
    int lf = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (lf >= 0) dup2(lf, 2), close(lf);
  }
  for (int fd = 3; fd < 1024; fd++) close(fd);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(a->epilog, argv, envp);
  _exit(0);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av) {
  int64_t t = now_ms();
  nsargs a;
  parse_args(ac, av, &a);
  uint32_t job = 0;
  if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS) {
    slurm_error("nsentry: job_epilog: no job id; nothing recorded");
    return 0;
  }
  if (job_skipped(sp)) return 0;
  const char *tag = job_tag(sp);
  if (write_mark(&a, job, "end", t, tag) != 0) return 0;
  if (a.spawn) spawn_epilog(&a, job, t, tag);
  return 0;
}
