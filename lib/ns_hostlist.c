#include "ns_hostlist.h"
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char **v;
  size_t n, cap;
} strvec;

static void sv_free(strvec *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  s->v = NULL;
  s->n = s->cap = 0;
}

static ns_status sv_push(strvec *s, char *str) {
  if (!str) return NS_ERR_NOMEM;
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 16;
    char **v = realloc(s->v, nc * sizeof *v);
    if (!v) {
      free(str);
      return NS_ERR_NOMEM;
    }
    s->v = v;
    s->cap = nc;
  }
  s->v[s->n++] = str;
  return NS_OK;
}

void ns_hostlist_free(char **names, size_t n) {
  if (!names) return;
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* Append `text[0..k)` to every partial name in cur. */
static ns_status append_text(strvec *cur, const char *text, size_t k) {
  if (!k) return NS_OK;
  for (size_t i = 0; i < cur->n; i++) {
    size_t l = strlen(cur->v[i]);
    char *s = realloc(cur->v[i], l + k + 1);
    if (!s) return NS_ERR_NOMEM;
    memcpy(s + l, text, k);
    s[l + k] = '\0';
    cur->v[i] = s;
  }
  return NS_OK;
}

typedef struct {
  unsigned long long lo, hi;
  int width;
} range;

/* Parse one bracket body [p, e) into ranges; col0 = column of p. */
static ns_status parse_ranges(const char *list, const char *p, const char *e, range **out, size_t *nr,
                              unsigned long long *count) {
  *out = NULL;
  *nr = 0;
  *count = 0;
  size_t cap = 0;
  range *r = NULL;
  while (p <= e) {
    const char *q = p;
    while (q < e && *q != ',') q++;
    const char *a = p, *ae = q;
    while (a < ae && isblank((unsigned char)*a)) a++;
    while (ae > a && isblank((unsigned char)ae[-1])) ae--;
    const char *dash = memchr(a, '-', (size_t)(ae - a));
    const char *b = dash ? dash + 1 : a, *be = ae;
    const char *la = a, *lae = dash ? dash : ae;
    size_t col = (size_t)(a - list) + 1;
    bool ok = lae > la && be > b && lae - la <= 18 && be - b <= 18;
    for (const char *c = la; ok && c < lae; c++) ok = isdigit((unsigned char)*c);
    for (const char *c = b; ok && c < be; c++) ok = isdigit((unsigned char)*c);
    if (!ok) {
      free(r);
      return ns_errorf(NS_ERR_PARSE, "hostlist '%s': column %zu: bad range '%.*s' (want N or N-M)", list, col,
                       (int)(ae - a), a);
    }
    range x = {strtoull(la, NULL, 10), strtoull(b, NULL, 10), (int)(lae - la)};
    if (x.hi < x.lo) {
      free(r);
      return ns_errorf(NS_ERR_PARSE, "hostlist '%s': column %zu: descending range '%.*s'", list, col, (int)(ae - a), a);
    }
    if (*nr == cap) {
      cap = cap ? cap * 2 : 4;
      range *nr2 = realloc(r, cap * sizeof *r);
      if (!nr2) {
        free(r);
        return NS_ERR_NOMEM;
      }
      r = nr2;
    }
    r[(*nr)++] = x;
    *count += x.hi - x.lo + 1;
    if (*count > NS_HOSTLIST_MAX) {
      free(r);
      return ns_errorf(NS_ERR_LIMIT, "hostlist '%s': more than %d names", list, NS_HOSTLIST_MAX);
    }
    p = q + 1;
  }
  *out = r;
  return NS_OK;
}

/* Expand one item [p, e) and push its names to out. */
static ns_status expand_item(const char *list, const char *p, const char *e, strvec *out) {
  strvec cur = {0};
  ns_status st = sv_push(&cur, strdup(""));
  if (st) return st;
  while (p < e) {
    const char *lb = memchr(p, '[', (size_t)(e - p));
    const char *rb0 = memchr(p, ']', (size_t)(e - p));
    if (rb0 && (!lb || rb0 < lb)) {
      st = ns_errorf(NS_ERR_PARSE, "hostlist '%s': column %zu: ']' without '['", list, (size_t)(rb0 - list) + 1);
      goto done;
    }
    if (!lb) {
      st = append_text(&cur, p, (size_t)(e - p));
      goto done;
    }
    if ((st = append_text(&cur, p, (size_t)(lb - p)))) goto done;
    const char *rb = memchr(lb, ']', (size_t)(e - lb));
    const char *lb2 = memchr(lb + 1, '[', (size_t)(e - lb - 1));
    if (!rb || (lb2 && lb2 < rb)) {
      st = ns_errorf(NS_ERR_PARSE, "hostlist '%s': column %zu: unterminated '['", list, (size_t)(lb - list) + 1);
      goto done;
    }
    range *rs = NULL;
    size_t nr = 0;
    unsigned long long cnt = 0;
    if ((st = parse_ranges(list, lb + 1, rb, &rs, &nr, &cnt))) goto done;
    if ((unsigned long long)cur.n * cnt + out->n > NS_HOSTLIST_MAX) {
      free(rs);
      st = ns_errorf(NS_ERR_LIMIT, "hostlist '%s': more than %d names", list, NS_HOSTLIST_MAX);
      goto done;
    }
    strvec next = {0};
    for (size_t i = 0; i < cur.n && !st; i++)
      for (size_t k = 0; k < nr && !st; k++)
        for (unsigned long long v = rs[k].lo; !st; v++) {
          size_t l = strlen(cur.v[i]) + 24;
          char *s = malloc(l);
          if (s) snprintf(s, l, "%s%0*llu", cur.v[i], rs[k].width, v);
          st = sv_push(&next, s);
          if (v == rs[k].hi) break;
        }
    free(rs);
    sv_free(&cur);
    cur = next;
    if (st) goto done;
    p = rb + 1;
  }
done:
  for (size_t i = 0; !st && i < cur.n; i++) {
    st = sv_push(out, cur.v[i]);
    cur.v[i] = NULL;
  }
  sv_free(&cur);
  return st;
}

ns_status ns_hostlist_expand(const char *list, char ***names, size_t *n) {
  *names = NULL;
  *n = 0;
  if (!list) return ns_errorf(NS_ERR_INVAL, "hostlist is NULL");
  strvec out = {0};
  ns_status st = NS_OK;
  const char *p = list, *end = list + strlen(list);
  int depth = 0;
  const char *item = p;
  for (const char *c = p;; c++) {
    if (c < end && *c == '[') depth++;
    if (c < end && *c == ']') depth = depth > 0 ? depth - 1 : 0;
    if (c == end || (*c == ',' && depth == 0)) {
      const char *a = item, *b = c;
      while (a < b && isblank((unsigned char)*a)) a++;
      while (b > a && isblank((unsigned char)b[-1])) b--;
      if (a == b) {
        st = ns_errorf(NS_ERR_PARSE, "hostlist '%s': column %zu: empty host name", list, (size_t)(a - list) + 1);
        break;
      }
      for (const char *q = a; q < b; q++)
        if (isspace((unsigned char)*q) || !isprint((unsigned char)*q)) {
          st = ns_errorf(NS_ERR_PARSE, "hostlist '%s': column %zu: invalid character in host name", list,
                         (size_t)(q - list) + 1);
          break;
        }
      if (st || (st = expand_item(list, a, b, &out))) break;
      if (c == end) break;
      item = c + 1;
    }
  }
  if (st) {
    sv_free(&out);
    return st;
  }
  *names = out.v;
  *n = out.n;
  return NS_OK;
}

/* ---- compress ---- */

typedef struct {
  const char *name;
  size_t plen;          /* prefix length (before trailing digits) */
  int width;            /* 0 = natural, else zero-padded width */
  unsigned long long v;
  bool num;
} hparts;

static int cmp_parts(const void *a, const void *b) {
  const hparts *x = a, *y = b;
  size_t l = x->plen < y->plen ? x->plen : y->plen;
  int c = memcmp(x->name, y->name, l);
  if (c) return c;
  if (x->plen != y->plen) return x->plen < y->plen ? -1 : 1;
  if (x->num != y->num) return x->num ? 1 : -1;
  if (!x->num) return strcmp(x->name, y->name);
  if (x->width != y->width) return x->width < y->width ? -1 : 1;
  return x->v < y->v ? -1 : x->v > y->v;
}

typedef struct {
  char *s;
  size_t n, cap;
} sbuf;

static bool sb_add(sbuf *b, const char *s, size_t k) {
  if (b->n + k + 1 > b->cap) {
    size_t nc = (b->n + k + 1) * 2;
    char *ns = realloc(b->s, nc);
    if (!ns) return false;
    b->s = ns;
    b->cap = nc;
  }
  memcpy(b->s + b->n, s, k);
  b->n += k;
  b->s[b->n] = '\0';
  return true;
}

ns_status ns_hostlist_compress(char *const *names, size_t n, char **out) {
  *out = NULL;
  hparts *h = calloc(n ? n : 1, sizeof *h);
  sbuf b = {0};
  if (!h || !sb_add(&b, "", 0)) goto nomem;
  for (size_t i = 0; i < n; i++) {
    const char *s = names[i];
    size_t l = strlen(s), k = l;
    while (k > 0 && isdigit((unsigned char)s[k - 1])) k--;
    h[i].name = s;
    h[i].plen = k;
    h[i].num = k < l && l - k <= 18;
    if (!h[i].num) {
      h[i].plen = l;
      continue;
    }
    h[i].v = strtoull(s + k, NULL, 10);
    h[i].width = (s[k] == '0' && l - k > 1) ? (int)(l - k) : 0;
  }
  qsort(h, n, sizeof *h, cmp_parts);
  size_t i = 0;
  while (i < n) {
    if (b.n && !sb_add(&b, ",", 1)) goto nomem;
    if (!h[i].num) {
      if (!sb_add(&b, h[i].name, strlen(h[i].name))) goto nomem;
      size_t j = i + 1;
      while (j < n && !h[j].num && strcmp(h[j].name, h[i].name) == 0) j++;
      i = j;
      continue;
    }
    size_t j = i;
    while (j < n && h[j].num && h[j].plen == h[i].plen && h[j].width == h[i].width &&
           memcmp(h[j].name, h[i].name, h[i].plen) == 0)
      j++;
    if (!sb_add(&b, h[i].name, h[i].plen)) goto nomem;
    bool single = true;
    for (size_t k = i + 1; k < j; k++)
      if (h[k].v != h[i].v) single = false;
    char num[64];
    if (single) {
      snprintf(num, sizeof num, "%0*llu", h[i].width, h[i].v);
      if (!sb_add(&b, num, strlen(num))) goto nomem;
      i = j;
      continue;
    }
    if (!sb_add(&b, "[", 1)) goto nomem;
    bool first = true;
    size_t k = i;
    while (k < j) {
      unsigned long long lo = h[k].v, hi = lo;
      size_t m = k + 1;
      while (m < j && (h[m].v == hi || h[m].v == hi + 1)) hi = h[m++].v;
      if (hi == lo)
        snprintf(num, sizeof num, "%s%0*llu", first ? "" : ",", h[i].width, lo);
      else
        snprintf(num, sizeof num, "%s%0*llu-%0*llu", first ? "" : ",", h[i].width, lo, h[i].width, hi);
      if (!sb_add(&b, num, strlen(num))) goto nomem;
      first = false;
      k = m;
    }
    if (!sb_add(&b, "]", 1)) goto nomem;
    i = j;
  }
  free(h);
  *out = b.s;
  return NS_OK;
nomem:
  free(h);
  free(b.s);
  return NS_ERR_NOMEM;
}
