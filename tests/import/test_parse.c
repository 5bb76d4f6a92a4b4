/* Hostlists, the CSV reader, the number and time parsers. */
#include <math.h>
#include <stdint.h>
#include <time.h>
#include "helpers.h"
#include "ns_csv.h"
#include "ns_hostlist.h"

static void expect_hosts(const char *list, const char *joined) {
  char **v = NULL;
  size_t n = 0;
  ns_status st = ns_hostlist_expand(list, &v, &n);
  cr_assert_eq(st, NS_OK, "%s: %s", list, ns_err_detail());
  char buf[4096] = "";
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(buf, " ");
    strcat(buf, v[i]);
  }
  cr_assert_str_eq(buf, joined, "expand(%s)", list);
  ns_hostlist_free(v, n);
}

static void expect_bad(const char *list, ns_status want, const char *detail) {
  char **v = (char **)1;
  size_t n = 99;
  cr_assert_eq(ns_hostlist_expand(list, &v, &n), want, "%s", list);
  cr_assert_null(v);
  cr_assert_eq(n, 0);
  if (detail) assert_detail_has(detail);
}

Test(hostlist, expand_forms) {
  expect_hosts("cn1", "cn1");
  expect_hosts("cn[001-004,010]", "cn001 cn002 cn003 cn004 cn010");
  expect_hosts("cn[8-10]", "cn8 cn9 cn10");
  expect_hosts("cn[08-10]", "cn08 cn09 cn10");
  expect_hosts("a[1-2]b[3,5]", "a1b3 a1b5 a2b3 a2b5");
  expect_hosts("gpu[1-2],cn5, login", "gpu1 gpu2 cn5 login");
  expect_hosts("Node-1,Node-3,Node-2", "Node-1 Node-3 Node-2");
  expect_hosts("n[1-1]", "n1");
  expect_hosts("rack[1-2]-node[1-2]", "rack1-node1 rack1-node2 rack2-node1 rack2-node2");
  expect_hosts("n[1,1]", "n1 n1");      /* duplicates kept, as Slurm does */
  expect_hosts("[1-3]", "1 2 3");
}

Test(hostlist, expand_errors) {
  expect_bad("", NS_ERR_PARSE, "empty host name");
  expect_bad("a,,b", NS_ERR_PARSE, "column 3");
  expect_bad("cn[1-", NS_ERR_PARSE, "unterminated");
  expect_bad("cn[1-2", NS_ERR_PARSE, "unterminated");
  expect_bad("cn]1", NS_ERR_PARSE, "']' without '['");
  expect_bad("cn[5-2]", NS_ERR_PARSE, "descending");
  expect_bad("cn[a-b]", NS_ERR_PARSE, "bad range");
  expect_bad("cn[]", NS_ERR_PARSE, "bad range");
  expect_bad("cn[1,]", NS_ERR_PARSE, "bad range");
  expect_bad("cn[1-2[3]]", NS_ERR_PARSE, NULL);
  expect_bad("cn[1-9999999]", NS_ERR_LIMIT, "more than");
  expect_bad("a[1-1000]b[1-1001]", NS_ERR_LIMIT, NULL);
  expect_bad("bad name", NS_ERR_PARSE, "invalid character");
  expect_bad("x[ 1 - 2 ]", NS_ERR_PARSE, "invalid character");
  expect_bad("cn[1-99999999999999999999]", NS_ERR_PARSE, "bad range");
  char **v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_hostlist_expand(NULL, &v, &n), NS_ERR_INVAL);
}

Test(hostlist, compress_roundtrip) {
  char *names[] = {"cn010", "cn002", "cn001", "cn003", "cn004", "gpu1", "login", "cn8", "cn9", "cn10", "cn002"};
  char *s = NULL;
  cr_assert_eq(ns_hostlist_compress(names, 11, &s), NS_OK);
  cr_assert_str_eq(s, "cn[8-10],cn[001-004,010],gpu1,login");
  char **v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_hostlist_expand(s, &v, &n), NS_OK);
  cr_assert_eq(n, 10);
  ns_hostlist_free(v, n);
  free(s);
  cr_assert_eq(ns_hostlist_compress(NULL, 0, &s), NS_OK);
  cr_assert_str_eq(s, "");
  free(s);
  ns_hostlist_free(NULL, 0);
}

/* ---- numbers ---- */

static double pd(const char *s) {
  double v = -12345;
  cr_assert_eq(ns_parse_double(s, strlen(s), &v), NS_OK, "'%s'", s);
  return v;
}

Test(number, forms_and_errors) {
  cr_assert_eq(pd("0"), 0.0);
  cr_assert_eq(pd("-0.0"), 0.0);
  cr_assert(signbit(pd("-0.0")));
  cr_assert_eq(pd("5."), 5.0);
  cr_assert_eq(pd(".5"), 0.5);
  cr_assert_eq(pd("+1.5e3"), 1500.0);
  cr_assert_eq(pd(" 42 "), 42.0);
  cr_assert_eq(pd("1E-2"), 0.01);
  cr_assert(isnan(pd("NaN")));
  cr_assert(isnan(pd("nan")));
  cr_assert(isinf(pd("-inf")) && pd("-inf") < 0);
  cr_assert(isinf(pd("Infinity")));
  cr_assert_eq(pd("1e400"), INFINITY);
  cr_assert_eq(pd("1e-400"), 0.0);
  const char *bad[] = {"", " ", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,5", "0x10", "abc", "1 2", "--1", "nana",
                       "in", "1e5x", "1d"};
  double v;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    cr_assert_eq(ns_parse_double(bad[i], strlen(bad[i]), &v), NS_ERR_PARSE, "'%s' accepted", bad[i]);
  /* not NUL-terminated: only n bytes count */
  cr_assert_eq(ns_parse_double("12345", 2, &v), NS_OK);
  cr_assert_eq(v, 12.0);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Every fast path must agree bit for bit with strtod. */
Test(number, matches_strtod_bitwise) {
  char buf[64];
  for (int i = 0; i < 300000; i++) {
    uint64_t r = next_rand();
    switch (i % 6) {
    case 0: snprintf(buf, sizeof buf, "%.17g", (double)(int64_t)r / 1e9); break;
    case 1: snprintf(buf, sizeof buf, "%.16f", ((double)(r >> 11) / 9007199254740992.0 - 0.5) * 10); break;
    case 2: snprintf(buf, sizeof buf, "%llu", (unsigned long long)(r >> (r & 63))); break;
    case 3: snprintf(buf, sizeof buf, "%.*e", (int)(r % 20), ldexp((double)(r >> 12), (int)(r % 200) - 100)); break;
    case 4: snprintf(buf, sizeof buf, "%llu.%llue%d", (unsigned long long)(r % 100000),
                     (unsigned long long)(r >> 40), (int)(r % 60) - 30); break;
    default: {
      double d;
      uint64_t bits = (r & ~(0x7ffull << 52)) | ((uint64_t)(1023 + (int)(r % 120) - 60) << 52);
      memcpy(&d, &bits, sizeof d);
      snprintf(buf, sizeof buf, "%.*g", 15 + (int)(r % 3), d);
    }
    }
    double a, b = strtod(buf, NULL);
    cr_assert_eq(ns_parse_double(buf, strlen(buf), &a), NS_OK, "'%s'", buf);
    cr_assert(memcmp(&a, &b, sizeof a) == 0, "'%s': %.17g vs strtod %.17g", buf, a, b);
  }
  /* Known hard cases (halfway and beyond 19 digits). */
  const char *hard[] = {"9007199254740993", "2.2250738585072011e-308", "0.1", "1.7976931348623157e308",
                        "123456789012345678901234567890", "0.30000000000000004441",
                        "7.038531e-26", "1.00000000000000011102230246251565404236316680908203125",
                        "-1.503917487121528", "2.142274783495328"};
  for (size_t i = 0; i < sizeof hard / sizeof *hard; i++) {
    double a, b = strtod(hard[i], NULL);
    cr_assert_eq(ns_parse_double(hard[i], strlen(hard[i]), &a), NS_OK);
    cr_assert(memcmp(&a, &b, sizeof a) == 0, "'%s'", hard[i]);
  }
}

/* ---- time ---- */

static int64_t pt(const char *s, bool local) {
  int64_t v = -1;
  cr_assert_eq(ns_parse_time_ms(s, strlen(s), local, &v), NS_OK, "'%s'", s);
  return v;
}

Test(time, formats) {
  cr_assert_eq(pt("1970-01-01 00:00:00", false), 0);
  cr_assert_eq(pt("2024-07-15 11:39:30", false), INT64_C(1721043570000));
  cr_assert_eq(pt("2024-07-15T11:39:30", false), INT64_C(1721043570000));
  cr_assert_eq(pt("2024-07-15T11:39:30Z", false), INT64_C(1721043570000));
  cr_assert_eq(pt("2024-07-15T13:39:30+02:00", false), INT64_C(1721043570000));
  cr_assert_eq(pt("2024-07-15T06:39:30-0500", false), INT64_C(1721043570000));
  cr_assert_eq(pt("2024-07-15T11:39:30.25", false), INT64_C(1721043570250));
  cr_assert_eq(pt("2024-02-29 00:00:00", false), INT64_C(1709164800000));
  cr_assert_eq(pt("1700000000", false), INT64_C(1700000000000));
  cr_assert_eq(pt("1700000000.5", false), INT64_C(1700000000500));
  cr_assert_eq(pt("1700000000123", false), INT64_C(1700000000123));
  const char *bad[] = {"", "2024-13-01 00:00:00", "2023-02-29 00:00:00", "2024-07-15 24:00:00", "2024-07-15 11:60:00",
                       "2024-07-15", "2024-07-15 11:39", "2024-07-15X11:39:30", "2024-07-15 11:39:30Q",
                       "2024-07-15 11:39:30.", "2024-07-15 11:39:30+2", "abc", "1e300", "nan", "2024-7-15 11:39:30"};
  int64_t v;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    cr_assert_eq(ns_parse_time_ms(bad[i], strlen(bad[i]), false, &v), NS_ERR_PARSE, "'%s' accepted", bad[i]);
  char buf[40];
  ns_format_time_ms(INT64_C(1721043570250), buf, sizeof buf);
  cr_assert_str_eq(buf, "2024-07-15T11:39:30.250Z");
  ns_format_time_ms(-1000, buf, sizeof buf);
  cr_assert_str_eq(buf, "1969-12-31T23:59:59Z");
}

Test(time, local_zone) {
  setenv("TZ", "Europe/Berlin", 1);
  tzset();
  cr_assert_eq(pt("2024-07-15 13:39:30", true), INT64_C(1721043570000)); /* CEST = UTC+2 */
  cr_assert_eq(pt("2024-01-15 12:00:00", true), pt("2024-01-15 11:00:00", false));
  cr_assert_eq(pt("2024-07-15T11:39:30Z", true), INT64_C(1721043570000)); /* explicit zone wins */
  setenv("TZ", "UTC", 1);
  tzset();
}

/* ---- CSV reader ---- */

Test(csv, fields_quotes_lines) {
  const char *text = "a,b,c\r\n\n\"x,1\",\"say \"\"hi\"\"\",\n  ,z\nlast,no,newline";
  ns_csv *r = NULL;
  cr_assert_eq(ns_csv_open_mem(text, strlen(text), ',', "mem.csv", &r), NS_OK);
  bool got;
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert(got);
  cr_assert_eq(ns_csv_nfields(r), 3);
  cr_assert_str_eq(ns_csv_field(r, 2, NULL), "c"); /* \r stripped */
  cr_assert_eq(ns_csv_line(r), 1);
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert_eq(ns_csv_line(r), 3); /* blank line skipped */
  cr_assert_eq(ns_csv_nfields(r), 3);
  size_t len;
  cr_assert_str_eq(ns_csv_field(r, 0, &len), "x,1");
  cr_assert_eq(len, 3);
  cr_assert_str_eq(ns_csv_field(r, 1, NULL), "say \"hi\"");
  cr_assert_str_eq(ns_csv_field(r, 2, NULL), "");
  cr_assert_eq(ns_csv_col(r, 1), 7);
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert_eq(ns_csv_nfields(r), 2);
  cr_assert(!ns_csv_unterminated(r));
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert(got);
  cr_assert(ns_csv_unterminated(r));
  cr_assert_str_eq(ns_csv_field(r, 2, NULL), "newline");
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert(!got);
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert(!got);
  ns_csv_close(r);
  ns_csv_close(NULL);
}

static ns_status first_error(const char *text, size_t n) {
  ns_csv *r = NULL;
  cr_assert_eq(ns_csv_open_mem(text, n, ',', "bad.csv", &r), NS_OK);
  bool got = true;
  ns_status st = NS_OK;
  while (!st && got) st = ns_csv_next(r, &got);
  ns_csv_close(r);
  return st;
}

Test(csv, errors_name_line_and_column) {
  cr_assert_eq(first_error("a,b\n\"open,c\n", 12), NS_ERR_PARSE);
  assert_detail_has("bad.csv:2:1: unterminated quoted field");
  cr_assert_eq(first_error("a,\"b\"x\n", 7), NS_ERR_PARSE);
  assert_detail_has("bad.csv:1:6: text after closing quote");
  cr_assert_eq(first_error("ok\na\0b\n", 7), NS_ERR_FORMAT);
  assert_detail_has("bad.csv:2:2: NUL byte");
  ns_csv *r = NULL;
  cr_assert_eq(ns_csv_open("/nonexistent/x.csv", ',', &r), NS_ERR_IO);
  cr_assert_null(r);
  assert_detail_has("/nonexistent/x.csv");
}

/* Lines cross the 1 MiB read buffer and a long line forces it to grow. */
Test(csv, streams_large_file) {
  char path[] = "/tmp/ns_csvbig_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  size_t rows = 200000;
  for (size_t i = 0; i < rows; i++) fprintf(f, "%zu,%zu.5,abc\n", i, i * 3);
  for (int i = 0; i < 300000; i++) fputs("x,", f);
  fputs("end\n", f);
  fclose(f);
  ns_csv *r = NULL;
  cr_assert_eq(ns_csv_open(path, ',', &r), NS_OK);
  bool got;
  size_t n = 0;
  while (ns_csv_next(r, &got) == NS_OK && got) {
    if (n < rows) {
      double v;
      size_t len;
      const char *s = ns_csv_field(r, 1, &len);
      cr_assert_eq(ns_parse_double(s, len, &v), NS_OK);
      cr_assert_eq(v, (double)(n * 3) + 0.5, "row %zu", n);
    } else {
      cr_assert_eq(ns_csv_nfields(r), 300001);
    }
    n++;
  }
  cr_assert_eq(n, rows + 1);
  ns_csv_close(r);
  unlink(path);
}

Test(csv, seek) {
  const char *p = tmp_file("s.csv", "aa,1\nbb,2\ncc,3\n");
  ns_csv *r = NULL;
  bool got;
  cr_assert_eq(ns_csv_open(p, ',', &r), NS_OK);
  cr_assert_eq(ns_csv_seek(r, 5), NS_OK); /* exactly the start of line 2 */
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert_str_eq(ns_csv_field(r, 0, NULL), "bb");
  cr_assert_eq(ns_csv_line(r), 1);
  cr_assert_eq(ns_csv_seek(r, 6), NS_OK); /* inside line 2: continue at line 3 */
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert_str_eq(ns_csv_field(r, 0, NULL), "cc");
  cr_assert_eq(ns_csv_seek(r, 0), NS_OK);
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert_str_eq(ns_csv_field(r, 0, NULL), "aa");
  cr_assert_eq(ns_csv_seek(r, 1000), NS_OK); /* past the end */
  cr_assert_eq(ns_csv_next(r, &got), NS_OK);
  cr_assert(!got);
  ns_csv_close(r);
  rm_tmp_file(p);
  cr_assert_eq(ns_csv_open_mem("x\n", 2, ',', "m", &r), NS_OK);
  cr_assert_eq(ns_csv_seek(r, 1), NS_ERR_UNSUPPORTED);
  ns_csv_close(r);
}
