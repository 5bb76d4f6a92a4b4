#include "ns_spool.h"
#include "ns_hash.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include "ns_log.h"

#define MAGIC "NSSPOOL1"
#define CHUNK_SPAN_MS (3600 * 1000LL)

int64_t ns_spool_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static ns_status mkdir_p1(const char *path) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return NS_OK;
    return ns_errorf(NS_ERR_IO, "%s: exists and is not a directory", path);
  }
  return ns_errorf(NS_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
}

static ns_status write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return NS_ERR_IO;
    c += w, n -= (size_t)w;
  }
  return NS_OK;
}

static ns_status read_file(const char *path, char **buf, size_t *len) {
  *buf = NULL, *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ns_errorf(errno == ENOENT ? NS_ERR_NOTFOUND : NS_ERR_IO, "%s: %s", path, strerror(errno));
  struct stat st;
  ns_status s = NS_OK;
  char *b = NULL;
  if (fstat(fd, &st) != 0) {
    s = ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
    goto done;
  }
  b = malloc((size_t)st.st_size + 1);
  if (!b) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      s = ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
      goto done;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  b[got] = '\0';
  *buf = b, *len = got;
  b = NULL;
done:
  free(b);
  close(fd);
  return s;
}

/* ---------------------------------------------------------------- chunks */

typedef struct chunk {
  int64_t start_ms, bytes;
  char name[64];
} chunk;

static int chunk_cmp(const void *a, const void *b) {
  const chunk *x = a, *y = b;
  return x->start_ms < y->start_ms ? -1 : x->start_ms > y->start_ms;
}

/* Chunks in dir/ring, oldest first. */
static ns_status list_chunks(const char *dir, chunk **out, size_t *n) {
  *out = NULL, *n = 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_RING_DIR, dir);
  DIR *d = opendir(path);
  if (!d) return ns_errorf(errno == ENOENT ? NS_ERR_NOTFOUND : NS_ERR_IO, "%s: %s", path, strerror(errno));
  chunk *v = NULL;
  size_t cnt = 0, cap = 0;
  ns_status s = NS_OK;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end = NULL;
    long long ms = strtoll(e->d_name, &end, 10);
    if (end == e->d_name || strcmp(end, ".nss") != 0 || ms < 0 || strlen(e->d_name) >= sizeof v->name) continue;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 64;
      chunk *nv = realloc(v, cap * sizeof *v);
      if (!nv) {
        s = NS_ERR_NOMEM;
        goto done;
      }
      v = nv;
    }
    chunk *c = &v[cnt];
    c->start_ms = ms;
    memcpy(c->name, e->d_name, strlen(e->d_name) + 1);
    struct stat st;
    char fp[4200];
    snprintf(fp, sizeof fp, "%s/%s", path, c->name);
    c->bytes = stat(fp, &st) == 0 ? (int64_t)st.st_size : 0;
    cnt++;
  }
  if (cnt) qsort(v, cnt, sizeof *v, chunk_cmp);
  *out = v, *n = cnt;
  v = NULL;
done:
  free(v);
  closedir(d);
  return s;
}

typedef struct header {
  size_t M, hdr_bytes;
  char **names;
} header;

static void header_clear(header *h) {
  if (h->names)
    for (size_t i = 0; i < h->M; i++) free(h->names[i]);
  free(h->names);
  memset(h, 0, sizeof *h);
}

/* Parse a chunk header from the first `len` bytes of a chunk. */
static ns_status parse_header(const char *path, const char *b, size_t len, header *h) {
  memset(h, 0, sizeof *h);
  if (len < 12 || memcmp(b, MAGIC, 8) != 0) return ns_errorf(NS_ERR_FORMAT, "%s: not a spool chunk (bad magic)", path);
  uint32_t M;
  memcpy(&M, b + 8, 4);
  if (M == 0 || M > 100000) return ns_errorf(NS_ERR_CORRUPT, "%s: bad metric count %u", path, M);
  h->names = calloc(M, sizeof *h->names);
  if (!h->names) return NS_ERR_NOMEM;
  h->M = M;
  size_t off = 12;
  for (uint32_t i = 0; i < M; i++) {
    const char *z = memchr(b + off, '\0', len - off);
    if (!z) {
      header_clear(h);
      return ns_errorf(NS_ERR_CORRUPT, "%s: truncated header at metric %u", path, i);
    }
    if (!(h->names[i] = strdup(b + off))) {
      header_clear(h);
      return NS_ERR_NOMEM;
    }
    off = (size_t)(z - b) + 1;
  }
  h->hdr_bytes = (off + 7) & ~(size_t)7;
  if (h->hdr_bytes > len) {
    header_clear(h);
    return ns_errorf(NS_ERR_CORRUPT, "%s: truncated header", path);
  }
  return NS_OK;
}

static size_t rec_bytes(size_t M) { return 8 + 4 * M + 4; }

/* ---------------------------------------------------------------- writer */

struct ns_spool {
  char *dir;
  ns_spool_opts o;
  int fd;                  /* current chunk, -1 if none */
  char cur_name[64];
  int64_t cur_start, cur_bytes;
  size_t M;
  char **names;            /* current chunk's metric set */
  unsigned char *rec;      /* record buffer */
  int64_t last_prune_ms;
  bool warned_full;
};

static void drop_schema(ns_spool *sp) {
  if (sp->names)
    for (size_t i = 0; i < sp->M; i++) free(sp->names[i]);
  free(sp->names);
  free(sp->rec);
  sp->names = NULL, sp->rec = NULL, sp->M = 0;
}

static void close_chunk(ns_spool *sp) {
  if (sp->fd >= 0) close(sp->fd);
  sp->fd = -1;
  sp->cur_name[0] = '\0';
  drop_schema(sp);
}

static int64_t chunk_cap(const ns_spool *sp) {
  int64_t c = sp->o.max_bytes / 16;
  return c < 4096 ? 4096 : c;
}

static ns_status set_schema(ns_spool *sp, size_t M, char *const *names) {
  drop_schema(sp);
  sp->names = calloc(M, sizeof *sp->names);
  sp->rec = malloc(rec_bytes(M));
  if (!sp->names || !sp->rec) goto nomem;
  sp->M = M;
  for (size_t i = 0; i < M; i++)
    if (!(sp->names[i] = strdup(names[i]))) goto nomem;
  return NS_OK;
nomem:
  drop_schema(sp);
  return NS_ERR_NOMEM;
}

static bool same_schema(const ns_spool *sp, size_t M, char *const *names) {
  if (!sp->names || sp->M != M) return false;
  for (size_t i = 0; i < M; i++)
    if (strcmp(sp->names[i], names[i]) != 0) return false;
  return true;
}

/* Reopen the newest chunk after a restart when it has the same metric set:
 * cut a torn tail back to the last record whose checksum holds. */
static void try_resume(ns_spool *sp, size_t M, char *const *names, int64_t ts_ms) {
  chunk *cs = NULL;
  size_t n = 0;
  if (list_chunks(sp->dir, &cs, &n) || n == 0) goto out;
  chunk *c = &cs[n - 1];
  if (ts_ms - c->start_ms >= CHUNK_SPAN_MS || c->bytes >= chunk_cap(sp)) goto out;
  char path[4200];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_RING_DIR "/%s", sp->dir, c->name);
  char *b = NULL;
  size_t len = 0;
  if (read_file(path, &b, &len)) goto out;
  header h;
  if (parse_header(path, b, len, &h) == NS_OK) {
    bool same = h.M == M;
    for (size_t i = 0; same && i < M; i++) same = strcmp(h.names[i], names[i]) == 0;
    if (same) {
      size_t rb = rec_bytes(M), nrec = (len - h.hdr_bytes) / rb;
      while (nrec > 0) {
        const char *r = b + h.hdr_bytes + (nrec - 1) * rb;
        uint32_t ck;
        memcpy(&ck, r + rb - 4, 4);
        if (ck == ns_fnv1a32(r, rb - 4)) break;
        nrec--;
      }
      size_t keep = h.hdr_bytes + nrec * rb;
      int fd = open(path, O_WRONLY | O_CLOEXEC);
      if (fd >= 0 && ftruncate(fd, (off_t)keep) == 0 && lseek(fd, 0, SEEK_END) == (off_t)keep &&
          set_schema(sp, M, names) == NS_OK) {
        sp->fd = fd;
        snprintf(sp->cur_name, sizeof sp->cur_name, "%s", c->name);
        sp->cur_start = c->start_ms;
        sp->cur_bytes = (int64_t)keep;
        if (keep < len) ns_warn("spool: %s: dropped a torn record tail (%zu bytes)", path, len - keep);
      } else if (fd >= 0) {
        close(fd);
      }
    }
    header_clear(&h);
  }
  free(b);
out:
  free(cs);
}

static ns_status new_chunk(ns_spool *sp, size_t M, char *const *names, int64_t ts_ms) {
  close_chunk(sp);
  try_resume(sp, M, names, ts_ms);
  if (sp->fd >= 0) return NS_OK;
  ns_status s = set_schema(sp, M, names);
  if (s) return s;
  size_t hb = 12;
  for (size_t i = 0; i < M; i++) hb += strlen(names[i]) + 1;
  hb = (hb + 7) & ~(size_t)7;
  char *h = calloc(1, hb);
  if (!h) return NS_ERR_NOMEM;
  memcpy(h, MAGIC, 8);
  uint32_t m32 = (uint32_t)M;
  memcpy(h + 8, &m32, 4);
  size_t off = 12;
  for (size_t i = 0; i < M; i++) {
    size_t l = strlen(names[i]) + 1;
    memcpy(h + off, names[i], l);
    off += l;
  }
  char path[4200];
  int fd = -1;
  for (int64_t t = ts_ms; t < ts_ms + 1000; t++) {
    snprintf(sp->cur_name, sizeof sp->cur_name, "%" PRId64 ".nss", t);
    snprintf(path, sizeof path, "%s/" NS_SPOOL_RING_DIR "/%s", sp->dir, sp->cur_name);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) {
      sp->cur_start = t;
      break;
    }
  }
  if (fd < 0) {
    s = ns_errorf(NS_ERR_IO, "%s: cannot create spool chunk: %s", path, strerror(errno));
    free(h);
    drop_schema(sp);
    return s;
  }
  s = write_all(fd, h, hb);
  free(h);
  if (s) {
    close(fd);
    unlink(path);
    drop_schema(sp);
    return ns_errorf(NS_ERR_IO, "%s: cannot write chunk header: %s", path, strerror(errno));
  }
  sp->fd = fd;
  sp->cur_bytes = (int64_t)hb;
  return NS_OK;
}

ns_status ns_spool_open(const char *dir, const ns_spool_opts *opts, ns_spool **out) {
  *out = NULL;
  if (!dir || !*dir) return ns_errorf(NS_ERR_INVAL, "spool_dir is empty");
  char p[4096];
  ns_status s = mkdir_p1(dir);
  const char *subs[] = {NS_SPOOL_RING_DIR, NS_SPOOL_MARKS_DIR, NS_SPOOL_OUTBOX_DIR};
  for (int i = 0; !s && i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
    s = mkdir_p1(p);
  }
  if (s) return s;
  ns_spool *sp = calloc(1, sizeof *sp);
  if (!sp || !(sp->dir = strdup(dir))) {
    free(sp);
    return NS_ERR_NOMEM;
  }
  sp->fd = -1;
  if (opts) sp->o = *opts;
  if (sp->o.retention_ms <= 0) sp->o.retention_ms = 48 * CHUNK_SPAN_MS;
  if (sp->o.max_bytes <= 0) sp->o.max_bytes = 256LL << 20;
  *out = sp;
  return NS_OK;
}

void ns_spool_close(ns_spool *sp) {
  if (!sp) return;
  close_chunk(sp);
  free(sp->dir);
  free(sp);
}

const char *ns_spool_dir(const ns_spool *sp) { return sp->dir; }

int64_t ns_spool_ring_bytes(const ns_spool *sp) {
  chunk *cs = NULL;
  size_t n = 0;
  int64_t tot = 0;
  if (list_chunks(sp->dir, &cs, &n) == NS_OK)
    for (size_t i = 0; i < n; i++) tot += cs[i].bytes;
  free(cs);
  return tot;
}

static int64_t fs_free(const char *dir, int64_t *fs_size) {
  struct statvfs v;
  if (statvfs(dir, &v) != 0) return INT64_MAX;
  if (fs_size) *fs_size = (int64_t)v.f_blocks * (int64_t)v.f_frsize;
  return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

static int64_t min_free(const ns_spool *sp) {
  if (sp->o.min_free_bytes > 0) return sp->o.min_free_bytes;
  int64_t size = 0;
  fs_free(sp->dir, &size);
  int64_t pct = size / 20; /* 5 % of the filesystem, at most 1 GiB */
  return pct > (1LL << 30) ? (1LL << 30) : pct;
}

static void remove_chunk(ns_spool *sp, const chunk *c) {
  char path[4200];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_RING_DIR "/%s", sp->dir, c->name);
  if (strcmp(c->name, sp->cur_name) == 0) close_chunk(sp);
  unlink(path);
}

/* Drop oldest chunks while over the byte cap, past retention, or below the free floor. */
static ns_status prune(ns_spool *sp, int64_t now_ms, int64_t incoming) {
  chunk *cs = NULL;
  size_t n = 0;
  ns_status s = list_chunks(sp->dir, &cs, &n);
  if (s) return s;
  int64_t tot = 0;
  for (size_t i = 0; i < n; i++) tot += cs[i].bytes;
  int64_t floor_b = min_free(sp);
  for (size_t i = 0; i < n; i++) {
    bool over = tot + incoming > sp->o.max_bytes;
    /* a chunk is past retention when the next one began before the horizon */
    bool old = i + 1 < n && cs[i + 1].start_ms < now_ms - sp->o.retention_ms;
    bool full = fs_free(sp->dir, NULL) - incoming < floor_b;
    if (!over && !old && !full) break;
    remove_chunk(sp, &cs[i]);
    tot -= cs[i].bytes;
  }
  free(cs);
  return NS_OK;
}

ns_status ns_spool_prune(ns_spool *sp, int64_t now_ms) { return prune(sp, now_ms, 0); }

ns_status ns_spool_append(ns_spool *sp, int64_t ts_ms, size_t M, char *const *names, const float *values) {
  if (M == 0 || !names || !values) return ns_errorf(NS_ERR_INVAL, "spool append: empty sample");
  ns_status s;
  size_t rb = rec_bytes(M);
  if (sp->fd < 0 || !same_schema(sp, M, names) || ts_ms - sp->cur_start >= CHUNK_SPAN_MS ||
      sp->cur_bytes + (int64_t)rb > chunk_cap(sp)) {
    if ((s = new_chunk(sp, M, names, ts_ms))) return s;
  }
  /* prune every 10 s of samples (a chunk is at most 1/16 of the cap, so the overshoot is tiny) */
  if (ts_ms - sp->last_prune_ms >= 10000 || ts_ms < sp->last_prune_ms) {
    sp->last_prune_ms = ts_ms;
    if ((s = prune(sp, ts_ms, (int64_t)rb))) return s;
    if (sp->fd < 0 && (s = new_chunk(sp, M, names, ts_ms))) return s;
  }
  if (fs_free(sp->dir, NULL) - (int64_t)rb < min_free(sp)) {
    if (!sp->warned_full)
      ns_warn("spool: %s: filesystem below its free-space floor; samples are not written", sp->dir);
    sp->warned_full = true;
    return ns_errorf(NS_ERR_LIMIT, "%s: filesystem too full to spool", sp->dir);
  }
  sp->warned_full = false;
  memcpy(sp->rec, &ts_ms, 8);
  memcpy(sp->rec + 8, values, 4 * M);
  uint32_t ck = ns_fnv1a32(sp->rec, rb - 4);
  memcpy(sp->rec + rb - 4, &ck, 4);
  if (write_all(sp->fd, sp->rec, rb)) {
    s = ns_errorf(NS_ERR_IO, "spool %s/%s: write failed: %s", sp->dir, sp->cur_name, strerror(errno));
    close_chunk(sp); /* the next append resumes and trims a torn record */
    return s;
  }
  sp->cur_bytes += (int64_t)rb;
  return NS_OK;
}

/* ---------------------------------------------------------------- reader */

static long find_name(char **v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0) return (long)i;
  return -1;
}

typedef struct row_ref {
  int64_t ts;
  size_t idx;
} row_ref;

static int row_cmp(const void *a, const void *b) {
  const row_ref *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

ns_status ns_spool_read(const char *dir, const char *node, int64_t from_ms, int64_t to_ms, ns_mts **out) {
  *out = NULL;
  if (from_ms > to_ms) return ns_errorf(NS_ERR_RANGE, "spool read: window start %" PRId64 " after end %" PRId64, from_ms, to_ms);
  chunk *cs = NULL;
  size_t n = 0;
  ns_status s = list_chunks(dir, &cs, &n);
  if (s) return s;
  char **uni = NULL;
  size_t U = 0;
  ns_mts *tmp = NULL, *res = NULL;
  char *b = NULL;
  double *row = NULL;
  row_ref *refs = NULL;
  char path[4200];
  /* chunks that may hold the window: started by `to`, and the next one starts after `from` */
  size_t lo = n, hi = n;
  for (size_t i = 0; i < n; i++) {
    if (cs[i].start_ms > to_ms) break;
    if (i + 1 < n && cs[i + 1].start_ms <= from_ms) continue;
    if (lo == n) lo = i;
    hi = i + 1;
  }
  if (lo == n) {
    s = ns_errorf(NS_ERR_EMPTY, "%s: no spooled samples in the window", dir);
    goto done;
  }
  /* pass 1: union of metric names */
  for (size_t i = lo; i < hi; i++) {
    snprintf(path, sizeof path, "%s/" NS_SPOOL_RING_DIR "/%s", dir, cs[i].name);
    size_t len;
    free(b), b = NULL;
    if (read_file(path, &b, &len)) continue; /* removed by the pruner meanwhile */
    header h;
    if (parse_header(path, b, len, &h)) {
      ns_warn("spool: %s", ns_err_detail());
      continue;
    }
    for (size_t m = 0; m < h.M; m++) {
      if (find_name(uni, U, h.names[m]) >= 0) continue;
      char **nu = realloc(uni, (U + 1) * sizeof *uni);
      if (!nu) {
        header_clear(&h);
        s = NS_ERR_NOMEM;
        goto done;
      }
      uni = nu;
      uni[U++] = h.names[m];
      h.names[m] = NULL;
    }
    for (size_t m = 0; m < h.M; m++) free(h.names[m]);
    free(h.names);
  }
  if (U == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "%s: no readable spool chunk in the window", dir);
    goto done;
  }
  if ((s = ns_mts_create(node, U, uni, &tmp))) goto done;
  row = malloc(U * sizeof *row);
  if (!row) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  /* pass 2: records */
  for (size_t i = lo; i < hi; i++) {
    snprintf(path, sizeof path, "%s/" NS_SPOOL_RING_DIR "/%s", dir, cs[i].name);
    size_t len;
    free(b), b = NULL;
    if (read_file(path, &b, &len)) continue;
    header h;
    if (parse_header(path, b, len, &h)) continue;
    long map[h.M];
    for (size_t m = 0; m < h.M; m++) map[m] = find_name(uni, U, h.names[m]);
    size_t rb = rec_bytes(h.M);
    for (size_t off = h.hdr_bytes; off + rb <= len; off += rb) {
      const char *r = b + off;
      uint32_t ck;
      memcpy(&ck, r + rb - 4, 4);
      if (ck != ns_fnv1a32(r, rb - 4)) continue; /* torn or damaged record */
      int64_t ts;
      memcpy(&ts, r, 8);
      if (ts < from_ms || ts > to_ms) continue;
      for (size_t u = 0; u < U; u++) row[u] = NAN;
      for (size_t m = 0; m < h.M; m++) {
        float f;
        memcpy(&f, r + 8 + 4 * m, 4);
        row[map[m]] = f;
      }
      if ((s = ns_mts_append(tmp, ts, row))) {
        header_clear(&h);
        goto done;
      }
    }
    header_clear(&h);
  }
  if (tmp->T == 0) {
    s = ns_errorf(NS_ERR_EMPTY, "%s: no spooled samples between %" PRId64 " and %" PRId64, dir, from_ms, to_ms);
    goto done;
  }
  /* time order (a clock step can leave chunks out of order) */
  refs = malloc(tmp->T * sizeof *refs);
  if (!refs) {
    s = NS_ERR_NOMEM;
    goto done;
  }
  for (size_t t = 0; t < tmp->T; t++) refs[t] = (row_ref){tmp->ts_ms[t], t};
  qsort(refs, tmp->T, sizeof *refs, row_cmp);
  if ((s = ns_mts_create(node, U, uni, &res))) goto done;
  for (size_t t = 0; t < tmp->T; t++)
    if ((s = ns_mts_append(res, refs[t].ts, tmp->x + refs[t].idx * U))) goto done;
  *out = res;
  res = NULL;
done:
  if (uni)
    for (size_t u = 0; u < U; u++) free(uni[u]);
  free(uni);
  free(b);
  free(row);
  free(refs);
  free(cs);
  ns_mts_free(tmp);
  ns_mts_free(res);
  return s;
}

ns_status ns_spool_last_ts(const char *dir, int64_t *out_ms) {
  *out_ms = 0;
  chunk *cs = NULL;
  size_t n = 0;
  ns_status s = list_chunks(dir, &cs, &n);
  if (s) return s;
  char path[4200];
  for (size_t i = n; i-- > 0 && *out_ms == 0;) {
    snprintf(path, sizeof path, "%s/" NS_SPOOL_RING_DIR "/%s", dir, cs[i].name);
    char *b = NULL;
    size_t len;
    if (read_file(path, &b, &len)) continue;
    header h;
    if (parse_header(path, b, len, &h) == NS_OK) {
      size_t rb = rec_bytes(h.M);
      for (size_t k = (len - h.hdr_bytes) / rb; k > 0; k--) {
        const char *r = b + h.hdr_bytes + (k - 1) * rb;
        uint32_t ck;
        memcpy(&ck, r + rb - 4, 4);
        if (ck != ns_fnv1a32(r, rb - 4)) continue;
        memcpy(out_ms, r, 8);
        break;
      }
      header_clear(&h);
    }
    free(b);
  }
  free(cs);
  return NS_OK;
}

/* ---------------------------------------------------------------- marks */

bool ns_spool_id_ok(const char *s) {
  if (!s || !*s || strlen(s) > NS_SPOOL_MAX_ID) return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
          *p == '.' || *p == '+' || *p == '-'))
      return false;
  return s[0] != '.';
}

ns_status ns_spool_mark(const char *dir, const char *job_id, const char *what, int64_t ms, const char *node) {
  if (!ns_spool_id_ok(job_id)) return ns_errorf(NS_ERR_INVAL, "bad job id '%s'", job_id ? job_id : "");
  if (!what || (strcmp(what, "start") && strcmp(what, "end") && strcmp(what, "tag")))
    return ns_errorf(NS_ERR_INVAL, "mark kind must be start, end or tag");
  char path[4096], line[256];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_MARKS_DIR, dir);
  ns_status s = mkdir_p1(path);
  if (s) return s;
  snprintf(path, sizeof path, "%s/" NS_SPOOL_MARKS_DIR "/%s", dir, job_id);
  int n = strcmp(what, "tag") == 0 ? snprintf(line, sizeof line, "tag %s\n", node ? node : "")
                                   : snprintf(line, sizeof line, "%s %" PRId64 " %s\n", what, ms, node ? node : "-");
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  s = write_all(fd, line, (size_t)n);
  close(fd);
  return s ? ns_errorf(NS_ERR_IO, "%s: write failed", path) : NS_OK;
}

ns_status ns_spool_read_marks(const char *dir, const char *job_id, ns_job_marks *out) {
  memset(out, 0, sizeof *out);
  if (!ns_spool_id_ok(job_id)) return ns_errorf(NS_ERR_INVAL, "bad job id '%s'", job_id ? job_id : "");
  char path[4096];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_MARKS_DIR "/%s", dir, job_id);
  char *b = NULL;
  size_t len;
  ns_status s = read_file(path, &b, &len);
  if (s) return s;
  int lineno = 0;
  for (char *save = NULL, *ln = strtok_r(b, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
    lineno++;
    char kind[16], node[128] = "";
    long long ms = 0;
    if (sscanf(ln, "tag %64s", out->tag) == 1) continue;
    if (sscanf(ln, "%15s %lld %127s", kind, &ms, node) < 2 || ms <= 0) {
      ns_warn("%s:%d: ignoring malformed mark line", path, lineno);
      continue;
    }
    /* a requeued job marks again; the latest pair wins */
    if (strcmp(kind, "start") == 0) out->start_ms = ms, out->end_ms = 0;
    else if (strcmp(kind, "end") == 0) out->end_ms = ms;
    else {
      ns_warn("%s:%d: unknown mark '%s'", path, lineno, kind);
      continue;
    }
    if (node[0] && strcmp(node, "-") != 0) snprintf(out->node, sizeof out->node, "%s", node);
  }
  free(b);
  return NS_OK;
}

ns_status ns_spool_remove_marks(const char *dir, const char *job_id) {
  if (!ns_spool_id_ok(job_id)) return ns_errorf(NS_ERR_INVAL, "bad job id '%s'", job_id ? job_id : "");
  char path[4096];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_MARKS_DIR "/%s", dir, job_id);
  if (unlink(path) != 0 && errno != ENOENT) return ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  return NS_OK;
}

ns_status ns_spool_prune_marks(const char *dir, int64_t older_than_ms, int *removed) {
  if (removed) *removed = 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_MARKS_DIR, dir);
  DIR *d = opendir(path);
  if (!d) return errno == ENOENT ? NS_OK : ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  int64_t now = ns_spool_now_ms();
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!ns_spool_id_ok(e->d_name)) continue;
    char fp[4400];
    struct stat st;
    snprintf(fp, sizeof fp, "%s/%s", path, e->d_name);
    if (stat(fp, &st) != 0) continue;
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    if (now - mt > older_than_ms && unlink(fp) == 0 && removed) (*removed)++;
  }
  closedir(d);
  return NS_OK;
}

/* ---------------------------------------------------------------- outbox */

static int entry_cmp(const void *a, const void *b) {
  const ns_outbox_entry *x = a, *y = b;
  if (x->queued_ms != y->queued_ms) return x->queued_ms < y->queued_ms ? -1 : 1;
  return strcmp(x->key, y->key);
}

ns_status ns_outbox_list(const char *dir, ns_outbox_entry **out, size_t *n) {
  *out = NULL, *n = 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_OUTBOX_DIR, dir);
  DIR *d = opendir(path);
  if (!d) return errno == ENOENT ? NS_OK : ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  ns_outbox_entry *v = NULL;
  size_t cnt = 0, cap = 0;
  ns_status s = NS_OK;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    char *dash = strchr(e->d_name, '-');
    if (l < 6 || l > 200 || strcmp(e->d_name + l - 5, ".json") != 0 || !dash) continue;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      ns_outbox_entry *nv = realloc(v, cap * sizeof *v);
      if (!nv) {
        s = NS_ERR_NOMEM;
        goto done;
      }
      v = nv;
    }
    ns_outbox_entry *o = &v[cnt];
    if ((size_t)snprintf(o->path, sizeof o->path, "%s/%s", path, e->d_name) >= sizeof o->path) continue;
    o->queued_ms = strtoll(e->d_name, NULL, 10);
    size_t kl = l - 5 - (size_t)(dash + 1 - e->d_name);
    if (kl >= sizeof o->key) continue;
    memcpy(o->key, dash + 1, kl);
    o->key[kl] = '\0';
    struct stat st;
    o->bytes = stat(o->path, &st) == 0 ? (int64_t)st.st_size : 0;
    cnt++;
  }
  if (cnt) qsort(v, cnt, sizeof *v, entry_cmp);
  *out = v, *n = cnt;
  v = NULL;
done:
  free(v);
  closedir(d);
  return s;
}

ns_status ns_outbox_read(const ns_outbox_entry *e, char **body, size_t *len) { return read_file(e->path, body, len); }

ns_status ns_outbox_remove(const ns_outbox_entry *e) {
  if (unlink(e->path) != 0 && errno != ENOENT) return ns_errorf(NS_ERR_IO, "%s: %s", e->path, strerror(errno));
  return NS_OK;
}

int64_t ns_outbox_dropped(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_OUTBOX_DIR "/dropped", dir);
  char *b = NULL;
  size_t len;
  if (read_file(path, &b, &len)) return 0;
  int64_t n = 0;
  for (size_t i = 0; i < len; i++) n += b[i] == '\n';
  free(b);
  return n;
}

ns_status ns_outbox_put(const char *dir, const char *key, const char *body, size_t len, int64_t max_bytes,
                        int *dropped) {
  if (dropped) *dropped = 0;
  if (!key || !*key || strlen(key) > 150 || strchr(key, '/'))
    return ns_errorf(NS_ERR_INVAL, "bad outbox key '%s'", key ? key : "");
  if ((int64_t)len > max_bytes)
    return ns_errorf(NS_ERR_LIMIT, "outbox entry %s (%zu bytes) is larger than outbox_max_bytes", key, len);
  char path[4096], tmp[4200], final_path[4200];
  snprintf(path, sizeof path, "%s/" NS_SPOOL_OUTBOX_DIR, dir);
  ns_status s = mkdir_p1(path);
  if (s) return s;
  /* one entry per key: a re-queued segment replaces its older copy */
  ns_outbox_entry *v = NULL;
  size_t n = 0;
  if ((s = ns_outbox_list(dir, &v, &n))) return s;
  int64_t tot = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(v[i].key, key) == 0) {
      unlink(v[i].path);
      v[i].bytes = 0;
      v[i].path[0] = '\0';
    }
    tot += v[i].bytes;
  }
  for (size_t i = 0; i < n && tot + (int64_t)len > max_bytes; i++) {
    if (!v[i].path[0]) continue;
    if (unlink(v[i].path) == 0) {
      tot -= v[i].bytes;
      if (dropped) (*dropped)++;
      char dp[4300], line[300];
      snprintf(dp, sizeof dp, "%s/dropped", path);
      int fd = open(dp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      int ln = snprintf(line, sizeof line, "%" PRId64 " %s %" PRId64 "\n", ns_spool_now_ms(), v[i].key, v[i].bytes);
      if (fd >= 0) {
        (void)write_all(fd, line, (size_t)ln);
        close(fd);
      }
      ns_warn("outbox: dropped %s (%" PRId64 " bytes) to stay under outbox_max_bytes", v[i].key, v[i].bytes);
    }
  }
  free(v);
  int64_t now = ns_spool_now_ms();
  snprintf(tmp, sizeof tmp, "%s/.%" PRId64 "-%s.tmp", path, now, key);
  snprintf(final_path, sizeof final_path, "%s/%" PRId64 "-%s.json", path, now, key);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ns_errorf(NS_ERR_IO, "%s: %s", tmp, strerror(errno));
  s = write_all(fd, body, len);
  if (!s && fsync(fd) != 0) s = NS_ERR_IO;
  close(fd);
  if (s || rename(tmp, final_path) != 0) {
    s = ns_errorf(NS_ERR_IO, "%s: cannot store outbox entry: %s", final_path, strerror(errno));
    unlink(tmp);
  }
  return s;
}
