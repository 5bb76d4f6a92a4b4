/* `nsentry sacct [sacct args]`: run sacct and add an Anomaly column from the
 * nsentry database, so the column exists even where another tool owns
 * AdminComment. Output: sacct-style table, or --parsable2/-P (and -p). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ns_commands.h"
#include "ns_store.h"
#include "svc.h"

#define DEFAULT_FORMAT "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"

typedef struct row {
  char **f;
  size_t n;
} row;

static void split_row(char *line, row *r) {
  size_t cap = 16;
  r->n = 0;
  r->f = malloc(cap * sizeof *r->f);
  for (char *p = line;;) {
    char *bar = strchr(p, '|');
    if (r->n == cap) r->f = realloc(r->f, (cap *= 2) * sizeof *r->f);
    r->f[r->n++] = p;
    if (!bar) break;
    *bar = '\0';
    p = bar + 1;
  }
}

int cmd_sacct(int argc, char **argv, ns_config *cfg) {
  const char *fmt = getenv("SACCT_FORMAT");
  bool parsable2 = false, parsable = false, noheader = false;
  char **pass = calloc((size_t)argc + 8, sizeof *pass);
  int np = 0;
  pass[np++] = "sacct";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: nsentry sacct [sacct options]\n"
             "Runs sacct and appends an Anomaly column from the nsentry database (%s).\n"
             "Anomaly: ANOMALOUS/normal score=S once final, 'queued' while scoring is pending,\n"
             "'pending' while nodes are missing, empty for jobs nsentry never saw.\n",
             ns_cfg_str(cfg, NS_CFG_db));
      free(pass);
      return 0;
    }
    if (!strcmp(a, "-P") || !strcmp(a, "--parsable2")) parsable2 = true;
    else if (!strcmp(a, "-p") || !strcmp(a, "--parsable")) parsable = true;
    else if (!strcmp(a, "-n") || !strcmp(a, "--noheader")) noheader = true;
    else if ((!strcmp(a, "-o") || !strcmp(a, "--format")) && i + 1 < argc) fmt = argv[++i];
    else if (!strncmp(a, "--format=", 9)) fmt = a + 9;
    else if (!strncmp(a, "-o", 2) && a[2]) fmt = a + 2;
    else pass[np++] = argv[i];
  }
  if (!fmt || !*fmt) fmt = DEFAULT_FORMAT;
  /* Our two key columns go last: the rest of the row is the user's. */
  size_t fl = strlen(fmt) + 32;
  char *full = malloc(fl);
  snprintf(full, fl, "%s,JobID,Cluster", fmt);
  pass[np++] = "-P";
  pass[np++] = "-o";
  pass[np++] = full;
  pass[np] = NULL;

  int fds[2];
  if (pipe(fds) != 0) ns_cli_die(1, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    unsetenv("SACCT_FORMAT");
    execvp("sacct", pass);
    fprintf(stderr, "nsentry: cannot run sacct: %s\n", strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  FILE *in = fdopen(fds[0], "r");
  row *rows = NULL;
  size_t nrows = 0, cap = 0;
  char *line = NULL;
  size_t ln = 0;
  ssize_t k;
  while ((k = getline(&line, &ln, in)) > 0) {
    while (k && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = '\0';
    if (nrows == cap) rows = realloc(rows, (cap = cap ? cap * 2 : 64) * sizeof *rows);
    split_row(strdup(line), &rows[nrows++]);
  }
  free(line);
  fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    free(full);
    free(pass);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  ns_store *st = NULL;
  ns_status rc = ns_store_open(ns_cfg_str(cfg, NS_CFG_db), &st);
  if (rc) ns_cli_die(1, "database %s: %s", ns_cfg_str(cfg, NS_CFG_db), ns_err_message(rc));
  /* rows[0] is the header; every row ends with JobID, Cluster. */
  char **anom = calloc(nrows ? nrows : 1, sizeof *anom);
  size_t ncols = nrows ? rows[0].n - 2 : 0;
  for (size_t r = 0; r < nrows; r++) {
    if (r == 0) {
      anom[r] = strdup("Anomaly");
      continue;
    }
    if (rows[r].n < 2) {
      anom[r] = strdup("");
      continue;
    }
    char *job = rows[r].f[rows[r].n - 2], *cluster = rows[r].f[rows[r].n - 1];
    char buf[96] = "";
    /* Only allocation lines: steps ("123.batch") inherit nothing. */
    if (!strchr(job, '.')) {
      ns_status s2 = svc_db_anomaly_text(st, cluster, job, buf, sizeof buf);
      if (s2 && s2 != NS_ERR_NOTFOUND) ns_cli_die(1, "reading verdict of %s/%s: %s", cluster, job, ns_err_message(s2));
    }
    anom[r] = strdup(buf);
  }
  ns_store_close(st);
  if (parsable || parsable2) {
    for (size_t r = noheader ? 1 : 0; r < nrows; r++) {
      for (size_t c = 0; c < ncols && c < rows[r].n; c++) printf("%s|", rows[r].f[c]);
      printf("%s%s\n", anom[r], parsable ? "|" : "");
    }
  } else {
    size_t *w = calloc(ncols + 1, sizeof *w);
    for (size_t r = 0; r < nrows; r++) {
      for (size_t c = 0; c < ncols && c < rows[r].n; c++)
        if (strlen(rows[r].f[c]) > w[c]) w[c] = strlen(rows[r].f[c]);
      if (strlen(anom[r]) > w[ncols]) w[ncols] = strlen(anom[r]);
    }
    for (size_t r = noheader ? 1 : 0; r < nrows; r++) {
      for (size_t c = 0; c <= ncols; c++) {
        const char *v = c == ncols ? anom[r] : (c < rows[r].n ? rows[r].f[c] : "");
        printf("%s%*s", c ? " " : "", (int)w[c], v);
      }
      printf("\n");
      if (r == 0) {
        for (size_t c = 0; c <= ncols; c++) {
          printf("%s", c ? " " : "");
          for (size_t d = 0; d < w[c]; d++) putchar('-');
        }
        printf("\n");
      }
    }
    free(w);
  }
  for (size_t r = 0; r < nrows; r++) {
    free(rows[r].f[0]);
    free(rows[r].f);
    free(anom[r]);
  }
  free(rows);
  free(anom);
  free(full);
  free(pass);
  return 0;
}
