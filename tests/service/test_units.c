/* Pure functions of the service: verdict token, SHA-256, ingest parsing, gunzip. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "ns_verdict.h"
#include "ns_hash.h"
#include "svc.h"

Test(verdict, token_is_lowercase_namespaced_and_safe) {
  const char *nodes[] = {"CN012", "gpu'1"};
  ns_verdict_info v = {"anomalous", 4.7, nodes, 2, 0, "R3"};
  char *t = NULL;
  cr_assert_eq(ns_verdict_token(&v, &t), NS_OK);
  cr_assert_str_eq(t, "nsentry:v1;verdict=anomalous;score=4.7;nodes=cn012,gpu_1;model=r3");
  cr_assert(ns_verdict_text_safe(t));
  free(t);
  ns_verdict_info w = {"normal", NAN, NULL, 0, 2, NULL};
  cr_assert_eq(ns_verdict_token(&w, &t), NS_OK);
  cr_assert_str_eq(t, "nsentry:v1;verdict=normal;score=none;missing=2;model=none");
  free(t);
  cr_assert_eq(ns_verdict_token(NULL, &t), NS_ERR_INVAL);
}

Test(verdict, many_nodes_are_counted) {
  const char *nodes[12];
  char names[12][8];
  for (int i = 0; i < 12; i++) snprintf(names[i], 8, "n%d", i), nodes[i] = names[i];
  ns_verdict_info v = {"anomalous", 10, nodes, 12, 0, "r1"};
  char *t = NULL;
  cr_assert_eq(ns_verdict_token(&v, &t), NS_OK);
  cr_assert(strstr(t, "nodes=n0,n1,n2,n3,n4,n5,n6,n7,+4;"), "%s", t);
  free(t);
}

Test(verdict, merge_keeps_foreign_text_and_replaces_ours) {
  char *m = NULL;
  cr_assert_eq(ns_verdict_merge(NULL, "nsentry:v1;verdict=normal", &m), NS_OK);
  cr_assert_str_eq(m, "nsentry:v1;verdict=normal");
  free(m);
  cr_assert_eq(ns_verdict_merge("reviewed-by-bob  NSENTRY:v1;verdict=anomalous;score=9 other:x",
                                "nsentry:v1;verdict=normal;score=1", &m),
               NS_OK);
  cr_assert_str_eq(m, "reviewed-by-bob other:x nsentry:v1;verdict=normal;score=1");
  char *again = NULL;
  cr_assert_eq(ns_verdict_merge(m, "nsentry:v1;verdict=normal;score=1", &again), NS_OK);
  cr_assert_str_eq(again, m, "merging twice is a no-op");
  free(again);
  free(m);
  /* Quotes, backslashes and control characters are never written. */
  cr_assert_eq(ns_verdict_merge("it's mine", "nsentry:v1;verdict=normal", &m), NS_ERR_INVAL);
  cr_assert_null(m);
  cr_assert_eq(ns_verdict_merge("a\\b", "nsentry:v1;verdict=normal", &m), NS_ERR_INVAL);
  cr_assert_eq(ns_verdict_merge("a\nb", "nsentry:v1;verdict=normal", &m), NS_ERR_INVAL);
  cr_assert_eq(ns_verdict_merge("x", "nsentry:v1;verdict=\"x\"", &m), NS_ERR_INVAL);
  cr_assert_eq(ns_verdict_merge("x", "notours", &m), NS_ERR_INVAL);
  cr_assert_eq(ns_verdict_merge("x", "nsentry:v1; verdict=x", &m), NS_ERR_INVAL);
}

Test(verdict, find_and_get_survive_lowercasing) {
  char *t = NULL, buf[32];
  cr_assert_eq(ns_verdict_find("foreign nsentry:v1;verdict=anomalous;score=4.7;model=r3 tail", &t), NS_OK);
  cr_assert_str_eq(t, "nsentry:v1;verdict=anomalous;score=4.7;model=r3");
  cr_assert_eq(ns_verdict_get(t, "SCORE", buf, sizeof buf), NS_OK);
  cr_assert_str_eq(buf, "4.7");
  cr_assert_eq(ns_verdict_get(t, "nodes", buf, sizeof buf), NS_ERR_NOTFOUND);
  cr_assert_eq(ns_verdict_get(t, "verdict", buf, 4), NS_ERR_RANGE);
  free(t);
  cr_assert_eq(ns_verdict_find("no token here", &t), NS_ERR_NOTFOUND);
  cr_assert_eq(ns_verdict_find("xnsentry:v1;verdict=a", &t), NS_ERR_NOTFOUND, "must start a word");
}

Test(sha256, known_vectors) {
  char hex[65];
  ns_sha256_hex("", 0, hex);
  cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ns_sha256_hex("abc", 3, hex);
  cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  ns_sha256_hex(m, strlen(m), hex);
  cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  char *mil = malloc(1000000);
  memset(mil, 'a', 1000000);
  ns_sha256_hex(mil, 1000000, hex);
  cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  free(mil);
}

static const svc_limits LIM = {1 << 20, 100, 100000};

Test(ingest, parses_values_nulls_and_metadata) {
  const char *b = "{\"cluster\":\"lab\",\"job_id\":\"12_3\",\"node\":\"cn1\",\"job_nodes\":2,\"start_ms\":1000,"
                  "\"end_ms\":31000,\"interval_ms\":15000,\"metrics\":[\"a\",\"b\"],\"values\":[[1,2],[null,4],[5,6]],"
                  "\"job\":{\"user\":\"alice\",\"exit_code\":3,\"shared\":true,\"nodelist\":\"cn[1-2]\"}}";
  svc_ingest *in = NULL;
  cr_assert_eq(svc_ingest_parse(b, strlen(b), &LIM, &in), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(in->seg->T, 3);
  cr_assert_eq(in->seg->M, 2);
  cr_assert(isnan(in->seg->x[2]));
  cr_assert_float_eq(in->seg->x[5], 6.0f, 1e-6);
  cr_assert_str_eq(in->seg->job_id, "12_3");
  cr_assert_str_eq(in->job.user, "alice");
  cr_assert_eq(in->job.exit_code, 3);
  cr_assert(in->job.shared);
  cr_assert_eq(in->job_nodes, 2);
  cr_assert_eq(in->job.end_ms, 31000);
  svc_ingest_free(in);
}

Test(ingest, timestamps_place_rows_on_the_grid) {
  const char *b = "{\"cluster\":\"lab\",\"job_id\":\"1\",\"node\":\"cn1\",\"job_nodes\":1,\"start_ms\":1000,"
                  "\"end_ms\":61000,\"interval_ms\":15000,\"metrics\":[\"a\"],\"timestamps_ms\":[1000,16100,61000],"
                  "\"values\":[[1],[2],[5]]}";
  svc_ingest *in = NULL;
  cr_assert_eq(svc_ingest_parse(b, strlen(b), &LIM, &in), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(in->seg->T, 5);
  cr_assert_float_eq(in->seg->x[1], 2.0f, 1e-6);
  cr_assert(isnan(in->seg->x[2]) && isnan(in->seg->x[3]));
  cr_assert_float_eq(in->seg->x[4], 5.0f, 1e-6);
  svc_ingest_free(in);
  const char *dup = "{\"cluster\":\"lab\",\"job_id\":\"1\",\"node\":\"cn1\",\"job_nodes\":1,\"start_ms\":1000,"
                    "\"end_ms\":61000,\"interval_ms\":15000,\"metrics\":[\"a\"],\"timestamps_ms\":[1000,2000],"
                    "\"values\":[[1],[2]]}";
  /* Jitter: a row landing on its predecessor's slot takes the next one. */
  cr_assert_eq(svc_ingest_parse(dup, strlen(dup), &LIM, &in), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(in->seg->T, 2);
  cr_assert_float_eq(in->seg->x[1], 2.0f, 1e-6);
  svc_ingest_free(in);
}

Test(gunzip, roundtrip_limit_and_garbage) {
  const char *msg = "hello hello hello hello";
  unsigned char z[256];
  z_stream s = {0};
  deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  s.next_in = (Bytef *)msg;
  s.avail_in = (uInt)strlen(msg);
  s.next_out = z;
  s.avail_out = sizeof z;
  deflate(&s, Z_FINISH);
  size_t n = s.total_out;
  deflateEnd(&s);
  char *out = NULL;
  size_t on = 0;
  cr_assert_eq(svc_gunzip(z, n, 1024, &out, &on), NS_OK, "%s", ns_err_detail());
  cr_assert_eq(on, strlen(msg));
  cr_assert_str_eq(out, msg);
  free(out);
  cr_assert_eq(svc_gunzip(z, n, 10, &out, &on), NS_ERR_LIMIT);
  cr_assert_eq(svc_gunzip(z, n - 6, 1024, &out, &on), NS_ERR_FORMAT);
  cr_assert_eq(svc_gunzip("not gzip", 8, 1024, &out, &on), NS_ERR_FORMAT);
}

Test(users, names_and_numbers) {
  uid_t *u = NULL;
  size_t n = 0;
  cr_assert_eq(svc_parse_users("0, root,1234,no-such-user-xyz", &u, &n), NS_OK);
  cr_assert_eq(n, 3);
  cr_assert_eq(u[0], 0);
  cr_assert_eq(u[1], 0);
  cr_assert_eq(u[2], 1234);
  free(u);
}

Test(ingest, fast_number_path_matches_strtod) {
  const char *nums[] = {"0", "-0", "1", "0.1", "-0.001", "1.5e9", "1.5E+9", "2.5e-7", "123456789012345678901",
                        "1e-30", "3.4028234e38", "9007199254740993", "0.30000000000000004", "7e22", "7e23",
                        "12.000000000000000000001"};
  size_t n = sizeof nums / sizeof nums[0];
  char b[4096], *p = b;
  p += sprintf(p, "{\"cluster\":\"lab\",\"job_id\":\"1\",\"node\":\"cn1\",\"job_nodes\":1,\"start_ms\":1000,"
                  "\"end_ms\":1000,\"interval_ms\":1000,\"metrics\":[");
  for (size_t i = 0; i < n; i++) p += sprintf(p, "%s\"m%zu\"", i ? "," : "", i);
  p += sprintf(p, "],\"values\": [ [");
  for (size_t i = 0; i < n; i++) p += sprintf(p, "%s %s ", i ? "," : "", nums[i]);
  p += sprintf(p, "] ] }");
  svc_ingest *in = NULL;
  cr_assert_eq(svc_ingest_parse(b, strlen(b), &LIM, &in), NS_OK, "%s", ns_err_detail());
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(in->seg->x[i], (float)strtod(nums[i], NULL), "%s -> %.9g", nums[i], in->seg->x[i]);
  svc_ingest_free(in);
  const char *bad[] = {"[[1,2],[3,4]", "[[1,2],[3,4]],", "[[01,2]]", "[[1.,2]]", "[[1,2]x]", "[[1,-]]", "[[1 2]]",
                       "[[1,2],]", "[[+1,2]]", "[[.5,2]]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(b, sizeof b,
             "{\"cluster\":\"lab\",\"job_id\":\"1\",\"node\":\"cn1\",\"job_nodes\":1,\"start_ms\":1000,"
             "\"end_ms\":1000,\"interval_ms\":1000,\"metrics\":[\"a\",\"b\"],\"values\":%s}",
             bad[i]);
    in = NULL;
    ns_status st = svc_ingest_parse(b, strlen(b), &LIM, &in);
    cr_assert_neq(st, NS_OK, "'%s' accepted", bad[i]);
    cr_assert_null(in);
  }
}
