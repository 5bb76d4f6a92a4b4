#include "ns_verdict.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 128;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Lower-case, and anything outside [a-z0-9._-] becomes '_'. */
static void sb_name(sbuf *b, const char *s) {
  if (!s || !*s) {
    sb_str(b, "none");
    return;
  }
  for (; *s; s++) {
    char c = (char)tolower((unsigned char)*s);
    if (!(isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_')) c = '_';
    sb_add(b, &c, 1);
  }
}

ns_status ns_verdict_token(const ns_verdict_info *v, char **out) {
  if (out) *out = NULL;
  if (!v || !out || !v->verdict) return ns_errorf(NS_ERR_INVAL, "ns_verdict_token: verdict missing");
  sbuf b = {0};
  char num[64];
  sb_str(&b, NS_VERDICT_PREFIX "verdict=");
  sb_name(&b, v->verdict);
  if (v->score != v->score || v->score > 1e300 || v->score < -1e300)
    snprintf(num, sizeof num, ";score=none");
  else
    snprintf(num, sizeof num, ";score=%.3g", v->score);
  /* %g may print "inf"/"e+10": both are in the safe alphabet. */
  sb_str(&b, num);
  if (v->n_nodes > 0) {
    sb_str(&b, ";nodes=");
    size_t shown = v->n_nodes < NS_VERDICT_MAX_NODES ? v->n_nodes : NS_VERDICT_MAX_NODES;
    for (size_t i = 0; i < shown; i++) {
      if (i) sb_str(&b, ",");
      sb_name(&b, v->nodes[i]);
    }
    if (shown < v->n_nodes) {
      snprintf(num, sizeof num, ",+%zu", v->n_nodes - shown);
      sb_str(&b, num);
    }
  }
  if (v->n_missing > 0) {
    snprintf(num, sizeof num, ";missing=%zu", v->n_missing);
    sb_str(&b, num);
  }
  sb_str(&b, ";model=");
  sb_name(&b, v->model);
  if (b.oom) {
    free(b.p);
    return NS_ERR_NOMEM;
  }
  *out = b.p;
  return NS_OK;
}

bool ns_verdict_text_safe(const char *s) {
  if (!s) return true;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '\'' || *p == '"' || *p == '`' || *p == '\\') return false;
  return true;
}

/* A token starts with "nsentry:" (any case) at a word start and runs to the next blank. */
static bool is_token_at(const char *s) { return strncasecmp(s, "nsentry:", 8) == 0; }

ns_status ns_verdict_merge(const char *existing, const char *token, char **out) {
  if (out) *out = NULL;
  if (!token || !out || !is_token_at(token) || strchr(token, ' '))
    return ns_errorf(NS_ERR_INVAL, "ns_verdict_merge: not an nsentry token");
  if (!ns_verdict_text_safe(token))
    return ns_errorf(NS_ERR_INVAL, "ns_verdict_merge: token holds quote, backslash or control characters");
  if (!ns_verdict_text_safe(existing))
    return ns_errorf(NS_ERR_INVAL,
                     "existing field content holds quote, backslash or control characters; not rewriting it");
  sbuf b = {0};
  const char *p = existing ? existing : "";
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    const char *e = p;
    while (*e && *e != ' ') e++;
    if (!is_token_at(p)) {
      if (b.n) sb_str(&b, " ");
      sb_add(&b, p, (size_t)(e - p));
    }
    p = e;
  }
  if (b.n) sb_str(&b, " ");
  sb_str(&b, token);
  if (b.oom) {
    free(b.p);
    return NS_ERR_NOMEM;
  }
  *out = b.p;
  return NS_OK;
}

ns_status ns_verdict_find(const char *field, char **out) {
  if (out) *out = NULL;
  if (!out) return NS_ERR_INVAL;
  for (const char *p = field ? field : ""; *p; p++) {
    if ((p == field || p[-1] == ' ') && is_token_at(p)) {
      size_t n = strcspn(p, " ");
      *out = strndup(p, n);
      return *out ? NS_OK : NS_ERR_NOMEM;
    }
  }
  return ns_errorf(NS_ERR_NOTFOUND, "no nsentry token in the field");
}

ns_status ns_verdict_get(const char *token, const char *key, char *buf, size_t n) {
  if (buf && n) buf[0] = '\0';
  if (!token || !key || !buf || !n) return NS_ERR_INVAL;
  size_t kl = strlen(key);
  const char *p = strchr(token, ';');
  while (p) {
    p++;
    if (strncasecmp(p, key, kl) == 0 && p[kl] == '=') {
      const char *v = p + kl + 1;
      size_t vl = strcspn(v, "; ");
      if (vl + 1 > n) return NS_ERR_RANGE;
      memcpy(buf, v, vl);
      buf[vl] = '\0';
      return NS_OK;
    }
    p = strchr(p, ';');
  }
  return NS_ERR_NOTFOUND;
}
