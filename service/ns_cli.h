/* Helpers for the command-line tools' main() functions only: these may exit. */
#ifndef NS_CLI_H
#define NS_CLI_H
#include <stdbool.h>
#include <stdint.h>
#include "ns_config.h"
#include "ns_status.h"

/* Print "nsentry: <what>: <status message>" and exit(1) when st != NS_OK. */
void ns_cli_check(ns_status st, const char *what);
/* Print "nsentry: <msg>" and exit(code). */
void ns_cli_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Progress bar on stderr, drawn only when stderr is a TTY. */
typedef struct ns_progress {
  const char *label;
  int64_t total, done;
  double t0, last_draw;
  bool tty;
} ns_progress;
void ns_progress_start(ns_progress *p, const char *label, int64_t total);
/* `extra` (may be NULL) is shown after the counts, e.g. "loss 0.031". */
void ns_progress_update(ns_progress *p, int64_t done, const char *extra);
void ns_progress_finish(ns_progress *p);
double ns_now_s(void);

/* A subcommand: gets argv[0] = command name, and the loaded config. */
typedef int (*ns_cmd_fn)(int argc, char **argv, ns_config *cfg);
#endif
