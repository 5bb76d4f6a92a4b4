/* Preprocessing: see ns_prep.h and docs/preprocessing.md. */
#include "ns_prep.h"
#include "ns_hash.h"
#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_hostlist.h"
#include "ns_log.h"

enum { OP_NONE = 0, OP_SUM = 1, OP_MEAN = 2 };
enum { PF_ZERO = 1, PF_POOLED = 2 };

typedef struct {
  char *name;
  uint8_t is_counter;
  uint32_t red; /* reduced metric it feeds */
} in_metric;

typedef struct {
  char *name;
  uint8_t op;   /* OP_SUM / OP_MEAN (OP_MEAN also for single inputs) */
  uint8_t kept;
  int32_t out;  /* output column or -1 */
} red_metric;

typedef struct {
  char *node;
  double *mean, *sigma; /* n_out each; sigma is the effective (non-zero) one */
  uint8_t *flags;       /* PF_* */
} node_par;

typedef struct {
  char *dropped, *kept;
  double r;
} drop_pair;

struct ns_prep_params {
  ns_prep_opts o;
  char *rules;
  size_t n_in, n_red, n_out, n_drop, n_nodes;
  in_metric *in;
  size_t *in_sorted; /* indices of `in` sorted by name */
  red_metric *red;
  uint32_t *out_red; /* output k -> reduced index */
  char **out_names;
  drop_pair *drop;
  double *pool_mean, *pool_sigma;
  uint8_t *pool_flags;
  node_par *nodes; /* sorted by name */
};

/* ------------------------------------------------------------------ options */

void ns_prep_opts_default(ns_prep_opts *o) {
  o->interval_ms = 15000;
  o->max_gap_ms = 120000;
  o->min_segment_ms = 180000;
  o->corr_threshold = 0.99;
  o->trim = 0.05;
  o->clip = 5;
  o->rules = NS_PREP_DEFAULT_RULES;
  o->exclude = NULL;
}

void ns_prep_opts_from_config(const ns_config *cfg, ns_prep_opts *o) {
  o->interval_ms = ns_cfg_int(cfg, NS_CFG_prep_interval);
  o->max_gap_ms = ns_cfg_int(cfg, NS_CFG_prep_max_gap);
  o->min_segment_ms = ns_cfg_int(cfg, NS_CFG_prep_min_segment);
  o->corr_threshold = ns_cfg_double(cfg, NS_CFG_prep_corr_threshold);
  o->trim = ns_cfg_double(cfg, NS_CFG_prep_trim);
  o->clip = ns_cfg_double(cfg, NS_CFG_prep_clip);
  o->rules = ns_cfg_str(cfg, NS_CFG_prep_aggregate);
  o->exclude = ns_cfg_str(cfg, NS_CFG_prep_exclude);
}

/* Does name match one of the comma-separated globs? */
static bool excluded(const char *globs, const char *name) {
  if (!globs) return false;
  char pat[256];
  for (const char *p = globs; *p;) {
    while (*p == ',' || isspace((unsigned char)*p)) p++;
    size_t n = strcspn(p, ",");
    size_t m = n;
    while (m > 0 && isspace((unsigned char)p[m - 1])) m--;
    if (m > 0 && m < sizeof pat) {
      memcpy(pat, p, m);
      pat[m] = 0;
      if (fnmatch(pat, name, 0) == 0) return true;
    }
    p += n;
  }
  return false;
}

static ns_status check_opts(const ns_prep_opts *o) {
  if (o->interval_ms <= 0) return ns_errorf(NS_ERR_INVAL, "prep_interval must be positive");
  if (o->max_gap_ms < 0 || o->min_segment_ms < 0) return ns_errorf(NS_ERR_INVAL, "prep durations must not be negative");
  if (!(o->corr_threshold > 0 && o->corr_threshold <= 1))
    return ns_errorf(NS_ERR_RANGE, "prep_corr_threshold %g outside (0, 1]", o->corr_threshold);
  if (!(o->trim >= 0 && o->trim < 0.5)) return ns_errorf(NS_ERR_RANGE, "prep_trim %g outside [0, 0.5)", o->trim);
  if (!(o->clip > 0) || !isfinite(o->clip)) return ns_errorf(NS_ERR_RANGE, "prep_clip %g must be positive", o->clip);
  return ns_prep_rules_check(o->rules ? o->rules : NS_PREP_DEFAULT_RULES);
}

/* -------------------------------------------------------------------- rules */

/* Match `pat` (length plen) against `s`; append the kept text to out. */
static bool pat_match(const char *pat, size_t plen, const char *s, char *out, size_t *olen) {
  if (plen == 0) return *s == 0;
  if (*pat == '#') {
    if (!isdigit((unsigned char)*s)) return false;
    size_t nd = 0;
    while (isdigit((unsigned char)s[nd])) nd++;
    for (size_t k = nd; k >= 1; k--) /* longest digit run first */
      if (pat_match(pat + 1, plen - 1, s + k, out, olen)) return true;
    return false;
  }
  if (*pat == '*') {
    size_t n = strlen(s);
    for (size_t k = n + 1; k-- > 0;) {
      size_t save = *olen;
      memcpy(out + *olen, s, k);
      *olen += k;
      if (pat_match(pat + 1, plen - 1, s + k, out, olen)) return true;
      *olen = save;
    }
    return false;
  }
  if (*pat != *s) return false;
  size_t save = *olen;
  out[(*olen)++] = *s;
  if (pat_match(pat + 1, plen - 1, s + 1, out, olen)) return true;
  *olen = save;
  return false;
}

/* Iterate rules: calls back with pattern, its length, op. */
static ns_status parse_rule(const char *r, size_t len, size_t *plen, int *op) {
  const char *eq = memchr(r, '=', len);
  if (!eq || eq == r)
    return ns_errorf(NS_ERR_PARSE, "aggregation rule '%.*s': expected PATTERN=sum|mean", (int)len, r);
  *plen = (size_t)(eq - r);
  size_t ol = len - *plen - 1;
  if (ol == 3 && strncmp(eq + 1, "sum", 3) == 0) *op = OP_SUM;
  else if (ol == 4 && strncmp(eq + 1, "mean", 4) == 0) *op = OP_MEAN;
  else return ns_errorf(NS_ERR_PARSE, "aggregation rule '%.*s': op must be sum or mean", (int)len, r);
  bool hash = false;
  for (size_t i = 0; i < *plen; i++) {
    if (r[i] == '#') hash = true;
    if (r[i] == ',' || isspace((unsigned char)r[i]))
      return ns_errorf(NS_ERR_PARSE, "aggregation rule '%.*s': bad character in pattern", (int)len, r);
  }
  if (!hash) return ns_errorf(NS_ERR_PARSE, "aggregation rule '%.*s': pattern needs a '#' (digits)", (int)len, r);
  return NS_OK;
}

ns_status ns_prep_rules_check(const char *rules) {
  if (!rules) return ns_errorf(NS_ERR_INVAL, "no aggregation rules");
  const char *p = rules;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 0) {
      size_t plen;
      int op;
      ns_status st = parse_rule(p, len, &plen, &op);
      if (st) return st;
    }
    p += len + (e ? 1 : 0);
  }
  return NS_OK;
}

ns_status ns_prep_aggregate_name(const char *rules, const char *metric, char **out, int *op) {
  *out = NULL;
  *op = OP_NONE;
  size_t ml = strlen(metric);
  char *buf = malloc(ml + 1);
  if (!buf) return NS_ERR_NOMEM;
  const char *p = rules ? rules : NS_PREP_DEFAULT_RULES;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 0) {
      size_t plen, ol = 0;
      int rop;
      ns_status st = parse_rule(p, len, &plen, &rop);
      if (st) {
        free(buf);
        return st;
      }
      if (pat_match(p, plen, metric, buf, &ol)) {
        buf[ol] = 0;
        /* "cpu12_user" via "cpu#_*" gives "cpu_user"; collapse doubled and
         * edge separators left where the digits were. */
        size_t w = 0;
        for (size_t i = 0; i < ol; i++) {
          if ((buf[i] == '_' || buf[i] == '.') && (w == 0 || buf[w - 1] == buf[i])) continue;
          buf[w++] = buf[i];
        }
        while (w > 0 && (buf[w - 1] == '_' || buf[w - 1] == '.')) w--;
        buf[w] = 0;
        if (w == 0) break; /* nothing left: keep the name as is */
        *out = buf;
        *op = rop;
        return NS_OK;
      }
    }
    p += len + (e ? 1 : 0);
  }
  memcpy(buf, metric, ml + 1);
  *out = buf;
  return NS_OK;
}

/* ------------------------------------------------------------------- params */

static void params_free_nodes(ns_prep_params *p) {
  for (size_t i = 0; i < p->n_nodes; i++) {
    free(p->nodes[i].node);
    free(p->nodes[i].mean);
    free(p->nodes[i].sigma);
    free(p->nodes[i].flags);
  }
  free(p->nodes);
  p->nodes = NULL;
  p->n_nodes = 0;
}

void ns_prep_params_free(ns_prep_params *p) {
  if (!p) return;
  free(p->rules);
  for (size_t i = 0; i < p->n_in; i++) free(p->in[i].name);
  free(p->in);
  free(p->in_sorted);
  for (size_t i = 0; i < p->n_red; i++) free(p->red[i].name);
  free(p->red);
  free(p->out_red);
  free(p->out_names); /* names borrowed from red */
  for (size_t i = 0; i < p->n_drop; i++) free(p->drop[i].dropped), free(p->drop[i].kept);
  free(p->drop);
  free(p->pool_mean);
  free(p->pool_sigma);
  free(p->pool_flags);
  params_free_nodes(p);
  free(p);
}

static int cmp_in_idx(const void *a, const void *b, void *ctx) {
  const ns_prep_params *p = ctx;
  return strcmp(p->in[*(const size_t *)a].name, p->in[*(const size_t *)b].name);
}
static int cmp_node(const void *a, const void *b) {
  return strcmp(((const node_par *)a)->node, ((const node_par *)b)->node);
}

static ns_status index_inputs(ns_prep_params *p) {
  free(p->in_sorted);
  p->in_sorted = malloc((p->n_in ? p->n_in : 1) * sizeof *p->in_sorted);
  if (!p->in_sorted) return NS_ERR_NOMEM;
  for (size_t i = 0; i < p->n_in; i++) p->in_sorted[i] = i;
  qsort_r(p->in_sorted, p->n_in, sizeof *p->in_sorted, cmp_in_idx, p);
  for (size_t i = 1; i < p->n_in; i++)
    if (strcmp(p->in[p->in_sorted[i]].name, p->in[p->in_sorted[i - 1]].name) == 0)
      return ns_errorf(NS_ERR_SCHEMA, "metric '%s' appears twice", p->in[p->in_sorted[i]].name);
  return NS_OK;
}

static long find_input(const ns_prep_params *p, const char *name) {
  size_t lo = 0, hi = p->n_in;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(p->in[p->in_sorted[mid]].name, name);
    if (c == 0) return (long)p->in_sorted[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

static const node_par *find_node(const ns_prep_params *p, const char *node) {
  if (!node) return NULL;
  size_t lo = 0, hi = p->n_nodes;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(p->nodes[mid].node, node);
    if (c == 0) return &p->nodes[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

size_t ns_prep_n_inputs(const ns_prep_params *p) { return p->n_in; }
const char *ns_prep_input_name(const ns_prep_params *p, size_t i) { return i < p->n_in ? p->in[i].name : NULL; }
size_t ns_prep_n_reduced(const ns_prep_params *p) { return p->n_red; }
size_t ns_prep_n_outputs(const ns_prep_params *p) { return p->n_out; }
const char *ns_prep_output_name(const ns_prep_params *p, size_t k) { return k < p->n_out ? p->out_names[k] : NULL; }
char *const *ns_prep_output_names(const ns_prep_params *p) { return p->out_names; }
size_t ns_prep_n_dropped(const ns_prep_params *p) { return p->n_drop; }
void ns_prep_dropped(const ns_prep_params *p, size_t i, const char **dropped, const char **kept, double *r) {
  *dropped = i < p->n_drop ? p->drop[i].dropped : NULL;
  *kept = i < p->n_drop ? p->drop[i].kept : NULL;
  *r = i < p->n_drop ? p->drop[i].r : NAN;
}
size_t ns_prep_n_nodes(const ns_prep_params *p) { return p->n_nodes; }
const ns_prep_opts *ns_prep_params_opts(const ns_prep_params *p) { return &p->o; }

bool ns_prep_node_param(const ns_prep_params *p, const char *node, size_t k, double *mean, double *sigma,
                        bool *zero_var) {
  if (k >= p->n_out) return false;
  const node_par *np = find_node(p, node);
  if (np) {
    *mean = np->mean[k], *sigma = np->sigma[k], *zero_var = np->flags[k] & PF_ZERO;
  } else {
    *mean = p->pool_mean[k], *sigma = p->pool_sigma[k], *zero_var = p->pool_flags[k] & PF_ZERO;
  }
  return true;
}

static int cmp_narrow(const void *a, const void *b) {
  const ns_prep_narrow *x = a, *y = b;
  if (x->ratio != y->ratio) return x->ratio < y->ratio ? -1 : 1;
  int c = strcmp(x->node, y->node);
  return c ? c : strcmp(x->metric, y->metric);
}

ns_status ns_prep_narrow_scales(const ns_prep_params *p, double frac, ns_prep_narrow **out, size_t *n) {
  if (out) *out = NULL;
  if (n) *n = 0;
  if (!p || !out || !n) return ns_errorf(NS_ERR_INVAL, "ns_prep_narrow_scales: NULL argument");
  if (!(frac > 0 && frac <= 1)) return ns_errorf(NS_ERR_RANGE, "narrow-scale fraction %g outside (0, 1]", frac);
  size_t cnt = 0, cap = 0;
  ns_prep_narrow *v = NULL;
  for (size_t i = 0; i < p->n_nodes; i++) {
    const node_par *np = &p->nodes[i];
    for (size_t k = 0; k < p->n_out; k++) {
      if (np->flags[k] || p->pool_flags[k] || !(p->pool_sigma[k] > 0)) continue;
      double ratio = np->sigma[k] / p->pool_sigma[k];
      if (!(ratio < frac)) continue;
      if (cnt == cap) {
        size_t nc = cap ? 2 * cap : 16;
        ns_prep_narrow *nv = realloc(v, nc * sizeof *nv);
        if (!nv) {
          free(v);
          return ns_errorf(NS_ERR_NOMEM, "narrow scales: %zu pairs", nc);
        }
        v = nv, cap = nc;
      }
      v[cnt++] = (ns_prep_narrow){np->node, p->out_names[k], ratio};
    }
  }
  if (cnt) qsort(v, cnt, sizeof *v, cmp_narrow);
  *out = v, *n = cnt;
  return NS_OK;
}

/* -------------------------------------------------------- the core transform */

/* Which raw columns feed which produced column. */
typedef struct {
  size_t ncol;      /* produced columns */
  size_t *start;    /* ncol+1 offsets into src */
  size_t *src;      /* raw column indices */
  uint8_t *counter; /* per src entry */
  uint8_t *op;      /* per produced column */
} plan;

static void plan_free(plan *pl) {
  free(pl->start), free(pl->src), free(pl->counter), free(pl->op);
  memset(pl, 0, sizeof *pl);
}

/* Columns = all reduced metrics (outputs_only false) or the kept ones. */
static ns_status plan_build(const ns_prep_params *p, char *const *names, size_t M, bool outputs_only,
                            bool counters_are_rates, plan *pl, size_t *ignored) {
  memset(pl, 0, sizeof *pl);
  size_t ncol = outputs_only ? p->n_out : p->n_red;
  pl->ncol = ncol;
  pl->start = calloc(ncol + 1, sizeof *pl->start);
  pl->src = malloc((M ? M : 1) * sizeof *pl->src);
  pl->counter = malloc(M ? M : 1);
  pl->op = malloc(ncol ? ncol : 1);
  size_t *col_of = malloc((M ? M : 1) * sizeof *col_of);
  if (!pl->start || !pl->src || !pl->counter || !pl->op || !col_of) {
    free(col_of);
    plan_free(pl);
    return NS_ERR_NOMEM;
  }
  size_t ign = 0;
  uint8_t *seen = calloc(p->n_in ? p->n_in : 1, 1);
  if (!seen) {
    free(col_of);
    plan_free(pl);
    return NS_ERR_NOMEM;
  }
  for (size_t j = 0; j < M; j++) {
    col_of[j] = SIZE_MAX;
    long i = names[j] ? find_input(p, names[j]) : -1;
    if (i < 0) {
      ign++;
      continue;
    }
    if (seen[i]++) {
      free(seen), free(col_of);
      plan_free(pl);
      return ns_errorf(NS_ERR_INVAL, "metric '%s' appears twice", names[j]);
    }
    uint32_t r = p->in[i].red;
    size_t c = outputs_only ? (p->red[r].out >= 0 ? (size_t)p->red[r].out : SIZE_MAX) : r;
    if (c == SIZE_MAX) continue;
    col_of[j] = c;
    pl->start[c + 1]++;
  }
  free(seen);
  for (size_t c = 0; c < ncol; c++) pl->start[c + 1] += pl->start[c];
  size_t *fill = calloc(ncol ? ncol : 1, sizeof *fill);
  if (!fill) {
    free(col_of);
    plan_free(pl);
    return NS_ERR_NOMEM;
  }
  for (size_t j = 0; j < M; j++) {
    if (col_of[j] == SIZE_MAX) continue;
    size_t c = col_of[j], k = pl->start[c] + fill[c]++;
    pl->src[k] = j;
    pl->counter[k] = counters_are_rates ? 0 : p->in[find_input(p, names[j])].is_counter;
  }
  for (size_t c = 0; c < ncol; c++) pl->op[c] = p->red[outputs_only ? p->out_red[c] : c].op;
  free(fill);
  free(col_of);
  if (ignored) *ignored = ign;
  return NS_OK;
}

/* Result of cleaning + reduction: G grid points starting at g0, row-major
 * values G x ncol (NaN = invalid), row validity, absent columns. */
typedef struct {
  size_t G, ncol;
  int64_t g0;
  double *v;       /* G * ncol, row-major */
  uint8_t *absent; /* ncol */
  uint8_t *valid;  /* G */
  uint8_t *labels; /* G or NULL */
} grid;

static void grid_free(grid *g) {
  free(g->v), free(g->absent), free(g->valid), free(g->labels);
  memset(g, 0, sizeof *g);
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static ns_status clean_reduce(const ns_prep_params *p, const ns_mts *raw, const plan *pl, grid *g,
                              ns_prep_stats *st) {
  memset(g, 0, sizeof *g);
  const size_t T = raw->T, M = raw->M, nc = pl->ncol;
  const int64_t I = p->o.interval_ms;
  for (size_t t = 1; t < T; t++)
    if (raw->ts_ms[t] <= raw->ts_ms[t - 1])
      return ns_errorf(NS_ERR_INVAL, "node %s: row %zu: timestamp %lld not after the previous one (%lld)",
                       raw->node ? raw->node : "?", t, (long long)raw->ts_ms[t], (long long)raw->ts_ms[t - 1]);
  if (st) st->rows_in += T, st->points_in += T * M;
  int64_t g0 = 0, gl = -1;
  if (T > 0) g0 = -floor_div(-raw->ts_ms[0], I) * I, gl = floor_div(raw->ts_ms[T - 1], I) * I;
  size_t G = gl >= g0 ? (size_t)((gl - g0) / I) + 1 : 0;
  g->g0 = g0, g->G = G, g->ncol = nc;
  double *red = malloc((T * nc > 0 ? T * nc : 1) * sizeof *red);
  g->v = malloc((G * nc > 0 ? G * nc : 1) * sizeof *g->v);
  g->absent = calloc(nc ? nc : 1, 1);
  g->valid = malloc(G ? G : 1);
  double *last = malloc((pl->start[nc] ? pl->start[nc] : 1) * sizeof *last);
  int64_t *last_ts = malloc((pl->start[nc] ? pl->start[nc] : 1) * sizeof *last_ts);
  size_t *pos = malloc((T ? T : 1) * sizeof *pos);
  ns_status ret = NS_OK;
  if (!red || !g->v || !g->absent || !g->valid || !last || !pos || !last_ts) {
    ret = NS_ERR_NOMEM;
    goto done;
  }
  /* Step 1+2a, row-wise (cache-friendly): counters to rates, aggregation. */
  for (size_t k = 0; k < pl->start[nc]; k++) last[k] = NAN, last_ts[k] = 0;
  for (size_t t = 0; t < T; t++) {
    const double *row = raw->x + t * M;
    const int64_t ts = raw->ts_ms[t];
    for (size_t c = 0; c < nc; c++) {
      if (pl->start[c + 1] - pl->start[c] == 1 && !pl->counter[pl->start[c]]) { /* plain gauge */
        double x = row[pl->src[pl->start[c]]];
        red[c * T + t] = isfinite(x) ? x : NAN;
        continue;
      }
      double acc = 0;
      size_t n = 0, want = pl->start[c + 1] - pl->start[c];
      for (size_t k = pl->start[c]; k < pl->start[c + 1]; k++) {
        double x = row[pl->src[k]];
        if (!isfinite(x)) continue;
        if (pl->counter[k]) {
          double prev = last[k];
          int64_t pts = last_ts[k];
          last[k] = x, last_ts[k] = ts;
          if (isnan(prev)) continue;
          if (x < prev) { /* counter reset (reboot, wrap): rate unknown here */
            if (st) st->counter_resets++;
            continue;
          }
          x = (x - prev) * 1000.0 / (double)(ts - pts);
        }
        acc += x;
        n++;
      }
      double v;
      if (n == 0 || (pl->op[c] == OP_SUM && n < want)) v = NAN;
      else v = pl->op[c] == OP_SUM ? acc : acc / (double)n;
      red[c * T + t] = v;
    }
  }
  /* Step 1: resample each column onto the grid. A hole between two valid
   * samples is interpolated when (t_next - t_prev) <= max_gap + 1.5 interval
   * (half an interval of jitter tolerance). */
  const int64_t limit = p->o.max_gap_ms + I + I / 2;
  memset(g->valid, 1, G);
  for (size_t c = 0; c < nc; c++) {
    const double *col = red + c * T;
    double *out = g->v + c; /* stride nc */
    size_t nv = 0;
    for (size_t t = 0; t < T; t++)
      if (!isnan(col[t])) pos[nv++] = t;
    if (nv == 0) {
      g->absent[c] = 1;
      for (size_t k = 0; k < G; k++) out[k * nc] = NAN;
      continue;
    }
    size_t a = 0; /* pos[a] = last valid sample at or before the grid point */
    size_t last_hole = SIZE_MAX;
    for (size_t k = 0; k < G; k++) {
      int64_t gt = g0 + (int64_t)k * I;
      while (a + 1 < nv && raw->ts_ms[pos[a + 1]] <= gt) a++;
      int64_t ta = raw->ts_ms[pos[a]];
      double v = NAN;
      if (ta == gt) v = col[pos[a]];
      else if (ta < gt && a + 1 < nv) {
        int64_t tb = raw->ts_ms[pos[a + 1]];
        if (tb - ta <= limit) {
          double w = (double)(gt - ta) / (double)(tb - ta);
          v = col[pos[a]] + w * (col[pos[a + 1]] - col[pos[a]]);
          if (tb - ta > I + I / 2 && last_hole != a && st) st->gaps_interpolated++, last_hole = a;
        }
      }
      out[k * nc] = v;
      if (isnan(v)) g->valid[k] = 0;
    }
  }
  /* Long gaps: runs of invalid grid points between valid ones. */
  if (st) {
    bool seen_valid = false, in_gap = false;
    for (size_t k = 0; k < G; k++) {
      if (g->valid[k]) {
        if (in_gap && seen_valid) st->gaps_split++;
        seen_valid = true, in_gap = false;
      } else in_gap = true;
    }
    for (size_t c = 0; c < nc; c++) st->absent_metrics += g->absent[c];
  }
  /* Labels: a grid point is anomalous when any raw row in (g - I, g] is. */
  if (raw->labels) {
    if (!(g->labels = calloc(G ? G : 1, 1))) {
      ret = NS_ERR_NOMEM;
      goto done;
    }
    for (size_t t = 0; t < T; t++) {
      if (!raw->labels[t]) continue;
      int64_t k = -floor_div(-(raw->ts_ms[t] - g0), I);
      if (k >= 0 && (size_t)k < G) g->labels[k] = 1;
    }
  }
done:
  free(red), free(last), free(last_ts), free(pos);
  if (ret) grid_free(g);
  return ret;
}

/* --------------------------------------------------------------------- fit */

typedef struct {
  char *node;
  double *mean, *sigma; /* n_red */
  uint8_t *flags;       /* PF_ZERO; absent = no training value (bit 4) */
} fit_node;
#define PF_ABSENT 4

struct ns_prep_fit {
  ns_prep_params *p; /* schema built on the first node */
  size_t n_nodes, cap_nodes;
  fit_node *nodes;
  /* Pairwise sums over rows where both metrics are valid, on per-node z. */
  double *N, *Sx, *Sxx, *Sxy; /* n_red*n_red; Sx[i*R+j] sums metric i over pairs (i,j) */
};

void ns_prep_fit_free(ns_prep_fit *f) {
  if (!f) return;
  ns_prep_params_free(f->p);
  for (size_t i = 0; i < f->n_nodes; i++)
    free(f->nodes[i].node), free(f->nodes[i].mean), free(f->nodes[i].sigma), free(f->nodes[i].flags);
  free(f->nodes);
  free(f->N), free(f->Sx), free(f->Sxx), free(f->Sxy);
  free(f);
}

ns_status ns_prep_fit_begin(const ns_prep_opts *o, ns_prep_fit **out) {
  *out = NULL;
  ns_status st = check_opts(o);
  if (st) return st;
  ns_prep_fit *f = calloc(1, sizeof *f);
  if (!f || !(f->p = calloc(1, sizeof *f->p))) {
    free(f);
    return NS_ERR_NOMEM;
  }
  f->p->o = *o;
  if (!(f->p->rules = strdup(o->rules ? o->rules : NS_PREP_DEFAULT_RULES))) {
    ns_prep_fit_free(f);
    return NS_ERR_NOMEM;
  }
  f->p->o.rules = f->p->rules;
  *out = f;
  return NS_OK;
}

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Input and reduced schema from the first node. Reduced metrics are sorted
 * by name so the correlation drop does not depend on column order. */
static ns_status build_schema(ns_prep_fit *f, const ns_mts *raw) {
  ns_prep_params *p = f->p;
  size_t M = raw->M;
  char **rn = calloc(M, sizeof *rn);
  int *ops = calloc(M, sizeof *ops);
  char **uniq = calloc(M, sizeof *uniq);
  ns_status st = NS_OK;
  if (!rn || !ops || !uniq || !(p->in = calloc(M, sizeof *p->in))) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  p->n_in = M;
  for (size_t j = 0; j < M; j++) {
    if (!raw->metrics[j] || !raw->metrics[j][0]) {
      st = ns_errorf(NS_ERR_SCHEMA, "node %s: metric %zu has no name", raw->node ? raw->node : "?", j);
      goto done;
    }
    if (!(p->in[j].name = strdup(raw->metrics[j]))) {
      st = NS_ERR_NOMEM;
      goto done;
    }
    p->in[j].is_counter = raw->is_counter ? raw->is_counter[j] : 0;
    if ((st = ns_prep_aggregate_name(p->rules, raw->metrics[j], &rn[j], &ops[j]))) goto done;
  }
  if ((st = index_inputs(p))) goto done;
  memcpy(uniq, rn, M * sizeof *uniq);
  qsort(uniq, M, sizeof *uniq, cmp_str_ptr);
  size_t R = 0;
  for (size_t j = 0; j < M; j++)
    if (R == 0 || strcmp(uniq[R - 1], uniq[j]) != 0) uniq[R++] = uniq[j];
  if (!(p->red = calloc(R, sizeof *p->red))) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  p->n_red = R;
  for (size_t r = 0; r < R; r++) {
    if (!(p->red[r].name = strdup(uniq[r]))) {
      st = NS_ERR_NOMEM;
      goto done;
    }
    p->red[r].op = OP_MEAN;
    p->red[r].kept = 1;
    p->red[r].out = -1;
  }
  for (size_t j = 0; j < M; j++) {
    char *key = rn[j];
    char **hit = bsearch(&key, uniq, R, sizeof *uniq, cmp_str_ptr);
    size_t r = (size_t)(hit - uniq);
    p->in[j].red = (uint32_t)r;
    if (ops[j] == OP_SUM) p->red[r].op = OP_SUM; /* a sum rule wins for its group */
  }
  size_t RR = R * R;
  f->N = calloc(RR ? RR : 1, sizeof *f->N);
  f->Sx = calloc(RR ? RR : 1, sizeof *f->Sx);
  f->Sxx = calloc(RR ? RR : 1, sizeof *f->Sxx);
  f->Sxy = calloc(RR ? RR : 1, sizeof *f->Sxy);
  if (!f->N || !f->Sx || !f->Sxx || !f->Sxy) st = NS_ERR_NOMEM;
done:
  if (rn)
    for (size_t j = 0; j < M; j++) free(rn[j]);
  free(rn), free(ops), free(uniq);
  return st;
}

static void swap_d(double *a, double *b) {
  double t = *a;
  *a = *b, *b = t;
}

/* Hoare-style selection: after the call v[k] is the k-th smallest, with
 * v[<k] <= v[k] <= v[>k]. Deterministic (median of three). */
static void select_kth(double *v, size_t n, size_t k) {
  size_t lo = 0, hi = n - 1;
  while (hi > lo) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] < v[lo]) swap_d(&v[mid], &v[lo]);
    if (v[hi] < v[lo]) swap_d(&v[hi], &v[lo]);
    if (v[hi] < v[mid]) swap_d(&v[hi], &v[mid]);
    double piv = v[mid];
    size_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] < piv) i++;
      while (v[j] > piv) j--;
      if (i <= j) {
        swap_d(&v[i], &v[j]);
        i++;
        if (j == 0) break;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/* Trimmed mean and population sigma of v[0..n) (reorders v). */
static void trimmed_stats(double *v, size_t n, double trim, double *mean, double *sigma) {
  size_t lo = (size_t)floor(trim * (double)n), hi = n - lo;
  if (hi <= lo) lo = 0, hi = n; /* too few values to trim */
  if (lo > 0) {
    select_kth(v, n, lo);
    select_kth(v + lo, n - lo, hi - 1 - lo);
  }
  double s = 0;
  for (size_t i = lo; i < hi; i++) s += v[i];
  double m = s / (double)(hi - lo), ss = 0;
  for (size_t i = lo; i < hi; i++) ss += (v[i] - m) * (v[i] - m);
  *mean = m;
  *sigma = sqrt(ss / (double)(hi - lo));
}

static bool is_zero_sigma(double sigma, double mean) { return !(sigma > 1e-9 * fmax(1.0, fabs(mean))); }

ns_status ns_prep_fit_add(ns_prep_fit *f, const ns_mts *raw, ns_prep_stats *st) {
  if (!f || !raw) return ns_errorf(NS_ERR_INVAL, "ns_prep_fit_add: no fit or data");
  if (!raw->node || !raw->node[0]) return ns_errorf(NS_ERR_INVAL, "raw series has no node name");
  if (raw->M == 0 || !raw->metrics) return ns_errorf(NS_ERR_INVAL, "node %s: no metrics", raw->node);
  for (size_t i = 0; i < f->n_nodes; i++)
    if (strcmp(f->nodes[i].node, raw->node) == 0)
      return ns_errorf(NS_ERR_EXISTS, "node %s given twice to the fit", raw->node);
  ns_status ret;
  if (f->p->n_in == 0 && (ret = build_schema(f, raw))) return ret;
  ns_prep_params *p = f->p;
  const size_t R = p->n_red;
  plan pl;
  size_t ignored = 0;
  if ((ret = plan_build(p, raw->metrics, raw->M, false, false, &pl, &ignored))) return ret;
  if (ignored) ns_debug("prep: node %s: %zu metrics not in the schema ignored", raw->node, ignored);
  grid g;
  if ((ret = clean_reduce(p, raw, &pl, &g, st))) {
    plan_free(&pl);
    return ret;
  }
  plan_free(&pl);
  if (f->n_nodes == f->cap_nodes) {
    size_t cap = f->cap_nodes ? f->cap_nodes * 2 : 64;
    fit_node *nn = realloc(f->nodes, cap * sizeof *nn);
    if (!nn) {
      grid_free(&g);
      return NS_ERR_NOMEM;
    }
    f->nodes = nn, f->cap_nodes = cap;
  }
  fit_node fn = {0};
  fn.node = strdup(raw->node);
  fn.mean = calloc(R, sizeof *fn.mean);
  fn.sigma = calloc(R, sizeof *fn.sigma);
  fn.flags = calloc(R, 1);
  double *scratch = malloc((g.G * R > 0 ? g.G * R : 1) * sizeof *scratch); /* column-major copy */
  size_t *cnt = calloc(R ? R : 1, sizeof *cnt);
  double *z = malloc((R ? 4 * R : 4) * sizeof *z);
  double *C = calloc(R * R > 0 ? R * R : 1, sizeof *C), *S = calloc(R ? R : 1, sizeof *S);
  if (!fn.node || !fn.mean || !fn.sigma || !fn.flags || !scratch || !cnt || !z || !C || !S) {
    ret = NS_ERR_NOMEM;
    goto fail;
  }
  size_t rows = 0;
  for (size_t k = 0; k < g.G; k++) rows += g.valid[k];
  for (size_t k = 0; k < g.G; k++) {
    const double *row = g.v + k * R;
    for (size_t r = 0; r < R; r++)
      if (!isnan(row[r])) scratch[r * g.G + cnt[r]++] = row[r];
  }
  for (size_t r = 0; r < R; r++) {
    size_t n = cnt[r];
    if (n == 0) {
      fn.flags[r] = PF_ABSENT;
      continue;
    }
    trimmed_stats(scratch + r * g.G, n, p->o.trim, &fn.mean[r], &fn.sigma[r]);
    if (is_zero_sigma(fn.sigma[r], fn.mean[r])) fn.flags[r] |= PF_ZERO;
  }
  if (st) st->rows_out += rows;
  /* Correlation sums on this node's z over its fully valid rows, four rows
   * at a time (C is touched once per block). */
  size_t nb = 0;
  for (size_t k = 0; k <= g.G; k++) {
    if (k < g.G) {
      if (!g.valid[k]) continue;
      double *zr = z + nb * R;
      for (size_t r = 0; r < R; r++)
        zr[r] = fn.flags[r] ? 0.0 : (g.v[k * R + r] - fn.mean[r]) / fn.sigma[r];
      if (++nb < 4) continue;
    }
    if (nb == 0) break;
    for (size_t q = nb; q < 4; q++) memset(z + q * R, 0, R * sizeof *z);
    const double *z0 = z, *z1 = z + R, *z2 = z + 2 * R, *z3 = z + 3 * R;
    for (size_t i = 0; i < R; i++) {
      double a0 = z0[i], a1 = z1[i], a2 = z2[i], a3 = z3[i];
      double *Ci = C + i * R;
      S[i] += a0 + a1 + a2 + a3;
      for (size_t j = i; j < R; j++) Ci[j] += a0 * z0[j] + a1 * z1[j] + a2 * z2[j] + a3 * z3[j];
    }
    nb = 0;
  }
  if (rows > 0)
    for (size_t i = 0; i < R; i++) {
      if (fn.flags[i] & PF_ABSENT) continue;
      for (size_t j = i + 1; j < R; j++) {
        if (fn.flags[j] & PF_ABSENT) continue;
        size_t ij = i * R + j, ji = j * R + i;
        f->N[ij] += (double)rows;
        f->Sx[ij] += S[i], f->Sx[ji] += S[j];
        f->Sxx[ij] += C[i * R + i], f->Sxx[ji] += C[j * R + j];
        f->Sxy[ij] += C[ij];
      }
    }
  f->nodes[f->n_nodes++] = fn;
  free(scratch), free(cnt), free(z), free(C), free(S);
  grid_free(&g);
  return NS_OK;
fail:
  free(fn.node), free(fn.mean), free(fn.sigma), free(fn.flags);
  free(scratch), free(cnt), free(z), free(C), free(S);
  grid_free(&g);
  return ret;
}

static double pair_r(const ns_prep_fit *f, size_t i, size_t j, size_t R) {
  size_t ij = i * R + j, ji = j * R + i;
  double n = f->N[ij];
  if (n < 3) return 0;
  double sx = f->Sx[ij], sy = f->Sx[ji], sxx = f->Sxx[ij], syy = f->Sxx[ji], sxy = f->Sxy[ij];
  double vx = n * sxx - sx * sx, vy = n * syy - sy * sy;
  if (!(vx > 1e-12 * n * n) || !(vy > 1e-12 * n * n)) return 0;
  double r = (n * sxy - sx * sy) / sqrt(vx * vy);
  return fmax(-1.0, fmin(1.0, r));
}

/* Record a dropped metric (false: out of memory). */
static bool add_drop(ns_prep_params *p, size_t *cap, const char *dropped, const char *kept, double r) {
  if (p->n_drop == *cap) {
    size_t nc = *cap ? *cap * 2 : 16;
    drop_pair *d = realloc(p->drop, nc * sizeof *d);
    if (!d) return false;
    p->drop = d;
    *cap = nc;
  }
  drop_pair *d = &p->drop[p->n_drop];
  d->dropped = strdup(dropped);
  d->kept = strdup(kept);
  d->r = r;
  if (!d->dropped || !d->kept) {
    free(d->dropped);
    free(d->kept);
    return false;
  }
  p->n_drop++;
  return true;
}

ns_status ns_prep_fit_end(ns_prep_fit *f, ns_prep_params **out) {
  *out = NULL;
  if (!f) return ns_errorf(NS_ERR_INVAL, "ns_prep_fit_end: no fit");
  ns_status ret = NS_OK;
  ns_prep_params *p = f->p;
  if (f->n_nodes == 0 || p->n_red == 0) {
    ns_prep_fit_free(f);
    return ns_errorf(NS_ERR_EMPTY, "no training data to fit preprocessing on");
  }
  const size_t R = p->n_red;
  size_t cap = 0;
  /* Metrics the site excluded (prep_exclude) are recorded like a dropped
   * pair, kept = "prep_exclude", so the artifact says why they are gone. */
  for (size_t i = 0; i < R; i++) {
    if (!p->red[i].kept || !excluded(p->o.exclude, p->red[i].name)) continue;
    p->red[i].kept = 0;
    if (!add_drop(p, &cap, p->red[i].name, "prep_exclude", 0)) goto nomem;
  }
  p->o.exclude = NULL; /* points into the caller's config; not part of the artifact */
  size_t left = 0;
  for (size_t i = 0; i < R; i++) left += p->red[i].kept;
  if (left == 0) {
    ns_prep_fit_free(f);
    return ns_errorf(NS_ERR_EMPTY, "prep_exclude leaves none of the %zu metrics to model", R);
  }
  /* Greedy in name order: a metric survives unless an earlier survivor
   * correlates with it at |r| >= threshold. */
  for (size_t i = 0; i < R; i++) {
    if (!p->red[i].kept) continue;
    for (size_t j = i + 1; j < R; j++) {
      if (!p->red[j].kept) continue;
      double r = pair_r(f, i, j, R);
      if (fabs(r) < p->o.corr_threshold) continue;
      p->red[j].kept = 0;
      if (!add_drop(p, &cap, p->red[j].name, p->red[i].name, r)) goto nomem;
    }
  }
  for (size_t r = 0; r < R; r++)
    if (p->red[r].kept) p->red[r].out = (int32_t)p->n_out++;
  const size_t K = p->n_out;
  p->out_red = malloc(K * sizeof *p->out_red);
  p->out_names = malloc(K * sizeof *p->out_names);
  p->pool_mean = calloc(K, sizeof *p->pool_mean);
  p->pool_sigma = calloc(K, sizeof *p->pool_sigma);
  p->pool_flags = calloc(K, 1);
  p->nodes = calloc(f->n_nodes, sizeof *p->nodes);
  if (!p->out_red || !p->out_names || !p->pool_mean || !p->pool_sigma || !p->pool_flags || !p->nodes) goto nomem;
  for (size_t r = 0; r < R; r++)
    if (p->red[r].out >= 0) p->out_red[p->red[r].out] = (uint32_t)r, p->out_names[p->red[r].out] = p->red[r].name;
  /* Pooled per metric over nodes (equal weight per node): mean of the
   * means; variance = mean of variances + variance of means. */
  for (size_t k = 0; k < K; k++) {
    size_t r = p->out_red[k], n = 0;
    double sm = 0, smm = 0, sv = 0;
    for (size_t i = 0; i < f->n_nodes; i++) {
      if (f->nodes[i].flags[r] & PF_ABSENT) continue;
      double m = f->nodes[i].mean[r], s = f->nodes[i].sigma[r];
      sm += m, smm += m * m, sv += s * s, n++;
    }
    if (n == 0) { /* no node ever had it: outputs 0 */
      p->pool_mean[k] = 0, p->pool_sigma[k] = 1, p->pool_flags[k] = PF_ZERO;
      continue;
    }
    double m = sm / (double)n, var = sv / (double)n + fmax(0.0, smm / (double)n - m * m);
    p->pool_mean[k] = m;
    p->pool_sigma[k] = sqrt(var);
    if (is_zero_sigma(p->pool_sigma[k], m)) p->pool_flags[k] = PF_ZERO, p->pool_sigma[k] = 1;
  }
  for (size_t i = 0; i < f->n_nodes; i++) {
    node_par *np = &p->nodes[i];
    fit_node *fn = &f->nodes[i];
    np->node = fn->node;
    fn->node = NULL;
    p->n_nodes++;
    np->mean = malloc(K * sizeof *np->mean);
    np->sigma = malloc(K * sizeof *np->sigma);
    np->flags = calloc(K, 1);
    if (!np->mean || !np->sigma || !np->flags) goto nomem;
    for (size_t k = 0; k < K; k++) {
      size_t r = p->out_red[k];
      if (fn->flags[r] & PF_ABSENT) {
        np->mean[k] = p->pool_mean[k], np->sigma[k] = p->pool_sigma[k];
        np->flags[k] = PF_POOLED | (p->pool_flags[k] & PF_ZERO);
      } else if (fn->flags[r] & PF_ZERO) {
        /* Constant on this node in training: keep its level, borrow the
         * pooled scale so a later change is measured in cluster units. */
        np->mean[k] = fn->mean[r];
        np->sigma[k] = p->pool_sigma[k];
        np->flags[k] = PF_ZERO;
      } else {
        np->mean[k] = fn->mean[r], np->sigma[k] = fn->sigma[r];
      }
    }
  }
  qsort(p->nodes, p->n_nodes, sizeof *p->nodes, cmp_node);
  f->p = NULL;
  ns_prep_fit_free(f);
  *out = p;
  return NS_OK;
nomem:
  ret = NS_ERR_NOMEM;
  ns_prep_fit_free(f);
  return ret;
}

/* ------------------------------------------------------------------- apply */

static ns_status apply_impl(const ns_prep_params *p, const ns_mts *raw, bool counters_are_rates, ns_mts **out,
                            ns_prep_stats *st) {
  *out = NULL;
  if (!p || !raw) return ns_errorf(NS_ERR_INVAL, "ns_prep_apply: no parameters or data");
  if (raw->M == 0 || !raw->metrics) return ns_errorf(NS_ERR_INVAL, "node %s: no metrics", raw->node ? raw->node : "?");
  ns_status ret = ns_prep_check_schema(p, raw->metrics, raw->M);
  if (ret) return ret;
  plan pl;
  if ((ret = plan_build(p, raw->metrics, raw->M, true, counters_are_rates, &pl, NULL))) return ret;
  grid g;
  ret = clean_reduce(p, raw, &pl, &g, st);
  plan_free(&pl);
  if (ret) return ret;
  const size_t K = p->n_out;
  ns_mts *m = NULL;
  if ((ret = ns_mts_create(raw->node, K, p->out_names, &m))) goto done;
  size_t rows = 0;
  for (size_t k = 0; k < g.G; k++) rows += g.valid[k];
  m->ts_ms = malloc((rows ? rows : 1) * sizeof *m->ts_ms);
  if (!m->ts_ms) goto nomem;
  m->cap = rows; /* = the rows of x handed over below (0: append regrows) */
  if (g.labels || raw->labels) {
    if (!(m->labels = calloc(rows ? rows : 1, 1))) goto nomem;
  }
  const node_par *np = find_node(p, raw->node);
  if (!np && st) st->pooled_nodes++;
  const double *mean = np ? np->mean : p->pool_mean, *sigma = np ? np->sigma : p->pool_sigma;
  const double clip = p->o.clip;
  double *inv = malloc(K * sizeof *inv);
  if (!inv) goto nomem;
  for (size_t k = 0; k < K; k++) inv[k] = 1.0 / sigma[k];
  /* Standardise and compact the valid rows in place (row t <= q), then
   * hand the grid buffer over to the result. */
  size_t t = 0;
  for (size_t q = 0; q < g.G; q++) {
    if (!g.valid[q]) continue;
    m->ts_ms[t] = g.g0 + (int64_t)q * p->o.interval_ms;
    const double *src = g.v + q * K;
    double *row = g.v + t * K;
    for (size_t k = 0; k < K; k++) {
      double v = g.absent[k] ? 0.0 : (src[k] - mean[k]) * inv[k];
      row[k] = v > clip ? clip : v < -clip ? -clip : v; /* a NaN cannot reach here: rows are valid */
    }
    if (m->labels && g.labels) m->labels[t] = g.labels[q];
    t++;
  }
  free(inv);
  if (rows * K > 0 && rows < g.G) {
    double *shrunk = realloc(g.v, rows * K * sizeof *shrunk);
    if (shrunk) g.v = shrunk;
  }
  m->x = g.v;
  g.v = NULL;
  m->T = rows;
  if (st) st->rows_out += rows;
  *out = m;
  m = NULL;
  goto done;
nomem:
  ret = NS_ERR_NOMEM;
done:
  ns_mts_free(m);
  grid_free(&g);
  return ret;
}

ns_status ns_prep_apply(const ns_prep_params *p, const ns_mts *raw, ns_mts **out, ns_prep_stats *st) {
  return apply_impl(p, raw, false, out, st);
}

ns_status ns_prep_check_schema(const ns_prep_params *p, char *const *names, size_t M) {
  uint8_t *have = calloc(p->n_out ? p->n_out : 1, 1);
  if (!have) return NS_ERR_NOMEM;
  for (size_t j = 0; j < M; j++) {
    long i = names[j] ? find_input(p, names[j]) : -1;
    if (i < 0) continue;
    int32_t o = p->red[p->in[i].red].out;
    if (o >= 0) have[o] = 1;
  }
  for (size_t k = 0; k < p->n_out; k++)
    if (!have[k]) {
      free(have);
      return ns_errorf(NS_ERR_SCHEMA, "metric '%s' (or one of its per-core inputs) is missing from the data",
                       p->out_names[k]);
    }
  free(have);
  return NS_OK;
}

/* -------------------------------------------------------------- segmenting */

static int64_t parse_digits(const char *s, size_t *used) {
  int64_t v = 0;
  size_t n = 0;
  while (isdigit((unsigned char)s[n]) && n < 18) v = v * 10 + (s[n] - '0'), n++;
  *used = n;
  return v;
}

/* Match `node` against one hostlist entry e[0..len) that may hold several
 * bracket groups ("r[1-2]n[01-04]"). */
static bool entry_match(const char *e, size_t len, const char *node) {
  const char *br = memchr(e, '[', len);
  if (!br) return strlen(node) == len && strncmp(e, node, len) == 0;
  size_t pre = (size_t)(br - e);
  if (strncmp(e, node, pre) != 0) return false;
  const char *close = memchr(br, ']', len - pre);
  if (!close) return false;
  const char *rest = close + 1;
  size_t rest_len = len - (size_t)(rest - e);
  const char *nd = node + pre;
  size_t ndig = 0;
  while (isdigit((unsigned char)nd[ndig])) ndig++;
  const char *r = br + 1;
  while (r < close) {
    const char *comma = memchr(r, ',', (size_t)(close - r));
    const char *end = comma ? comma : close;
    size_t lo_len = 0;
    int64_t lo = parse_digits(r, &lo_len), hi = lo;
    if (lo_len == 0) return false;
    if (r + lo_len < end && r[lo_len] == '-') {
      size_t hl;
      hi = parse_digits(r + lo_len + 1, &hl);
      if (hl == 0) return false;
    }
    /* Try every digit-run length at the node's position. */
    for (size_t L = 1; L <= ndig && L <= 18; L++) {
      size_t u;
      char tmp[20];
      memcpy(tmp, nd, L);
      tmp[L] = 0;
      int64_t v = parse_digits(tmp, &u);
      if (v < lo || v > hi) continue;
      char want[24];
      snprintf(want, sizeof want, "%0*lld", (int)lo_len, (long long)v);
      if (strlen(want) != L || strncmp(want, nd, L) != 0) continue;
      if (entry_match(rest, rest_len, nd + L)) return true;
    }
    r = end + (comma ? 1 : 0);
  }
  return false;
}

bool ns_prep_nodelist_has(const char *nodelist, const char *node) {
  if (!nodelist || !node) return false;
  const char *p = nodelist;
  while (*p) {
    int depth = 0;
    const char *e = p;
    while (*e && (depth > 0 || *e != ',')) {
      if (*e == '[') depth++;
      else if (*e == ']') depth--;
      e++;
    }
    size_t len = (size_t)(e - p);
    while (len > 0 && isspace((unsigned char)*p)) p++, len--;
    while (len > 0 && isspace((unsigned char)p[len - 1])) len--;
    if (len > 0 && entry_match(p, len, node)) return true;
    p = *e ? e + 1 : e;
  }
  return false;
}

void ns_prep_segments_free(ns_segment **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) ns_segment_free(v[i]);
  free(v);
}

typedef struct {
  ns_segment **v;
  size_t n, cap;
} seg_list;

static ns_status make_seg(const ns_prep_params *p, const ns_mts *m, size_t t0, size_t t1, const char *cluster,
                          const char *node, const char *job_id, seg_list *L) {
  const int64_t I = p->o.interval_ms;
  if ((int64_t)(t1 - t0) * I < p->o.min_segment_ms || t1 == t0) return NS_OK;
  if (L->n == L->cap) {
    size_t cap = L->cap ? L->cap * 2 : 16;
    ns_segment **nv = realloc(L->v, cap * sizeof *nv);
    if (!nv) return NS_ERR_NOMEM;
    L->v = nv, L->cap = cap;
  }
  ns_segment *s = NULL;
  ns_status st = ns_segment_create(t1 - t0, m->M, &s);
  if (st) return st;
  if ((st = ns_segment_set_meta(s, cluster, node, job_id, m->ts_ms[t0], I)) ||
      (st = ns_segment_set_metrics(s, m->metrics)))
    goto fail;
  for (size_t i = 0, n = (t1 - t0) * m->M; i < n; i++) s->x[i] = (float)m->x[t0 * m->M + i];
  if (m->labels) {
    if ((st = ns_segment_alloc_labels(s))) goto fail;
    memcpy(s->labels, m->labels + t0, t1 - t0);
  }
  L->v[L->n++] = s;
  return NS_OK;
fail:
  ns_segment_free(s);
  return st;
}

/* Emit contiguous (gap-free) runs of rows [a, b) where mask is set. */
static ns_status emit_runs(const ns_prep_params *p, const ns_mts *m, const uint8_t *mask, const char *cluster,
                           const char *job_id, seg_list *L) {
  const int64_t I = p->o.interval_ms;
  size_t t = 0;
  while (t < m->T) {
    if (!mask[t]) {
      t++;
      continue;
    }
    size_t a = t++;
    while (t < m->T && mask[t] && m->ts_ms[t] - m->ts_ms[t - 1] == I) t++;
    ns_status st = make_seg(p, m, a, t, cluster, m->node, job_id, L);
    if (st) return st;
  }
  return NS_OK;
}

ns_status ns_prep_segment(const ns_prep_params *p, const ns_mts *m, const char *cluster, const ns_job *jobs,
                          size_t njobs, ns_segment ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!p || !m || !m->node) return ns_errorf(NS_ERR_INVAL, "ns_prep_segment: no parameters or series");
  if (m->M != p->n_out)
    return ns_errorf(NS_ERR_SCHEMA, "series has %zu metrics, the parameters produce %zu", m->M, p->n_out);
  seg_list L = {0};
  ns_status st = NS_OK;
  uint8_t *covered = calloc(m->T ? m->T : 1, 1), *mask = malloc(m->T ? m->T : 1);
  if (!covered || !mask) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t j = 0; j < njobs; j++) {
    const ns_job *jb = &jobs[j];
    if (!jb->job_id || !ns_prep_nodelist_has(jb->nodelist, m->node)) continue;
    if (jb->start_ms <= 0) continue; /* never started */
    int64_t end = jb->end_ms > 0 ? jb->end_ms : INT64_MAX;
    if (end < jb->start_ms) {
      ns_warn("prep: job %s ends before it starts; skipped", jb->job_id);
      continue;
    }
    bool any = false;
    for (size_t t = 0; t < m->T; t++) {
      mask[t] = m->ts_ms[t] >= jb->start_ms && m->ts_ms[t] <= end;
      if (mask[t]) covered[t] = 1, any = true;
    }
    if (any && (st = emit_runs(p, m, mask, cluster, jb->job_id, &L))) goto done;
  }
  for (size_t t = 0; t < m->T; t++) mask[t] = !covered[t];
  if ((st = emit_runs(p, m, mask, cluster, NULL, &L))) goto done;
  *out = L.v, *n = L.n;
  L.v = NULL, L.n = 0;
done:
  ns_prep_segments_free(L.v, L.n);
  free(covered), free(mask);
  return st;
}

ns_status ns_prep_apply_segment(const ns_prep_params *p, const ns_segment *raw, ns_segment ***out, size_t *n,
                                ns_prep_stats *st) {
  *out = NULL;
  *n = 0;
  if (!p || !raw || !raw->x || !raw->metrics) return ns_errorf(NS_ERR_INVAL, "ns_prep_apply_segment: no segment");
  if (raw->interval_ms <= 0)
    return ns_errorf(NS_ERR_INVAL, "segment %s/%s: interval %lld ms is not positive", raw->node ? raw->node : "?",
                     raw->job_id ? raw->job_id : "idle", (long long)raw->interval_ms);
  if (raw->T == 0) return ns_errorf(NS_ERR_EMPTY, "segment %s/%s has no rows", raw->node ? raw->node : "?",
                                    raw->job_id ? raw->job_id : "idle");
  for (size_t m = 0; m < raw->M; m++)
    if (!raw->metrics[m]) return ns_errorf(NS_ERR_INVAL, "segment metric %zu has no name", m);
  ns_mts *in = NULL, *pre = NULL;
  ns_status ret = ns_mts_create(raw->node, raw->M, raw->metrics, &in);
  if (ret) return ret;
  in->ts_ms = malloc(raw->T * sizeof *in->ts_ms);
  in->x = malloc(raw->T * raw->M * sizeof *in->x);
  if (!in->ts_ms || !in->x) {
    ns_mts_free(in);
    return NS_ERR_NOMEM;
  }
  in->cap = in->T = raw->T;
  for (size_t t = 0; t < raw->T; t++) in->ts_ms[t] = raw->start_ms + (int64_t)t * raw->interval_ms;
  for (size_t i = 0; i < raw->T * raw->M; i++) in->x[i] = raw->x[i];
  if (raw->labels) {
    if ((ret = ns_mts_enable_labels(in))) goto done;
    memcpy(in->labels, raw->labels, raw->T);
  }
  if ((ret = apply_impl(p, in, true, &pre, st))) goto done;
  uint8_t *mask = malloc(pre->T ? pre->T : 1);
  if (!mask) {
    ret = NS_ERR_NOMEM;
    goto done;
  }
  memset(mask, 1, pre->T);
  seg_list L = {0};
  ret = emit_runs(p, pre, mask, raw->cluster, raw->job_id, &L);
  free(mask);
  if (ret) {
    ns_prep_segments_free(L.v, L.n);
    goto done;
  }
  for (size_t i = 0; i < L.n; i++) L.v[i]->kind = raw->kind;
  *out = L.v, *n = L.n;
done:
  ns_mts_free(in);
  ns_mts_free(pre);
  return ret;
}

/* ------------------------------------------------------------- persistence */

typedef struct {
  uint8_t *b;
  size_t n, cap;
  bool oom;
} wbuf;

static void w_bytes(wbuf *w, const void *p, size_t n) {
  if (w->oom) return;
  if (w->n + n > w->cap) {
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->n + n) cap *= 2;
    uint8_t *nb = realloc(w->b, cap);
    if (!nb) {
      w->oom = true;
      return;
    }
    w->b = nb, w->cap = cap;
  }
  memcpy(w->b + w->n, p, n);
  w->n += n;
}
static void w_u32(wbuf *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  w_bytes(w, b, 4);
}
static void w_u64(wbuf *w, uint64_t v) {
  w_u32(w, (uint32_t)v);
  w_u32(w, (uint32_t)(v >> 32));
}
static void w_f64(wbuf *w, double d) {
  uint64_t v;
  memcpy(&v, &d, 8);
  w_u64(w, v);
}
static void w_str(wbuf *w, const char *s) {
  size_t n = strlen(s);
  w_u32(w, (uint32_t)n);
  w_bytes(w, s, n);
}


ns_status ns_prep_save(const ns_prep_params *p, void **data, size_t *n) {
  *data = NULL;
  *n = 0;
  if (!p) return ns_errorf(NS_ERR_INVAL, "ns_prep_save: no parameters");
  wbuf w = {0};
  w_bytes(&w, NS_PREP_MAGIC, 8);
  w_u32(&w, NS_PREP_VERSION);
  w_u64(&w, (uint64_t)p->o.interval_ms);
  w_u64(&w, (uint64_t)p->o.max_gap_ms);
  w_u64(&w, (uint64_t)p->o.min_segment_ms);
  w_f64(&w, p->o.corr_threshold);
  w_f64(&w, p->o.trim);
  w_f64(&w, p->o.clip);
  w_str(&w, p->rules);
  w_u32(&w, (uint32_t)p->n_in);
  for (size_t i = 0; i < p->n_in; i++) {
    w_str(&w, p->in[i].name);
    w_bytes(&w, &p->in[i].is_counter, 1);
    w_u32(&w, p->in[i].red);
  }
  w_u32(&w, (uint32_t)p->n_red);
  for (size_t r = 0; r < p->n_red; r++) {
    w_str(&w, p->red[r].name);
    w_bytes(&w, &p->red[r].op, 1);
    w_bytes(&w, &p->red[r].kept, 1);
  }
  w_u32(&w, (uint32_t)p->n_drop);
  for (size_t i = 0; i < p->n_drop; i++) {
    w_str(&w, p->drop[i].dropped);
    w_str(&w, p->drop[i].kept);
    w_f64(&w, p->drop[i].r);
  }
  for (size_t k = 0; k < p->n_out; k++) {
    w_f64(&w, p->pool_mean[k]);
    w_f64(&w, p->pool_sigma[k]);
    w_bytes(&w, &p->pool_flags[k], 1);
  }
  w_u32(&w, (uint32_t)p->n_nodes);
  for (size_t i = 0; i < p->n_nodes; i++) {
    w_str(&w, p->nodes[i].node);
    for (size_t k = 0; k < p->n_out; k++) {
      w_f64(&w, p->nodes[i].mean[k]);
      w_f64(&w, p->nodes[i].sigma[k]);
      w_bytes(&w, &p->nodes[i].flags[k], 1);
    }
  }
  if (!w.oom) w_u64(&w, ns_fnv1a64(w.b, w.n));
  if (w.oom) {
    free(w.b);
    return NS_ERR_NOMEM;
  }
  *data = w.b;
  *n = w.n;
  return NS_OK;
}

typedef struct {
  const uint8_t *b;
  size_t n, off;
  bool bad;
} rbuf;

static const uint8_t *r_take(rbuf *r, size_t n) {
  if (r->bad || r->n - r->off < n) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->b + r->off;
  r->off += n;
  return p;
}
static uint32_t r_u32(rbuf *r) {
  const uint8_t *b = r_take(r, 4);
  return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24 : 0;
}
static uint64_t r_u64(rbuf *r) {
  uint64_t lo = r_u32(r);
  return lo | (uint64_t)r_u32(r) << 32;
}
static double r_f64(rbuf *r) {
  uint64_t v = r_u64(r);
  double d;
  memcpy(&d, &v, 8);
  return d;
}
static uint8_t r_u8(rbuf *r) {
  const uint8_t *b = r_take(r, 1);
  return b ? *b : 0;
}
static char *r_str(rbuf *r) {
  uint32_t n = r_u32(r);
  if (n > (1u << 20)) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *b = r_take(r, n);
  if (!b) return NULL;
  if (memchr(b, 0, n)) {
    r->bad = true;
    return NULL;
  }
  char *s = malloc(n + 1);
  if (!s) {
    r->bad = true;
    return NULL;
  }
  memcpy(s, b, n);
  s[n] = 0;
  return s;
}
/* A count that the remaining bytes could hold at `per` bytes each. */
static size_t r_count(rbuf *r, size_t per) {
  uint32_t c = r_u32(r);
  if (r->bad || (per && (size_t)c > (r->n - r->off) / per)) {
    r->bad = true;
    return 0;
  }
  return c;
}

ns_status ns_prep_load(const void *data, size_t n, ns_prep_params **out) {
  *out = NULL;
  if (!data || n < 8 + 4 + 8) return ns_errorf(NS_ERR_CORRUPT, "preprocessing parameters: %zu bytes is too short", n);
  if (memcmp(data, NS_PREP_MAGIC, 8) != 0)
    return ns_errorf(NS_ERR_FORMAT, "not preprocessing parameters (bad magic)");
  rbuf r = {data, n - 8, 8, false};
  uint32_t ver = r_u32(&r);
  if (ver != NS_PREP_VERSION)
    return ns_errorf(NS_ERR_VERSION, "preprocessing parameters version %u, this build reads %u", ver, NS_PREP_VERSION);
  const uint8_t *b = data;
  uint64_t sum = 0;
  for (int i = 0; i < 8; i++) sum |= (uint64_t)b[n - 8 + i] << (8 * i);
  if (sum != ns_fnv1a64(b, n - 8)) return ns_errorf(NS_ERR_CORRUPT, "preprocessing parameters: checksum mismatch");
  ns_prep_params *p = calloc(1, sizeof *p);
  if (!p) return NS_ERR_NOMEM;
  ns_status ret = NS_OK;
  p->o.interval_ms = (int64_t)r_u64(&r);
  p->o.max_gap_ms = (int64_t)r_u64(&r);
  p->o.min_segment_ms = (int64_t)r_u64(&r);
  p->o.corr_threshold = r_f64(&r);
  p->o.trim = r_f64(&r);
  p->o.clip = r_f64(&r);
  p->rules = r_str(&r);
  p->o.rules = p->rules;
  if (r.bad) goto corrupt;
  if ((ret = check_opts(&p->o))) goto fail;
  p->n_in = r_count(&r, 9);
  if (r.bad || p->n_in == 0 || !(p->in = calloc(p->n_in, sizeof *p->in))) goto corrupt;
  for (size_t i = 0; i < p->n_in && !r.bad; i++) {
    p->in[i].name = r_str(&r);
    p->in[i].is_counter = r_u8(&r);
    p->in[i].red = r_u32(&r);
  }
  p->n_red = r_count(&r, 6);
  if (r.bad || p->n_red == 0 || !(p->red = calloc(p->n_red, sizeof *p->red))) goto corrupt;
  for (size_t i = 0; i < p->n_red && !r.bad; i++) {
    p->red[i].name = r_str(&r);
    p->red[i].op = r_u8(&r);
    p->red[i].kept = r_u8(&r);
    p->red[i].out = -1;
    if (p->red[i].op != OP_SUM && p->red[i].op != OP_MEAN) r.bad = true;
    if (p->red[i].kept) p->red[i].out = (int32_t)p->n_out++;
  }
  if (r.bad) goto corrupt;
  for (size_t i = 0; i < p->n_in; i++)
    if (p->in[i].red >= p->n_red) goto corrupt;
  p->n_drop = r_count(&r, 16);
  if (r.bad || (p->n_drop && !(p->drop = calloc(p->n_drop, sizeof *p->drop)))) goto corrupt;
  for (size_t i = 0; i < p->n_drop && !r.bad; i++) {
    p->drop[i].dropped = r_str(&r);
    p->drop[i].kept = r_str(&r);
    p->drop[i].r = r_f64(&r);
  }
  const size_t K = p->n_out;
  if (r.bad || K == 0) goto corrupt;
  p->out_red = malloc(K * sizeof *p->out_red);
  p->out_names = malloc(K * sizeof *p->out_names);
  p->pool_mean = malloc(K * sizeof *p->pool_mean);
  p->pool_sigma = malloc(K * sizeof *p->pool_sigma);
  p->pool_flags = malloc(K);
  if (!p->out_red || !p->out_names || !p->pool_mean || !p->pool_sigma || !p->pool_flags) goto nomem;
  for (size_t i = 0; i < p->n_red; i++)
    if (p->red[i].out >= 0) p->out_red[p->red[i].out] = (uint32_t)i, p->out_names[p->red[i].out] = p->red[i].name;
  for (size_t k = 0; k < K; k++) {
    p->pool_mean[k] = r_f64(&r);
    p->pool_sigma[k] = r_f64(&r);
    p->pool_flags[k] = r_u8(&r);
    if (!isfinite(p->pool_mean[k]) || !(p->pool_sigma[k] > 0) || !isfinite(p->pool_sigma[k])) r.bad = true;
  }
  p->n_nodes = 0;
  size_t nn = r_count(&r, 4 + K * 17);
  if (r.bad || (nn && !(p->nodes = calloc(nn, sizeof *p->nodes)))) goto corrupt;
  for (size_t i = 0; i < nn && !r.bad; i++) {
    node_par *np = &p->nodes[i];
    p->n_nodes++;
    np->node = r_str(&r);
    np->mean = malloc(K * sizeof *np->mean);
    np->sigma = malloc(K * sizeof *np->sigma);
    np->flags = malloc(K);
    if (!np->mean || !np->sigma || !np->flags) goto nomem;
    for (size_t k = 0; k < K; k++) {
      np->mean[k] = r_f64(&r);
      np->sigma[k] = r_f64(&r);
      np->flags[k] = r_u8(&r);
      if (!isfinite(np->mean[k]) || !(np->sigma[k] > 0) || !isfinite(np->sigma[k])) r.bad = true;
    }
    if (i > 0 && !r.bad && strcmp(p->nodes[i - 1].node, np->node) >= 0) r.bad = true; /* sorted, unique */
  }
  if (r.bad || r.off != r.n) goto corrupt;
  if ((ret = index_inputs(p))) goto fail;
  *out = p;
  return NS_OK;
corrupt:
  ret = ns_errorf(NS_ERR_CORRUPT, "preprocessing parameters: malformed at byte %zu", r.off);
  goto fail;
nomem:
  ret = NS_ERR_NOMEM;
fail:
  ns_prep_params_free(p);
  return ret;
}

ns_status ns_prep_store_save(ns_store *s, const char *cluster, const ns_prep_params *p, int64_t *version) {
  void *data = NULL;
  size_t n = 0;
  ns_status st = ns_prep_save(p, &data, &n);
  if (st) return st;
  st = ns_store_put_artifact(s, "prep", cluster, data, n, version);
  free(data);
  return st;
}

ns_status ns_prep_store_load(ns_store *s, const char *cluster, int64_t version, ns_prep_params **out) {
  *out = NULL;
  void *data = NULL;
  size_t n = 0;
  int64_t v = 0;
  ns_status st = ns_store_get_artifact(s, "prep", cluster, version, &data, &n, &v);
  if (st) return st;
  st = ns_prep_load(data, n, out);
  free(data);
  return st;
}

ns_status ns_prep_fit_store(ns_store *s, const char *cluster, const ns_prep_opts *o, int64_t from_ms,
                            int64_t to_ms, ns_prep_params **out, ns_prep_stats *st) {
  *out = NULL;
  char **nodes = NULL;
  size_t nn = 0;
  ns_prep_fit *f = NULL;
  ns_status ret = ns_prep_fit_begin(o, &f);
  if (ret) return ret;
  if ((ret = ns_store_list_raw_nodes(s, cluster, &nodes, &nn))) goto fail;
  for (size_t i = 0; i < nn; i++) {
    ns_mts *m = NULL;
    if ((ret = ns_store_get_raw(s, cluster, nodes[i], from_ms, to_ms, &m))) goto fail;
    if (m->T == 0) {
      ns_mts_free(m);
      continue;
    }
    ret = ns_prep_fit_add(f, m, st);
    ns_mts_free(m);
    if (ret) goto fail;
  }
  ns_strings_free(nodes, nn);
  return ns_prep_fit_end(f, out);
fail:
  ns_strings_free(nodes, nn);
  ns_prep_fit_free(f);
  return ret;
}

/* --------------------------------------------------------- offline stage */

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Only what prep itself made: the train/test segments of nodes that have raw
 * telemetry. Segments shipped by nodes (split "ingest") and imported
 * preprocessed datasets are never touched. */
static ns_status delete_cluster_segments(ns_store *s, const char *cluster, size_t *n_deleted) {
  char **nodes = NULL;
  size_t nn = 0, n = 0;
  int64_t *ids = NULL;
  ns_status st = ns_store_list_raw_nodes(s, cluster, &nodes, &nn);
  if (st) return st;
  static const char *const splits[] = {"train", "test"};
  for (size_t i = 0; i < nn && !st; i++)
    for (int k = 0; k < 2 && !st; k++) {
      ns_seg_filter f = NS_SEG_FILTER_ALL;
      f.cluster = cluster;
      f.node = nodes[i];
      f.split = splits[k];
      int64_t *part = NULL;
      size_t np = 0;
      if ((st = ns_store_list_segments(s, &f, &part, &np))) break;
      if (np) {
        int64_t *grown = realloc(ids, (n + np) * sizeof *grown);
        if (!grown) {
          free(part);
          st = NS_ERR_NOMEM;
          break;
        }
        ids = grown;
        memcpy(ids + n, part, np * sizeof *part);
        n += np;
      }
      free(part);
    }
  ns_strings_free(nodes, nn);
  if (st) goto done;
  if (n && (st = ns_store_begin(s))) goto done;
  for (size_t i = 0; i < n && !st; i++) st = ns_store_delete_segment(s, ids[i]);
  if (n) {
    if (st) ns_store_rollback(s);
    else st = ns_store_commit(s);
  }
  if (!st) *n_deleted = n;
done:
  free(ids);
  return st;
}

/* Per-point labels from the stored anomalous intervals (label 1) of the
 * node, OR-ed with any labels carried from the raw data. */
static ns_status attach_labels(ns_store *s, const char *cluster, const char *node, ns_segment **seg, size_t n) {
  ns_label *l = NULL;
  size_t nl = 0;
  ns_status st = ns_store_list_labels(s, cluster, node, 0, 0, &l, &nl);
  if (st) return st;
  for (size_t k = 0; k < n && !st; k++) {
    ns_segment *g = seg[k];
    for (size_t a = 0; a < nl; a++) {
      if (l[a].label != 1 || l[a].end_ms < g->start_ms || l[a].start_ms > g->end_ms) continue;
      if ((st = ns_segment_alloc_labels(g))) break;
      for (size_t t = 0; t < g->T; t++) {
        int64_t ts = g->start_ms + (int64_t)t * g->interval_ms;
        if (ts >= l[a].start_ms && ts <= l[a].end_ms) g->labels[t] = 1;
      }
    }
  }
  ns_labels_free(l, nl);
  return st;
}

/* Node -> jobs index, so each node looks at its own jobs only (a cluster
 * has thousands of jobs; matching every job's node list per node is
 * quadratic). Jobs whose node list cannot be expanded go to every node, where
 * ns_prep_nodelist_has decides. */
typedef struct {
  const char *node;
  size_t job;
} node_job;

static int cmp_node_job(const void *a, const void *b) {
  const node_job *x = a, *y = b;
  int c = strcmp(x->node, y->node);
  return c ? c : (x->job > y->job) - (x->job < y->job);
}

typedef struct {
  node_job *v;
  size_t n;
  char ***names; /* per job, expanded (freed at the end) */
  size_t *nnames;
  size_t *wild;  /* jobs for every node */
  size_t nwild;
} job_index;

static void job_index_free(job_index *x, size_t njobs) {
  if (x->names)
    for (size_t j = 0; j < njobs; j++) ns_hostlist_free(x->names[j], x->nnames[j]);
  free(x->names), free(x->nnames), free(x->v), free(x->wild);
  memset(x, 0, sizeof *x);
}

static ns_status job_index_build(const ns_job *jobs, size_t njobs, job_index *x) {
  memset(x, 0, sizeof *x);
  x->names = calloc(njobs ? njobs : 1, sizeof *x->names);
  x->nnames = calloc(njobs ? njobs : 1, sizeof *x->nnames);
  x->wild = malloc((njobs ? njobs : 1) * sizeof *x->wild);
  if (!x->names || !x->nnames || !x->wild) return NS_ERR_NOMEM;
  size_t total = 0;
  for (size_t j = 0; j < njobs; j++) {
    if (!jobs[j].nodelist || ns_hostlist_expand(jobs[j].nodelist, &x->names[j], &x->nnames[j]) != NS_OK) {
      x->names[j] = NULL, x->nnames[j] = 0;
      x->wild[x->nwild++] = j;
      continue;
    }
    total += x->nnames[j];
  }
  ns_err_clear();
  x->v = malloc((total ? total : 1) * sizeof *x->v);
  if (!x->v) return NS_ERR_NOMEM;
  for (size_t j = 0; j < njobs; j++)
    for (size_t k = 0; k < x->nnames[j]; k++) x->v[x->n++] = (node_job){x->names[j][k], j};
  qsort(x->v, x->n, sizeof *x->v, cmp_node_job);
  return NS_OK;
}

/* Shallow copies of the node's jobs (plus the unexpandable ones) in *out. */
static ns_status job_index_for(const job_index *x, const ns_job *jobs, const char *node, ns_job **out, size_t *n) {
  *n = 0;
  size_t lo = 0, hi = x->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (strcmp(x->v[mid].node, node) < 0) lo = mid + 1;
    else hi = mid;
  }
  size_t end = lo;
  while (end < x->n && strcmp(x->v[end].node, node) == 0) end++;
  ns_job *v = malloc((end - lo + x->nwild + 1) * sizeof *v);
  if (!v) return NS_ERR_NOMEM;
  for (size_t i = lo; i < end; i++)
    if (i == lo || x->v[i].job != x->v[i - 1].job) v[(*n)++] = jobs[x->v[i].job];
  for (size_t i = 0; i < x->nwild; i++) v[(*n)++] = jobs[x->wild[i]];
  *out = v;
  return NS_OK;
}

ns_status ns_prep_run_store(ns_store *s, const char *cluster, const ns_prep_opts *o, bool fit,
                            int64_t train_until_ms, ns_prep_summary *sum, ns_prep_progress_fn progress, void *ctx) {
  ns_prep_summary local;
  if (!sum) sum = &local;
  memset(sum, 0, sizeof *sum);
  double t0 = mono_s();
  if (!s || !cluster) return ns_errorf(NS_ERR_INVAL, "ns_prep_run_store: no store or cluster");
  ns_prep_params *p = NULL;
  char **nodes = NULL;
  size_t nn = 0, njobs = 0;
  ns_job *jobs = NULL;
  job_index jx = {0};
  ns_status st = NS_OK;
  if (!fit) {
    st = ns_prep_store_load(s, cluster, 0, &p);
    if (st == NS_ERR_NOTFOUND) fit = true, st = NS_OK;
    else if (st) return st;
  }
  if (fit) {
    ns_prep_stats fs = {0};
    if ((st = ns_prep_fit_store(s, cluster, o, 0, train_until_ms > 0 ? train_until_ms - 1 : 0, &p, &fs))) goto done;
    if ((st = ns_prep_store_save(s, cluster, p, &sum->params_version))) goto done;
    sum->fitted = true;
    if ((st = delete_cluster_segments(s, cluster, &sum->replaced_segments))) goto done;
  }
  sum->metrics_in = p->n_in, sum->metrics_reduced = p->n_red, sum->metrics_out = p->n_out, sum->dropped = p->n_drop;
  if ((st = ns_store_list_jobs(s, cluster, 0, 0, &jobs, &njobs))) goto done;
  if ((st = job_index_build(jobs, njobs, &jx))) goto done;
  if ((st = ns_store_list_raw_nodes(s, cluster, &nodes, &nn))) goto done;
  for (size_t i = 0; i < nn; i++) {
    ns_mts *raw = NULL, *pre = NULL;
    ns_segment **seg = NULL;
    size_t ns = 0;
    if ((st = ns_store_get_raw(s, cluster, nodes[i], 0, 0, &raw))) goto done;
    st = ns_prep_apply(p, raw, &pre, &sum->stats);
    ns_mts_free(raw);
    if (st == NS_ERR_SCHEMA || st == NS_ERR_INVAL) {
      ns_warn("prep: node %s skipped: %s", nodes[i], ns_err_message(st));
      sum->skipped_nodes++;
      st = NS_OK;
      continue;
    }
    if (st) goto done;
    ns_job *mine = NULL;
    size_t nmine = 0;
    if (!(st = job_index_for(&jx, jobs, nodes[i], &mine, &nmine)))
      st = ns_prep_segment(p, pre, cluster, mine, nmine, &seg, &ns);
    free(mine);
    ns_mts_free(pre);
    if (st) goto done;
    if ((st = attach_labels(s, cluster, nodes[i], seg, ns))) {
      ns_prep_segments_free(seg, ns);
      goto done;
    }
    if ((st = ns_store_begin(s))) {
      ns_prep_segments_free(seg, ns);
      goto done;
    }
    for (size_t k = 0; k < ns && !st; k++) {
      /* A segment never straddles the split: it is cut there, and pieces
       * shorter than min_segment are dropped. */
      ns_segment *piece[2] = {seg[k], NULL};
      bool owned = false;
      if (train_until_ms > seg[k]->start_ms && train_until_ms <= seg[k]->end_ms) {
        size_t cut = (size_t)((train_until_ms - seg[k]->start_ms + seg[k]->interval_ms - 1) / seg[k]->interval_ms);
        piece[0] = piece[1] = NULL;
        owned = true;
        if ((st = ns_segment_slice(seg[k], 0, cut, &piece[0])) ||
            (st = ns_segment_slice(seg[k], cut, seg[k]->T, &piece[1]))) {
          ns_segment_free(piece[0]);
          break;
        }
      }
      for (int q = 0; q < 2 && !st; q++) {
        ns_segment *g = piece[q];
        if (!g || (int64_t)g->T * g->interval_ms < o->min_segment_ms || g->T == 0) continue;
        bool train = train_until_ms <= 0 || g->start_ms < train_until_ms;
        if ((st = ns_store_put_segment(s, g, train ? "train" : "test", NULL))) break;
        if (g->kind == NS_SEG_JOB) sum->job_segments++;
        else sum->idle_segments++;
        if (train) sum->train_segments++;
        else sum->test_segments++;
      }
      if (owned) ns_segment_free(piece[0]), ns_segment_free(piece[1]);
    }
    ns_prep_segments_free(seg, ns);
    if (st) {
      ns_store_rollback(s);
      goto done;
    }
    if ((st = ns_store_commit(s))) goto done;
    sum->nodes++;
    if (progress) progress(ctx, i + 1, nn);
  }
  if (nn == 0) st = ns_errorf(NS_ERR_EMPTY, "cluster %s has no raw telemetry", cluster);
done:
  job_index_free(&jx, njobs);
  ns_strings_free(nodes, nn);
  ns_jobs_free(jobs, njobs);
  ns_prep_params_free(p);
  sum->seconds = mono_s() - t0;
  return st;
}

ns_status ns_prep_ingest_to_raw(ns_store *s, const char *cluster, size_t *n_segments, size_t *n_rows) {
  *n_segments = 0;
  *n_rows = 0;
  if (!cluster) return ns_errorf(NS_ERR_INVAL, "ingest to raw needs a cluster name");
  ns_seg_filter f = NS_SEG_FILTER_ALL;
  f.cluster = cluster;
  f.split = NS_SPLIT_INGEST;
  int64_t *ids = NULL;
  size_t n = 0;
  ns_status st = ns_store_list_segments(s, &f, &ids, &n);
  if (st) return st;
  if (n == 0) {
    free(ids);
    return ns_errorf(NS_ERR_EMPTY, "cluster %s has no segments shipped by nodes (split '%s')", cluster,
                     NS_SPLIT_INGEST);
  }
  if ((st = ns_store_begin(s))) goto done;
  for (size_t i = 0; i < n && !st; i++) {
    ns_segment *g = NULL;
    ns_mts *m = NULL;
    double *row = NULL;
    if ((st = ns_store_get_segment(s, ids[i], &g))) break;
    st = ns_mts_create(g->node, g->M, g->metrics, &m);
    if (!st && !(row = malloc(g->M * sizeof *row))) st = NS_ERR_NOMEM;
    for (size_t t = 0; !st && t < g->T; t++) {
      for (size_t k = 0; k < g->M; k++) row[k] = g->x[t * g->M + k];
      st = ns_mts_append(m, g->start_ms + (int64_t)t * g->interval_ms, row);
    }
    /* Shipped values are gauges and rates already (the sampler derives rates). */
    if (!st) st = ns_store_put_raw(s, cluster, m, "ingest");
    if (!st) (*n_segments)++, *n_rows += g->T;
    free(row);
    ns_mts_free(m);
    ns_segment_free(g);
  }
  if (st) ns_store_rollback(s);
  else st = ns_store_commit(s);
done:
  free(ids);
  return st;
}
