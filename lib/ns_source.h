/* Node-side telemetry sources and shipping.
 *
 * Sources cut one node's raw telemetry for a job window [from, to]:
 *   spool       the local sampler spool (ns_spool), the default;
 *   prometheus  query_range against node_exporter series, one PromQL query per
 *               metric ($sel = prometheus_selector with $node substituted,
 *               $rate = a rate window of 4 steps);
 *   ldms        LDMS store_csv files in ldms_dir, through the import area's parser.
 * Values are raw (gauges and sampler-derived rates); the service preprocesses.
 *
 * Shipping builds the POST /v1/segments body (docs/api.md) and sends it with a
 * MUNGE credential whose payload is the lower-case hex SHA-256 of the body. */
#ifndef NS_SOURCE_H
#define NS_SOURCE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_config.h"
#include "ns_mts.h"
#include "ns_status.h"

typedef enum { NS_SOURCE_SPOOL = 0, NS_SOURCE_PROMETHEUS, NS_SOURCE_LDMS } ns_source_kind;

typedef struct ns_source_opts {
  ns_source_kind kind;
  const char *spool_dir;
  const char *prometheus_url;
  const char *prometheus_selector; /* label matchers, "$node" substituted */
  const char *prometheus_queries;  /* file of "name = promql" lines; NULL/"" = built-in set */
  const char *ldms_dir;
  int64_t step_ms;                 /* Prometheus step (the sampler interval) */
} ns_source_opts;

/* Fill from the config (pointers into cfg; valid while cfg lives). */
NS_API ns_status ns_source_opts_from_config(const ns_config *cfg, ns_source_opts *o);
NS_API ns_status ns_source_parse_kind(const char *s, ns_source_kind *out);
NS_API const char *ns_source_kind_name(ns_source_kind k);

/* Raw telemetry of `node` in [from_ms, to_ms] within timeout_ms (network sources).
 * NS_ERR_EMPTY when the source has no sample in the window. */
NS_API ns_status ns_source_cut(const ns_source_opts *o, const char *node, int64_t from_ms, int64_t to_ms,
                               int64_t timeout_ms, ns_mts **out);

/* One Prometheus query definition (name, PromQL template). */
typedef struct ns_prom_query {
  char *name, *expr;
} ns_prom_query;
/* Built-in set (file NULL or "") or the file's "name = promql" lines; errors name file:line. */
NS_API ns_status ns_prom_queries_load(const char *file, ns_prom_query **out, size_t *n);
NS_API void ns_prom_queries_free(ns_prom_query *q, size_t n);
/* Substitute $sel, $rate and $node in a template. */
NS_API ns_status ns_prom_expand(const char *tmpl, const char *selector, const char *node, int64_t step_ms,
                                char **out);

/* ---- shipping ---- */

typedef struct ns_ship_meta {
  const char *cluster, *job_id, *node;
  int job_nodes;             /* >= 1 */
  int64_t start_ms, end_ms, interval_ms;
  /* optional job block (NULL / has_exit_code false = omitted) */
  const char *user, *partition, *account, *tag, *nodelist;
  bool has_exit_code;
  int exit_code;
} ns_ship_meta;

/* The POST /v1/segments JSON body. Rows with equal or decreasing timestamps,
 * or in the same interval slot as the previous row, are dropped (the service
 * rejects them); NaN is written as null. NS_ERR_EMPTY when no row is left. */
NS_API ns_status ns_segment_body(const ns_ship_meta *meta, const ns_mts *m, char **body, size_t *len);

/* A MUNGE credential carrying `payload` (socket NULL/"" = default). */
NS_API ns_status ns_munge_encode(const char *socket, const char *payload, char **cred);

/* gzip (RFC 1952) of a buffer, for Content-Encoding: gzip. */
NS_API ns_status ns_gzip(const void *in, size_t n, char **out, size_t *out_n);

/* Bodies larger than this are sent gzip-compressed (the credential covers the bytes sent). */
#define NS_SHIP_GZIP_MIN 65536

/* POST body to base_url + path with the credential header, within timeout_ms.
 * Returns NS_OK for 2xx; NS_ERR_NET / NS_ERR_TIMEOUT when the service could not
 * be reached; NS_ERR_AUTH / NS_ERR_FORBIDDEN on 401/403; NS_ERR_INVAL on other
 * 4xx (the body will never be accepted); NS_ERR_BUSY on 5xx/408/429.
 * *http_code (may be NULL) gets the status (0 = none). */
NS_API ns_status ns_ship_post(const char *base_url, const char *path, const char *munge_socket, const char *body,
                              size_t len, int64_t timeout_ms, long *http_code);
/* GET base_url + path (no credential); 2xx = NS_OK. */
NS_API ns_status ns_ship_get(const char *base_url, const char *path, int64_t timeout_ms, long *http_code);

#endif
