/* The SPANK plugin's node callbacks, loaded with dlopen: this program supplies
 * SPANK's entry points the way slurmstepd does in job_script context, so the
 * failure paths (unwritable spool, missing epilog, bad arguments) can be driven
 * directly. The real-Slurm path is covered by tests/e2e. */
#include <stdint.h>
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <slurm/spank.h>
#include "ns_spool.h"

static uint32_t cur_job = 77;
static int job_id_ok = 1, opt_given = 0;
static char logbuf[8192];

spank_err_t spank_get_item(spank_t sp, spank_item_t item, ...) {
  (void)sp;
  va_list ap;
  va_start(ap, item);
  spank_err_t rc = ESPANK_NOT_AVAIL;
  if (item == S_JOB_ID && job_id_ok) {
    *va_arg(ap, uint32_t *) = cur_job;
    rc = ESPANK_SUCCESS;
  }
  va_end(ap);
  return rc;
}
spank_err_t spank_option_register(spank_t sp, struct spank_option *o) { (void)sp, (void)o; return ESPANK_SUCCESS; }
spank_err_t spank_option_getopt(spank_t sp, struct spank_option *o, char **a) {
  (void)sp;
  if (opt_given && !strcmp(o->name, "nsentry-skip")) {
    *a = NULL;
    return ESPANK_SUCCESS;
  }
  return ESPANK_ERROR;
}
spank_context_t spank_context(void) { return S_CTX_JOB_SCRIPT; }
spank_err_t spank_job_control_setenv(spank_t sp, const char *n, const char *v, int o) {
  (void)sp, (void)n, (void)v, (void)o;
  return ESPANK_SUCCESS;
}
static void logf_(const char *fmt, va_list ap) {
  size_t l = strlen(logbuf);
  vsnprintf(logbuf + l, sizeof logbuf - l, fmt, ap);
  l = strlen(logbuf);
  if (l + 1 < sizeof logbuf) logbuf[l] = '\n', logbuf[l + 1] = '\0';
}
void slurm_info(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  logf_(fmt, ap);
  va_end(ap);
}
void slurm_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  logf_(fmt, ap);
  va_end(ap);
}

typedef int (*cb_t)(spank_t, int, char **);
static void *h;
static cb_t prolog, epilog_cb, init_cb;

static void load(void) {
  const char *b = getenv("NS_BUILD_ROOT");
  if (!b) cr_skip_test("NS_BUILD_ROOT not set");
  char p[1024];
  snprintf(p, sizeof p, "%s/spank/nsentry_spank.so", b);
  h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(h, "%s", dlerror());
  prolog = (cb_t)dlsym(h, "slurm_spank_job_prolog");
  epilog_cb = (cb_t)dlsym(h, "slurm_spank_job_epilog");
  init_cb = (cb_t)dlsym(h, "slurm_spank_init");
  cr_assert(prolog && epilog_cb && init_cb);
  logbuf[0] = '\0';
  job_id_ok = 1, opt_given = 0;
  unsetenv("SPANK_NSENTRY_SKIP");
  unsetenv("SPANK_NSENTRY_TAG");
  setenv("SLURMD_NODENAME", "cnT", 1);
}
static void unload(void) {
  if (h) dlclose(h);
  h = NULL;
}

TestSuite(spank_cb, .init = load, .fini = unload);

Test(spank_cb, marks_written_and_always_zero) {
  char d[] = "/tmp/ns_spank_XXXXXX";
  cr_assert(mkdtemp(d));
  char a0[300], a1[300], a2[300];
  snprintf(a0, sizeof a0, "spool_dir=%s/sp", d); /* created on demand */
  snprintf(a1, sizeof a1, "spawn=no");
  snprintf(a2, sizeof a2, "color=blue");
  char *av[] = {a0, a1, a2};
  setenv("SPANK_NSENTRY_TAG", "tg1", 1);
  cr_assert_eq(prolog(NULL, 3, av), 0);
  cr_assert_eq(epilog_cb(NULL, 3, av), 0);
  ns_job_marks mk;
  char sp[400];
  snprintf(sp, sizeof sp, "%s/sp", d);
  cr_assert_eq(ns_spool_read_marks(sp, "77", &mk), NS_OK);
  cr_assert_gt(mk.start_ms, 0);
  cr_assert_geq(mk.end_ms, mk.start_ms);
  cr_assert_str_eq(mk.node, "cnT");
  cr_assert_str_eq(mk.tag, "tg1");
  cr_assert(strstr(logbuf, "nsentry: unknown plugstack argument 'color'"), "%s", logbuf);
  /* logged once per process, not once per callback */
  cr_assert_null(strstr(strstr(logbuf, "'color'") + 1, "'color'"), "%s", logbuf);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", d);
  cr_assert_eq(system(cmd), 0);
}

Test(spank_cb, skip_by_env_or_option_writes_nothing) {
  char d[] = "/tmp/ns_spank_XXXXXX";
  cr_assert(mkdtemp(d));
  char a0[300];
  snprintf(a0, sizeof a0, "spool_dir=%s", d);
  char *av[] = {a0};
  setenv("SPANK_NSENTRY_SKIP", "1", 1);
  cr_assert_eq(prolog(NULL, 1, av), 0);
  cr_assert_eq(epilog_cb(NULL, 1, av), 0);
  unsetenv("SPANK_NSENTRY_SKIP");
  opt_given = 1;
  cur_job = 78;
  cr_assert_eq(prolog(NULL, 1, av), 0);
  cr_assert_eq(epilog_cb(NULL, 1, av), 0);
  ns_job_marks mk;
  cr_assert_eq(ns_spool_read_marks(d, "77", &mk), NS_ERR_NOTFOUND);
  cr_assert_eq(ns_spool_read_marks(d, "78", &mk), NS_ERR_NOTFOUND);
  cur_job = 77;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", d);
  cr_assert_eq(system(cmd), 0);
}

Test(spank_cb, failures_are_logged_never_returned) {
  /* spool under a regular file: cannot be created */
  char f[] = "/tmp/ns_spank_file_XXXXXX";
  int fd = mkstemp(f);
  cr_assert_geq(fd, 0);
  close(fd);
  char a0[300], a1[300], a2[100];
  snprintf(a0, sizeof a0, "spool_dir=%s/sub", f);
  snprintf(a1, sizeof a1, "epilog=/nonexistent/nsentry-epilog");
  snprintf(a2, sizeof a2, "novalue");
  char *av[] = {a0, a1, a2};
  cr_assert_eq(prolog(NULL, 3, av), 0);
  cr_assert_eq(epilog_cb(NULL, 3, av), 0);
  cr_assert(strstr(logbuf, "nsentry: cannot create"), "%s", logbuf);
  cr_assert(strstr(logbuf, "is not key=value"), "%s", logbuf);
  unlink(f);
  /* a writable spool but a missing epilog program */
  char d[] = "/tmp/ns_spank_XXXXXX";
  cr_assert(mkdtemp(d));
  snprintf(a0, sizeof a0, "spool_dir=%s", d);
  logbuf[0] = '\0';
  cr_assert_eq(epilog_cb(NULL, 2, av), 0);
  cr_assert(strstr(logbuf, "nsentry: job 77: epilog /nonexistent/nsentry-epilog is not executable"), "%s", logbuf);
  /* no job id available */
  job_id_ok = 0;
  logbuf[0] = '\0';
  cr_assert_eq(prolog(NULL, 1, av), 0);
  cr_assert_eq(epilog_cb(NULL, 1, av), 0);
  cr_assert(strstr(logbuf, "no job id"), "%s", logbuf);
  /* every line carries the prefix */
  for (char *l = logbuf; *l; l = strchr(l, '\n') + 1) cr_assert(!strncmp(l, "nsentry: ", 9), "%s", l);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", d);
  cr_assert_eq(system(cmd), 0);
}

Test(spank_cb, spawns_the_epilog_detached) {
  char d[] = "/tmp/ns_spank_XXXXXX";
  cr_assert(mkdtemp(d));
  /* a stand-in epilog that records its arguments */
  char prog[400], out[400];
  snprintf(prog, sizeof prog, "%s/ep.sh", d);
  snprintf(out, sizeof out, "%s/args", d);
  FILE *f = fopen(prog, "w");
  fprintf(f, "#!/bin/sh\necho \"$@\" > %s.tmp && mv %s.tmp %s\n", out, out, out);
  fclose(f);
  chmod(prog, 0755);
  char a0[300], a1[500], a2[300];
  snprintf(a0, sizeof a0, "spool_dir=%s", d);
  snprintf(a1, sizeof a1, "epilog=%s", prog);
  snprintf(a2, sizeof a2, "conf=/etc/x.conf");
  char *av[] = {a0, a1, a2};
  setenv("SPANK_NSENTRY_TAG", "tg2", 1);
  cr_assert_eq(prolog(NULL, 3, av), 0);
  cr_assert_eq(epilog_cb(NULL, 3, av), 0);
  char buf[512] = "";
  for (int i = 0; i < 100 && access(out, R_OK) != 0; i++) usleep(20000);
  f = fopen(out, "r");
  cr_assert_not_null(f, "epilog not started");
  cr_assert(fgets(buf, sizeof buf, f));
  fclose(f);
  cr_assert(strstr(buf, "--job 77 --end "), "%s", buf);
  cr_assert(strstr(buf, "--node cnT --tag tg2 -c /etc/x.conf"), "%s", buf);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", d);
  cr_assert_eq(system(cmd), 0);
}
