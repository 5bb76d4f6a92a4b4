#include "ns_csv.h"
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CHUNK ((size_t)1 << 20)

struct ns_csv {
  FILE *f;         /* NULL for memory input */
  char *name;
  char sep;
  char *buf;       /* [pos, len) unread bytes; cap > len always (room for a NUL) */
  size_t pos, len, cap;
  bool eof;
  int64_t line, next_line, consumed;
  bool unterminated;
  char **fields;
  size_t *cols, *lens;
  size_t nf, fcap;
};

static ns_status csv_alloc(char sep, const char *name, ns_csv **out) {
  *out = NULL;
  ns_csv *r = calloc(1, sizeof *r);
  if (!r) return NS_ERR_NOMEM;
  r->sep = sep;
  r->next_line = 1;
  r->name = strdup(name ? name : "<input>");
  r->fcap = 64;
  r->fields = malloc(r->fcap * sizeof *r->fields);
  r->cols = malloc(r->fcap * sizeof *r->cols);
  r->lens = malloc(r->fcap * sizeof *r->lens);
  if (!r->name || !r->fields || !r->cols || !r->lens) {
    ns_csv_close(r);
    return NS_ERR_NOMEM;
  }
  *out = r;
  return NS_OK;
}

ns_status ns_csv_open(const char *path, char sep, ns_csv **out) {
  *out = NULL;
  ns_csv *r = NULL;
  ns_status st = csv_alloc(sep, path, &r);
  if (st) return st;
  r->cap = CHUNK + 1;
  if (!(r->buf = malloc(r->cap))) {
    ns_csv_close(r);
    return NS_ERR_NOMEM;
  }
  if (!(r->f = fopen(path, "rb"))) {
    int e = errno;
    ns_csv_close(r);
    return ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(e));
  }
  *out = r;
  return NS_OK;
}

ns_status ns_csv_open_mem(const void *data, size_t n, char sep, const char *name, ns_csv **out) {
  *out = NULL;
  ns_csv *r = NULL;
  ns_status st = csv_alloc(sep, name, &r);
  if (st) return st;
  /* Splitting writes into the buffer, so memory input is copied once. */
  r->cap = n + 1;
  if (!(r->buf = malloc(r->cap))) {
    ns_csv_close(r);
    return NS_ERR_NOMEM;
  }
  if (n) memcpy(r->buf, data, n);
  r->len = n;
  r->eof = true;
  *out = r;
  return NS_OK;
}

void ns_csv_close(ns_csv *r) {
  if (!r) return;
  if (r->f) fclose(r->f);
  free(r->name);
  free(r->buf);
  free(r->fields);
  free(r->cols);
  free(r->lens);
  free(r);
}

size_t ns_csv_nfields(const ns_csv *r) { return r->nf; }
const char *ns_csv_field(const ns_csv *r, size_t i, size_t *len) {
  if (i >= r->nf) {
    if (len) *len = 0;
    return "";
  }
  if (len) *len = r->lens[i];
  return r->fields[i];
}
size_t ns_csv_col(const ns_csv *r, size_t i) { return i < r->nf ? r->cols[i] : 0; }
int64_t ns_csv_line(const ns_csv *r) { return r->line; }
bool ns_csv_unterminated(const ns_csv *r) { return r->unterminated; }
const char *ns_csv_name(const ns_csv *r) { return r->name; }
int64_t ns_csv_offset(const ns_csv *r) { return r->consumed; }
static ns_status fill_line(ns_csv *r, char **nl);

ns_status ns_csv_seek(ns_csv *r, int64_t offset) {
  if (!r->f) return ns_errorf(NS_ERR_UNSUPPORTED, "%s: seek needs a file", r->name);
  if (offset < 0) offset = 0;
  /* Start one byte early: if that byte is a newline, `offset` starts a line. */
  int64_t at = offset > 0 ? offset - 1 : 0;
  if (fseeko(r->f, (off_t)at, SEEK_SET) != 0)
    return ns_errorf(NS_ERR_IO, "%s: seek to %lld: %s", r->name, (long long)offset, strerror(errno));
  r->pos = r->len = 0;
  r->eof = false;
  r->nf = 0;
  r->consumed = at;
  r->next_line = 1;
  if (offset > 0) {
    char *nl = NULL;
    ns_status st = fill_line(r, &nl); /* the partial line before the first whole one */
    if (st) return st;
    size_t skip = (size_t)(nl - (r->buf + r->pos)) + (nl < r->buf + r->len ? 1 : 0);
    r->pos += skip;
    r->consumed += (int64_t)skip;
  }
  return NS_OK;
}

/* Make sure a whole line starting at pos is in the buffer; *nl = its end
 * (the '\n' or len at EOF). */
static ns_status fill_line(ns_csv *r, char **nl) {
  for (;;) {
    char *p = memchr(r->buf + r->pos, '\n', r->len - r->pos);
    if (p) {
      *nl = p;
      return NS_OK;
    }
    if (r->eof) {
      *nl = r->buf + r->len;
      return NS_OK;
    }
    if (r->pos > 0) {
      memmove(r->buf, r->buf + r->pos, r->len - r->pos);
      r->len -= r->pos;
      r->pos = 0;
    }
    if (r->len >= NS_CSV_MAX_LINE)
      return ns_errorf(NS_ERR_LIMIT, "%s:%lld: line longer than %zu bytes", r->name, (long long)r->next_line,
                       NS_CSV_MAX_LINE);
    if (r->cap - r->len < CHUNK / 2 + 1) {
      size_t ncap = r->cap * 2;
      char *nb = realloc(r->buf, ncap);
      if (!nb) return NS_ERR_NOMEM;
      r->buf = nb;
      r->cap = ncap;
    }
    size_t got = fread(r->buf + r->len, 1, r->cap - 1 - r->len, r->f);
    if (got == 0) {
      if (ferror(r->f)) return ns_errorf(NS_ERR_IO, "%s: read error: %s", r->name, strerror(errno));
      r->eof = true;
    }
    r->len += got;
  }
}

static ns_status push_field(ns_csv *r, char *start, size_t len, size_t col) {
  if (r->nf == r->fcap) {
    size_t nc = r->fcap * 2;
    char **f = realloc(r->fields, nc * sizeof *f);
    if (!f) return NS_ERR_NOMEM;
    r->fields = f;
    size_t *c = realloc(r->cols, nc * sizeof *c);
    if (!c) return NS_ERR_NOMEM;
    r->cols = c;
    size_t *l = realloc(r->lens, nc * sizeof *l);
    if (!l) return NS_ERR_NOMEM;
    r->lens = l;
    r->fcap = nc;
  }
  r->fields[r->nf] = start;
  r->cols[r->nf] = col;
  r->lens[r->nf] = len;
  r->nf++;
  return NS_OK;
}

static ns_status split(ns_csv *r, char *line, size_t n) {
  r->nf = 0;
  char *end = line + n, *p = line;
  ns_status st;
  for (;;) {
    size_t col = (size_t)(p - line) + 1;
    if (p < end && *p == '"') {
      char *w = p, *q = p + 1;
      for (;;) {
        if (q >= end)
          return ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: unterminated quoted field", r->name, (long long)r->line, col);
        if (*q == '"') {
          if (q + 1 < end && q[1] == '"') {
            *w++ = '"';
            q += 2;
            continue;
          }
          q++;
          break;
        }
        *w++ = *q++;
      }
      if (q < end && *q != r->sep)
        return ns_errorf(NS_ERR_PARSE, "%s:%lld:%zu: text after closing quote", r->name, (long long)r->line,
                         (size_t)(q - line) + 1);
      *w = '\0';
      if ((st = push_field(r, p, (size_t)(w - p), col))) return st;
      if (q >= end) return NS_OK;
      p = q + 1;
      continue;
    }
    char *s = memchr(p, r->sep, (size_t)(end - p));
    if ((st = push_field(r, p, (size_t)((s ? s : end) - p), col))) return st;
    if (!s) {
      *end = '\0';
      return NS_OK;
    }
    *s = '\0';
    p = s + 1;
  }
}

ns_status ns_csv_next(ns_csv *r, bool *got) {
  *got = false;
  r->nf = 0;
  for (;;) {
    if (r->pos >= r->len && r->eof) return NS_OK;
    char *nl = NULL;
    ns_status st = fill_line(r, &nl);
    if (st) return st;
    if (r->pos >= r->len) return NS_OK;
    char *line = r->buf + r->pos;
    size_t n = (size_t)(nl - line);
    bool terminated = nl < r->buf + r->len;
    r->line = r->next_line++;
    r->pos += n + (terminated ? 1 : 0);
    r->consumed += (int64_t)(n + (terminated ? 1 : 0));
    if (n && line[n - 1] == '\r') n--;
    if (n == 0) continue;
    char *z = memchr(line, '\0', n);
    if (z)
      return ns_errorf(NS_ERR_FORMAT, "%s:%lld:%zu: NUL byte (binary data?)", r->name, (long long)r->line,
                       (size_t)(z - line) + 1);
    r->unterminated = !terminated;
    if ((st = split(r, line, n))) return st;
    *got = true;
    return NS_OK;
  }
}

/* ---- numbers ---- */

static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#if LDBL_MANT_DIG == 64 && (defined(__x86_64__) || defined(__i386__))
#define NS_HAVE_X87 1
/* 10^k for k <= 27 is exact in the 64-bit significand (5^27 < 2^64). */
static const long double p10l[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
                                   1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
                                   1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
#endif

static inline bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static ns_status slow_parse(const char *s, size_t n, double *out) {
  char small[128], *b = small;
  if (n >= sizeof small && !(b = malloc(n + 1))) return NS_ERR_NOMEM;
  memcpy(b, s, n);
  b[n] = '\0';
  char *end = NULL;
  errno = 0;
  double v = strtod(b, &end);
  ns_status st = (end == b + n) ? NS_OK : NS_ERR_PARSE;
  if (b != small) free(b);
  *out = v;  /* ERANGE: strtod gives +-HUGE_VAL or a denormal/0, both fine */
  return st;
}

/* SWAR: are the 8 bytes at p all ASCII digits, and their value. */
static inline bool is_8digits(uint64_t v) {
  return (((v & 0xF0F0F0F0F0F0F0F0ull) | (((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4)) ==
          0x3333333333333333ull);
}
static inline uint32_t parse_8digits(uint64_t v) {
  v = (v & 0x0F0F0F0F0F0F0F0Full) * 2561 >> 8;
  v = (v & 0x00FF00FF00FF00FFull) * 6553601 >> 16;
  return (uint32_t)((v & 0x0000FFFF0000FFFFull) * 42949672960001ull >> 32);
}

/* Digits from p while they last; mant accumulates (wrapping past 19
 * digits is harmless: the caller then takes the slow path). */
static inline const char *eat_digits(const char *p, const char *e, uint64_t *mant) {
  uint64_t m = *mant;
  while (e - p >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    if (!is_8digits(v)) break;
    m = m * 100000000u + parse_8digits(v);
    p += 8;
  }
  while (p < e && (unsigned)(*p - '0') < 10) m = m * 10 + (unsigned)(*p++ - '0');
  *mant = m;
  return p;
}

ns_status ns_parse_double(const char *s, size_t n, double *out) {
  const char *p = s, *e = s + n;
  while (p < e && is_blank(*p)) p++;
  while (e > p && is_blank(e[-1])) e--;
  const char *start = p;
  if (p == e) return NS_ERR_PARSE;
  bool neg = false;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  uint64_t mant = 0;
  int exp10 = 0;
  const char *istart = p;
  while (p < e && *p == '0') p++;
  const char *sig = p;
  p = eat_digits(p, e, &mant);
  long ndig = p - sig;
  bool any = p > istart;
  if (p < e && *p == '.') {
    const char *fstart = ++p;
    if (ndig == 0)
      while (p < e && *p == '0') p++;
    const char *fsig = p;
    p = eat_digits(p, e, &mant);
    ndig += p - fsig;
    exp10 = -(int)(p - fstart);
    any = any || p > fstart;
    if (p - fstart > 100000) return slow_parse(start, (size_t)(e - start), out);
  }
  bool inexact = ndig > 19;
  if (!any) {
    size_t k = (size_t)(e - p);
    if ((k == 3 && strncasecmp(p, "nan", 3) == 0)) {
      *out = neg ? -NAN : NAN;
      return p == start || p == start + 1 ? NS_OK : NS_ERR_PARSE;
    }
    if ((k == 3 && strncasecmp(p, "inf", 3) == 0) || (k == 8 && strncasecmp(p, "infinity", 8) == 0)) {
      *out = neg ? -INFINITY : INFINITY;
      return p == start || p == start + 1 ? NS_OK : NS_ERR_PARSE;
    }
    return NS_ERR_PARSE;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    bool eneg = false;
    if (p < e && (*p == '+' || *p == '-')) eneg = *p++ == '-';
    if (p == e || (unsigned)(*p - '0') >= 10) return NS_ERR_PARSE;
    int ev = 0;
    while (p < e && (unsigned)(*p - '0') < 10) {
      if (ev < 100000) ev = ev * 10 + (*p - '0');
      p++;
    }
    exp10 += eneg ? -ev : ev;
  }
  if (p != e) return NS_ERR_PARSE;
  if (inexact) return slow_parse(start, (size_t)(e - start), out);
  if (mant == 0) {
    *out = neg ? -0.0 : 0.0;
    return NS_OK;
  }
  {
    /* Clinger's fast path: both operands exact, one rounding. */
    if (mant <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
      double v = (double)mant;
      v = exp10 < 0 ? v / p10[-exp10] : v * p10[exp10];
      *out = neg ? -v : v;
      return NS_OK;
    }
#ifdef NS_HAVE_X87
    /* 19 digits and 10^27 are exact in extended precision; the one extended
     * rounding is then rounded to double, which is only wrong when the
     * extended result sits at a double half-way point: those go to strtod. */
    if (exp10 >= -27 && exp10 <= 27) {
      long double v = (long double)mant;
      v = exp10 < 0 ? v / p10l[-exp10] : v * p10l[exp10];
      uint64_t bits;
      memcpy(&bits, &v, sizeof bits);
      unsigned low = (unsigned)(bits & 0x7ff);
      if (low != 0x400 && low != 0x3ff && low != 0x401) {
        double d = (double)v;
        *out = neg ? -d : d;
        return NS_OK;
      }
    }
#endif
  }
  return slow_parse(start, (size_t)(e - start), out);
}

/* ---- time ---- */

int64_t ns_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *p, const char *e, int k, int *v) {
  if (e - p < k) return false;
  int x = 0;
  for (int i = 0; i < k; i++) {
    if ((unsigned)(p[i] - '0') >= 10) return false;
    x = x * 10 + (p[i] - '0');
  }
  *v = x;
  return true;
}

static int mdays(int y, int m) {
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dm[m - 1];
}

ns_status ns_parse_time_ms(const char *s, size_t n, bool local, int64_t *out_ms) {
  const char *p = s, *e = s + n;
  while (p < e && is_blank(*p)) p++;
  while (e > p && is_blank(e[-1])) e--;
  if (p == e) return NS_ERR_PARSE;
  int Y, M, D, h, mi, sec;
  if (e - p >= 19 && p[4] == '-' && digits(p, e, 4, &Y)) {
    if (!digits(p + 5, e, 2, &M) || p[7] != '-' || !digits(p + 8, e, 2, &D) || (p[10] != 'T' && p[10] != ' ') ||
        !digits(p + 11, e, 2, &h) || p[13] != ':' || !digits(p + 14, e, 2, &mi) || p[16] != ':' ||
        !digits(p + 17, e, 2, &sec))
      return NS_ERR_PARSE;
    if (M < 1 || M > 12 || D < 1 || D > mdays(Y, M) || h > 23 || mi > 59 || sec > 59) return NS_ERR_PARSE;
    p += 19;
    int ms = 0;
    if (p < e && *p == '.') {
      p++;
      int k = 0;
      if (p == e || (unsigned)(*p - '0') >= 10) return NS_ERR_PARSE;
      while (p < e && (unsigned)(*p - '0') < 10) {
        if (k < 3) ms = ms * 10 + (*p - '0');
        k++, p++;
      }
      for (; k < 3; k++) ms *= 10;
    }
    int64_t secs = ns_days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + sec;
    if (p == e) {
      if (local) {
        struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = mi,
                        .tm_sec = sec, .tm_isdst = -1};
        time_t t = mktime(&tm);
        if (t == (time_t)-1 && !(Y == 1969 && M == 12 && D == 31)) return NS_ERR_PARSE;
        secs = (int64_t)t;
      }
    } else if (*p == 'Z' && p + 1 == e) {
      /* UTC */
    } else if (*p == '+' || *p == '-') {
      int oh, om = 0, sign = *p == '-' ? -1 : 1;
      p++;
      if (!digits(p, e, 2, &oh)) return NS_ERR_PARSE;
      p += 2;
      if (p < e && *p == ':') p++;
      if (p < e) {
        if (!digits(p, e, 2, &om)) return NS_ERR_PARSE;
        p += 2;
      }
      if (p != e || oh > 23 || om > 59) return NS_ERR_PARSE;
      secs -= sign * (oh * 3600 + om * 60);
    } else {
      return NS_ERR_PARSE;
    }
    *out_ms = secs * 1000 + ms;
    return NS_OK;
  }
  double v;
  if (ns_parse_double(p, (size_t)(e - p), &v) || !isfinite(v)) return NS_ERR_PARSE;
  if (fabs(v) < 1e11) v *= 1000.0;
  if (fabs(v) > 9e15) return NS_ERR_PARSE; /* beyond year 287000: garbage */
  *out_ms = (int64_t)llround(v);
  return NS_OK;
}

void ns_format_time_ms(int64_t ms, char *buf, size_t n) {
  int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  int msr = (int)(ms - secs * 1000);
  int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  int64_t sod = secs - days * 86400, y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  if (msr)
    snprintf(buf, n, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d, (int)(sod / 3600),
             (int)(sod / 60 % 60), (int)(sod % 60), msr);
  else
    snprintf(buf, n, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, (int)(sod / 3600), (int)(sod / 60 % 60),
             (int)(sod % 60));
}
