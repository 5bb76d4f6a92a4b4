/* Sampler cost: CPU time of one tick (read /proc + perf + rates + spool append),
 * the resulting overhead at 1 s and 15 s intervals, and spool bytes per node-hour.
 * usage: node_sampler [TICKS (default 2000)] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "ns_collect.h"
#include "ns_spool.h"

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
  long ticks = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
  char dir[] = "/tmp/ns_bench_spool_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  ns_spool_opts o = {.retention_ms = 48 * 3600000LL, .max_bytes = 256LL << 20};
  ns_spool *sp = NULL;
  ns_collect *c = NULL;
  if (ns_spool_open(dir, &o, &sp) || ns_collect_create("/proc", 0, &c)) {
    fprintf(stderr, "setup failed: %s\n", ns_err_detail());
    return 1;
  }
  printf("%s; %s\n", ns_collect_perf_state(c), ns_collect_gpu_state(c));
  size_t M = 0;
  char **names;
  float *vals;
  int64_t t = 1795000000000;
  ns_collect_sample(c, t, &M, &names, &vals); /* prime */
  double c0 = cpu_s();
  for (long i = 1; i <= ticks; i++) {
    t += 1000; /* simulated 1 s ticks; the cost per tick does not depend on the spacing */
    if (ns_collect_sample(c, t, &M, &names, &vals) || ns_spool_append(sp, t, M, names, vals)) {
      fprintf(stderr, "tick %ld: %s\n", i, ns_err_detail());
      return 1;
    }
  }
  double per = (cpu_s() - c0) / (double)ticks;
  int64_t bytes = ns_spool_ring_bytes(sp);
  double rec = 8 + 4.0 * M + 4;
  printf("metrics per sample: %zu, record %.0f bytes\n", M, rec);
  printf("cpu per tick: %.1f us\n", per * 1e6);
  printf("overhead at 1 s: %.4f %% of one core (target <= 0.3 %%)\n", per * 100.0);
  printf("overhead at 15 s: %.5f %% of one core\n", per * 100.0 / 15.0);
  printf("spool bytes per node-hour: %.0f at 1 s, %.0f at 15 s (measured ring: %" PRId64 " bytes for %ld ticks)\n",
         rec * 3600, rec * 240, bytes, ticks);
  ns_collect_free(c);
  ns_spool_close(sp);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}
