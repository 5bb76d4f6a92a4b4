/* Fuzz-style robustness: random bytes and random mutations of the valid
 * fixtures go through every parser; each call must return a status (never
 * crash, hang or leak under ASan) and every accepted result must satisfy
 * the invariants the rest of nsentry relies on. Seed and iteration count:
 * NS_FUZZ_SEED, NS_FUZZ_ITERS (default 3000 per parser and kind). */
#include <math.h>
#include <stdint.h>
#include "helpers.h"
#include "ns_csv.h"
#include "ns_hostlist.h"
#include "ns_import.h"
#include "ns_log.h"
#include "ns_store.h"

static uint64_t seed;
static uint64_t rnd(void) {
  seed ^= seed << 13;
  seed ^= seed >> 7;
  seed ^= seed << 17;
  return seed;
}
static size_t rn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static int iters(void) {
  const char *e = getenv("NS_FUZZ_ITERS");
  return e ? atoi(e) : 3000;
}

static void init(void) {
  const char *e = getenv("NS_FUZZ_SEED");
  seed = e ? strtoull(e, NULL, 0) : 0x2545F4914F6CDD1Dull;
  if (!seed) seed = 1;
  ns_log_set_level(NS_LOG_ERROR); /* repairs warn; keep the log quiet */
}
TestSuite(fuzz, .init = init);

typedef struct {
  char *p;
  size_t n, cap;
} buf;

static void b_reserve(buf *b, size_t n) {
  if (n <= b->cap) return;
  b->cap = n * 2;
  b->p = realloc(b->p, b->cap);
  cr_assert_not_null(b->p);
}

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)len + 1);
  cr_assert_eq(fread(p, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return p;
}

static const char *tokens[] = {",", "\n", "\"", "|", "[", "]", "-", "nan", "inf", "-1e999", "1e308", "",
                               "#Time", "\r\n", "0", "999999999999999999999", ".", "Unknown", "\0", "2024-02-30 00:00:00",
                               "cn[1-3]", "_", "+", ":", " "};

/* One random mutation of b. */
static void mutate(buf *b) {
  size_t k = rn(7);
  if (b->n == 0) k = 2;
  switch (k) {
  case 0: b->p[rn(b->n)] = (char)rnd(); break;                 /* flip a byte */
  case 1: b->p[rn(b->n)] ^= (char)(1u << rn(8)); break;        /* flip a bit */
  case 2: {                                                    /* insert a token */
    const char *t = tokens[rn(sizeof tokens / sizeof *tokens)];
    size_t tl = *t ? strlen(t) : 1, at = rn(b->n + 1);
    b_reserve(b, b->n + tl);
    memmove(b->p + at + tl, b->p + at, b->n - at);
    memcpy(b->p + at, t, tl);
    b->n += tl;
    break;
  }
  case 3: {                                                    /* delete a range */
    size_t at = rn(b->n), len = 1 + rn(b->n - at < 40 ? b->n - at : 40);
    memmove(b->p + at, b->p + at + len, b->n - at - len);
    b->n -= len;
    break;
  }
  case 4: b->n = rn(b->n + 1); break;                          /* truncate */
  case 5: {                                                    /* duplicate a chunk */
    size_t at = rn(b->n), len = 1 + rn(b->n - at < 120 ? b->n - at : 120), to = rn(b->n + 1);
    b_reserve(b, b->n + len);
    char tmp[128];
    memcpy(tmp, b->p + at, len);
    memmove(b->p + to + len, b->p + to, b->n - to);
    memcpy(b->p + to, tmp, len);
    b->n += len;
    break;
  }
  default: {                                                   /* swap two bytes */
    size_t i = rn(b->n), j = rn(b->n);
    char c = b->p[i];
    b->p[i] = b->p[j];
    b->p[j] = c;
  }
  }
}

static void random_bytes(buf *b) {
  b->n = rn(2048);
  b_reserve(b, b->n + 1);
  /* Mostly printable with separators, sometimes raw binary. */
  bool binary = rn(4) == 0;
  static const char alpha[] = "0123456789,,,,..--\n\n\n|:eE+aZ#\"[] T";
  for (size_t i = 0; i < b->n; i++) b->p[i] = binary ? (char)rnd() : alpha[rn(sizeof alpha - 1)];
}

static void write_to(const char *path, const buf *b) {
  /* A fresh file each time: truncating in place makes ext4 flush to disk. */
  unlink(path);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  if (b->n) cr_assert_eq(fwrite(b->p, 1, b->n, f), b->n);
  fclose(f);
}

typedef void (*target_fn)(const char *path);
static int accepted; /* inputs a target accepted: mutations must reach the success paths too */

/* Feed `iters` random inputs and `iters` mutations of the seeds to fn. */
static void run(const char *fname, const char *const *seeds, size_t nseeds, target_fn fn) {
  char dir[] = "/tmp/ns_fuzz_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, fname);
  buf b = {0};
  int n = iters();
  accepted = 0;
  for (int i = 0; i < n; i++) {
    random_bytes(&b);
    write_to(path, &b);
    fn(path);
  }
  for (int i = 0; i < n; i++) {
    size_t len;
    char *orig = slurp(fx(seeds[rn(nseeds)]), &len);
    b_reserve(&b, len + 1);
    memcpy(b.p, orig, len);
    b.n = len;
    free(orig);
    for (size_t m = 1 + rn(4); m; m--) mutate(&b);
    write_to(path, &b);
    fn(path);
  }
  free(b.p);
  rm_rf(dir);
  cr_log_info("%s: %d of %d inputs accepted", fname, accepted, 2 * n);
  cr_assert(accepted > 0, "no input accepted: the success paths were never exercised");
}

static void check_status(ns_status st) {
  cr_assert(st >= 0 && st < NS_STATUS_COUNT_);
  if (st) cr_assert(ns_err_detail()[0] || st == NS_ERR_NOMEM, "%s without detail", ns_status_name(st));
}

static void t_sacct(const char *path) {
  ns_job *v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  ns_status st = ns_import_sacct_file(path, "c", NULL, &v, &n, &rep);
  check_status(st);
  if (st) {
    cr_assert(v == NULL && n == 0);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    cr_assert(v[i].nnodes >= 1 && v[i].job_id && *v[i].job_id);
    cr_assert(v[i].end_ms == 0 || v[i].end_ms >= v[i].start_ms);
  }
  accepted++;
  ns_jobs_free(v, n);
}

static void t_nsjobs(const char *path) {
  ns_job *v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  ns_status st = ns_nodesentry_read_jobs(path, "c", NULL, &v, &n, &rep);
  check_status(st);
  if (!st) {
    accepted++;
    ns_jobs_free(v, n);
  }
}

static void check_mts(const ns_mts *m, bool finite_ok_nan) {
  cr_assert(m->T > 0 && m->M > 0);
  for (size_t t = 1; t < m->T; t++) cr_assert(m->ts_ms[t] > m->ts_ms[t - 1], "row %zu", t);
  for (size_t i = 0; i < m->T * m->M; i++) cr_assert(!isinf(m->x[i]));
  for (size_t j = 0; j < m->M; j++) cr_assert(m->metrics[j] && *m->metrics[j] && m->is_counter[j] <= 1);
  if (m->labels)
    for (size_t t = 0; t < m->T; t++) cr_assert(m->labels[t] <= 1);
  (void)finite_ok_nan;
}

static void t_wide(const char *path) {
  ns_mts *m = NULL;
  ns_import_report rep = {0};
  ns_status st = ns_import_csv_wide(path, "n", NULL, &m, &rep);
  check_status(st);
  if (st) {
    cr_assert_null(m);
    return;
  }
  check_mts(m, true);
  cr_assert_eq((int64_t)m->T, rep.rows);
  accepted++;
  ns_mts_free(m);
}

static void t_segment(const char *path) {
  ns_segment *g = NULL;
  ns_import_report rep = {0};
  ns_status st = ns_nodesentry_read_segment(path, "c", "n1", "1", NULL, &g, &rep);
  check_status(st);
  if (st) {
    cr_assert_null(g);
    return;
  }
  cr_assert_eq(ns_segment_check(g), NS_OK, "%s", ns_err_detail());
  accepted++;
  ns_segment_free(g);
}

static void t_ldms(const char *path) {
  char *paths[] = {(char *)path};
  ns_mts **v = NULL;
  size_t n = 0;
  ns_import_report rep = {0};
  ns_status st = ns_import_ldms(paths, 1, NULL, &v, &n, &rep);
  check_status(st);
  if (st) {
    cr_assert(v == NULL && n == 0);
    return;
  }
  for (size_t i = 0; i < n; i++) check_mts(v[i], true);
  accepted++;
  ns_import_mts_free(v, n);
}

static ns_status free_piece(void *ctx, ns_mts *m) {
  check_mts(m, true);
  (*(int *)ctx)++;
  ns_mts_free(m);
  return NS_OK;
}

/* Small budgets: many pieces, schemas appearing late, both streaming paths. */
static void t_streams(const char *path) {
  char *paths[] = {(char *)path};
  int n = 0;
  ns_import_report rep = {0};
  ns_status st = ns_import_ldms_stream(paths, 1, NULL, 7, free_piece, &n, &rep);
  check_status(st);
  ns_status st2 = ns_import_csv_stream(path, "n", NULL, 5, free_piece, &n, &rep);
  check_status(st2);
  if (!st || !st2) accepted++;
}

Test(fuzz, streaming, .timeout = 300) {
  const char *seeds[] = {"ldms/ok/meminfo", "ldms/ok/vmstat", "csv/wide.csv", "csv/epoch_label.csv"};
  run("vmstat", seeds, 4, t_streams);
}

Test(fuzz, sacct, .timeout = 300) {
  const char *seeds[] = {"sacct/basic.txt", "sacct/noheader.txt", "sacct/extra_columns.txt"};
  run("sacct.txt", seeds, 3, t_sacct);
}

Test(fuzz, nodesentry_job_file, .timeout = 300) {
  const char *seeds[] = {"nodesentry/Job"};
  run("Job", seeds, 1, t_nsjobs);
}

Test(fuzz, wide_csv, .timeout = 300) {
  const char *seeds[] = {"csv/wide.csv", "csv/epoch_label.csv", "nodesentry/Test/n2_Job-2.csv"};
  run("w.csv", seeds, 3, t_wide);
}

Test(fuzz, nodesentry_segment, .timeout = 300) {
  const char *seeds[] = {"nodesentry/Train/n1/n1_Job-1.csv", "nodesentry/Test/n2_Job-2.csv"};
  run("n1_Job-1.csv", seeds, 2, t_segment);
}

Test(fuzz, ldms, .timeout = 300) {
  const char *seeds[] = {"ldms/ok/meminfo", "ldms/ok/vmstat", "ldms/ok/procstat"};
  run("vmstat", seeds, 3, t_ldms);
}

/* Strings straight into the small parsers. */
Test(fuzz, hostlist_number_time, .timeout = 300) {
  static const char alpha[] = "cn[]0123456789-,,_ab.eE+:TZ ";
  char s[64];
  int n = iters() * 10;
  for (int i = 0; i < n; i++) {
    size_t len = rn(sizeof s);
    for (size_t k = 0; k < len; k++) s[k] = rn(8) ? alpha[rn(sizeof alpha - 1)] : (char)rnd();
    s[len] = '\0';
    char **v = NULL;
    size_t nn = 0;
    ns_status st = ns_hostlist_expand(s, &v, &nn);
    check_status(st);
    if (!st) {
      cr_assert(nn >= 1 && nn <= NS_HOSTLIST_MAX);
      char *c = NULL;
      cr_assert_eq(ns_hostlist_compress(v, nn, &c), NS_OK);
      free(c);
      ns_hostlist_free(v, nn);
    } else {
      cr_assert(v == NULL && nn == 0);
    }
    double d;
    if (ns_parse_double(s, len, &d) == NS_OK && !isnan(d) && strlen(s) == len) {
      char *end;
      double ref = strtod(s, &end);
      if (*end == '\0') cr_assert(d == ref, "'%s': %.17g vs %.17g", s, d, ref);
    }
    int64_t ms;
    (void)ns_parse_time_ms(s, len, false, &ms);
    ns_csv *r = NULL;
    cr_assert_eq(ns_csv_open_mem(s, len, ',', "mem", &r), NS_OK);
    bool got = true;
    while (got && ns_csv_next(r, &got) == NS_OK)
      for (size_t f = 0; got && f < ns_csv_nfields(r); f++) (void)ns_csv_field(r, f, NULL);
    ns_csv_close(r);
  }
}

/* Whole NodeSentry folders with one mutated file, into an in-memory store:
 * success or a clean rollback, never a partial import. */
Test(fuzz, nodesentry_dir_store, .timeout = 300) {
  char dir[] = "/tmp/ns_fuzzdir_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  const char *files[] = {"Job", "Train/n1/n1_Job-1.csv", "Train/n2/n2_Job-1.csv", "Test/n2_Job-2.csv"};
  put_file(dir, "Train/n1/.keep", "");
  put_file(dir, "Train/n2/.keep", "");
  put_file(dir, "Test/.keep", "");
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open("sqlite::memory:", &s), NS_OK, "%s", ns_err_detail());
  buf b = {0};
  int n = iters() / 10 + 1;
  accepted = 0;
  for (int i = 0; i < n; i++) {
    for (size_t k = 0; k < 4; k++) { /* restore the fixture */
      char src[256], dst[512];
      snprintf(src, sizeof src, "nodesentry/%s", files[k]);
      snprintf(dst, sizeof dst, "%s/%s", dir, files[k]);
      size_t len;
      char *text = slurp(fx(src), &len);
      buf t = {text, len, len};
      write_to(dst, &t);
      free(text);
    }
    const char *victim = files[rn(4)];
    size_t len;
    char src[256];
    snprintf(src, sizeof src, "nodesentry/%s", victim);
    char *orig = slurp(fx(src), &len);
    b_reserve(&b, len + 1);
    memcpy(b.p, orig, len);
    b.n = len;
    free(orig);
    for (size_t m = 1 + rn(3); m; m--) mutate(&b);
    char dst[512];
    snprintf(dst, sizeof dst, "%s/%s", dir, victim);
    write_to(dst, &b);
    ns_import_report rep = {0};
    ns_status st = ns_import_nodesentry(dir, s, "fz", NULL, &rep);
    check_status(st);
    ns_seg_filter f = NS_SEG_FILTER_ALL;
    f.cluster = "fz";
    int64_t *ids = NULL;
    size_t nseg = 0;
    cr_assert_eq(ns_store_list_segments(s, &f, &ids, &nseg), NS_OK);
    free(ids);
    if (st) cr_assert_eq(nseg, 0, "failed import left %zu segments (%s)", nseg, ns_err_detail());
    else cr_assert(nseg >= 1);
    if (!st) {
      accepted++;
      /* clear for the next round */
      ns_store_close(s);
      cr_assert_eq(ns_store_open("sqlite::memory:", &s), NS_OK);
    }
  }
  free(b.p);
  ns_store_close(s);
  rm_rf(dir);
  cr_log_info("folders: %d of %d imports succeeded", accepted, n);
  cr_assert(accepted > 0);
}
