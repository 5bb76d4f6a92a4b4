#include "ns_config.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const ns_cfg_desc table[] = {
#define NS_X_DESC(sec, nm, ty, def, lo, hi, ch, doc) {#sec, #nm, NS_CFGT_##ty, def, lo, hi, ch, doc},
    NS_CONFIG_TABLE(NS_X_DESC)
#undef NS_X_DESC
};

typedef struct {
  int64_t i;
  double d;
  char *s;
} cfg_value;

struct ns_config {
  cfg_value v[NS_CFG_COUNT_];
};

const ns_cfg_desc *ns_config_desc(ns_cfg_key k) {
  return (unsigned)k < NS_CFG_COUNT_ ? &table[k] : NULL;
}

ns_cfg_key ns_config_lookup(const char *name) {
  for (int k = 0; k < NS_CFG_COUNT_; k++)
    if (strcmp(table[k].name, name) == 0) return (ns_cfg_key)k;
  return NS_CFG_COUNT_;
}

ns_status ns_parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = true, NS_OK;
    if (strcasecmp(s, no[i]) == 0) return *out = false, NS_OK;
  }
  return ns_errorf(NS_ERR_PARSE, "'%s' is not a boolean (yes/no, true/false, on/off, 1/0)", s);
}

static ns_status parse_scaled(const char *s, const char *const *units, const double *mult, int nunits,
                              double bare, const char *what, int64_t *out) {
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (end == s || errno || !isfinite(v) || v < 0)
    return ns_errorf(NS_ERR_PARSE, "'%s' is not a non-negative %s", s, what);
  while (isspace((unsigned char)*end)) end++;
  double m = bare;
  if (*end) {
    int u;
    for (u = 0; u < nunits; u++)
      if (strcasecmp(end, units[u]) == 0) break;
    if (u == nunits) return ns_errorf(NS_ERR_PARSE, "'%s': unknown %s unit '%s'", s, what, end);
    m = mult[u];
  }
  double r = v * m;
  if (r > 9.2e18) return ns_errorf(NS_ERR_RANGE, "'%s' is too large", s);
  *out = (int64_t)llround(r);
  return NS_OK;
}

ns_status ns_parse_duration_ms(const char *s, int64_t *out_ms) {
  static const char *const u[] = {"ms", "s", "m", "min", "h", "d"};
  static const double m[] = {1, 1e3, 6e4, 6e4, 3.6e6, 8.64e7};
  return parse_scaled(s, u, m, 6, 1e3, "duration", out_ms);
}

ns_status ns_parse_size(const char *s, int64_t *out_bytes) {
  static const char *const u[] = {"b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", "t", "tb", "tib"};
  static const double m[] = {1, 1024.0, 1024.0, 1024.0, 1048576.0, 1048576.0, 1048576.0,
                             1073741824.0, 1073741824.0, 1073741824.0, 1099511627776.0,
                             1099511627776.0, 1099511627776.0};
  return parse_scaled(s, u, m, 13, 1, "size", out_bytes);
}

static ns_status parse_value(const ns_cfg_desc *d, const char *text, cfg_value *v) {
  memset(v, 0, sizeof *v);
  ns_status st = NS_OK;
  switch (d->type) {
  case NS_CFGT_BOOL: {
    bool b;
    if ((st = ns_parse_bool(text, &b))) return st;
    v->i = b;
    return NS_OK;
  }
  case NS_CFGT_INT: {
    errno = 0;
    char *end;
    long long x = strtoll(text, &end, 10);
    if (end == text || *end || errno) return ns_errorf(NS_ERR_PARSE, "%s: '%s' is not an integer", d->name, text);
    v->i = x;
    break;
  }
  case NS_CFGT_DOUBLE: {
    errno = 0;
    char *end;
    double x = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(x))
      return ns_errorf(NS_ERR_PARSE, "%s: '%s' is not a finite number", d->name, text);
    v->d = x;
    break;
  }
  case NS_CFGT_DURATION:
    if ((st = ns_parse_duration_ms(text, &v->i))) return ns_errorf(st, "%s: %s", d->name, ns_err_detail());
    break;
  case NS_CFGT_SIZE:
    if ((st = ns_parse_size(text, &v->i))) return ns_errorf(st, "%s: %s", d->name, ns_err_detail());
    break;
  case NS_CFGT_ENUM: {
    size_t n = strlen(text);
    const char *p = d->choices;
    while (*p) {
      const char *bar = strchr(p, '|');
      size_t len = bar ? (size_t)(bar - p) : strlen(p);
      if (len == n && strncasecmp(p, text, n) == 0) {
        if (!(v->s = strndup(p, len))) return NS_ERR_NOMEM;
        return NS_OK;
      }
      p += len + (bar != NULL);
    }
    return ns_errorf(NS_ERR_RANGE, "%s: '%s' is not one of %s", d->name, text, d->choices);
  }
  case NS_CFGT_STRING:
    if (!(v->s = strdup(text))) return NS_ERR_NOMEM;
    return NS_OK;
  }
  double x = d->type == NS_CFGT_DOUBLE ? v->d : (double)v->i;
  if (x < d->lo || x > d->hi)
    return ns_errorf(NS_ERR_RANGE, "%s: %s is outside [%g, %g]", d->name, text, d->lo, d->hi);
  return NS_OK;
}

ns_status ns_config_create(ns_config **out) {
  *out = NULL;
  ns_config *c = calloc(1, sizeof *c);
  if (!c) return NS_ERR_NOMEM;
  for (int k = 0; k < NS_CFG_COUNT_; k++) {
    ns_status st = parse_value(&table[k], table[k].def, &c->v[k]);
    if (st) {  // a bad default is a programming error; report it rather than crash
      ns_config_free(c);
      return ns_errorf(NS_ERR_INTERNAL, "default of %s: %s", table[k].name, ns_err_detail());
    }
  }
  *out = c;
  return NS_OK;
}

void ns_config_free(ns_config *c) {
  if (!c) return;
  for (int k = 0; k < NS_CFG_COUNT_; k++) free(c->v[k].s);
  free(c);
}

ns_status ns_config_set(ns_config *c, const char *key, const char *value) {
  ns_cfg_key k = ns_config_lookup(key);
  if (k == NS_CFG_COUNT_) return ns_errorf(NS_ERR_NOTFOUND, "unknown configuration key '%s'", key);
  cfg_value v;
  ns_status st = parse_value(&table[k], value, &v);
  if (st) return st;
  free(c->v[k].s);
  c->v[k] = v;
  return NS_OK;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

/* Apply to a scratch copy first so a bad file changes nothing. */
static ns_status config_copy(const ns_config *src, ns_config **out) {
  *out = NULL;
  ns_config *c = calloc(1, sizeof *c);
  if (!c) return NS_ERR_NOMEM;
  for (int k = 0; k < NS_CFG_COUNT_; k++) {
    c->v[k] = src->v[k];
    if (src->v[k].s && !(c->v[k].s = strdup(src->v[k].s))) {
      ns_config_free(c);
      return NS_ERR_NOMEM;
    }
  }
  *out = c;
  return NS_OK;
}

static void config_swap(ns_config *a, ns_config *b) {
  ns_config t = *a;
  *a = *b;
  *b = t;
}

ns_status ns_config_load_file(ns_config *c, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  ns_config *tmp = NULL;
  ns_status st = config_copy(c, &tmp);
  char line[4096];
  int lineno = 0;
  while (!st && fgets(line, sizeof line, f)) {
    lineno++;
    size_t len = strlen(line);
    if (len == sizeof line - 1 && line[len - 1] != '\n') {
      st = ns_errorf(NS_ERR_PARSE, "%s:%d: line too long", path, lineno);
      break;
    }
    /* '#' starts a comment at the start of a line or after blank space only:
     * values such as aggregation rules ("*cpu#_*=mean") contain it. */
    for (char *h = line; (h = strchr(h, '#')); h++)
      if (h == line || isspace((unsigned char)h[-1])) {
        *h = '\0';
        break;
      }
    char *s = trim(line);
    if (!*s) continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      st = ns_errorf(NS_ERR_PARSE, "%s:%d: expected key = value", path, lineno);
      break;
    }
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    if ((st = ns_config_set(tmp, key, val))) {
      char d[1024];
      snprintf(d, sizeof d, "%s", ns_err_detail());
      st = ns_errorf(st, "%s:%d: %s", path, lineno, d);
    }
  }
  if (!st && ferror(f)) st = ns_errorf(NS_ERR_IO, "%s: read error", path);
  fclose(f);
  if (!st) config_swap(c, tmp);
  ns_config_free(tmp);
  return st;
}

ns_status ns_config_apply_args(ns_config *c, int n, char *const *kv) {
  ns_config *tmp = NULL;
  ns_status st = config_copy(c, &tmp);
  for (int i = 0; !st && i < n; i++) {
    const char *eq = strchr(kv[i], '=');
    if (!eq) {
      st = ns_errorf(NS_ERR_PARSE, "'%s': expected key=value", kv[i]);
      break;
    }
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv[i]), kv[i]);
    st = ns_config_set(tmp, key, eq + 1);
  }
  if (!st) config_swap(c, tmp);
  ns_config_free(tmp);
  return st;
}

bool ns_cfg_bool(const ns_config *c, ns_cfg_key k) { return c->v[k].i != 0; }
int64_t ns_cfg_int(const ns_config *c, ns_cfg_key k) { return c->v[k].i; }
double ns_cfg_double(const ns_config *c, ns_cfg_key k) {
  return table[k].type == NS_CFGT_DOUBLE ? c->v[k].d : (double)c->v[k].i;
}
const char *ns_cfg_str(const ns_config *c, ns_cfg_key k) { return c->v[k].s ? c->v[k].s : ""; }

static void format_value(const ns_cfg_desc *d, const cfg_value *v, char *buf, size_t n) {
  switch (d->type) {
  case NS_CFGT_BOOL: snprintf(buf, n, "%s", v->i ? "yes" : "no"); break;
  case NS_CFGT_INT: snprintf(buf, n, "%lld", (long long)v->i); break;
  case NS_CFGT_DOUBLE: snprintf(buf, n, "%.17g", v->d); break;
  case NS_CFGT_DURATION: snprintf(buf, n, "%lldms", (long long)v->i); break;
  case NS_CFGT_SIZE: snprintf(buf, n, "%lld", (long long)v->i); break;
  default: snprintf(buf, n, "%s", v->s ? v->s : ""); break;
  }
}

ns_status ns_config_dump(const ns_config *c, FILE *f) {
  char buf[4096];
  for (int k = 0; k < NS_CFG_COUNT_; k++) {
    format_value(&table[k], &c->v[k], buf, sizeof buf);
    fprintf(f, "%s = %s\n", table[k].name, buf);
  }
  return ferror(f) ? NS_ERR_IO : NS_OK;
}

static const char *type_name(const ns_cfg_desc *d) {
  switch (d->type) {
  case NS_CFGT_BOOL: return "boolean";
  case NS_CFGT_INT: return "integer";
  case NS_CFGT_DOUBLE: return "number";
  case NS_CFGT_STRING: return "string";
  case NS_CFGT_ENUM: return "one of";
  case NS_CFGT_DURATION: return "duration";
  case NS_CFGT_SIZE: return "size";
  }
  return "?";
}

ns_status ns_config_write_sample(FILE *f) {
  fprintf(f, "# nsentry configuration (generated by `nsentry config --sample`; do not edit by hand).\n"
             "# Every key is shown commented out with its default. Syntax: key = value; '#' starts a\n"
             "# comment at the start of a line or after a blank.\n"
             "# Durations take ms/s/m/h/d suffixes (a bare number is seconds); sizes take K/M/G.\n");
  const char *sec = "";
  for (int k = 0; k < NS_CFG_COUNT_; k++) {
    const ns_cfg_desc *d = &table[k];
    if (strcmp(sec, d->section) != 0) {
      fprintf(f, "\n# ---- %s ----\n", d->section);
      sec = d->section;
    }
    fprintf(f, "\n# %s\n# type: %s", d->doc, type_name(d));
    if (d->type == NS_CFGT_ENUM)
      fprintf(f, " %s", d->choices);
    else if (d->type != NS_CFGT_STRING && d->type != NS_CFGT_BOOL)
      fprintf(f, ", range [%g, %g]%s", d->lo, d->hi,
              d->type == NS_CFGT_DURATION ? " ms" : d->type == NS_CFGT_SIZE ? " bytes" : "");
    fprintf(f, "\n#%s = %s\n", d->name, d->def);
  }
  return ferror(f) ? NS_ERR_IO : NS_OK;
}
