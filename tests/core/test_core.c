#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ns_config.h"
#include "ns_log.h"
#include "ns_mts.h"
#include "ns_status.h"

Test(status, every_code_has_message_and_name) {
  for (int s = 0; s < NS_STATUS_COUNT_; s++) {
    cr_assert_str_neq(ns_strerror((ns_status)s), "unknown status");
    cr_assert(strncmp(ns_status_name((ns_status)s), "NS_", 3) == 0);
  }
  cr_assert_str_eq(ns_strerror((ns_status)9999), "unknown status");
}

Test(status, errorf_records_detail) {
  ns_status st = ns_errorf(NS_ERR_PARSE, "f.csv:%d:%d: bad number", 3, 7);
  cr_assert_eq(st, NS_ERR_PARSE);
  cr_assert_str_eq(ns_err_detail(), "f.csv:3:7: bad number");
  cr_assert_str_eq(ns_err_message(st), "parse error: f.csv:3:7: bad number");
  /* Wrapping the previous detail must not garble it. */
  ns_errorf(NS_ERR_PARSE, "%s: %s", "outer.txt", ns_err_detail());
  cr_assert_str_eq(ns_err_detail(), "outer.txt: f.csv:3:7: bad number");
  ns_err_clear();
  cr_assert_str_eq(ns_err_message(NS_ERR_IO), "I/O error");
}

static char *write_tmp(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/ns_cfg_XXXXXX");
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

Test(config, defaults_and_types) {
  ns_config *c = NULL;
  cr_assert_eq(ns_config_create(&c), NS_OK);
  cr_assert_eq(ns_cfg_int(c, NS_CFG_prep_interval), 15000);
  cr_assert_eq(ns_cfg_int(c, NS_CFG_match_len), 3600000);
  cr_assert_eq(ns_cfg_int(c, NS_CFG_max_body), 64 << 20);
  cr_assert_float_eq(ns_cfg_double(c, NS_CFG_detect_k), 3.0, 1e-12);
  cr_assert_str_eq(ns_cfg_str(c, NS_CFG_clust_linkage), "complete");
  cr_assert(ns_cfg_bool(c, NS_CFG_model_moe));
  ns_config_free(c);
  ns_config_free(NULL);
}

Test(config, load_file_and_reject_bad_values) {
  ns_config *c = NULL;
  cr_assert_eq(ns_config_create(&c), NS_OK);
  char *p = write_tmp("# comment\n  detect_k = 2.5  # trailing\nprep_interval=30s\nclust_linkage = WARD\n"
                      "prep_aggregate = *cpu#_*=mean # rules keep their '#'\n");
  cr_assert_eq(ns_config_load_file(c, p), NS_OK, "%s", ns_err_detail());
  unlink(p);
  cr_assert_float_eq(ns_cfg_double(c, NS_CFG_detect_k), 2.5, 1e-12);
  cr_assert_eq(ns_cfg_int(c, NS_CFG_prep_interval), 30000);
  cr_assert_str_eq(ns_cfg_str(c, NS_CFG_clust_linkage), "ward");
  cr_assert_str_eq(ns_cfg_str(c, NS_CFG_prep_aggregate), "*cpu#_*=mean");

  /* A bad file changes nothing, and the error names file and line. */
  p = write_tmp("detect_k = 4\nmodel_layers = 999\n");
  cr_assert_eq(ns_config_load_file(c, p), NS_ERR_RANGE);
  cr_assert(strstr(ns_err_detail(), ":2:") != NULL, "%s", ns_err_detail());
  cr_assert(strstr(ns_err_detail(), "model_layers") != NULL);
  cr_assert_float_eq(ns_cfg_double(c, NS_CFG_detect_k), 2.5, 1e-12);
  unlink(p);

  p = write_tmp("no_such_key = 1\n");
  cr_assert_eq(ns_config_load_file(c, p), NS_ERR_NOTFOUND);
  cr_assert(strstr(ns_err_detail(), "no_such_key") != NULL);
  unlink(p);
  p = write_tmp("justtext\n");
  cr_assert_eq(ns_config_load_file(c, p), NS_ERR_PARSE);
  unlink(p);
  cr_assert_eq(ns_config_load_file(c, "/nonexistent/nsentry.conf"), NS_ERR_IO);

  cr_assert_eq(ns_config_set(c, "workers", "2x"), NS_ERR_PARSE);
  cr_assert_eq(ns_config_set(c, "detect_k", "nan"), NS_ERR_PARSE);
  cr_assert_eq(ns_config_set(c, "model_moe", "maybe"), NS_ERR_PARSE);
  cr_assert_eq(ns_config_set(c, "clust_linkage", "centroid"), NS_ERR_RANGE);
  cr_assert_eq(ns_config_set(c, "prep_interval", "5 fortnights"), NS_ERR_PARSE);
  char *args[] = {"workers=3", "bogus"};
  cr_assert_eq(ns_config_apply_args(c, 2, args), NS_ERR_PARSE);
  cr_assert_eq(ns_cfg_int(c, NS_CFG_workers), 2);
  ns_config_free(c);
}

Test(config, dump_round_trips) {
  ns_config *a = NULL, *b = NULL;
  cr_assert_eq(ns_config_create(&a), NS_OK);
  cr_assert_eq(ns_config_set(a, "match_len", "90m"), NS_OK);
  cr_assert_eq(ns_config_set(a, "db", "sqlite:/tmp/x.db"), NS_OK);
  char path[] = "/tmp/ns_dump_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  cr_assert_eq(ns_config_dump(a, f), NS_OK);
  fclose(f);
  cr_assert_eq(ns_config_create(&b), NS_OK);
  cr_assert_eq(ns_config_load_file(b, path), NS_OK, "%s", ns_err_detail());
  unlink(path);
  for (int k = 0; k < NS_CFG_COUNT_; k++) {
    cr_assert_eq(ns_cfg_int(a, (ns_cfg_key)k), ns_cfg_int(b, (ns_cfg_key)k), "%s", ns_config_desc((ns_cfg_key)k)->name);
    cr_assert_str_eq(ns_cfg_str(a, (ns_cfg_key)k), ns_cfg_str(b, (ns_cfg_key)k));
  }
  ns_config_free(a);
  ns_config_free(b);
}

/* docs/nsentry.conf must be exactly what the table generates. */
Test(config, sample_matches_docs) {
  const char *root = getenv("NS_SOURCE_ROOT");
  cr_assert(root, "NS_SOURCE_ROOT not set");
  char path[4096];
  snprintf(path, sizeof path, "%s/docs/nsentry.conf", root);
  FILE *f = fopen(path, "r");
  cr_assert(f, "docs/nsentry.conf missing: run `nsentry config --sample > docs/nsentry.conf`");
  char *want = NULL, *got = NULL;
  size_t wn = 0, gn = 0;
  FILE *w = open_memstream(&want, &wn);
  cr_assert_eq(ns_config_write_sample(w), NS_OK);
  fclose(w);
  got = calloc(1, wn + 2);
  gn = fread(got, 1, wn + 1, f);
  fclose(f);
  cr_assert(gn == wn && memcmp(got, want, wn) == 0,
            "docs/nsentry.conf is stale: run `nsentry config --sample > docs/nsentry.conf`");
  free(want);
  free(got);
}

Test(config, sample_loads_when_uncommented) {
  /* Every default in the sample must itself validate. */
  char *text = NULL;
  size_t n = 0;
  FILE *w = open_memstream(&text, &n);
  ns_config_write_sample(w);
  fclose(w);
  char path[] = "/tmp/ns_sample_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
    if (line[0] == '#' && line[1] != ' ' && strchr(line, '=')) fprintf(f, "%s\n", line + 1);
  fclose(f);
  free(text);
  ns_config *c = NULL;
  cr_assert_eq(ns_config_create(&c), NS_OK);
  cr_assert_eq(ns_config_load_file(c, path), NS_OK, "%s", ns_err_detail());
  unlink(path);
  ns_config_free(c);
}

Test(parse, durations_and_sizes) {
  int64_t v;
  cr_assert_eq(ns_parse_duration_ms("15", &v), NS_OK);
  cr_assert_eq(v, 15000);
  cr_assert_eq(ns_parse_duration_ms("250ms", &v), NS_OK);
  cr_assert_eq(v, 250);
  cr_assert_eq(ns_parse_duration_ms("1.5h", &v), NS_OK);
  cr_assert_eq(v, 5400000);
  cr_assert_eq(ns_parse_duration_ms("-1s", &v), NS_ERR_PARSE);
  cr_assert_eq(ns_parse_duration_ms("", &v), NS_ERR_PARSE);
  cr_assert_eq(ns_parse_size("2G", &v), NS_OK);
  cr_assert_eq(v, 2147483648LL);
  cr_assert_eq(ns_parse_size("12 parsecs", &v), NS_ERR_PARSE);
}

Test(segment, create_slice_check) {
  ns_segment *s = NULL, *sl = NULL;
  cr_assert_eq(ns_segment_create(10, 3, &s), NS_OK);
  char *names[] = {"cpu_user", "mem_used", "net_rx"};
  cr_assert_eq(ns_segment_set_metrics(s, names), NS_OK);
  cr_assert_eq(ns_segment_set_meta(s, "lab", "cn01", "123_4", 1000, 15000), NS_OK);
  cr_assert_eq(s->kind, NS_SEG_JOB);
  cr_assert_eq(s->end_ms, 1000 + 9 * 15000);
  for (size_t i = 0; i < 30; i++) s->x[i] = (float)i;
  cr_assert_eq(ns_segment_check(s), NS_OK);
  cr_assert_eq(ns_segment_slice(s, 2, 5, &sl), NS_OK);
  cr_assert_eq(sl->T, 3);
  cr_assert_eq(sl->start_ms, 1000 + 2 * 15000);
  cr_assert_float_eq(sl->x[0], 6.0f, 0);
  cr_assert_eq(ns_segment_metric_index(sl, "net_rx"), 2);
  cr_assert_eq(ns_segment_metric_index(sl, "nope"), -1);
  ns_segment_free(sl);
  cr_assert_eq(ns_segment_slice(s, 5, 11, &sl), NS_ERR_RANGE);
  cr_assert_null(sl);
  s->x[7] = NAN;
  cr_assert_eq(ns_segment_check(s), NS_ERR_NONFINITE);
  cr_assert(strstr(ns_err_detail(), "row 2") != NULL, "%s", ns_err_detail());
  s->x[7] = 0;
  free(s->metrics[2]);
  s->metrics[2] = strdup("cpu_user");
  cr_assert_eq(ns_segment_check(s), NS_ERR_INVAL);
  ns_segment_free(sl);
  ns_segment_free(s);
  ns_segment_free(NULL);
  cr_assert_eq(ns_segment_create(5, 0, &s), NS_ERR_INVAL);
  cr_assert_null(s);
}

Test(mts, append_grows) {
  ns_mts *m = NULL;
  char *names[] = {"a", "b"};
  cr_assert_eq(ns_mts_create("cn1", 2, names, &m), NS_OK);
  cr_assert_eq(ns_mts_enable_labels(m), NS_OK);
  for (int i = 0; i < 1000; i++) {
    double row[2] = {i, i % 7 ? i * 2.0 : NAN};
    cr_assert_eq(ns_mts_append(m, 1000LL * i, row), NS_OK);
  }
  cr_assert_eq(m->T, 1000);
  cr_assert_eq(m->ts_ms[999], 999000);
  cr_assert(isnan(m->x[2 * 7 + 1]));
  cr_assert_eq(m->labels[999], 0);
  ns_mts_free(m);
  ns_mts_free(NULL);
}

Test(log, parse_levels) {
  ns_log_level l;
  cr_assert(ns_log_parse_level("DEBUG", &l));
  cr_assert_eq(l, NS_LOG_DEBUG);
  cr_assert_not(ns_log_parse_level("loud", &l));
}
