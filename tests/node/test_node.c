/* Node side: spool ring, job marks, outbox, /proc collection, segment bodies,
 * Prometheus query files, the epilog's failure paths and the SPANK plugin's
 * exported symbols. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include "ns_collect.h"
#include "ns_hash.h"
#include "ns_source.h"
#include "ns_spool.h"

static char *tmpdir(void) {
  char *t = strdup("/tmp/ns_node_XXXXXX");
  cr_assert(mkdtemp(t));
  return t;
}

static void rmrf(const char *d) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  cr_assert_eq(system(cmd), 0);
}

static void put_file(const char *dir, const char *name, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  cr_assert(f, "%s", p);
  fputs(text, f);
  fclose(f);
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static char *names2[] = {"a", "b"};
static char *names3[] = {"a", "c", "b"};

/* ------------------------------------------------------------ spool */

Test(spool, append_read_roundtrip_and_window) {
  char *d = tmpdir();
  ns_spool *sp = NULL;
  ns_spool_opts o = {.retention_ms = 3600000, .max_bytes = 1 << 20, .min_free_bytes = 1};
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK, "%s", ns_err_detail());
  int64_t t0 = 1795000000000;
  for (int i = 0; i < 10; i++) {
    float v[2] = {(float)i, (float)(i * 10)};
    cr_assert_eq(ns_spool_append(sp, t0 + i * 1000, 2, names2, v), NS_OK, "%s", ns_err_detail());
  }
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read(d, "n1", t0 + 2000, t0 + 5000, &m), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(m->T, 4);
  cr_assert_eq(m->M, 2);
  cr_assert_str_eq(m->node, "n1");
  cr_assert_eq(m->ts_ms[0], t0 + 2000);
  cr_assert_float_eq(m->x[3 * 2 + 1], 50.0, 1e-6);
  ns_mts_free(m);
  int64_t last = 0;
  cr_assert_eq(ns_spool_last_ts(d, &last), NS_OK);
  cr_assert_eq(last, t0 + 9000);
  /* outside any sample */
  cr_assert_eq(ns_spool_read(d, "n1", t0 + 20000, t0 + 30000, &m), NS_ERR_EMPTY);
  cr_assert_null(m);
  cr_assert_eq(ns_spool_read(d, "n1", t0 + 5000, t0 + 1000, &m), NS_ERR_RANGE);
  ns_spool_close(sp);
  ns_spool_close(NULL);
  rmrf(d);
  free(d);
}

Test(spool, metric_set_change_gives_union_with_missing) {
  char *d = tmpdir();
  ns_spool *sp = NULL;
  ns_spool_opts o = {.retention_ms = 3600000, .max_bytes = 1 << 20, .min_free_bytes = 1};
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  int64_t t0 = 1795000000000;
  float v2[2] = {1, 2}, v3[3] = {3, 4, 5};
  cr_assert_eq(ns_spool_append(sp, t0, 2, names2, v2), NS_OK);
  cr_assert_eq(ns_spool_append(sp, t0 + 1000, 3, names3, v3), NS_OK);
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read(d, "n", t0, t0 + 1000, &m), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(m->T, 2);
  cr_assert_eq(m->M, 3);
  long ic = -1;
  for (size_t k = 0; k < m->M; k++)
    if (!strcmp(m->metrics[k], "c")) ic = (long)k;
  cr_assert_geq(ic, 0);
  cr_assert(isnan(m->x[0 * 3 + ic]), "first row lacks c");
  cr_assert_float_eq(m->x[1 * 3 + ic], 4.0, 1e-6);
  ns_mts_free(m);
  ns_spool_close(sp);
  rmrf(d);
  free(d);
}

Test(spool, torn_tail_is_trimmed_and_restart_resumes) {
  char *d = tmpdir();
  ns_spool_opts o = {.retention_ms = 3600000, .max_bytes = 1 << 20, .min_free_bytes = 1};
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  int64_t t0 = ns_spool_now_ms();
  float v[2] = {1, 2};
  for (int i = 0; i < 3; i++) cr_assert_eq(ns_spool_append(sp, t0 + i * 1000, 2, names2, v), NS_OK);
  ns_spool_close(sp);
  /* a crash mid-record: half a record at the end */
  char ring[600];
  snprintf(ring, sizeof ring, "%s/ring", d);
  DIR *dd = opendir(ring);
  struct dirent *e;
  char chunk[900] = "";
  while ((e = readdir(dd)))
    if (strstr(e->d_name, ".nss")) snprintf(chunk, sizeof chunk, "%s/%s", ring, e->d_name);
  closedir(dd);
  int fd = open(chunk, O_WRONLY | O_APPEND);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, "garbage", 7), 7);
  close(fd);
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read(d, "n", t0, t0 + 10000, &m), NS_OK);
  cr_assert_eq(m->T, 3, "torn tail ignored by readers");
  ns_mts_free(m);
  /* the restarted sampler appends to the same chunk after trimming */
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  cr_assert_eq(ns_spool_append(sp, t0 + 3000, 2, names2, v), NS_OK);
  ns_spool_close(sp);
  cr_assert_eq(count_files(ring), 1, "resumed, no new chunk");
  cr_assert_eq(ns_spool_read(d, "n", t0, t0 + 10000, &m), NS_OK);
  cr_assert_eq(m->T, 4);
  cr_assert_eq(m->ts_ms[3], t0 + 3000);
  ns_mts_free(m);
  rmrf(d);
  free(d);
}

Test(spool, byte_cap_drops_oldest_chunks) {
  char *d = tmpdir();
  /* cap 64 KiB -> 4 KiB chunks: 1000 records of 20 bytes need several chunks */
  ns_spool_opts o = {.retention_ms = 365LL * 86400000, .max_bytes = 65536, .min_free_bytes = 1};
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  int64_t t0 = 1795000000000;
  float v[2] = {1, 2};
  for (int i = 0; i < 6000; i++) cr_assert_eq(ns_spool_append(sp, t0 + i * 1000LL, 2, names2, v), NS_OK);
  int64_t bytes = ns_spool_ring_bytes(sp);
  cr_assert_leq(bytes, 65536 + 4096, "ring %lld bytes over the cap", (long long)bytes);
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read(d, "n", t0, t0 + 6000 * 1000LL, &m), NS_OK);
  cr_assert_lt(m->T, 6000, "old samples were dropped");
  cr_assert_eq(m->ts_ms[m->T - 1], t0 + 5999 * 1000LL, "newest kept");
  ns_mts_free(m);
  ns_spool_close(sp);
  rmrf(d);
  free(d);
}

Test(spool, retention_prunes_old_chunks) {
  char *d = tmpdir();
  ns_spool_opts o = {.retention_ms = 2 * 3600000LL, .max_bytes = 1 << 30, .min_free_bytes = 1};
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  int64_t t0 = 1795000000000;
  float v[2] = {1, 2};
  /* one sample an hour for 10 h: one chunk each */
  for (int h = 0; h < 10; h++) cr_assert_eq(ns_spool_append(sp, t0 + h * 3600000LL, 2, names2, v), NS_OK);
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read(d, "n", 0, t0 + 100 * 3600000LL, &m), NS_OK);
  cr_assert_leq(m->T, 4, "kept %zu hourly samples with a 2 h retention", m->T);
  cr_assert_geq(m->T, 2);
  ns_mts_free(m);
  ns_spool_close(sp);
  rmrf(d);
  free(d);
}

Test(spool, full_filesystem_refuses_to_write) {
  char *d = tmpdir();
  /* a free-space floor larger than any disk: nothing may be written */
  ns_spool_opts o = {.retention_ms = 3600000, .max_bytes = 1 << 20, .min_free_bytes = 1LL << 60};
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  float v[2] = {1, 2};
  cr_assert_eq(ns_spool_append(sp, ns_spool_now_ms(), 2, names2, v), NS_ERR_LIMIT);
  ns_spool_close(sp);
  rmrf(d);
  free(d);
}

Test(spool, bad_inputs) {
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open("", NULL, &sp), NS_ERR_INVAL);
  cr_assert_eq(ns_spool_open("/proc/nope/spool", NULL, &sp), NS_ERR_IO);
  char *d = tmpdir();
  put_file(d, "ring", "not a dir");
  char sub[600];
  snprintf(sub, sizeof sub, "%s", d);
  cr_assert_eq(ns_spool_open(sub, NULL, &sp), NS_ERR_IO);
  cr_assert_str_neq(ns_err_detail(), "");
  rmrf(d);
  free(d);
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read("/nonexistent-spool", "n", 0, 1, &m), NS_ERR_NOTFOUND);
}

Test(spool, corrupt_chunk_is_skipped_with_warning) {
  char *d = tmpdir();
  ns_spool_opts o = {.retention_ms = 3600000, .max_bytes = 1 << 20, .min_free_bytes = 1};
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  int64_t t0 = 1795000000000;
  float v[2] = {1, 2};
  cr_assert_eq(ns_spool_append(sp, t0 + 5000, 2, names2, v), NS_OK);
  ns_spool_close(sp);
  char ring[600];
  snprintf(ring, sizeof ring, "%s/ring", d);
  put_file(ring, "1795000000000.nss", "NOTASPOOLFILE");
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read(d, "n", t0, t0 + 10000, &m), NS_OK);
  cr_assert_eq(m->T, 1);
  ns_mts_free(m);
  rmrf(d);
  free(d);
}

/* ------------------------------------------------------------ marks */

Test(marks, write_read_remove) {
  char *d = tmpdir();
  cr_assert_eq(ns_spool_mark(d, "123", "start", 1000, "cn01"), NS_OK);
  cr_assert_eq(ns_spool_mark(d, "123", "end", 5000, "cn01"), NS_OK);
  cr_assert_eq(ns_spool_mark(d, "123", "tag", 0, "mytag"), NS_OK);
  ns_job_marks mk;
  cr_assert_eq(ns_spool_read_marks(d, "123", &mk), NS_OK);
  cr_assert_eq(mk.start_ms, 1000);
  cr_assert_eq(mk.end_ms, 5000);
  cr_assert_str_eq(mk.node, "cn01");
  cr_assert_str_eq(mk.tag, "mytag");
  /* a requeued job starts again: the new start clears the old end */
  cr_assert_eq(ns_spool_mark(d, "123", "start", 9000, "cn01"), NS_OK);
  cr_assert_eq(ns_spool_read_marks(d, "123", &mk), NS_OK);
  cr_assert_eq(mk.start_ms, 9000);
  cr_assert_eq(mk.end_ms, 0);
  cr_assert_eq(ns_spool_remove_marks(d, "123"), NS_OK);
  cr_assert_eq(ns_spool_read_marks(d, "123", &mk), NS_ERR_NOTFOUND);
  cr_assert_eq(ns_spool_remove_marks(d, "123"), NS_OK, "removing twice is fine");
  rmrf(d);
  free(d);
}

Test(marks, bad_ids_and_lines) {
  char *d = tmpdir();
  cr_assert_eq(ns_spool_mark(d, "../etc/passwd", "start", 1, "n"), NS_ERR_INVAL);
  cr_assert_eq(ns_spool_mark(d, "", "start", 1, "n"), NS_ERR_INVAL);
  cr_assert_eq(ns_spool_mark(d, "12", "middle", 1, "n"), NS_ERR_INVAL);
  cr_assert(ns_spool_id_ok("123_4"));
  cr_assert(ns_spool_id_ok("123+0"));
  cr_assert_not(ns_spool_id_ok(".hidden"));
  cr_assert_not(ns_spool_id_ok("a b"));
  char marks[600];
  snprintf(marks, sizeof marks, "%s/marks", d);
  mkdir(marks, 0755);
  put_file(marks, "77", "start 1000 n1\nbogus line\nstart -5 n1\nend 2000 n1\n");
  ns_job_marks mk;
  cr_assert_eq(ns_spool_read_marks(d, "77", &mk), NS_OK);
  cr_assert_eq(mk.start_ms, 1000);
  cr_assert_eq(mk.end_ms, 2000);
  rmrf(d);
  free(d);
}

Test(marks, prune_stale) {
  char *d = tmpdir();
  cr_assert_eq(ns_spool_mark(d, "1", "start", 1000, "n"), NS_OK);
  int removed = -1;
  cr_assert_eq(ns_spool_prune_marks(d, 3600000, &removed), NS_OK);
  cr_assert_eq(removed, 0);
  usleep(20000);
  cr_assert_eq(ns_spool_prune_marks(d, 1, &removed), NS_OK);
  cr_assert_eq(removed, 1);
  rmrf(d);
  free(d);
}

/* ------------------------------------------------------------ outbox */

Test(outbox, put_list_replace_and_cap) {
  char *d = tmpdir();
  char body[3000];
  memset(body, 'x', sizeof body);
  int dropped = -1;
  cr_assert_eq(ns_outbox_put(d, "lab.1.n", body, 1000, 65536, &dropped), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(dropped, 0);
  usleep(2000);
  cr_assert_eq(ns_outbox_put(d, "lab.1.n", body, 1200, 65536, &dropped), NS_OK);
  ns_outbox_entry *v = NULL;
  size_t n = 0;
  cr_assert_eq(ns_outbox_list(d, &v, &n), NS_OK);
  cr_assert_eq(n, 1, "same key replaces");
  cr_assert_eq(v[0].bytes, 1200);
  cr_assert_str_eq(v[0].key, "lab.1.n");
  free(v);
  /* cap of 5000 bytes: five 1200-byte entries cannot all stay */
  for (int i = 2; i <= 5; i++) {
    char key[32];
    snprintf(key, sizeof key, "lab.%d.n", i);
    usleep(2000);
    cr_assert_eq(ns_outbox_put(d, key, body, 1200, 5000, &dropped), NS_OK);
  }
  cr_assert_eq(ns_outbox_list(d, &v, &n), NS_OK);
  cr_assert_eq(n, 4);
  cr_assert_str_eq(v[0].key, "lab.2.n", "oldest dropped first");
  char *b = NULL;
  size_t len = 0;
  cr_assert_eq(ns_outbox_read(&v[0], &b, &len), NS_OK);
  cr_assert_eq(len, 1200);
  free(b);
  cr_assert_eq(ns_outbox_remove(&v[0]), NS_OK);
  free(v);
  cr_assert_eq(ns_outbox_dropped(d), 1);
  cr_assert_eq(ns_outbox_put(d, "big", body, 3000, 2000, &dropped), NS_ERR_LIMIT);
  cr_assert_eq(ns_outbox_put(d, "a/b", body, 10, 2000, &dropped), NS_ERR_INVAL);
  rmrf(d);
  free(d);
}

/* ------------------------------------------------------------ collect */

static void fake_proc(const char *d, unsigned long long user, unsigned long long idle, unsigned long long ctxt,
                      unsigned long long rx) {
  char stat[1024];
  snprintf(stat, sizeof stat,
           "cpu  %llu 0 100 %llu 0 0 0 0 0 0\ncpu0 %llu 0 50 %llu 0 0 0 0 0 0\ncpu1 0 0 50 %llu 0 0 0 0 0 0\n"
           "intr 500 1 2\nctxt %llu\nprocesses 10\nprocs_running 3\nprocs_blocked 0\n",
           user, idle, user, idle / 2, idle / 2 + user, ctxt);
  put_file(d, "stat", stat);
  put_file(d, "meminfo", "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\n"
                         "SwapTotal:       100 kB\nSwapFree:         40 kB\n");
  put_file(d, "loadavg", "1.50 0.50 0.25 3/200 999\n");
  char net[1024];
  snprintf(net, sizeof net,
           "Inter-| Receive | Transmit\n face |bytes packets|bytes\n"
           "    lo: 999999 1 0 0 0 0 0 0 999999 1 0 0 0 0 0 0\n"
           "  eth0: %llu 10 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n",
           rx);
  put_file(d, "net/dev", net);
}

Test(collect, rates_percentages_and_resets) {
  char *d = tmpdir();
  char sub[600];
  snprintf(sub, sizeof sub, "%s/net", d);
  mkdir(sub, 0755);
  fake_proc(d, 100, 1000, 5000, 1000);
  ns_collect *c = NULL;
  cr_assert_eq(ns_collect_create(d, NS_COLLECT_NO_PERF | NS_COLLECT_NO_NVML, &c), NS_OK, "%s", ns_err_detail());
  size_t M;
  char **names;
  float *vals;
  cr_assert_eq(ns_collect_sample(c, 1000, &M, &names, &vals), NS_ERR_EMPTY, "first sample primes");
  /* 2 s later: +100 user jiffies, +300 idle -> user 25 %; ctxt +1000 -> 500/s */
  fake_proc(d, 200, 1300, 6000, 3000);
  cr_assert_eq(ns_collect_sample(c, 3000, &M, &names, &vals), NS_OK, "%s", ns_err_detail());
  double got[8] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
  const char *want[8] = {"cpu_user", "cpu_idle", "ctxt_rate", "mem_used", "swap_used", "load1", "net_rx_bytes_rate",
                         "procs_running"};
  for (size_t k = 0; k < M; k++)
    for (int w = 0; w < 8; w++)
      if (!strcmp(names[k], want[w])) got[w] = vals[k];
  cr_assert_float_eq(got[0], 25.0, 1e-3);
  cr_assert_float_eq(got[1], 75.0, 1e-3);
  cr_assert_float_eq(got[2], 500.0, 1e-3);
  cr_assert_float_eq(got[3], 400.0 * 1024, 1e-3);
  cr_assert_float_eq(got[4], 60.0 * 1024, 1e-3);
  cr_assert_float_eq(got[5], 1.5, 1e-6);
  cr_assert_float_eq(got[6], 1000.0, 1e-3, "lo excluded, eth0 +2000 B in 2 s");
  cr_assert_float_eq(got[7], 3.0, 1e-6);
  /* a counter going backwards (reset) is missing, not a negative rate */
  fake_proc(d, 300, 1600, 10, 4000);
  cr_assert_eq(ns_collect_sample(c, 4000, &M, &names, &vals), NS_OK);
  for (size_t k = 0; k < M; k++)
    if (!strcmp(names[k], "ctxt_rate")) cr_assert(isnan(vals[k]));
  ns_collect_free(c);
  ns_collect_free(NULL);
  cr_assert_eq(ns_collect_create("/nonexistent-proc", NS_COLLECT_NO_PERF, &c), NS_ERR_IO);
  cr_assert_null(c);
  rmrf(d);
  free(d);
}

Test(collect, real_proc_has_core_metrics) {
  ns_collect *c = NULL;
  cr_assert_eq(ns_collect_create("/proc", NS_COLLECT_NO_NVML, &c), NS_OK);
  cr_assert_str_neq(ns_collect_perf_state(c), "");
  size_t M;
  char **names;
  float *vals;
  int64_t t = ns_spool_now_ms();
  cr_assert_eq(ns_collect_sample(c, t, &M, &names, &vals), NS_ERR_EMPTY);
  usleep(100000);
  cr_assert_eq(ns_collect_sample(c, t + 100, &M, &names, &vals), NS_OK);
  int found = 0;
  for (size_t k = 0; k < M; k++) {
    if (!strcmp(names[k], "cpu_user") || !strcmp(names[k], "mem_available") || !strcmp(names[k], "load1")) found++;
    cr_assert_lt(strlen(names[k]), 64);
  }
  cr_assert_eq(found, 3);
  ns_collect_free(c);
}

/* ------------------------------------------------------------ bodies, hashing, queries */

Test(ship, sha256_known_vectors) {
  char hex[65];
  ns_sha256_hex("", 0, hex);
  cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ns_sha256_hex("abc", 3, hex);
  cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *l = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  ns_sha256_hex(l, strlen(l), hex);
  cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(ship, segment_body_is_valid_api_json) {
  ns_mts *m = NULL;
  char *nm[] = {"cpu_user", "mem_used"};
  cr_assert_eq(ns_mts_create("cn1", 2, nm, &m), NS_OK);
  double r0[2] = {1.5, NAN}, r1[2] = {2.5, 3e9}, r2[2] = {9, 9};
  cr_assert_eq(ns_mts_append(m, 1000, r0), NS_OK);
  cr_assert_eq(ns_mts_append(m, 2000, r1), NS_OK);
  cr_assert_eq(ns_mts_append(m, 2100, r2), NS_OK); /* same 1 s slot as the previous row: dropped */
  ns_ship_meta meta = {.cluster = "lab", .job_id = "12_3", .node = "cn1", .job_nodes = 1, .start_ms = 900,
                       .end_ms = 2200, .interval_ms = 1000, .user = "al\"ice", .tag = "t1", .has_exit_code = true};
  char *body = NULL;
  size_t len = 0;
  cr_assert_eq(ns_segment_body(&meta, m, &body, &len), NS_OK);
  cJSON *j = cJSON_Parse(body);
  cr_assert_not_null(j, "%s", body);
  cr_assert_str_eq(cJSON_GetObjectItem(j, "job_id")->valuestring, "12_3");
  cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "values")), 2);
  cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "timestamps_ms")), 2);
  cJSON *row0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "values"), 0);
  cr_assert(cJSON_IsNull(cJSON_GetArrayItem(row0, 1)), "NaN becomes null");
  cJSON *job = cJSON_GetObjectItem(j, "job");
  cr_assert_str_eq(cJSON_GetObjectItem(job, "user")->valuestring, "al\"ice");
  cr_assert_eq(cJSON_GetObjectItem(job, "exit_code")->valueint, 0);
  cr_assert_null(cJSON_GetObjectItem(job, "partition"));
  cJSON_Delete(j);
  free(body);
  meta.job_nodes = 0;
  cr_assert_eq(ns_segment_body(&meta, m, &body, &len), NS_ERR_INVAL);
  ns_mts_free(m);
  cr_assert_eq(ns_mts_create("cn1", 2, nm, &m), NS_OK);
  meta.job_nodes = 1;
  cr_assert_eq(ns_segment_body(&meta, m, &body, &len), NS_ERR_EMPTY);
  ns_mts_free(m);
}

Test(ship, prometheus_query_files) {
  ns_prom_query *q = NULL;
  size_t n = 0;
  cr_assert_eq(ns_prom_queries_load(NULL, &q, &n), NS_OK);
  cr_assert_gt(n, 10);
  char *e = NULL;
  cr_assert_eq(ns_prom_expand(q[0].expr, "node=\"$node\"", "cn1.x", 1000, &e), NS_OK);
  cr_assert(strstr(e, "node=\"cn1\\\\.x\""), "%s", e);
  cr_assert(strstr(e, "[4s]"), "%s", e);
  free(e);
  cr_assert_eq(ns_prom_expand("up{$sel}", "", "n", 15000, &e), NS_OK);
  cr_assert_str_eq(e, "up{}");
  free(e);
  ns_prom_queries_free(q, n);
  char *d = tmpdir();
  put_file(d, "ok.txt", "# comment\ncpu = avg(rate(x{$sel}[$rate]))\n\nmem=y{$sel}\n");
  put_file(d, "bad.txt", "cpu = a\nthis line has no equals\n");
  put_file(d, "dup.txt", "cpu = a\ncpu = b\n");
  put_file(d, "name.txt", "bad name = a\n");
  char p[600];
  snprintf(p, sizeof p, "%s/ok.txt", d);
  cr_assert_eq(ns_prom_queries_load(p, &q, &n), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(n, 2);
  cr_assert_str_eq(q[1].name, "mem");
  ns_prom_queries_free(q, n);
  snprintf(p, sizeof p, "%s/bad.txt", d);
  cr_assert_eq(ns_prom_queries_load(p, &q, &n), NS_ERR_PARSE);
  cr_assert(strstr(ns_err_detail(), "bad.txt:2:"), "%s", ns_err_detail());
  snprintf(p, sizeof p, "%s/dup.txt", d);
  cr_assert_eq(ns_prom_queries_load(p, &q, &n), NS_ERR_PARSE);
  snprintf(p, sizeof p, "%s/name.txt", d);
  cr_assert_eq(ns_prom_queries_load(p, &q, &n), NS_ERR_PARSE);
  snprintf(p, sizeof p, "%s/missing.txt", d);
  cr_assert_eq(ns_prom_queries_load(p, &q, &n), NS_ERR_IO);
  rmrf(d);
  free(d);
}

Test(ship, unreachable_service_and_prometheus_fail_fast) {
  long code = -1;
  /* port 9 on loopback: nothing listens */
  ns_status st = ns_ship_get("http://127.0.0.1:9", "/v1/health", 2000, &code);
  cr_assert_eq(st, NS_ERR_NET, "%s", ns_err_message(st));
  cr_assert_eq(code, 0);
  ns_source_opts o = {.kind = NS_SOURCE_PROMETHEUS, .prometheus_url = "http://127.0.0.1:9",
                      .prometheus_selector = "", .step_ms = 1000};
  ns_mts *m = NULL;
  st = ns_source_cut(&o, "n", 1000, 5000, 2000, &m);
  cr_assert_eq(st, NS_ERR_NET, "%s", ns_err_message(st));
  cr_assert_null(m);
  cr_assert_eq(ns_source_cut(&o, "", 1000, 5000, 2000, &m), NS_ERR_INVAL);
  cr_assert_eq(ns_source_cut(&o, "n", 5000, 1000, 2000, &m), NS_ERR_RANGE);
  ns_source_kind k;
  cr_assert_eq(ns_source_parse_kind("PROMETHEUS", &k), NS_OK);
  cr_assert_eq(k, NS_SOURCE_PROMETHEUS);
  cr_assert_eq(ns_source_parse_kind("influx", &k), NS_ERR_INVAL);
}

/* ------------------------------------------------------------ programs */

static const char *build_root(void) {
  const char *b = getenv("NS_BUILD_ROOT");
  if (!b) cr_skip_test("NS_BUILD_ROOT not set");
  return b;
}

static int run(const char *cmd) {
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(epilog, service_down_queues_segment_in_outbox) {
  const char *b = build_root();
  char *d = tmpdir();
  /* a spool with a few samples, and the plugin's marks */
  ns_spool_opts o = {.retention_ms = 3600000, .max_bytes = 1 << 20, .min_free_bytes = 1};
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  int64_t t0 = ns_spool_now_ms() - 10000;
  float v[2] = {1, 2};
  for (int i = 0; i < 10; i++) cr_assert_eq(ns_spool_append(sp, t0 + i * 1000, 2, names2, v), NS_OK);
  ns_spool_close(sp);
  cr_assert_eq(ns_spool_mark(d, "42", "start", t0, "n1"), NS_OK);
  cr_assert_eq(ns_spool_mark(d, "42", "end", t0 + 9000, "n1"), NS_OK);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "env -i %s/epilog/nsentry-epilog --strict --job 42 --node n1 --tag tg -s spool_dir=%s "
           "-s service_url=http://127.0.0.1:9 -s sampler_interval=1s -s epilog_timeout=3s "
           "-s munge_socket=%s/no-munge.sock 2>%s/err.log",
           b, d, d, d);
  cr_assert_eq(run(cmd), 1, "strict mode reports the failure");
  ns_outbox_entry *e = NULL;
  size_t n = 0;
  cr_assert_eq(ns_outbox_list(d, &e, &n), NS_OK);
  cr_assert_eq(n, 1);
  cr_assert(strstr(e[0].key, ".42.n1"), "%s", e[0].key);
  char *body = NULL;
  size_t len = 0;
  cr_assert_eq(ns_outbox_read(&e[0], &body, &len), NS_OK);
  cJSON *j = cJSON_Parse(body);
  cr_assert_not_null(j);
  cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "values")), 10);
  cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "job"), "tag")->valuestring, "tg");
  cJSON_Delete(j);
  free(body);
  free(e);
  ns_job_marks mk;
  cr_assert_eq(ns_spool_read_marks(d, "42", &mk), NS_ERR_NOTFOUND, "marks consumed");
  /* without --strict the exit status is 0 whatever happens */
  cr_assert_eq(ns_spool_mark(d, "43", "start", t0, "n1"), NS_OK);
  snprintf(cmd, sizeof cmd,
           "env -i %s/epilog/nsentry-epilog --job 43 --node n1 -s spool_dir=%s -s service_url=http://127.0.0.1:9 "
           "-s epilog_timeout=2s -s munge_socket=%s/no-munge.sock 2>>%s/err.log",
           b, d, d, d);
  cr_assert_eq(run(cmd), 0);
  /* retry: still down, still queued, nothing lost */
  snprintf(cmd, sizeof cmd,
           "env -i %s/epilog/nsentry-epilog --flush --strict -s spool_dir=%s -s service_url=http://127.0.0.1:9 "
           "-s epilog_timeout=2s -s munge_socket=%s/no-munge.sock 2>>%s/err.log",
           b, d, d, d);
  cr_assert_eq(run(cmd), 1);
  cr_assert_eq(ns_outbox_list(d, &e, &n), NS_OK);
  cr_assert_eq(n, 2);
  free(e);
  rmrf(d);
  free(d);
}

Test(epilog, skip_and_bad_input_never_fail) {
  const char *b = build_root();
  char *d = tmpdir();
  cr_assert_eq(ns_spool_mark(d, "50", "start", 1000, "n1"), NS_OK);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "env -i SPANK_NSENTRY_SKIP=1 SLURM_JOB_ID=50 SLURMD_NODENAME=n1 %s/epilog/nsentry-epilog --strict "
           "-s spool_dir=%s 2>/dev/null",
           b, d);
  cr_assert_eq(run(cmd), 0);
  ns_job_marks mk;
  cr_assert_eq(ns_spool_read_marks(d, "50", &mk), NS_ERR_NOTFOUND, "skip removes marks");
  /* no job id, a bad config key, an unknown option: exit 0 without --strict */
  snprintf(cmd, sizeof cmd, "env -i %s/epilog/nsentry-epilog -s spool_dir=%s 2>/dev/null", b, d);
  cr_assert_eq(run(cmd), 0);
  snprintf(cmd, sizeof cmd, "env -i %s/epilog/nsentry-epilog -s no_such_key=1 2>/dev/null", b);
  cr_assert_eq(run(cmd), 0);
  snprintf(cmd, sizeof cmd, "env -i %s/epilog/nsentry-epilog --bogus 2>/dev/null", b);
  cr_assert_eq(run(cmd), 0);
  snprintf(cmd, sizeof cmd, "env -i %s/epilog/nsentry-epilog --strict --job 51 -s spool_dir=%s 2>/dev/null", b, d);
  cr_assert_eq(run(cmd), 1, "no start mark and no slurmctld: nothing to ship");
  ns_outbox_entry *e = NULL;
  size_t n = 0;
  cr_assert_eq(ns_outbox_list(d, &e, &n), NS_OK);
  cr_assert_eq(n, 0);
  free(e);
  rmrf(d);
  free(d);
}

Test(sampler, writes_spool_and_refuses_second_instance) {
  const char *b = build_root();
  char *d = tmpdir();
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "%s/epilog/nsentry-sampler --count 2 --no-nvml -s spool_dir=%s -s sampler_interval=1s 2>/dev/null", b, d);
  cr_assert_eq(run(cmd), 0);
  ns_mts *m = NULL;
  cr_assert_eq(ns_spool_read(d, "n", 0, ns_spool_now_ms() + 1000, &m), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(m->T, 2);
  ns_mts_free(m);
  /* a held lock on sampler.pid means another sampler runs on this spool */
  snprintf(cmd, sizeof cmd,
           "flock %s/sampler.pid %s/epilog/nsentry-sampler --count 1 --no-nvml -s spool_dir=%s 2>/dev/null", d, b,
           d);
  cr_assert_eq(run(cmd), 1);
  snprintf(cmd, sizeof cmd, "%s/epilog/nsentry-sampler -s sampler_interval=10ms 2>/dev/null", b);
  cr_assert_eq(run(cmd), 1, "interval below 1 s is refused");
  rmrf(d);
  free(d);
}

Test(spank, exports_only_plugin_symbols) {
  const char *b = build_root();
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/spank/nsentry_spank.so", b);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  char line[512];
  int n = 0, hooks = 0;
  while (fgets(line, sizeof line, p)) {
    char addr[64], type[8], name[256];
    if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3) continue;
    n++;
    bool ok = !strcmp(name, "plugin_name") || !strcmp(name, "plugin_type") || !strcmp(name, "plugin_version") ||
              !strcmp(name, "spank_plugin_version") || !strncmp(name, "slurm_spank_", 12);
    cr_assert(ok, "unexpected exported symbol %s", name);
    hooks += !strcmp(name, "slurm_spank_job_prolog") || !strcmp(name, "slurm_spank_job_epilog");
  }
  cr_assert_eq(pclose(p), 0);
  cr_assert_eq(hooks, 2);
  cr_assert_geq(n, 6);
  /* no libslurm inside: only SPANK's own entry points are undefined */
  snprintf(cmd, sizeof cmd, "nm -D --undefined-only %s/spank/nsentry_spank.so | grep -c ' slurm_[a-z]*_' || true", b);
  p = popen(cmd, "r");
  cr_assert(fgets(line, sizeof line, p));
  pclose(p);
  cr_assert_eq(atoi(line), 0, "plugin refers to libslurm symbols");
}

/* ------------------------------------------------------------ Prometheus (real) */

static pid_t spawn_quiet(char *const argv[], const char *log) {
  pid_t p = fork();
  if (p == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    setsid();
    execv(argv[0], argv);
    _exit(127);
  }
  return p;
}

static void stop_pid(pid_t p) {
  if (p <= 0) return;
  kill(p, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(p, NULL, WNOHANG) == p) return;
    usleep(50000);
  }
  kill(p, SIGKILL);
  waitpid(p, NULL, 0);
}

Test(prometheus, query_range_against_node_exporter, .timeout = 60) {
  if (access("/usr/bin/prometheus", X_OK) || access("/usr/bin/prometheus-node-exporter", X_OK))
    cr_skip_test("prometheus / prometheus-node-exporter not installed");
  char *d = tmpdir();
  char cfg[600], log1[600], log2[600], data[600], flag[700], flag2[700];
  snprintf(cfg, sizeof cfg, "%s/prometheus.yml", d);
  FILE *f = fopen(cfg, "w");
  fprintf(f, "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: node\n    static_configs:\n"
             "      - targets: ['127.0.0.1:19631']\n        labels: {node: cnx}\n");
  fclose(f);
  snprintf(log1, sizeof log1, "%s/ne.log", d);
  snprintf(log2, sizeof log2, "%s/prom.log", d);
  snprintf(data, sizeof data, "--storage.tsdb.path=%s/data", d);
  snprintf(flag, sizeof flag, "--config.file=%s", cfg);
  snprintf(flag2, sizeof flag2, "%s", "--web.listen-address=127.0.0.1:19630");
  char *ne[] = {"/usr/bin/prometheus-node-exporter", "--web.listen-address=127.0.0.1:19631", "--no-collector.systemd",
                NULL};
  char *pr[] = {"/usr/bin/prometheus", flag, data, flag2, NULL};
  pid_t p1 = spawn_quiet(ne, log1), p2 = spawn_quiet(pr, log2);
  int64_t t0 = ns_spool_now_ms();
  /* wait for a few scrapes; rate() needs at least two */
  ns_source_opts o = {.kind = NS_SOURCE_PROMETHEUS, .prometheus_url = "http://127.0.0.1:19630",
                      .prometheus_selector = "node=\"$node\"", .step_ms = 1000};
  ns_mts *m = NULL;
  ns_status st = NS_ERR_EMPTY;
  for (int i = 0; i < 80 && st != NS_OK; i++) {
    usleep(250000);
    ns_mts_free(m), m = NULL;
    int64_t now = ns_spool_now_ms();
    st = ns_source_cut(&o, "cnx", t0, now, 5000, &m);
    if (st == NS_OK) {
      /* need rate-based metrics too, not only gauges */
      long k = -1;
      for (size_t j = 0; j < m->M; j++)
        if (!strcmp(m->metrics[j], "cpu_user")) k = (long)j;
      bool any = false;
      for (size_t t = 0; k >= 0 && t < m->T; t++) any |= !isnan(m->x[t * m->M + (size_t)k]);
      if (!any) st = NS_ERR_EMPTY;
    }
  }
  cr_assert_eq(st, NS_OK, "%s", ns_err_message(st));
  cr_assert_geq(m->M, 10);
  for (size_t t = 1; t < m->T; t++) cr_assert_eq(m->ts_ms[t] - m->ts_ms[t - 1], 1000, "on the step grid");
  ns_mts_free(m), m = NULL;
  /* another node's name selects nothing */
  cr_assert_eq(ns_source_cut(&o, "othernode", t0, ns_spool_now_ms(), 5000, &m), NS_ERR_EMPTY);
  /* a malformed query is reported with Prometheus' error */
  char qf[600];
  snprintf(qf, sizeof qf, "%s/q.txt", d);
  put_file(d, "q.txt", "broken = sum(rate(\n");
  o.prometheus_queries = qf;
  st = ns_source_cut(&o, "cnx", t0, ns_spool_now_ms(), 5000, &m);
  cr_assert_eq(st, NS_ERR_NET);
  cr_assert(strstr(ns_err_detail(), "broken"), "%s", ns_err_detail());
  stop_pid(p2);
  stop_pid(p1);
  rmrf(d);
  free(d);
}

/* ------------------------------------------------------------ LDMS store_csv */

Test(ldms, cut_window_for_one_producer) {
  char *d = tmpdir();
  /* two producers; cpu_user is a counter (procstat schema) and becomes a rate */
  put_file(d, "procstat", "#Time,Time_usec,ProducerName,component_id,job_id,app_id,user,procs_running\n"
                          "1790000000.000000,0,cnA,1,0,0,100,1\n"
                          "1790000000.000000,0,cnB,2,0,0,999,9\n"
                          "1790000001.000000,0,cnA,1,0,0,150,2\n"
                          "1790000002.000000,0,cnA,1,0,0,250,3\n"
                          "1790000003.000000,0,cnA,1,0,0,260,1\n");
  ns_source_opts o = {.kind = NS_SOURCE_LDMS, .ldms_dir = d, .step_ms = 1000};
  ns_mts *m = NULL;
  ns_status st = ns_source_cut(&o, "cnA", 1790000001000, 1790000002000, 1000, &m);
  cr_assert_eq(st, NS_OK, "%s", ns_err_message(st));
  cr_assert_eq(m->T, 2);
  long u = -1, r = -1;
  for (size_t k = 0; k < m->M; k++) {
    if (strstr(m->metrics[k], "user")) u = (long)k;
    if (strstr(m->metrics[k], "procs_running")) r = (long)k;
  }
  cr_assert(u >= 0 && r >= 0);
  cr_assert_float_eq(m->x[0 * m->M + (size_t)u], 50.0, 1e-9, "counter -> per-second rate");
  cr_assert_float_eq(m->x[1 * m->M + (size_t)u], 100.0, 1e-9);
  cr_assert_float_eq(m->x[1 * m->M + (size_t)r], 3.0, 1e-9, "gauge kept");
  ns_mts_free(m);
  m = NULL;
  cr_assert_eq(ns_source_cut(&o, "cnZ", 1790000001000, 1790000002000, 1000, &m), NS_ERR_EMPTY);
  cr_assert_eq(ns_source_cut(&o, "cnA", 1800000000000, 1800000001000, 1000, &m), NS_ERR_EMPTY);
  o.ldms_dir = "/nonexistent-ldms";
  cr_assert_neq(ns_source_cut(&o, "cnA", 1790000001000, 1790000002000, 1000, &m), NS_OK);
  rmrf(d);
  free(d);
}

/* ------------------------------------------------------------ nsentry doctor */

static char *run_out(const char *cmd, int *rc) {
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = calloc(1, cap);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) n += r;
  int st = pclose(p);
  *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return buf;
}

Test(doctor, reports_failures_with_fixes) {
  const char *b = build_root();
  char *d = tmpdir();
  char cmd[4096], sub[600];
  int rc;
  /* 1. plugstack without nsentry; no sampler; service and DB down */
  put_file(d, "plugstack.conf", "# nothing here\noptional /usr/lib/other.so\n");
  snprintf(cmd, sizeof cmd,
           "env -i PATH=/usr/bin:/bin %s/service/nsentry -s spool_dir=%s/spool -s service_url=http://127.0.0.1:9 "
           "-s db=sqlite:/nonexistent/dir/x.db doctor --plugstack %s/plugstack.conf --writer root 2>&1",
           b, d, d);
  char *out = run_out(cmd, &rc);
  cr_assert_eq(rc, 1, "%s", out);
  cr_assert(strstr(out, "FAIL plugstack"), "%s", out);
  cr_assert(strstr(out, "FAIL sampler"), "%s", out);
  cr_assert(strstr(out, "FAIL service"), "%s", out);
  cr_assert(strstr(out, "FAIL db"), "%s", out);
  cr_assert(strstr(out, "fix: "), "%s", out);
  cr_assert(strstr(out, "doctor: "), "%s", out);
  free(out);
  /* 2. the plugin found through an include, with a spool_dir that disagrees */
  snprintf(sub, sizeof sub, "%s/plugstack.conf.d", d);
  mkdir(sub, 0755);
  char line[1024];
  snprintf(line, sizeof line, "optional %s/spank/nsentry_spank.so spool_dir=/elsewhere epilog=%s/epilog/nsentry-epilog\n", b,
           b);
  put_file(sub, "nsentry.conf", line);
  snprintf(line, sizeof line, "include %s/*\n", sub);
  put_file(d, "plugstack.conf", line);
  snprintf(cmd, sizeof cmd,
           "env -i PATH=/usr/bin:/bin %s/service/nsentry -s spool_dir=%s/spool doctor --node --plugstack "
           "%s/plugstack.conf 2>&1",
           b, d, d);
  out = run_out(cmd, &rc);
  cr_assert_eq(rc, 1, "%s", out);
  cr_assert(strstr(out, "ok   plugstack"), "%s", out);
  cr_assert_null(strstr(out, "FAIL plugin"), "%s", out);
  cr_assert(strstr(out, "FAIL spool_dir"), "%s", out);
  cr_assert(strstr(out, "ok   spool "), "%s", out);
  cr_assert_null(strstr(out, " service "), "--node skips site checks: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s/service/nsentry doctor --bogus >/dev/null 2>&1", b);
  cr_assert_eq(run(cmd), 2);
  rmrf(d);
  free(d);
}

Test(ship, gzip_roundtrip) {
  char in[100000];
  for (size_t i = 0; i < sizeof in; i++) in[i] = (char)('a' + (i * 7) % 13);
  char *gz = NULL;
  size_t n = 0;
  cr_assert_eq(ns_gzip(in, sizeof in, &gz, &n), NS_OK);
  cr_assert_lt(n, sizeof in / 4);
  cr_assert_eq((unsigned char)gz[0], 0x1f, "gzip magic");
  cr_assert_eq((unsigned char)gz[1], 0x8b);
  char *back = malloc(sizeof in);
  z_stream z;
  memset(&z, 0, sizeof z);
  cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = (Bytef *)gz, z.avail_in = (uInt)n, z.next_out = (Bytef *)back, z.avail_out = sizeof in;
  cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
  cr_assert_eq(z.total_out, sizeof in);
  inflateEnd(&z);
  cr_assert_eq(memcmp(in, back, sizeof in), 0);
  free(back);
  free(gz);
}

Test(epilog, plain_epilog_detaches_when_configured) {
  const char *b = build_root();
  char *d = tmpdir();
  ns_spool_opts o = {.retention_ms = 3600000, .max_bytes = 1 << 20, .min_free_bytes = 1};
  ns_spool *sp = NULL;
  cr_assert_eq(ns_spool_open(d, &o, &sp), NS_OK);
  int64_t t0 = ns_spool_now_ms() - 5000;
  float v[2] = {1, 2};
  for (int i = 0; i < 4; i++) cr_assert_eq(ns_spool_append(sp, t0 + i * 1000, 2, names2, v), NS_OK);
  ns_spool_close(sp);
  cr_assert_eq(ns_spool_mark(d, "60", "start", t0, "n1"), NS_OK);
  /* slurmd's Epilog environment: no PATH, no arguments; config from NSENTRY_CONF */
  char conf[600], cmd[2048];
  snprintf(conf, sizeof conf, "spool_dir = %s\nservice_url = http://127.0.0.1:9\nsampler_interval = 1s\n"
                              "epilog_detach = yes\nmunge_socket = %s/none.sock\n", d, d);
  put_file(d, "ns.conf", conf);
  snprintf(cmd, sizeof cmd,
           "env -i NSENTRY_CONF=%s/ns.conf SLURM_SCRIPT_CONTEXT=epilog_slurmd SLURM_JOB_ID=60 SLURMD_NODENAME=n1 "
           "SLURM_JOB_NUM_NODES=1 SLURM_NODELIST=n1 %s/epilog/nsentry-epilog 2>/dev/null",
           d, b);
  cr_assert_eq(run(cmd), 0);
  ns_outbox_entry *e = NULL;
  size_t n = 0;
  for (int i = 0; i < 100 && n == 0; i++) {
    usleep(50000);
    free(e), e = NULL;
    cr_assert_eq(ns_outbox_list(d, &e, &n), NS_OK);
  }
  cr_assert_eq(n, 1, "the detached epilog queued the segment");
  char *body = NULL;
  size_t len = 0;
  cr_assert_eq(ns_outbox_read(&e[0], &body, &len), NS_OK);
  cr_assert(strstr(body, "\"nodelist\":\"n1\""), "%s", body);
  free(body);
  free(e);
  rmrf(d);
  free(d);
}
