/* Bench-only trainer on the public NodeSentry sample (read from ../shared,
 * never copied): trains one model on the given training CSVs (already
 * preprocessed by the authors: standardised, clipped to [-5, 5]) and scores
 * the test CSVs, printing per-epoch losses, timings, reconstruction error and
 * where each labelled point ranks among its file's scores.
 *   model_train [--epochs N] [--threads N] [--window T] SAMPLE_DIR
 * SAMPLE_DIR: .../nodesentry-sample (Train/NODE/FILE.csv, Test/FILE.csv).
 * All training files form one cluster (segment code = file index, closeness
 * weight 1, uniform MAC weights); the nsentry pipeline does the clustering. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_model.h"
#include "ns_train.h"

#define MAXF 64

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* timestamp,Metric1..MetricM[,Label]; M from the header. */
static size_t read_csv(const char *path, int *M_io, float **out, unsigned char **label) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "model_train: %s: cannot open\n", path);
    exit(1);
  }
  char *line = malloc(1 << 17);
  if (!fgets(line, 1 << 17, f)) {
    fprintf(stderr, "model_train: %s: empty\n", path);
    exit(1);
  }
  int M = 0;
  for (char *p = line; *p; p++) M += *p == ',';
  if (strstr(line, "Label")) M--;
  if (*M_io && *M_io != M) {
    fprintf(stderr, "model_train: %s: %d metrics, expected %d\n", path, M, *M_io);
    exit(1);
  }
  *M_io = M;
  size_t cap = 1024, n = 0;
  float *x = malloc(cap * M * sizeof(float));
  unsigned char *lab = malloc(cap);
  while (fgets(line, 1 << 17, f)) {
    if (n == cap) {
      cap *= 2;
      x = realloc(x, cap * M * sizeof(float));
      lab = realloc(lab, cap);
    }
    char *p = strchr(line, ',');
    for (int m = 0; m < M && p; m++) {
      char *end;
      x[n * M + m] = strtof(p + 1, &end);
      if (end == p + 1) {
        fprintf(stderr, "model_train: %s:%zu: bad number in column %d\n", path, n + 2, m + 2);
        exit(1);
      }
      p = end;
    }
    lab[n] = (p && *p == ',') ? (unsigned char)atoi(p + 1) : 0;
    n++;
  }
  fclose(f);
  free(line);
  *out = x;
  if (label)
    *label = lab;
  else
    free(lab);
  return n;
}

static int list_csv(const char *dir, char **out, int max) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < max) {
    size_t l = strlen(e->d_name);
    if (l > 4 && !strcmp(e->d_name + l - 4, ".csv")) {
      out[n] = malloc(strlen(dir) + l + 2);
      sprintf(out[n], "%s/%s", dir, e->d_name);
      n++;
    }
  }
  closedir(d);
  return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void on_epoch(void *ctx, int epoch, double tl, double vl) {
  double *t0 = ctx;
  printf("epoch %3d  train loss %.5f  val loss %.5f  %.2f s\n", epoch, tl, vl, now_s() - *t0);
  fflush(stdout);
}

int main(int argc, char **argv) {
  int epochs = 30, threads = 2, window = 64;
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--window") && i + 1 < argc) window = atoi(argv[++i]);
    else if (argv[i][0] != '-') dir = argv[i];
    else {
      fprintf(stderr, "usage: model_train [--epochs N] [--threads N] [--window T] SAMPLE_DIR\n");
      return 2;
    }
  }
  if (!dir) {
    fprintf(stderr, "usage: model_train [--epochs N] [--threads N] [--window T] SAMPLE_DIR\n");
    return 2;
  }
  char *files[MAXF], *tests[MAXF], path[4096];
  int nf = 0, nt;
  snprintf(path, sizeof path, "%s/Train", dir);
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "model_train: %s: cannot open\n", path);
    return 1;
  }
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') {
      char sub[4600];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      nf += list_csv(sub, files + nf, MAXF - nf);
    }
  closedir(d);
  snprintf(path, sizeof path, "%s/Test", dir);
  nt = list_csv(path, tests, MAXF);
  qsort(files, (size_t)nf, sizeof(char *), cmp_str);
  qsort(tests, (size_t)nt, sizeof(char *), cmp_str);
  if (nf == 0) {
    fprintf(stderr, "model_train: no training CSV under %s/Train\n", dir);
    return 1;
  }
  int M = 0;
  float *xs[MAXF];
  ns_train_series s[MAXF];
  size_t rows = 0;
  for (int i = 0; i < nf; i++) {
    size_t T = read_csv(files[i], &M, &xs[i], NULL);
    s[i] = (ns_train_series){xs[i], T, 1.0f, i, NULL};
    rows += T;
  }
  char **names = malloc((size_t)M * sizeof(char *));
  for (int m = 0; m < M; m++) {
    names[m] = malloc(24);
    snprintf(names[m], 24, "Metric%d", m + 1);
  }
  ns_model_hparams hp;
  ns_model_hparams_default(&hp);
  hp.n_metrics = M;
  hp.epochs = epochs;
  hp.threads = threads;
  hp.window = window;
  printf("training on %d files, %zu rows x %d metrics, window %d, batch %d, up to %d epochs, %d threads\n", nf, rows,
         M, hp.window, hp.batch, epochs, threads);
  double t0 = now_s();
  ns_train_opts o = {.progress = on_epoch, .progress_ctx = &t0};
  ns_model *m = NULL;
  ns_train_result r;
  ns_status st = ns_train_model(&hp, (const char *const *)names, NULL, s, (size_t)nf, &o, &m, &r);
  if (st) {
    fprintf(stderr, "model_train: %s\n", ns_err_message(st));
    return 1;
  }
  printf("trained: %d epochs (best %d), %d steps, %.2f s; training score mean %.4f, q0.99 %.4f, q0.999 %.4f\n",
         r.epochs_run, r.best_epoch, r.steps, r.seconds, r.stats.mean, ns_score_stats_quantile(&r.stats, 0.99),
         ns_score_stats_quantile(&r.stats, 0.999));
  for (int i = 0; i < nt; i++) {
    float *x;
    unsigned char *lab;
    int Mt = M;
    size_t T = read_csv(tests[i], &Mt, &x, &lab);
    float *y = malloc(T * M * sizeof(float)), *sc = malloc(T * sizeof(float));
    double a = now_s();
    if ((st = ns_model_reconstruct(m, x, T, 0, y))) {
      fprintf(stderr, "model_train: %s\n", ns_err_message(st));
      return 1;
    }
    ns_model_score(m, x, y, T, sc, NULL);
    double el = now_s() - a, mean = 0;
    for (size_t t = 0; t < T; t++) mean += sc[t];
    printf("%s: %zu rows, scored in %.1f ms, mean score %.4f;", strrchr(tests[i], '/') + 1, T, el * 1e3, mean / T);
    for (size_t t = 0; t < T; t++)
      if (lab[t]) {
        size_t rank = 1;
        for (size_t u = 0; u < T; u++) rank += sc[u] > sc[t];
        printf(" labelled row %zu: score %.4f, rank %zu of %zu;", t, sc[t], rank, T);
      }
    printf("\n");
    free(x), free(lab), free(y), free(sc);
  }
  ns_train_result_free(&r);
  ns_model_free(m);
  for (int i = 0; i < nf; i++) free(xs[i]), free(files[i]);
  for (int i = 0; i < nt; i++) free(tests[i]);
  for (int i = 0; i < M; i++) free(names[i]);
  free(names);
  return 0;
}
