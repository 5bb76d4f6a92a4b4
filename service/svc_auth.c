/* MUNGE authentication. A client encodes a credential whose payload is the
 * lower-case hex SHA-256 of the request body as sent, and puts it in the
 * X-Munge-Credential header. munged itself rejects expired and replayed
 * credentials, so a captured header cannot be reused, and the payload check
 * stops it from being attached to a different body. */
#include <errno.h>
#include <munge.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include "svc.h"
#include "ns_hash.h"

struct svc_auth {
  munge_ctx_t ctx;
  uid_t *ingest, *admin;
  size_t n_ingest, n_admin;
};

ns_status svc_parse_users(const char *list, uid_t **uids, size_t *n) {
  *uids = NULL;
  *n = 0;
  char *copy = strdup(list ? list : ""), *save = NULL;
  if (!copy) return NS_ERR_NOMEM;
  size_t cap = strlen(copy) / 2 + 2;
  uid_t *v = malloc(cap * sizeof *v);
  ns_status st = NS_OK;
  if (!v) {
    st = NS_ERR_NOMEM;
    goto done;
  }
  for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
    char *end = NULL;
    errno = 0;
    unsigned long u = strtoul(tok, &end, 10);
    if (*tok >= '0' && *tok <= '9' && end && *end == '\0' && errno == 0) {
      v[(*n)++] = (uid_t)u;
      continue;
    }
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(tok, &pw, buf, sizeof buf, &res) != 0 || !res) {
      /* An absent account (e.g. no 'slurm' user on this host) grants nothing. */
      continue;
    }
    v[(*n)++] = res->pw_uid;
  }
  *uids = v;
  v = NULL;
done:
  free(v);
  free(copy);
  return st;
}

ns_status svc_auth_create(const char *socket, const char *ingest_users, const char *admin_users, svc_auth **out) {
  *out = NULL;
  svc_auth *a = calloc(1, sizeof *a);
  if (!a) return NS_ERR_NOMEM;
  ns_status st = NS_OK;
  if (!(a->ctx = munge_ctx_create())) {
    st = ns_errorf(NS_ERR_NOMEM, "munge_ctx_create failed");
    goto fail;
  }
  if (socket && *socket && munge_ctx_set(a->ctx, MUNGE_OPT_SOCKET, socket) != EMUNGE_SUCCESS) {
    st = ns_errorf(NS_ERR_INVAL, "munge socket '%s': %s", socket, munge_ctx_strerror(a->ctx));
    goto fail;
  }
  if ((st = svc_parse_users(ingest_users, &a->ingest, &a->n_ingest)) ||
      (st = svc_parse_users(admin_users, &a->admin, &a->n_admin)))
    goto fail;
  *out = a;
  return NS_OK;
fail:
  svc_auth_free(a);
  return st;
}

void svc_auth_free(svc_auth *a) {
  if (!a) return;
  if (a->ctx) munge_ctx_destroy(a->ctx);
  free(a->ingest);
  free(a->admin);
  free(a);
}

ns_status svc_auth_check(svc_auth *a, const char *cred, const void *body, size_t n, bool admin, uid_t *uid_out) {
  if (uid_out) *uid_out = (uid_t)-1;
  if (!cred || !*cred) return ns_errorf(NS_ERR_AUTH, "missing X-Munge-Credential header");
  /* munge contexts are not thread-safe: decode with a copy per call. */
  munge_ctx_t ctx = munge_ctx_copy(a->ctx);
  if (!ctx) return ns_errorf(NS_ERR_NOMEM, "munge_ctx_copy failed");
  void *payload = NULL;
  int plen = 0;
  uid_t uid = (uid_t)-1;
  gid_t gid = (gid_t)-1;
  munge_err_t e = munge_decode(cred, ctx, &payload, &plen, &uid, &gid);
  ns_status st = NS_OK;
  if (e != EMUNGE_SUCCESS) {
    st = ns_errorf(e == EMUNGE_SOCKET ? NS_ERR_NET : NS_ERR_AUTH, "MUNGE credential rejected: %s",
                   munge_ctx_strerror(ctx) ? munge_ctx_strerror(ctx) : munge_strerror(e));
    goto done;
  }
  char hex[65];
  ns_sha256_hex(body, n, hex);
  if (!payload || plen != 64 || memcmp(payload, hex, 64) != 0) {
    st = ns_errorf(NS_ERR_AUTH, "MUNGE credential payload is not the SHA-256 of this request body");
    goto done;
  }
  const uid_t *set = admin ? a->admin : a->ingest;
  size_t ns = admin ? a->n_admin : a->n_ingest;
  bool ok = false;
  for (size_t i = 0; i < ns; i++)
    if (set[i] == uid) ok = true;
  if (!ok) {
    st = ns_errorf(NS_ERR_FORBIDDEN, "uid %u may not %s", (unsigned)uid, admin ? "use admin endpoints" : "ingest");
    goto done;
  }
  if (uid_out) *uid_out = uid;
done:
  free(payload);
  munge_ctx_destroy(ctx);
  return st;
}
