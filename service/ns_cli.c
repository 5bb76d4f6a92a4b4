#include "ns_cli.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void ns_cli_check(ns_status st, const char *what) {
  if (st == NS_OK) return;
  fprintf(stderr, "nsentry: %s: %s\n", what, ns_err_message(st));
  exit(1);
}

void ns_cli_die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("nsentry: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

double ns_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ns_progress_start(ns_progress *p, const char *label, int64_t total) {
  p->label = label;
  p->total = total;
  p->done = 0;
  p->t0 = ns_now_s();
  p->last_draw = 0;
  p->tty = isatty(STDERR_FILENO);
}

void ns_progress_update(ns_progress *p, int64_t done, const char *extra) {
  p->done = done;
  if (!p->tty) return;
  double now = ns_now_s();
  if (now - p->last_draw < 0.1 && done < p->total) return;
  p->last_draw = now;
  double frac = p->total > 0 ? (double)done / (double)p->total : 0;
  if (frac > 1) frac = 1;
  int width = 30, fill = (int)(frac * width);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  double el = now - p->t0, eta = frac > 0 ? el / frac - el : 0;
  fprintf(stderr, "\r%s [%s] %lld/%lld %3.0f%% %s ETA %.0fs \033[K", p->label, bar, (long long)done,
          (long long)p->total, frac * 100, extra ? extra : "", eta);
  fflush(stderr);
}

void ns_progress_finish(ns_progress *p) {
  if (!p->tty) return;
  ns_progress_update(p, p->total, NULL);
  fprintf(stderr, "\n");
}
