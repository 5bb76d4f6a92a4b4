/* Parsing and validation of POST /v1/segments bodies (docs/api.md). Every
 * rejection names the field, row or column; nothing is stored for it. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "svc.h"

void svc_ingest_free(svc_ingest *in) {
  if (!in) return;
  ns_segment_free(in->seg);
  ns_job *j = &in->job;
  free(j->cluster), free(j->job_id), free(j->nodelist), free(j->user), free(j->partition);
  free(j->account), free(j->state), free(j->tag);
  free(in);
}

ns_status svc_gunzip(const void *in, size_t n, size_t max_out, char **out, size_t *out_n) {
  *out = NULL;
  *out_n = 0;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return ns_errorf(NS_ERR_NOMEM, "gzip: inflateInit failed");
  size_t cap = n * 4 + 1024, len = 0;
  if (cap > max_out + 1) cap = max_out + 1;
  char *buf = malloc(cap + 1);
  ns_status st = NS_OK;
  if (!buf) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  for (;;) {
    if (len == cap) {
      if (cap > max_out) {
        st = ns_errorf(NS_ERR_LIMIT, "body exceeds max_body (%zu bytes) after gunzip", max_out);
        goto done;
      }
      size_t ncap = cap * 2 > max_out + 1 ? max_out + 1 : cap * 2;
      char *nb = realloc(buf, ncap + 1);
      if (!nb) {
        st = NS_ERR_NOMEM;
        goto done;
      }
      buf = nb;
      cap = ncap;
    }
    z.next_out = (Bytef *)buf + len;
    z.avail_out = (uInt)(cap - len);
    int rc = inflate(&z, Z_NO_FLUSH);
    len = cap - z.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      st = ns_errorf(NS_ERR_FORMAT, "gzip: truncated stream");
      goto done;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      st = ns_errorf(NS_ERR_FORMAT, "gzip: %s", z.msg ? z.msg : "corrupt stream");
      goto done;
    }
  }
  if (len > max_out) {
    st = ns_errorf(NS_ERR_LIMIT, "body exceeds max_body (%zu bytes) after gunzip", max_out);
    goto done;
  }
  buf[len] = '\0';
  *out = buf;
  *out_n = len;
  buf = NULL;
done:
  inflateEnd(&z);
  free(buf);
  return st;
}

/* Names used in URLs, SQL keys and Slurm tokens: a conservative alphabet. */
static bool name_ok(const char *s, size_t maxlen, bool allow_plus) {
  size_t n = strlen(s);
  if (n == 0 || n > maxlen) return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
          c == '_' || (allow_plus && c == '+')))
      return false;
  }
  return true;
}

static ns_status get_string(const cJSON *o, const char *key, bool required, size_t maxlen, int alphabet,
                            char **out) {
  *out = NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return required ? ns_errorf(NS_ERR_INVAL, "field '%s' is required", key) : NS_OK;
  if (cJSON_IsNull(v) && !required) return NS_OK;
  if (!cJSON_IsString(v)) return ns_errorf(NS_ERR_INVAL, "field '%s' must be a string", key);
  const char *s = v->valuestring;
  if (alphabet && !name_ok(s, maxlen, alphabet == 2))
    return ns_errorf(NS_ERR_INVAL, "field '%s' must be 1-%zu characters of [A-Za-z0-9._-%s]", key, maxlen,
                     alphabet == 2 ? "+" : "");
  if (!alphabet && strlen(s) > maxlen) return ns_errorf(NS_ERR_INVAL, "field '%s' is longer than %zu", key, maxlen);
  if (!alphabet)
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
      if (*p < 0x20 || *p == 0x7f) return ns_errorf(NS_ERR_INVAL, "field '%s' holds a control character", key);
  *out = strdup(s);
  return *out ? NS_OK : NS_ERR_NOMEM;
}

/* Integers must be JSON numbers with no fraction, within [lo, hi]. */
static ns_status get_int(const cJSON *o, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                         bool *present) {
  if (present) *present = false;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return required ? ns_errorf(NS_ERR_INVAL, "field '%s' is required", key) : NS_OK;
  if (!cJSON_IsNumber(v)) return ns_errorf(NS_ERR_INVAL, "field '%s' must be an integer", key);
  double d = v->valuedouble;
  if (!isfinite(d) || d != floor(d)) return ns_errorf(NS_ERR_INVAL, "field '%s' must be an integer", key);
  if (d < (double)lo || d > (double)hi)
    return ns_errorf(NS_ERR_RANGE, "field '%s' = %.0f is outside [%lld, %lld]", key, d, (long long)lo,
                     (long long)hi);
  *out = (int64_t)d;
  if (present) *present = true;
  return NS_OK;
}

static ns_status check_keys(const cJSON *o, const char *where, const char *const *allowed) {
  for (const cJSON *c = o->child; c; c = c->next) {
    bool ok = false;
    for (const char *const *a = allowed; *a; a++)
      if (c->string && strcmp(c->string, *a) == 0) ok = true;
    if (!ok) return ns_errorf(NS_ERR_INVAL, "unknown field '%s%s'", where, c->string ? c->string : "?");
  }
  return NS_OK;
}

/* ---- fast path for the values matrix ----
 * cJSON allocates one node per number and converts with strtod: for a 1 h x
 * 116-metric segment that is most of the request's CPU. The top-level
 * "values" member is cut out of the document (cJSON parses the rest) and read
 * here straight into floats; the grammar is the same JSON grammar. */

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static const char *skip_string(const char *p, const char *e) {
  for (p++; p < e; p++) {
    if (*p == '\\') p++;
    else if (*p == '"') return p + 1;
  }
  return NULL;
}

/* End of the JSON value at p (strings and nesting only; cJSON or the matrix
 * parser validates the contents). NULL if unbalanced. */
static const char *skip_value(const char *p, const char *e) {
  int depth = 0;
  while (p < e) {
    char c = *p;
    if (c == '"') {
      if (!(p = skip_string(p, e))) return NULL;
      if (depth == 0) return p;
      continue;
    }
    if (c == '[' || c == '{') depth++;
    else if (c == ']' || c == '}') {
      if (--depth < 0) return NULL;
      if (depth == 0) return p + 1;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r')) return p;
    p++;
  }
  return depth == 0 ? p : NULL;
}

/* Locate the top-level "values" member's value; false if the document does not
 * scan cleanly (cJSON then reports the problem). */
static bool find_values(const char *b, size_t n, size_t *v0, size_t *v1) {
  const char *p = b, *e = b + n;
  p = skip_ws(p, e);
  if (p >= e || *p != '{') return false;
  p = skip_ws(p + 1, e);
  while (p < e && *p == '"') {
    const char *k = p;
    if (!(p = skip_string(p, e))) return false;
    bool is_values = p - k == 8 && memcmp(k, "\"values\"", 8) == 0;
    p = skip_ws(p, e);
    if (p >= e || *p != ':') return false;
    p = skip_ws(p + 1, e);
    const char *vs = p;
    if (!(p = skip_value(p, e)) || p == vs) return false;
    if (is_values) {
      *v0 = (size_t)(vs - b);
      *v1 = (size_t)(p - b);
      return true;
    }
    p = skip_ws(p, e);
    if (p < e && *p == ',') p = skip_ws(p + 1, e);
  }
  return false;
}

static const double k_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* One JSON number at p; *end past it. false if p is not a JSON number. Exact
 * (Clinger's fast path) when the digits fit 2^53 and |exponent| <= 22, else strtod. */
static bool parse_number(const char *p, const char *e, const char **end, double *out) {
  const char *s = p;
  bool neg = false;
  if (p < e && *p == '-') neg = true, p++;
  if (p >= e || *p < '0' || *p > '9') return false;
  uint64_t mant = 0;
  int digits = 0, exp10 = 0;
  if (*p == '0') p++;
  else
    while (p < e && *p >= '0' && *p <= '9') {
      if (digits < 19) mant = mant * 10 + (uint64_t)(*p - '0'), digits += mant != 0;
      else exp10++;
      p++;
    }
  if (p < e && *p == '.') {
    p++;
    if (p >= e || *p < '0' || *p > '9') return false;
    while (p < e && *p >= '0' && *p <= '9') {
      if (digits < 19) mant = mant * 10 + (uint64_t)(*p - '0'), digits += mant != 0, exp10--;
      p++;
    }
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    int es = 1, ev = 0;
    if (p < e && (*p == '+' || *p == '-')) es = *p == '-' ? -1 : 1, p++;
    if (p >= e || *p < '0' || *p > '9') return false;
    while (p < e && *p >= '0' && *p <= '9') {
      if (ev < 100000) ev = ev * 10 + (*p - '0');
      p++;
    }
    exp10 += es * ev;
  }
  *end = p;
  if (digits < 19 && mant <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
    double d = (double)mant;
    d = exp10 >= 0 ? d * k_pow10[exp10] : d / k_pow10[-exp10];
    *out = neg ? -d : d;
    return true;
  }
  char tmp[512];
  size_t len = (size_t)(p - s);
  if (len >= sizeof tmp) {
    *out = neg ? -INFINITY : INFINITY; /* absurdly long: treat as out of range */
    return true;
  }
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  *out = strtod(tmp, NULL);
  return true;
}

/* Rows of exactly M numbers or null into a new T0 x M array (NaN = null). */
static ns_status parse_matrix(const char *b, size_t v0, size_t v1, size_t M, char *const *names, float **out,
                              size_t *out_rows) {
  *out = NULL;
  *out_rows = 0;
  const char *p = b + v0, *e = b + v1;
  size_t cap = (v1 - v0) / (2 * M + 2) + 1, T = 0;
  float *x = malloc(cap * M * sizeof *x);
  ns_status st = NS_OK;
  if (!x) return NS_ERR_NOMEM;
  p = skip_ws(p, e);
  if (p >= e || *p != '[') {
    st = ns_errorf(NS_ERR_INVAL, "field 'values' must be a non-empty array of rows");
    goto fail;
  }
  p = skip_ws(p + 1, e);
  if (p < e && *p == ']') {
    st = ns_errorf(NS_ERR_INVAL, "field 'values' must be a non-empty array of rows");
    goto fail;
  }
  for (;;) {
    if (p >= e || *p != '[') {
      if (p < e && (*p == '{' || *p == '"' || *p == 'n' || *p == 't' || *p == 'f' || *p == '-' || (*p >= '0' && *p <= '9')))
        st = ns_errorf(NS_ERR_INVAL, "values[%zu] must be an array of %zu numbers", T, M);
      else
        st = ns_errorf(NS_ERR_PARSE, "malformed JSON near byte %zu", (size_t)(p - b));
      goto fail;
    }
    if (T == cap) {
      cap *= 2;
      float *nx = realloc(x, cap * M * sizeof *nx);
      if (!nx) {
        st = NS_ERR_NOMEM;
        goto fail;
      }
      x = nx;
    }
    float *row = x + T * M;
    size_t k = 0;
    p = skip_ws(p + 1, e);
    if (p < e && *p == ']') {
      p++;
    } else {
      for (;;) {
        double d = 0;
        const char *q = NULL;
        bool is_null = e - p >= 4 && memcmp(p, "null", 4) == 0;
        if (is_null) q = p + 4;
        else if (!parse_number(p, e, &q, &d)) {
          if (p < e && (*p == '"' || *p == '[' || *p == '{' || *p == 't' || *p == 'f'))
            st = ns_errorf(NS_ERR_INVAL, "values[%zu][%zu] (%s) must be a number or null", T, k,
                           k < M ? names[k] : "?");
          else
            st = ns_errorf(NS_ERR_PARSE, "malformed JSON near byte %zu", (size_t)(p - b));
          goto fail;
        }
        if (k < M) {
          if (is_null) {
            row[k] = NAN;
          } else {
            float f = (float)d;
            if (!isfinite(d) || !isfinite(f)) {
              st = ns_errorf(NS_ERR_NONFINITE, "values[%zu][%zu] (%s) is not a finite 32-bit number", T, k, names[k]);
              goto fail;
            }
            row[k] = f;
          }
        }
        k++;
        p = skip_ws(q, e);
        if (p < e && *p == ',') {
          p = skip_ws(p + 1, e);
          continue;
        }
        if (p < e && *p == ']') {
          p++;
          break;
        }
        st = ns_errorf(NS_ERR_PARSE, "malformed JSON near byte %zu", (size_t)(p - b));
        goto fail;
      }
    }
    if (k != M) {
      st = ns_errorf(NS_ERR_INVAL, "values[%zu] has %zu values but there are %zu metrics", T, k, M);
      goto fail;
    }
    T++;
    p = skip_ws(p, e);
    if (p < e && *p == ',') {
      p = skip_ws(p + 1, e);
      continue;
    }
    if (p < e && *p == ']') {
      p = skip_ws(p + 1, e);
      break;
    }
    st = ns_errorf(NS_ERR_PARSE, "malformed JSON near byte %zu", (size_t)(p - b));
    goto fail;
  }
  if (p != e) {
    st = ns_errorf(NS_ERR_PARSE, "malformed JSON near byte %zu", (size_t)(p - b));
    goto fail;
  }
  *out = x;
  *out_rows = T;
  return NS_OK;
fail:
  free(x);
  return st;
}

#define TS_MAX INT64_C(4102444800000) /* 2100-01-01 */

ns_status svc_ingest_parse(const char *body, size_t n, const svc_limits *lim, svc_ingest **out) {
  *out = NULL;
  static const char *const top_keys[] = {"cluster", "job_id",   "node",          "job_nodes", "start_ms", "end_ms",
                                         "interval_ms", "metrics", "timestamps_ms", "values",    "job",      NULL};
  static const char *const job_keys[] = {"user", "partition", "account", "exit_code", "tag", "shared", "nodelist",
                                         NULL};
  const char *end = NULL;
  size_t v0 = 0, v1 = 0;
  char *doc = NULL;
  float *xm = NULL;
  char **mnames = NULL;
  bool fast = find_values(body, n, &v0, &v1);
  if (fast) {
    /* cJSON sees "values": null; the matrix is read by parse_matrix. */
    doc = malloc(n - (v1 - v0) + 5);
    if (!doc) return NS_ERR_NOMEM;
    memcpy(doc, body, v0);
    memcpy(doc + v0, "null", 4);
    memcpy(doc + v0 + 4, body + v1, n - v1);
  }
  size_t dn = fast ? n - (v1 - v0) + 4 : n;
  cJSON *root = cJSON_ParseWithLengthOpts(fast ? doc : body, dn, &end, 0);
  svc_ingest *in = NULL;
  int64_t *ts = NULL, ts0 = 0;
  ns_status st = NS_OK;
  if (!root) {
    size_t off = end && end >= (fast ? doc : body) ? (size_t)(end - (fast ? doc : body)) : 0;
    if (fast && off > v0) off += v1 - v0 - 4;
    st = ns_errorf(NS_ERR_PARSE, "malformed JSON near byte %zu", off);
    goto done;
  }
  if (!cJSON_IsObject(root)) {
    st = ns_errorf(NS_ERR_INVAL, "body must be a JSON object");
    goto done;
  }
  if ((st = check_keys(root, "", top_keys))) goto done;
  in = calloc(1, sizeof *in);
  if (!in) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  char *node = NULL;
  int64_t job_nodes = 0, start_ms = 0, end_ms = 0, interval_ms = 0;
  if ((st = get_string(root, "cluster", true, 63, 1, &in->job.cluster)) ||
      (st = get_string(root, "job_id", true, 63, 2, &in->job.job_id)) ||
      (st = get_string(root, "node", true, 127, 1, &node)) ||
      (st = get_int(root, "job_nodes", true, 1, 1000000, &job_nodes, NULL)) ||
      (st = get_int(root, "start_ms", true, 1, TS_MAX, &start_ms, NULL)) ||
      (st = get_int(root, "end_ms", true, 1, TS_MAX, &end_ms, NULL)) ||
      (st = get_int(root, "interval_ms", true, 1, 86400000, &interval_ms, NULL))) {
    free(node);
    goto done;
  }
  in->job_nodes = (int)job_nodes;
  if (end_ms < start_ms) {
    free(node);
    st = ns_errorf(NS_ERR_RANGE, "end_ms (%lld) is before start_ms (%lld)", (long long)end_ms, (long long)start_ms);
    goto done;
  }
  const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
  const cJSON *values = cJSON_GetObjectItemCaseSensitive(root, "values");
  const cJSON *tsj = cJSON_GetObjectItemCaseSensitive(root, "timestamps_ms");
  const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job");
  if (!cJSON_IsArray(metrics) || cJSON_GetArraySize(metrics) == 0) {
    free(node);
    st = ns_errorf(NS_ERR_INVAL, "field 'metrics' must be a non-empty array of names");
    goto done;
  }
  if (!fast && (!cJSON_IsArray(values) || cJSON_GetArraySize(values) == 0)) {
    free(node);
    st = ns_errorf(NS_ERR_INVAL, "field 'values' must be a non-empty array of rows");
    goto done;
  }
  size_t M = (size_t)cJSON_GetArraySize(metrics), T0 = fast ? 0 : (size_t)cJSON_GetArraySize(values);
  if ((int64_t)M > lim->max_metrics) {
    free(node);
    st = ns_errorf(NS_ERR_LIMIT, "%zu metrics exceed max_metrics (%lld)", M, (long long)lim->max_metrics);
    goto done;
  }
  if (fast) {
    mnames = calloc(M, sizeof *mnames);
    if (!mnames) {
      free(node);
      st = NS_ERR_NOMEM;
      goto done;
    }
    size_t i = 0;
    for (const cJSON *c = metrics->child; c; c = c->next, i++) mnames[i] = cJSON_IsString(c) ? c->valuestring : "?";
    if ((st = parse_matrix(body, v0, v1, M, mnames, &xm, &T0))) {
      free(node);
      goto done;
    }
  }
  if ((double)M * (double)T0 > (double)lim->max_points) {
    free(node);
    st = ns_errorf(NS_ERR_LIMIT, "%zu x %zu values exceed max_points (%lld)", T0, M, (long long)lim->max_points);
    goto done;
  }
  /* Rows go onto the grid start + k*interval; explicit timestamps pick the slot. */
  size_t T = T0;
  if (tsj && !cJSON_IsNull(tsj)) {
    if (!cJSON_IsArray(tsj) || (size_t)cJSON_GetArraySize(tsj) != T0) {
      free(node);
      st = ns_errorf(NS_ERR_INVAL, "field 'timestamps_ms' must be an array of %zu integers (one per row of 'values')",
                     T0);
      goto done;
    }
    ts = malloc(T0 * sizeof *ts);
    if (!ts) {
      free(node);
      st = NS_ERR_NOMEM;
      goto done;
    }
    size_t i = 0;
    for (const cJSON *c = tsj->child; c; c = c->next, i++) {
      if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble) || c->valuedouble != floor(c->valuedouble) ||
          c->valuedouble < 1 || c->valuedouble > (double)TS_MAX) {
        free(node);
        st = ns_errorf(NS_ERR_INVAL, "timestamps_ms[%zu] must be an integer time in ms", i);
        goto done;
      }
      ts[i] = (int64_t)c->valuedouble;
      if (i && ts[i] <= ts[i - 1]) {
        free(node);
        st = ns_errorf(NS_ERR_INVAL, "timestamps_ms[%zu] is not after timestamps_ms[%zu]", i, i - 1);
        goto done;
      }
    }
    /* Nearest grid slot; a jittered row that lands on its predecessor's slot
     * takes the next one, so rows keep their order and none is dropped. */
    ts0 = ts[0];
    int64_t prev = -1;
    for (size_t r = 0; r < T0; r++) {
      int64_t sl = (ts[r] - ts0 + interval_ms / 2) / interval_ms;
      if (sl <= prev) sl = prev + 1;
      ts[r] = prev = sl;
    }
    T = (size_t)prev + 1;
    if ((double)M * (double)T > (double)lim->max_points) {
      free(node);
      st = ns_errorf(NS_ERR_LIMIT, "timestamps span %zu intervals x %zu metrics, more than max_points (%lld)", T, M,
                     (long long)lim->max_points);
      goto done;
    }
    start_ms = ts0 < start_ms ? ts0 : start_ms;
  }
  if ((st = ns_segment_create(T, M, &in->seg))) {
    free(node);
    goto done;
  }
  st = ns_segment_set_meta(in->seg, in->job.cluster, node, in->job.job_id, ts ? ts0 : start_ms, interval_ms);
  free(node);
  if (st) goto done;
  size_t m = 0;
  for (const cJSON *c = metrics->child; c; c = c->next, m++) {
    if (!cJSON_IsString(c) || !name_ok(c->valuestring, 63, false)) {
      st = ns_errorf(NS_ERR_INVAL, "metrics[%zu] must be a name of 1-63 characters of [A-Za-z0-9._-]", m);
      goto done;
    }
    for (size_t k = 0; k < m; k++)
      if (strcmp(in->seg->metrics[k], c->valuestring) == 0) {
        st = ns_errorf(NS_ERR_INVAL, "metrics[%zu] '%s' repeats metrics[%zu]", m, c->valuestring, k);
        goto done;
      }
    if (!(in->seg->metrics[m] = strdup(c->valuestring))) {
      st = NS_ERR_NOMEM;
      goto done;
    }
  }
  float *x = in->seg->x;
  if (ts)
    for (size_t i = 0; i < T * M; i++) x[i] = NAN;
  size_t r = 0;
  if (fast) {
    for (r = 0; r < T0; r++) {
      size_t t = r;
      if (ts) t = (size_t)ts[r];
      memcpy(x + t * M, xm + r * M, M * sizeof *x);
    }
  }
  for (const cJSON *row = fast ? NULL : values->child; row; row = row->next, r++) {
    if (!cJSON_IsArray(row)) {
      st = ns_errorf(NS_ERR_INVAL, "values[%zu] must be an array of %zu numbers", r, M);
      goto done;
    }
    if ((size_t)cJSON_GetArraySize(row) != M) {
      st = ns_errorf(NS_ERR_INVAL, "values[%zu] has %d values but there are %zu metrics", r, cJSON_GetArraySize(row),
                     M);
      goto done;
    }
    size_t t = r;
    if (ts) t = (size_t)ts[r];
    size_t k = 0;
    for (const cJSON *v = row->child; v; v = v->next, k++) {
      if (cJSON_IsNull(v)) {
        x[t * M + k] = NAN;
        continue;
      }
      if (!cJSON_IsNumber(v)) {
        st = ns_errorf(NS_ERR_INVAL, "values[%zu][%zu] (%s) must be a number or null", r, k, in->seg->metrics[k]);
        goto done;
      }
      double d = v->valuedouble;
      float f = (float)d;
      if (!isfinite(d) || !isfinite(f)) {
        st = ns_errorf(NS_ERR_NONFINITE, "values[%zu][%zu] (%s) is not a finite 32-bit number", r, k,
                       in->seg->metrics[k]);
        goto done;
      }
      x[t * M + k] = f;
    }
  }
  /* Segment time comes from the rows; the job's window from the marks. */
  in->job.start_ms = start_ms;
  in->job.end_ms = end_ms;
  in->job.nnodes = in->job_nodes;
  in->job.exit_code = 0;
  if (job && !cJSON_IsNull(job)) {
    if (!cJSON_IsObject(job)) {
      st = ns_errorf(NS_ERR_INVAL, "field 'job' must be an object");
      goto done;
    }
    if ((st = check_keys(job, "job.", job_keys))) goto done;
    int64_t ec = 0;
    if ((st = get_string(job, "user", false, 64, 0, &in->job.user)) ||
        (st = get_string(job, "partition", false, 64, 0, &in->job.partition)) ||
        (st = get_string(job, "account", false, 64, 0, &in->job.account)) ||
        (st = get_string(job, "tag", false, 128, 0, &in->job.tag)) ||
        (st = get_string(job, "nodelist", false, 65536, 0, &in->job.nodelist)) ||
        (st = get_int(job, "exit_code", false, -255, 0x7fffffff, &ec, NULL)))
      goto done;
    in->job.exit_code = (int)ec;
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(job, "shared");
    if (sh && !cJSON_IsBool(sh)) {
      st = ns_errorf(NS_ERR_INVAL, "field 'job.shared' must be true or false");
      goto done;
    }
    in->job.shared = sh && cJSON_IsTrue(sh);
  }
done:
  free(ts);
  free(doc);
  free(xm);
  free(mnames);
  cJSON_Delete(root);
  if (st) {
    svc_ingest_free(in);
    return st;
  }
  *out = in;
  return NS_OK;
}
