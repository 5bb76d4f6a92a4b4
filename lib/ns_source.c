#include "ns_source.h"
#include "ns_hash.h"
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <munge.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>
#include "ns_log.h"
#include "ns_spool.h"
#include "ns_import.h"

/* ---------------------------------------------------------------- options */

ns_status ns_source_parse_kind(const char *s, ns_source_kind *out) {
  static const char *const names[] = {"spool", "prometheus", "ldms"};
  for (int i = 0; i < 3; i++)
    if (s && strcasecmp(s, names[i]) == 0) {
      *out = (ns_source_kind)i;
      return NS_OK;
    }
  return ns_errorf(NS_ERR_INVAL, "unknown telemetry source '%s' (spool, prometheus or ldms)", s ? s : "");
}

const char *ns_source_kind_name(ns_source_kind k) {
  return k == NS_SOURCE_PROMETHEUS ? "prometheus" : k == NS_SOURCE_LDMS ? "ldms" : "spool";
}

ns_status ns_source_opts_from_config(const ns_config *cfg, ns_source_opts *o) {
  memset(o, 0, sizeof *o);
  ns_status s = ns_source_parse_kind(ns_cfg_str(cfg, NS_CFG_epilog_source), &o->kind);
  if (s) return s;
  o->spool_dir = ns_cfg_str(cfg, NS_CFG_spool_dir);
  o->prometheus_url = ns_cfg_str(cfg, NS_CFG_prometheus_url);
  o->prometheus_selector = ns_cfg_str(cfg, NS_CFG_prometheus_selector);
  o->prometheus_queries = ns_cfg_str(cfg, NS_CFG_prometheus_queries);
  o->ldms_dir = ns_cfg_str(cfg, NS_CFG_ldms_dir);
  o->step_ms = ns_cfg_int(cfg, NS_CFG_sampler_interval);
  return NS_OK;
}

/* ---------------------------------------------------------------- Prometheus */

/* Names match the sampler's where the meaning is the same. */
static const char *const builtin_queries[][2] = {
    {"cpu_user", "100 * avg(rate(node_cpu_seconds_total{mode=\"user\",$sel}[$rate]))"},
    {"cpu_system", "100 * avg(rate(node_cpu_seconds_total{mode=\"system\",$sel}[$rate]))"},
    {"cpu_iowait", "100 * avg(rate(node_cpu_seconds_total{mode=\"iowait\",$sel}[$rate]))"},
    {"cpu_idle", "100 * avg(rate(node_cpu_seconds_total{mode=\"idle\",$sel}[$rate]))"},
    {"mem_used", "sum(node_memory_MemTotal_bytes{$sel}) - sum(node_memory_MemAvailable_bytes{$sel})"},
    {"mem_available", "sum(node_memory_MemAvailable_bytes{$sel})"},
    {"mem_cached", "sum(node_memory_Cached_bytes{$sel})"},
    {"load1", "sum(node_load1{$sel})"},
    {"procs_running", "sum(node_procs_running{$sel})"},
    {"ctxt_rate", "sum(rate(node_context_switches_total{$sel}[$rate]))"},
    {"vm_pgmajfault_rate", "sum(rate(node_vmstat_pgmajfault{$sel}[$rate]))"},
    {"disk_read_bytes_rate", "sum(rate(node_disk_read_bytes_total{$sel}[$rate]))"},
    {"disk_write_bytes_rate", "sum(rate(node_disk_written_bytes_total{$sel}[$rate]))"},
    {"net_rx_bytes_rate", "sum(rate(node_network_receive_bytes_total{device!=\"lo\",$sel}[$rate]))"},
    {"net_tx_bytes_rate", "sum(rate(node_network_transmit_bytes_total{device!=\"lo\",$sel}[$rate]))"},
    {"psi_cpu_some_pct", "100 * sum(rate(node_pressure_cpu_waiting_seconds_total{$sel}[$rate]))"},
    {"psi_mem_some_pct", "100 * sum(rate(node_pressure_memory_waiting_seconds_total{$sel}[$rate]))"},
    {"psi_io_some_pct", "100 * sum(rate(node_pressure_io_waiting_seconds_total{$sel}[$rate]))"},
};

void ns_prom_queries_free(ns_prom_query *q, size_t n) {
  if (!q) return;
  for (size_t i = 0; i < n; i++) free(q[i].name), free(q[i].expr);
  free(q);
}

static bool metric_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-') return false;
  return true;
}

ns_status ns_prom_queries_load(const char *file, ns_prom_query **out, size_t *n) {
  *out = NULL, *n = 0;
  size_t cap = 32, cnt = 0;
  ns_prom_query *q = calloc(cap, sizeof *q);
  if (!q) return NS_ERR_NOMEM;
  ns_status s = NS_OK;
  FILE *f = NULL;
  if (!file || !*file) {
    for (size_t i = 0; i < sizeof builtin_queries / sizeof *builtin_queries; i++) {
      if (!(q[cnt].name = strdup(builtin_queries[i][0])) || !(q[cnt].expr = strdup(builtin_queries[i][1]))) {
        cnt++;
        s = NS_ERR_NOMEM;
        goto done;
      }
      cnt++;
    }
    goto done;
  }
  f = fopen(file, "r");
  if (!f) {
    s = ns_errorf(NS_ERR_IO, "%s: cannot open Prometheus query file", file);
    goto done;
  }
  char line[4096];
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line;
    while (isspace((unsigned char)*p)) p++;
    if (!*p || *p == '#') continue;
    p[strcspn(p, "\r\n")] = '\0';
    char *eq = strchr(p, '=');
    if (!eq) {
      s = ns_errorf(NS_ERR_PARSE, "%s:%d:1: expected 'name = PromQL'", file, lineno);
      goto done;
    }
    char *ne = eq;
    while (ne > p && isspace((unsigned char)ne[-1])) ne--;
    *ne = '\0';
    char *ex = eq + 1;
    while (isspace((unsigned char)*ex)) ex++;
    if (!metric_name_ok(p)) {
      s = ns_errorf(NS_ERR_PARSE, "%s:%d:1: metric name '%s' must be 1-63 characters of [A-Za-z0-9._-]", file,
                    lineno, p);
      goto done;
    }
    if (!*ex) {
      s = ns_errorf(NS_ERR_PARSE, "%s:%d:%d: empty PromQL for '%s'", file, lineno, (int)(ex - line) + 1, p);
      goto done;
    }
    for (size_t i = 0; i < cnt; i++)
      if (strcmp(q[i].name, p) == 0) {
        s = ns_errorf(NS_ERR_PARSE, "%s:%d:1: metric '%s' defined twice", file, lineno, p);
        goto done;
      }
    if (cnt == cap) {
      ns_prom_query *nq = realloc(q, cap * 2 * sizeof *nq);
      if (!nq) {
        s = NS_ERR_NOMEM;
        goto done;
      }
      memset(nq + cap, 0, cap * sizeof *nq);
      q = nq, cap *= 2;
    }
    q[cnt].name = strdup(p);
    q[cnt].expr = strdup(ex);
    cnt++;
    if (!q[cnt - 1].name || !q[cnt - 1].expr) {
      s = NS_ERR_NOMEM;
      goto done;
    }
  }
  if (cnt == 0) s = ns_errorf(NS_ERR_EMPTY, "%s: no queries defined", file);
done:
  if (f) fclose(f);
  if (s) {
    ns_prom_queries_free(q, cnt);
    return s;
  }
  *out = q, *n = cnt;
  return NS_OK;
}

typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->n + n + 1 > cap) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np, b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof tmp) n = sizeof tmp - 1;
  if (n > 0) sb_add(b, tmp, (size_t)n);
}

ns_status ns_prom_expand(const char *tmpl, const char *selector, const char *node, int64_t step_ms, char **out) {
  *out = NULL;
  sbuf sel = {0}, b = {0};
  for (const char *p = selector ? selector : ""; *p;) {
    if (strncmp(p, "$node", 5) == 0) {
      /* node names go into a regex/string literal: keep only safe characters */
      for (const char *c = node; *c; c++)
        if (isalnum((unsigned char)*c) || *c == '-' || *c == '_') sb_add(&sel, c, 1);
        else if (*c == '.') sb_str(&sel, "\\\\.");
      p += 5;
    } else {
      sb_add(&sel, p++, 1);
    }
  }
  char rate[32];
  int64_t r = step_ms * 4 / 1000;
  snprintf(rate, sizeof rate, "%" PRId64 "s", r < 2 ? 2 : r);
  for (const char *p = tmpl; *p;) {
    if (strncmp(p, "$sel", 4) == 0) {
      sb_str(&b, sel.p ? sel.p : "");
      p += 4;
    } else if (strncmp(p, "$rate", 5) == 0) {
      sb_str(&b, rate);
      p += 5;
    } else if (strncmp(p, "$node", 5) == 0) {
      sb_str(&b, node);
      p += 5;
    } else {
      sb_add(&b, p++, 1);
    }
  }
  free(sel.p);
  if (b.oom || !b.p) {
    free(b.p);
    return NS_ERR_NOMEM;
  }
  /* an empty selector leaves "{,x}" or "{x,}" behind */
  for (char *c; (c = strstr(b.p, "{,"));) memmove(c + 1, c + 2, strlen(c + 2) + 1);
  for (char *c; (c = strstr(b.p, ",}"));) memmove(c, c + 1, strlen(c + 1) + 1);
  *out = b.p;
  return NS_OK;
}

static size_t on_body(char *ptr, size_t sz, size_t nm, void *ud) {
  sbuf *b = ud;
  sb_add(b, ptr, sz * nm);
  return b->oom ? 0 : sz * nm;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ns_status curl_status(CURLcode rc, const char *url) {
  if (rc == CURLE_OPERATION_TIMEDOUT) return ns_errorf(NS_ERR_TIMEOUT, "%s: timed out", url);
  return ns_errorf(NS_ERR_NET, "%s: %s", url, curl_easy_strerror(rc));
}

static ns_status prom_cut(const ns_source_opts *o, const char *node, int64_t from_ms, int64_t to_ms,
                          int64_t timeout_ms, ns_mts **out) {
  ns_prom_query *q = NULL;
  size_t nq = 0;
  ns_status s = ns_prom_queries_load(o->prometheus_queries, &q, &nq);
  if (s) return s;
  int64_t step = o->step_ms > 0 ? o->step_ms : 15000;
  /* the grid: Prometheus evaluates at from + k*step */
  size_t T = (size_t)((to_ms - from_ms) / step) + 1;
  double *x = NULL;
  char **names = NULL;
  ns_mts *m = NULL;
  CURL *h = curl_easy_init();
  sbuf body = {0};
  cJSON *root = NULL;
  char *expr = NULL;
  x = malloc(T * nq * sizeof *x);
  names = calloc(nq, sizeof *names);
  if (!h || !x || !names) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < T * nq; i++) x[i] = NAN;
  int64_t deadline = mono_ms() + timeout_ms;
  char url[4096];
  snprintf(url, sizeof url, "%s/api/v1/query_range", o->prometheus_url);
  for (size_t k = 0; k < nq; k++) {
    names[k] = q[k].name;
    free(expr), expr = NULL;
    if ((s = ns_prom_expand(q[k].expr, o->prometheus_selector, node, step, &expr))) goto done;
    char *enc = curl_easy_escape(h, expr, 0);
    if (!enc) {
      s = NS_ERR_NOMEM;
      goto done;
    }
    char post[8192];
    snprintf(post, sizeof post, "query=%s&start=%.3f&end=%.3f&step=%.3f", enc, from_ms / 1000.0, to_ms / 1000.0,
             step / 1000.0);
    curl_free(enc);
    int64_t left = deadline - mono_ms();
    if (left <= 0) {
      s = ns_errorf(NS_ERR_TIMEOUT, "Prometheus: out of time after %zu of %zu queries", k, nq);
      goto done;
    }
    body.n = 0;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)left);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
      s = curl_status(rc, url);
      goto done;
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    cJSON_Delete(root);
    root = body.p ? cJSON_ParseWithLength(body.p, body.n) : NULL;
    const cJSON *st = root ? cJSON_GetObjectItemCaseSensitive(root, "status") : NULL;
    if (code != 200 || !cJSON_IsString(st) || strcmp(st->valuestring, "success") != 0) {
      const cJSON *err = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
      s = ns_errorf(NS_ERR_NET, "Prometheus query '%s' (%s): HTTP %ld: %s", q[k].name, expr, code,
                    cJSON_IsString(err) ? err->valuestring : "malformed response");
      goto done;
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "data"), "result");
    if (!cJSON_IsArray(res)) {
      s = ns_errorf(NS_ERR_FORMAT, "Prometheus query '%s': no data.result array", q[k].name);
      goto done;
    }
    if (cJSON_GetArraySize(res) > 1)
      ns_warn("Prometheus query '%s' returned %d series; using the first (aggregate it with sum/avg)", q[k].name,
              cJSON_GetArraySize(res));
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(res, 0), "values");
    const cJSON *pt;
    cJSON_ArrayForEach(pt, vals) {
      const cJSON *t = cJSON_GetArrayItem(pt, 0), *v = cJSON_GetArrayItem(pt, 1);
      if (!cJSON_IsNumber(t) || !cJSON_IsString(v)) continue;
      int64_t ts = (int64_t)llround(t->valuedouble * 1000.0);
      if (ts < from_ms || ts > to_ms) continue;
      size_t row = (size_t)((ts - from_ms + step / 2) / step);
      if (row >= T) continue;
      char *e = NULL;
      double d = strtod(v->valuestring, &e); /* "NaN", "+Inf" parse; non-finite -> missing */
      x[row * nq + k] = e != v->valuestring && isfinite(d) ? d : NAN;
    }
  }
  if ((s = ns_mts_create(node, nq, names, &m))) goto done;
  for (size_t t = 0; t < T; t++) {
    bool any = false;
    for (size_t k = 0; k < nq; k++) any |= !isnan(x[t * nq + k]);
    if (any && (s = ns_mts_append(m, from_ms + (int64_t)t * step, x + t * nq))) goto done;
  }
  if (m->T == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "Prometheus has no samples for node %s in the window", node);
    goto done;
  }
  *out = m;
  m = NULL;
done:
  free(expr);
  cJSON_Delete(root);
  free(body.p);
  if (h) curl_easy_cleanup(h);
  free(x);
  free(names);
  ns_mts_free(m);
  ns_prom_queries_free(q, nq);
  return s;
}

/* ---------------------------------------------------------------- LDMS */

/* Parses every store_csv file in ldms_dir (the import area's parser), keeps this
 * node's rows in the window, and turns counters into rates as the sampler does. */
static ns_status ldms_cut(const ns_source_opts *o, const char *node, int64_t from_ms, int64_t to_ms, ns_mts **out) {
  char *paths[1] = {(char *)o->ldms_dir};
  ns_import_opts io = NS_IMPORT_OPTS_DEFAULT;
  ns_import_report rep;
  memset(&rep, 0, sizeof rep);
  ns_mts **v = NULL, *m = NULL;
  size_t n = 0;
  ns_status s = ns_import_ldms(paths, 1, &io, &v, &n, &rep);
  if (s) return s;
  for (size_t i = 0; i < n; i++) {
    if (!v[i]->node || strcmp(v[i]->node, node) != 0) continue;
    if ((s = ns_import_counters_to_rates(v[i], &rep))) goto done;
    if ((s = ns_mts_create(node, v[i]->M, v[i]->metrics, &m))) goto done;
    for (size_t t = 0; t < v[i]->T; t++)
      if (v[i]->ts_ms[t] >= from_ms && v[i]->ts_ms[t] <= to_ms &&
          (s = ns_mts_append(m, v[i]->ts_ms[t], v[i]->x + t * v[i]->M)))
        goto done;
    break;
  }
  if (!m || m->T == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "%s: no LDMS rows for node %s in the window", o->ldms_dir, node);
    goto done;
  }
  *out = m;
  m = NULL;
done:
  ns_mts_free(m);
  ns_import_mts_free(v, n);
  return s;
}

ns_status ns_source_cut(const ns_source_opts *o, const char *node, int64_t from_ms, int64_t to_ms, int64_t timeout_ms,
                        ns_mts **out) {
  *out = NULL;
  if (!node || !*node) return ns_errorf(NS_ERR_INVAL, "telemetry cut: node name is empty");
  if (from_ms <= 0 || to_ms < from_ms)
    return ns_errorf(NS_ERR_RANGE, "telemetry cut: bad window [%" PRId64 ", %" PRId64 "]", from_ms, to_ms);
  switch (o->kind) {
  case NS_SOURCE_SPOOL: return ns_spool_read(o->spool_dir, node, from_ms, to_ms, out);
  case NS_SOURCE_PROMETHEUS: return prom_cut(o, node, from_ms, to_ms, timeout_ms, out);
  case NS_SOURCE_LDMS: return ldms_cut(o, node, from_ms, to_ms, out);
  }
  return ns_errorf(NS_ERR_INVAL, "unknown telemetry source %d", (int)o->kind);
}

/* ---------------------------------------------------------------- body */

static void json_str(sbuf *b, const char *s) {
  sb_str(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      sb_add(b, e, 2);
    } else if (*p < 0x20) {
      sb_fmt(b, "\\u%04x", *p);
    } else {
      sb_add(b, (const char *)p, 1);
    }
  }
  sb_str(b, "\"");
}

ns_status ns_segment_body(const ns_ship_meta *mt, const ns_mts *m, char **body, size_t *len) {
  *body = NULL, *len = 0;
  if (!mt->cluster || !mt->job_id || !mt->node || mt->job_nodes < 1 || mt->interval_ms <= 0)
    return ns_errorf(NS_ERR_INVAL, "segment body: cluster, job_id, node, job_nodes and interval are required");
  sbuf b = {0};
  sb_str(&b, "{\"cluster\":");
  json_str(&b, mt->cluster);
  sb_str(&b, ",\"job_id\":");
  json_str(&b, mt->job_id);
  sb_str(&b, ",\"node\":");
  json_str(&b, mt->node);
  sb_fmt(&b, ",\"job_nodes\":%d,\"start_ms\":%" PRId64 ",\"end_ms\":%" PRId64 ",\"interval_ms\":%" PRId64,
         mt->job_nodes, mt->start_ms, mt->end_ms, mt->interval_ms);
  sb_str(&b, ",\"metrics\":[");
  for (size_t k = 0; k < m->M; k++) {
    if (k) sb_str(&b, ",");
    json_str(&b, m->metrics[k]);
  }
  sbuf ts = {0}, vals = {0};
  size_t rows = 0;
  int64_t prev = INT64_MIN;
  for (size_t t = 0; t < m->T; t++) {
    int64_t tt = m->ts_ms[t];
    /* the service puts row r in slot round((ts_r - ts_0)/interval): one row per slot */
    if (rows && (tt <= prev || (tt - prev) * 2 < mt->interval_ms)) continue;
    sb_str(&ts, rows ? "," : "");
    sb_fmt(&ts, "%" PRId64, tt);
    sb_str(&vals, rows ? ",[" : "[");
    for (size_t k = 0; k < m->M; k++) {
      double v = m->x[t * m->M + k];
      if (k) sb_str(&vals, ",");
      if (isfinite(v)) sb_fmt(&vals, "%.9g", v);
      else sb_str(&vals, "null");
    }
    sb_str(&vals, "]");
    prev = tt;
    rows++;
  }
  sb_str(&b, "],\"timestamps_ms\":[");
  if (ts.p) sb_str(&b, ts.p);
  sb_str(&b, "],\"values\":[");
  if (vals.p) sb_str(&b, vals.p);
  sb_str(&b, "]");
  bool oom = ts.oom || vals.oom;
  free(ts.p);
  free(vals.p);
  if (mt->user || mt->partition || mt->account || mt->tag || mt->nodelist || mt->has_exit_code) {
    sb_str(&b, ",\"job\":{");
    const char *sep = "";
    const struct { const char *k, *v; } f[] = {
        {"user", mt->user}, {"partition", mt->partition}, {"account", mt->account}, {"tag", mt->tag},
        {"nodelist", mt->nodelist}};
    for (int i = 0; i < 5; i++)
      if (f[i].v && *f[i].v) {
        sb_fmt(&b, "%s\"%s\":", sep, f[i].k);
        json_str(&b, f[i].v);
        sep = ",";
      }
    if (mt->has_exit_code) sb_fmt(&b, "%s\"exit_code\":%d", sep, mt->exit_code);
    sb_str(&b, "}");
  }
  sb_str(&b, "}");
  if (b.oom || oom) {
    free(b.p);
    return NS_ERR_NOMEM;
  }
  if (rows == 0) {
    free(b.p);
    return ns_errorf(NS_ERR_EMPTY, "segment of job %s on %s has no samples", mt->job_id, mt->node);
  }
  *body = b.p, *len = b.n;
  return NS_OK;
}


ns_status ns_munge_encode(const char *socket, const char *payload, char **cred) {
  *cred = NULL;
  munge_ctx_t ctx = munge_ctx_create();
  if (!ctx) return ns_errorf(NS_ERR_NOMEM, "munge_ctx_create failed");
  ns_status s = NS_OK;
  if (socket && *socket && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, socket) != EMUNGE_SUCCESS) {
    s = ns_errorf(NS_ERR_INVAL, "MUNGE socket '%s': %s", socket, munge_ctx_strerror(ctx));
    goto done;
  }
  munge_err_t e = munge_encode(cred, ctx, payload, payload ? (int)strlen(payload) : 0);
  if (e != EMUNGE_SUCCESS) {
    s = ns_errorf(e == EMUNGE_SOCKET ? NS_ERR_NET : NS_ERR_AUTH, "MUNGE encode (socket %s): %s",
                  socket && *socket ? socket : "default", munge_ctx_strerror(ctx) ? munge_ctx_strerror(ctx) : munge_strerror(e));
    *cred = NULL;
  }
done:
  munge_ctx_destroy(ctx);
  return s;
}

/* ---------------------------------------------------------------- HTTP */

ns_status ns_gzip(const void *in, size_t n, char **out, size_t *out_n) {
  *out = NULL, *out_n = 0;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NS_ERR_NOMEM;
  size_t cap = deflateBound(&z, (uLong)n) + 32;
  char *b = malloc(cap);
  if (!b) {
    deflateEnd(&z);
    return NS_ERR_NOMEM;
  }
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)b;
  z.avail_out = (uInt)cap;
  int rc = deflate(&z, Z_FINISH);
  size_t got = cap - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    free(b);
    return ns_errorf(NS_ERR_INTERNAL, "gzip of %zu bytes failed (%d)", n, rc);
  }
  *out = b, *out_n = got;
  return NS_OK;
}

static ns_status http_do(const char *base, const char *path, const char *cred, const char *body, size_t len,
                         bool gz, int64_t timeout_ms, long *http_code) {
  if (http_code) *http_code = 0;
  char url[4096];
  size_t bl = strlen(base);
  while (bl && base[bl - 1] == '/') bl--;
  snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path);
  CURL *h = curl_easy_init();
  if (!h) return NS_ERR_NOMEM;
  struct curl_slist *hdr = NULL;
  char *credh = NULL;
  sbuf resp = {0};
  ns_status s = NS_OK;
  if (cred) {
    credh = malloc(strlen(cred) + 32);
    if (!credh) {
      s = NS_ERR_NOMEM;
      goto done;
    }
    sprintf(credh, "X-Munge-Credential: %s", cred);
    hdr = curl_slist_append(hdr, credh);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (gz) hdr = curl_slist_append(hdr, "Content-Encoding: gzip");
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    s = curl_status(rc, url);
    goto done;
  }
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  if (http_code) *http_code = code;
  if (code >= 200 && code < 300) goto done;
  char snippet[200] = "";
  if (resp.p) snprintf(snippet, sizeof snippet, "%s", resp.p);
  snippet[strcspn(snippet, "\r\n")] = '\0';
  ns_status k = code == 401 ? NS_ERR_AUTH
                : code == 403 ? NS_ERR_FORBIDDEN
                : code == 408 || code == 429 || code >= 500 ? NS_ERR_BUSY
                                                            : NS_ERR_INVAL;
  s = ns_errorf(k, "%s: HTTP %ld: %s", url, code, snippet);
done:
  free(resp.p);
  free(credh);
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
  return s;
}

ns_status ns_ship_post(const char *base_url, const char *path, const char *munge_socket, const char *body, size_t len,
                       int64_t timeout_ms, long *http_code) {
  if (http_code) *http_code = 0;
  char *gz = NULL;
  size_t gzn = 0;
  if (len >= NS_SHIP_GZIP_MIN && ns_gzip(body, len, &gz, &gzn) == NS_OK) body = gz, len = gzn;
  char hex[65];
  ns_sha256_hex(body, len, hex);
  char *cred = NULL;
  ns_status s = ns_munge_encode(munge_socket, hex, &cred);
  if (!s) s = http_do(base_url, path, cred, body, len, gz != NULL, timeout_ms, http_code);
  free(cred);
  free(gz);
  return s;
}

ns_status ns_ship_get(const char *base_url, const char *path, int64_t timeout_ms, long *http_code) {
  return http_do(base_url, path, NULL, NULL, 0, false, timeout_ms, http_code);
}
