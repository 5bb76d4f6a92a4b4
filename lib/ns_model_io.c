/* Model serialisation: a versioned, checksummed little-endian binary. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ns_model.h"
#include "ns_hash.h"
#include "ns_model_impl.h"

static const char MAGIC[8] = {'N', 'S', 'M', 'O', 'D', 'E', 'L', 0};


typedef struct wbuf {
  unsigned char *p;
  size_t n, cap;
  bool fail;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
  if (b->fail) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) {
      b->fail = true;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}
#define PUT(b, v) put(b, &(v), sizeof(v))

/* The format is little-endian; this build only runs on little-endian hosts. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host required");

ns_status ns_model_save(const ns_model *m, void **buf, size_t *n) {
  if (!buf || !n) return ns_errorf(NS_ERR_INVAL, "ns_model_save: NULL output");
  *buf = NULL;
  *n = 0;
  if (!m) return ns_errorf(NS_ERR_INVAL, "ns_model_save: NULL model");
  wbuf b = {0};
  const ns_model_hparams *h = &m->hp;
  uint32_t ver = NS_MODEL_FORMAT_VERSION, flags = 0;
  put(&b, MAGIC, 8);
  PUT(&b, ver);
  PUT(&b, flags);
  int32_t iv[12] = {h->n_metrics, h->d_model, h->n_layers, h->n_heads, h->n_experts, h->top_k,
                    h->d_ff,      h->n_segments, h->window, h->batch, h->epochs, h->patience};
  put(&b, iv, sizeof iv);
  double dv[6] = {h->dropout, h->lr, h->weight_decay, h->grad_clip, h->aux_weight, h->val_fraction};
  put(&b, dv, sizeof dv);
  uint64_t seed = h->seed;
  PUT(&b, seed);
  uint8_t fl[4] = {h->between_pos, h->moe, 0, 0};
  put(&b, fl, 4);
  for (int i = 0; i < h->n_metrics; i++) {
    size_t len = strlen(m->metrics[i]);
    uint16_t l16 = (uint16_t)(len > 65535 ? 65535 : len);
    PUT(&b, l16);
    put(&b, m->metrics[i], l16);
  }
  put(&b, m->mac, (size_t)h->n_metrics * sizeof(float));
  const ns_score_stats *s = &m->stats;
  PUT(&b, s->count);
  double sv[4] = {s->mean, s->std, s->min, s->max};
  put(&b, sv, sizeof sv);
  put(&b, s->q, sizeof s->q);
  uint64_t np = m->n_params;
  PUT(&b, np);
  put(&b, m->arena, m->n_params * sizeof(float));
  uint32_t crc = b.fail ? 0 : ns_crc32(b.p, b.n);
  PUT(&b, crc);
  if (b.fail) {
    free(b.p);
    return ns_errorf(NS_ERR_NOMEM, "model serialisation (%zu parameters)", m->n_params);
  }
  *buf = b.p;
  *n = b.n;
  return NS_OK;
}

typedef struct rbuf {
  const unsigned char *p;
  size_t n, pos;
} rbuf;

static bool get(rbuf *r, void *dst, size_t n) {
  if (r->n - r->pos < n) return false;
  memcpy(dst, r->p + r->pos, n);
  r->pos += n;
  return true;
}
#define GET(r, v) get(r, &(v), sizeof(v))

ns_status ns_model_load(const void *buf, size_t n, const char *const *expect_names, size_t n_expect,
                        ns_model **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_model_load: NULL output");
  *out = NULL;
  if (!buf) return ns_errorf(NS_ERR_INVAL, "ns_model_load: NULL buffer");
  rbuf r = {buf, n, 0};
  char magic[8];
  uint32_t ver, flags;
  if (n < 16 || !get(&r, magic, 8) || memcmp(magic, MAGIC, 8))
    return ns_errorf(NS_ERR_FORMAT, "model blob: not an nsentry model (bad magic, %zu bytes)", n);
  GET(&r, ver);
  GET(&r, flags);
  if (ver != NS_MODEL_FORMAT_VERSION)
    return ns_errorf(NS_ERR_VERSION, "model blob: format version %u, this build reads version %d", ver,
                     NS_MODEL_FORMAT_VERSION);
  if (n < 20) return ns_errorf(NS_ERR_CORRUPT, "model blob: truncated (%zu bytes)", n);
  uint32_t crc_stored;
  memcpy(&crc_stored, (const unsigned char *)buf + n - 4, 4);
  uint32_t crc = ns_crc32(buf, n - 4);
  if (crc != crc_stored)
    return ns_errorf(NS_ERR_CORRUPT, "model blob: checksum mismatch (stored %08x, computed %08x): corrupted or truncated",
                     crc_stored, crc);
  r.n = n - 4;
  ns_model_hparams h;
  ns_model_hparams_default(&h);
  int32_t iv[12];
  double dv[6];
  uint64_t seed;
  uint8_t fl[4];
  if (!get(&r, iv, sizeof iv) || !get(&r, dv, sizeof dv) || !GET(&r, seed) || !get(&r, fl, 4))
    return ns_errorf(NS_ERR_CORRUPT, "model blob: truncated header");
  h.n_metrics = iv[0], h.d_model = iv[1], h.n_layers = iv[2], h.n_heads = iv[3], h.n_experts = iv[4];
  h.top_k = iv[5], h.d_ff = iv[6], h.n_segments = iv[7], h.window = iv[8], h.batch = iv[9];
  h.epochs = iv[10], h.patience = iv[11];
  h.dropout = dv[0], h.lr = dv[1], h.weight_decay = dv[2], h.grad_clip = dv[3], h.aux_weight = dv[4];
  h.val_fraction = dv[5];
  h.seed = seed;
  h.between_pos = fl[0] != 0;
  h.moe = fl[1] != 0;
  ns_status st = ns_model_hparams_resolve(&h);
  if (st) {
    char why[512];
    snprintf(why, sizeof why, "%s", ns_err_detail());
    return ns_errorf(NS_ERR_CORRUPT, "model blob: bad hyperparameters: %s", why);
  }
  if (h.d_model != iv[1] || h.d_ff != iv[6])
    return ns_errorf(NS_ERR_CORRUPT, "model blob: unresolved sizes d_model=%d d_ff=%d", iv[1], iv[6]);
  int M = h.n_metrics;
  char **names = calloc((size_t)M, sizeof(char *));
  ns_model *m = NULL;
  if (!names) return ns_errorf(NS_ERR_NOMEM, "model blob: %d metric names", M);
  for (int i = 0; i < M; i++) {
    uint16_t l16;
    if (!GET(&r, l16) || r.n - r.pos < l16) {
      st = ns_errorf(NS_ERR_CORRUPT, "model blob: truncated metric schema at metric %d", i);
      goto done;
    }
    if (!(names[i] = malloc((size_t)l16 + 1))) {
      st = ns_errorf(NS_ERR_NOMEM, "model blob: metric names");
      goto done;
    }
    get(&r, names[i], l16);
    names[i][l16] = 0;
  }
  if (expect_names && (n_expect != (size_t)M)) {
    st = ns_errorf(NS_ERR_SCHEMA, "model was trained on %d metrics, caller has %zu", M, n_expect);
    goto done;
  }
  if (expect_names)
    for (int i = 0; i < M; i++)
      if (!expect_names[i] || strcmp(expect_names[i], names[i])) {
        st = ns_errorf(NS_ERR_SCHEMA, "metric %d is '%s' in the model but '%s' in the data", i, names[i],
                       expect_names[i] ? expect_names[i] : "(null)");
        goto done;
      }
  if ((st = ns_model_create(&h, (const char *const *)names, NULL, &m))) goto done;
  uint64_t np;
  double sv[4];
  if (!get(&r, m->mac, (size_t)M * sizeof(float)) || !GET(&r, m->stats.count) || !get(&r, sv, sizeof sv) ||
      !get(&r, m->stats.q, sizeof m->stats.q) || !GET(&r, np)) {
    st = ns_errorf(NS_ERR_CORRUPT, "model blob: truncated weights or statistics");
    goto done;
  }
  m->stats.mean = sv[0], m->stats.std = sv[1], m->stats.min = sv[2], m->stats.max = sv[3];
  if (np != m->n_params) {
    st = ns_errorf(NS_ERR_CORRUPT, "model blob: %llu parameters stored, hyperparameters imply %zu",
                   (unsigned long long)np, m->n_params);
    goto done;
  }
  if (!get(&r, m->arena, m->n_params * sizeof(float)) || r.pos != r.n) {
    st = ns_errorf(NS_ERR_CORRUPT, "model blob: parameter block of %zu bytes, %zu present",
                   m->n_params * sizeof(float), r.n - r.pos);
    goto done;
  }
  for (size_t i = 0; i < m->n_params; i++)
    if (!isfinite(m->arena[i])) {
      st = ns_errorf(NS_ERR_CORRUPT, "model blob: parameter %zu is not finite", i);
      goto done;
    }
  *out = m;
  m = NULL;
done:
  ns_model_free(m);
  for (int i = 0; i < M; i++) free(names[i]);
  free(names);
  return st;
}

ns_status ns_model_save_file(const ns_model *m, const char *path) {
  if (!path) return ns_errorf(NS_ERR_INVAL, "ns_model_save_file: NULL path");
  void *buf = NULL;
  size_t n = 0;
  ns_status st = ns_model_save(m, &buf, &n);
  if (st) return st;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    st = ns_errorf(NS_ERR_IO, "%s: %s", tmp, strerror(errno));
    goto done;
  }
  if (fwrite(buf, 1, n, f) != n) {
    st = ns_errorf(NS_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    fclose(f);
    remove(tmp);
    goto done;
  }
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    st = ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
    remove(tmp);
  }
done:
  free(buf);
  return st;
}

ns_status ns_model_load_file(const char *path, const char *const *expect_names, size_t n_expect, ns_model **out) {
  if (!out) return ns_errorf(NS_ERR_INVAL, "ns_model_load_file: NULL output");
  *out = NULL;
  if (!path) return ns_errorf(NS_ERR_INVAL, "ns_model_load_file: NULL path");
  FILE *f = fopen(path, "rb");
  if (!f) return ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  ns_status st = NS_OK;
  unsigned char *buf = NULL;
  long len;
  if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
    st = ns_errorf(NS_ERR_IO, "%s: cannot size: %s", path, strerror(errno));
    goto done;
  }
  if (!(buf = malloc(len ? (size_t)len : 1))) {
    st = ns_errorf(NS_ERR_NOMEM, "%s: %ld bytes", path, len);
    goto done;
  }
  if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
    st = ns_errorf(NS_ERR_IO, "%s: short read", path);
    goto done;
  }
  st = ns_model_load(buf, (size_t)len, expect_names, n_expect, out);
  if (st) {
    char why[512];
    snprintf(why, sizeof why, "%s", ns_err_detail());
    st = ns_errorf(st, "%s: %s", path, why);
  }
done:
  free(buf);
  fclose(f);
  return st;
}
