/* SQL driver over SQLite and PostgreSQL. PostgreSQL statements are server-side
 * prepared once (?N rewritten to $N); parameters go as text except blobs
 * (binary bytea), results come back as text and bytea is hex-decoded on demand.
 * Nested ns_db_begin() calls become savepoints, so a module can make its own
 * work atomic whether or not the caller already opened a transaction. */
#include "ns_db.h"
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ns_log.h"

#define PG_BOOL_OID 16
#define PG_BYTEA_OID 17
#define PG_NAME_OID 19
#define PG_INT8_OID 20
#define PG_INT2_OID 21
#define PG_INT4_OID 23
#define PG_TEXT_OID 25
#define PG_OID_OID 26
#define PG_FLOAT4_OID 700
#define PG_FLOAT8_OID 701
#define PG_BPCHAR_OID 1042
#define PG_VARCHAR_OID 1043

#define NS_DB_IDLE_STMTS 48

struct ns_db {
  ns_db_kind kind;
  sqlite3 *sq;
  PGconn *pg;
  char *target;    /* URI with any password masked, for messages */
  int depth;       /* transaction nesting: 0 none, 1 BEGIN, >1 savepoints */
  bool pg_aborted; /* a statement failed inside the current PG transaction */
  unsigned long next_stmt;
  uint64_t rollbacks;
  /* Finalized statements kept for reuse by SQL text: callers that prepare per
   * call then cost no parse (and on PostgreSQL no Parse/Describe/DEALLOCATE
   * round trips). Least recently used goes first. */
  struct {
    ns_db_stmt *st;
    uint64_t used;
  } idle[NS_DB_IDLE_STMTS];
  int nidle;
  uint64_t tick;
  char err[1024];
};

struct ns_db_stmt {
  ns_db *db;
  char *sql;     /* as given to ns_db_prepare: the reuse key */
  uint64_t hash;
  sqlite3_stmt *sq;
  bool done, executed;
  int64_t changes;
  /* PostgreSQL */
  char name[32];
  int nparams;
  char **vals;
  int *lens, *fmts;
  PGresult *res;
  int row, nrows;
  unsigned char **blobs; /* per column for the current row: decoded bytea (text mode), text form (binary mode) */
  size_t *blob_lens;
  int ncols_cached;
  /* Results come back binary when every column type is one we decode
   * (no hex round trip for bytea); otherwise as text. */
  bool binary;
};

static void set_err(ns_db *db, const char *msg) {
  snprintf(db->err, sizeof db->err, "%s", msg ? msg : "");
  size_t n = strlen(db->err);
  while (n && (db->err[n - 1] == '\n' || db->err[n - 1] == ' ')) db->err[--n] = 0;
}

/* Map a driver failure to a status and record the detail. */
static ns_status sqlite_fail(ns_db *db, int rc, const char *what) {
  set_err(db, sqlite3_errmsg(db->sq));
  ns_status code = NS_ERR_DB;
  int prim = rc & 0xff;
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) code = NS_ERR_EXISTS;
  else if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) code = NS_ERR_BUSY;
  else if (prim == SQLITE_NOMEM) code = NS_ERR_NOMEM;
  else if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB) code = NS_ERR_CORRUPT;
  else if (prim == SQLITE_CANTOPEN || prim == SQLITE_IOERR || prim == SQLITE_READONLY || prim == SQLITE_FULL)
    code = NS_ERR_IO;
  return ns_errorf(code, "%s: %s: %s", db->target, what, db->err);
}

static ns_status pg_fail(ns_db *db, const PGresult *res, const char *what) {
  const char *msg = res ? PQresultErrorMessage(res) : NULL;
  if (!msg || !*msg) msg = PQerrorMessage(db->pg);
  set_err(db, msg);
  ns_status code = NS_ERR_DB;
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (state) {
    if (!strcmp(state, "23505")) code = NS_ERR_EXISTS;
    else if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03")) code = NS_ERR_BUSY;
    else if (!strncmp(state, "08", 2) || !strncmp(state, "57P0", 4)) code = NS_ERR_NET; /* connection lost / server shutting down */
  } else if (PQstatus(db->pg) != CONNECTION_OK) {
    code = NS_ERR_NET;
  }
  if (db->depth > 0) db->pg_aborted = true;
  return ns_errorf(code, "%s: %s: %s", db->target, what, db->err);
}

/* "postgresql://u:secret@h/db" -> "postgresql://u:***@h/db"; "password=x" -> "password=***". */
static char *mask_uri(const char *uri) {
  size_t n = strlen(uri);
  char *out = malloc(n + 8);
  if (!out) return NULL;
  strcpy(out, uri);
  const char *scheme = strstr(uri, "://");
  if (scheme) {
    const char *auth = scheme + 3;
    const char *at = strchr(auth, '@');
    const char *slash = strchr(auth, '/');
    const char *colon = strchr(auth, ':');
    if (at && (!slash || at < slash) && colon && colon < at) {
      size_t pre = (size_t)(colon + 1 - uri);
      snprintf(out + pre, n + 8 - pre, "***%s", at);
    }
    return out;
  }
  char *p = strstr(out, "password=");
  if (p) {
    char *v = p + 9, *end = v;
    while (*end && *end != ' ') end++;
    memmove(v + 3, end, strlen(end) + 1);
    memcpy(v, "***", 3);
  }
  return out;
}

static void pg_notice(void *arg, const char *msg) {
  (void)arg;
  ns_debug("postgres: %s", msg);
}

static ns_status open_sqlite(ns_db *db, const char *path) {
  if (!*path) return ns_errorf(NS_ERR_INVAL, "%s: empty SQLite path", db->target);
  int rc = sqlite3_open_v2(path, &db->sq, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    const char *m = db->sq ? sqlite3_errmsg(db->sq) : sqlite3_errstr(rc);
    set_err(db, m);
    return ns_errorf(NS_ERR_IO, "cannot open SQLite database '%s': %s", path, db->err);
  }
  sqlite3_extended_result_codes(db->sq, 1);
  sqlite3_busy_timeout(db->sq, 10000);
  /* journal_mode=WAL writes the header: an unwritable path fails here, at open.
   * Switching modes ignores busy_timeout, so a second process opening a new
   * file at the same moment retries here for up to the same 10 s. */
  char *em = NULL;
  for (int tries = 0;; tries++) {
    rc = sqlite3_exec(db->sq,
                      "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                      " PRAGMA temp_store=MEMORY;",
                      NULL, NULL, &em);
    if ((rc & 0xff) != SQLITE_BUSY || tries >= 1000) break;
    sqlite3_free(em);
    em = NULL;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (rc != SQLITE_OK) {
    set_err(db, em ? em : sqlite3_errstr(rc));
    sqlite3_free(em);
    return ns_errorf((rc & 0xff) == SQLITE_NOTADB ? NS_ERR_CORRUPT : NS_ERR_IO,
                     "cannot open SQLite database '%s': %s", path, db->err);
  }
  return NS_OK;
}

static ns_status open_pg(ns_db *db, const char *conninfo) {
  /* Syntax first: a malformed URI is the caller's mistake, not a network error. */
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  if (!opts) {
    set_err(db, perr ? perr : "out of memory");
    PQfreemem(perr);
    return ns_errorf(NS_ERR_INVAL, "invalid PostgreSQL URI '%s': %s", db->target, db->err);
  }
  PQconninfoFree(opts);
  /* Defaults first, so the URI's own settings win (expand_dbname). */
  const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
  const char *vals[] = {"10", "nsentry", conninfo, NULL};
  db->pg = PQconnectdbParams(keys, vals, 1);
  if (!db->pg) return ns_errorf(NS_ERR_NOMEM, "%s: cannot allocate PostgreSQL connection", db->target);
  if (PQstatus(db->pg) != CONNECTION_OK) {
    set_err(db, PQerrorMessage(db->pg));
    return ns_errorf(NS_ERR_NET, "cannot connect to PostgreSQL '%s': %s", db->target, db->err);
  }
  PQsetNoticeProcessor(db->pg, pg_notice, NULL);
  PGresult *r = PQexec(db->pg, "SET client_min_messages = warning");
  ns_status st = PQresultStatus(r) == PGRES_COMMAND_OK ? NS_OK : pg_fail(db, r, "session setup");
  PQclear(r);
  return st;
}

ns_status ns_db_open(const char *uri, ns_db **out) {
  *out = NULL;
  if (!uri || !*uri) return ns_errorf(NS_ERR_INVAL, "empty database URI: expected sqlite:/path or postgresql://...");
  ns_db *db = calloc(1, sizeof *db);
  if (!db) return NS_ERR_NOMEM;
  if (!(db->target = mask_uri(uri))) {
    free(db);
    return NS_ERR_NOMEM;
  }
  ns_status st;
  if (!strncmp(uri, "sqlite:", 7)) {
    db->kind = NS_DB_SQLITE;
    st = open_sqlite(db, uri + 7);
  } else if (!strncmp(uri, "postgresql://", 13) || !strncmp(uri, "postgres://", 11) || strchr(uri, '=')) {
    db->kind = NS_DB_POSTGRES;
    st = open_pg(db, uri);
  } else {
    st = ns_errorf(NS_ERR_INVAL,
                   "unsupported database URI '%s': expected sqlite:/path/file.db, sqlite::memory:, "
                   "postgresql://user@host:port/dbname or a libpq conninfo",
                   db->target);
  }
  if (st) {
    ns_db_close(db);
    return st;
  }
  *out = db;
  return NS_OK;
}

static void stmt_destroy(ns_db_stmt *st);

void ns_db_close(ns_db *db) {
  if (!db) return;
  for (int i = 0; i < db->nidle; i++) stmt_destroy(db->idle[i].st);
  db->nidle = 0;
  if (db->sq) sqlite3_close_v2(db->sq);
  if (db->pg) PQfinish(db->pg);
  free(db->target);
  free(db);
}

ns_db_kind ns_db_kind_of(const ns_db *db) { return db->kind; }

const char *ns_db_errmsg(const ns_db *db) { return db ? db->err : ""; }

int ns_db_tx_depth(const ns_db *db) { return db->depth; }

uint64_t ns_db_rollback_count(const ns_db *db) { return db->rollbacks; }

ns_status ns_db_exec(ns_db *db, const char *sql) {
  if (db->kind == NS_DB_SQLITE) {
    char *em = NULL;
    int rc = sqlite3_exec(db->sq, sql, NULL, NULL, &em);
    if (rc != SQLITE_OK) {
      sqlite3_free(em);
      return sqlite_fail(db, sqlite3_extended_errcode(db->sq), "exec");
    }
    return NS_OK;
  }
  PGresult *r = PQexec(db->pg, sql);
  ExecStatusType es = PQresultStatus(r);
  ns_status st = (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK || es == PGRES_EMPTY_QUERY)
                     ? NS_OK
                     : pg_fail(db, r, "exec");
  PQclear(r);
  return st;
}

/* Transaction control without touching the pg_aborted flag logic of ns_db_exec. */
static ns_status tx_exec(ns_db *db, const char *sql, const char **tag_out) {
  if (db->kind == NS_DB_SQLITE) return ns_db_exec(db, sql);
  PGresult *r = PQexec(db->pg, sql);
  ns_status st = PQresultStatus(r) == PGRES_COMMAND_OK ? NS_OK : pg_fail(db, r, sql);
  static __thread char tag[32];
  if (tag_out) {
    snprintf(tag, sizeof tag, "%s", PQcmdStatus(r));
    *tag_out = tag;
  }
  PQclear(r);
  return st;
}

ns_status ns_db_begin(ns_db *db) {
  char sql[48];
  if (db->depth == 0)
    /* IMMEDIATE takes the write lock up front: two SQLite writers then wait on
     * busy_timeout instead of failing on a read-to-write upgrade. */
    snprintf(sql, sizeof sql, "%s", db->kind == NS_DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN");
  else
    snprintf(sql, sizeof sql, "SAVEPOINT ns_sp%d", db->depth);
  ns_status st = tx_exec(db, sql, NULL);
  if (st) return st;
  if (db->depth == 0) db->pg_aborted = false;
  db->depth++;
  return NS_OK;
}

static bool driver_in_tx(ns_db *db) {
  if (db->kind == NS_DB_SQLITE) return !sqlite3_get_autocommit(db->sq);
  return PQtransactionStatus(db->pg) != PQTRANS_IDLE;
}

ns_status ns_db_commit(ns_db *db) {
  if (db->depth <= 0) return ns_errorf(NS_ERR_STATE, "%s: commit without a transaction", db->target);
  char sql[48];
  ns_status st;
  if (db->depth > 1) {
    snprintf(sql, sizeof sql, "RELEASE SAVEPOINT ns_sp%d", db->depth - 1);
    st = tx_exec(db, sql, NULL);
    if (!st) db->depth--;
    return st;
  }
  const char *tag = NULL;
  st = tx_exec(db, "COMMIT", &tag);
  /* PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, not an error. */
  if (!st && db->kind == NS_DB_POSTGRES && tag && !strcmp(tag, "ROLLBACK")) {
    set_err(db, "transaction was rolled back because a statement in it failed");
    st = ns_errorf(NS_ERR_DB, "%s: commit: %s", db->target, db->err);
  }
  if (st) db->rollbacks++; /* conservatively: callers' caches must not trust this transaction */
  if (!st || !driver_in_tx(db)) {
    db->depth = 0;
    db->pg_aborted = false;
  }
  return st;
}

ns_status ns_db_rollback(ns_db *db) {
  if (db->depth <= 0) return ns_errorf(NS_ERR_STATE, "%s: rollback without a transaction", db->target);
  char sql[96];
  ns_status st;
  db->rollbacks++;
  if (db->depth > 1) {
    snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT ns_sp%d; RELEASE SAVEPOINT ns_sp%d", db->depth - 1,
             db->depth - 1);
    st = db->kind == NS_DB_SQLITE ? ns_db_exec(db, sql) : tx_exec(db, sql, NULL);
    if (!st) {
      db->depth--;
      /* Rolling back to a savepoint clears an aborted PostgreSQL transaction. */
      db->pg_aborted = false;
    }
    return st;
  }
  st = tx_exec(db, "ROLLBACK", NULL);
  if (!st || !driver_in_tx(db)) {
    db->depth = 0;
    db->pg_aborted = false;
  }
  return st;
}

static uint64_t sql_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* A statement prepared earlier from the same text and since finalized, or NULL. */
static ns_db_stmt *idle_take(ns_db *db, const char *sql, uint64_t h) {
  for (int i = 0; i < db->nidle; i++) {
    ns_db_stmt *st = db->idle[i].st;
    if (st->hash == h && !strcmp(st->sql, sql)) {
      db->idle[i] = db->idle[--db->nidle];
      return st;
    }
  }
  return NULL;
}

/* ?N -> $N (and bare ? -> next number), outside quotes and comments. */
static char *pg_translate(const char *sql, int *nparams) {
  size_t n = strlen(sql);
  char *out = malloc(n * 4 + 16);
  if (!out) return NULL;
  char *o = out;
  int seq = 0, maxp = 0;
  for (const char *p = sql; *p;) {
    if (*p == '\'' || *p == '"') {
      char q = *p;
      *o++ = *p++;
      while (*p) {
        if (*p == q) {
          if (p[1] == q) {
            *o++ = *p++;
            *o++ = *p++;
            continue;
          }
          *o++ = *p++;
          break;
        }
        *o++ = *p++;
      }
    } else if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n') *o++ = *p++;
    } else if (*p == '?') {
      p++;
      int k = 0;
      if (*p >= '0' && *p <= '9') {
        while (*p >= '0' && *p <= '9') k = k * 10 + (*p++ - '0');
      } else {
        k = ++seq;
      }
      if (k > maxp) maxp = k;
      o += sprintf(o, "$%d", k);
    } else {
      *o++ = *p++;
    }
  }
  *o = 0;
  *nparams = maxp;
  return out;
}

ns_status ns_db_prepare(ns_db *db, const char *sql, ns_db_stmt **out) {
  *out = NULL;
  uint64_t h = sql_hash(sql);
  ns_db_stmt *st = idle_take(db, sql, h);
  if (st) {
    *out = st;
    return NS_OK;
  }
  st = calloc(1, sizeof *st);
  if (!st) return NS_ERR_NOMEM;
  st->db = db;
  st->hash = h;
  if (db->kind == NS_DB_SQLITE) {
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st->sq, &tail);
    if (rc != SQLITE_OK) {
      free(st);
      return sqlite_fail(db, sqlite3_extended_errcode(db->sq), "prepare");
    }
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';')) tail++;
    if (!st->sq || (tail && *tail)) {
      /* PostgreSQL refuses these too; say so on both. */
      stmt_destroy(st);
      return ns_errorf(NS_ERR_INVAL, "%s: prepare: %s", db->target,
                       tail && *tail ? "more than one statement (use ns_db_exec)" : "no statement");
    }
    st->sql = strdup(sql); /* NULL (no reuse) if out of memory */
    *out = st;
    return NS_OK;
  }
  int np = 0;
  char *q = pg_translate(sql, &np);
  if (!q) {
    free(st);
    return NS_ERR_NOMEM;
  }
  snprintf(st->name, sizeof st->name, "ns_st%lu", ++db->next_stmt);
  PGresult *r = PQprepare(db->pg, st->name, q, 0, NULL);
  free(q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    ns_status e = pg_fail(db, r, "prepare");
    PQclear(r);
    free(st);
    return e;
  }
  PQclear(r);
  r = PQdescribePrepared(db->pg, st->name);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    ns_status e = pg_fail(db, r, "describe");
    PQclear(r);
    st->nparams = 0;
    stmt_destroy(st);
    return e;
  }
  st->binary = true;
  for (int c = 0; c < PQnfields(r); c++) {
    switch (PQftype(r, c)) {
      case PG_BOOL_OID: case PG_BYTEA_OID: case PG_NAME_OID: case PG_INT8_OID: case PG_INT2_OID:
      case PG_INT4_OID: case PG_TEXT_OID: case PG_OID_OID: case PG_FLOAT4_OID: case PG_FLOAT8_OID:
      case PG_BPCHAR_OID: case PG_VARCHAR_OID:
        break;
      default:
        st->binary = false;
    }
  }
  PQclear(r);
  st->nparams = np;
  if (np > 0) {
    st->vals = calloc((size_t)np, sizeof *st->vals);
    st->lens = calloc((size_t)np, sizeof *st->lens);
    st->fmts = calloc((size_t)np, sizeof *st->fmts);
    if (!st->vals || !st->lens || !st->fmts) {
      stmt_destroy(st);
      return NS_ERR_NOMEM;
    }
  }
  st->sql = strdup(sql);
  *out = st;
  return NS_OK;
}

static void pg_clear_row(ns_db_stmt *st) {
  for (int c = 0; c < st->ncols_cached; c++) free(st->blobs[c]);
  free(st->blobs);
  free(st->blob_lens);
  st->blobs = NULL;
  st->blob_lens = NULL;
  st->ncols_cached = 0;
}

static void pg_clear_result(ns_db_stmt *st) {
  pg_clear_row(st);
  PQclear(st->res);
  st->res = NULL;
  st->row = st->nrows = 0;
}

void ns_db_finalize(ns_db_stmt *st) {
  if (!st) return;
  ns_db *db = st->db;
  bool reusable = st->sql && (db->kind == NS_DB_SQLITE || PQstatus(db->pg) == CONNECTION_OK);
  if (!reusable) {
    stmt_destroy(st);
    return;
  }
  ns_db_reset(st);
  if (db->nidle == NS_DB_IDLE_STMTS) {
    int lru = 0;
    for (int i = 1; i < db->nidle; i++)
      if (db->idle[i].used < db->idle[lru].used) lru = i;
    stmt_destroy(db->idle[lru].st);
    db->idle[lru] = db->idle[--db->nidle];
  }
  db->idle[db->nidle].st = st;
  db->idle[db->nidle].used = ++db->tick;
  db->nidle++;
}

static void stmt_destroy(ns_db_stmt *st) {
  if (!st) return;
  free(st->sql);
  if (st->sq) sqlite3_finalize(st->sq);
  if (st->db->kind == NS_DB_POSTGRES) {
    pg_clear_result(st);
    if (st->name[0] && PQstatus(st->db->pg) == CONNECTION_OK) {
      char sql[64];
      snprintf(sql, sizeof sql, "DEALLOCATE %s", st->name);
      /* In an aborted transaction this fails; the name is unique, so a leftover is harmless. */
      PQclear(PQexec(st->db->pg, sql));
    }
    for (int i = 0; st->vals && i < st->nparams; i++) free(st->vals[i]);
    free(st->vals);
    free(st->lens);
    free(st->fmts);
  }
  free(st);
}

static ns_status bind_check(ns_db_stmt *st, int idx) {
  int n = st->sq ? sqlite3_bind_parameter_count(st->sq) : st->nparams;
  if (idx < 1 || idx > n)
    return ns_errorf(NS_ERR_RANGE, "%s: parameter %d out of range (statement has %d)", st->db->target, idx, n);
  return NS_OK;
}

static ns_status pg_bind(ns_db_stmt *st, int idx, const void *p, size_t n, int fmt) {
  ns_status e = bind_check(st, idx);
  if (e) return e;
  if (n > INT32_MAX) return ns_errorf(NS_ERR_LIMIT, "%s: parameter %d too large (%zu bytes)", st->db->target, idx, n);
  char *v = NULL;
  if (p) {
    v = malloc(n ? n + 1 : 1);
    if (!v) return NS_ERR_NOMEM;
    memcpy(v, p, n);
    v[n] = 0;
  }
  free(st->vals[idx - 1]);
  st->vals[idx - 1] = v;
  st->lens[idx - 1] = (int)n;
  st->fmts[idx - 1] = fmt;
  return NS_OK;
}

static ns_status sq_bind_rc(ns_db_stmt *st, int rc) {
  if (rc == SQLITE_RANGE)
    return ns_errorf(NS_ERR_RANGE, "%s: parameter out of range (statement has %d)", st->db->target,
                     sqlite3_bind_parameter_count(st->sq));
  return rc == SQLITE_OK ? NS_OK : sqlite_fail(st->db, rc, "bind");
}

ns_status ns_db_bind_null(ns_db_stmt *st, int idx) {
  if (st->sq) return sq_bind_rc(st, sqlite3_bind_null(st->sq, idx));
  return pg_bind(st, idx, NULL, 0, 0);
}

ns_status ns_db_bind_int64(ns_db_stmt *st, int idx, int64_t v) {
  if (st->sq) return sq_bind_rc(st, sqlite3_bind_int64(st->sq, idx, v));
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
  return pg_bind(st, idx, buf, (size_t)n, 0);
}

ns_status ns_db_bind_double(ns_db_stmt *st, int idx, double v) {
  if (st->sq) return sq_bind_rc(st, sqlite3_bind_double(st->sq, idx, v));
  char buf[40];
  int n;
  if (isnan(v)) n = snprintf(buf, sizeof buf, "NaN");
  else if (isinf(v)) n = snprintf(buf, sizeof buf, "%sInfinity", v < 0 ? "-" : "");
  else n = snprintf(buf, sizeof buf, "%.17g", v);
  return pg_bind(st, idx, buf, (size_t)n, 0);
}

ns_status ns_db_bind_text(ns_db_stmt *st, int idx, const char *v) {
  if (st->sq)
    return sq_bind_rc(st, v ? sqlite3_bind_text(st->sq, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st->sq, idx));
  return pg_bind(st, idx, v, v ? strlen(v) : 0, 0);
}

ns_status ns_db_bind_blob(ns_db_stmt *st, int idx, const void *p, size_t n) {
  if (st->sq) {
    /* A zero-length blob must stay a blob, not NULL. */
    static const char empty[1];
    return sq_bind_rc(st, sqlite3_bind_blob64(st->sq, idx, p ? p : empty, n, SQLITE_TRANSIENT));
  }
  static const char empty[1];
  return pg_bind(st, idx, p ? p : empty, n, 1);
}

ns_status ns_db_step(ns_db_stmt *st, bool *row) {
  *row = false;
  ns_db *db = st->db;
  if (st->sq) {
    if (st->done) return NS_OK;
    int rc = sqlite3_step(st->sq);
    if (rc == SQLITE_ROW) {
      *row = true;
      return NS_OK;
    }
    st->done = true;
    if (rc == SQLITE_DONE) {
      st->changes = sqlite3_changes64(db->sq);
      return NS_OK;
    }
    ns_status e = sqlite_fail(db, sqlite3_extended_errcode(db->sq), "step");
    sqlite3_reset(st->sq);
    return e;
  }
  if (!st->executed) {
    st->executed = true;
    st->res = PQexecPrepared(db->pg, st->name, st->nparams, (const char *const *)st->vals, st->lens, st->fmts,
                             st->binary ? 1 : 0);
    ExecStatusType es = PQresultStatus(st->res);
    if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
      ns_status e = pg_fail(db, st->res, "step");
      pg_clear_result(st);
      st->done = true;
      return e;
    }
    const char *ct = PQcmdTuples(st->res);
    st->changes = ct && *ct ? strtoll(ct, NULL, 10) : 0;
    st->nrows = es == PGRES_TUPLES_OK ? PQntuples(st->res) : 0;
    st->row = -1;
  }
  pg_clear_row(st);
  if (st->done || st->row + 1 >= st->nrows) {
    st->done = true;
    return NS_OK;
  }
  st->row++;
  *row = true;
  return NS_OK;
}

ns_status ns_db_reset(ns_db_stmt *st) {
  st->done = false;
  st->executed = false;
  st->changes = 0;
  if (st->sq) {
    sqlite3_reset(st->sq);
    sqlite3_clear_bindings(st->sq);
    return NS_OK;
  }
  pg_clear_result(st);
  for (int i = 0; i < st->nparams; i++) {
    free(st->vals[i]);
    st->vals[i] = NULL;
    st->lens[i] = 0;
    st->fmts[i] = 0;
  }
  return NS_OK;
}

int64_t ns_db_changes(ns_db_stmt *st) {
  if (st->sq && !st->done) return sqlite3_changes64(st->db->sq);
  return st->changes;
}

int ns_db_column_count(ns_db_stmt *st) {
  if (st->sq) return sqlite3_column_count(st->sq);
  if (st->res) return PQnfields(st->res);
  /* Not executed yet: ask the server for the statement's shape. */
  PGresult *d = PQdescribePrepared(st->db->pg, st->name);
  int n = PQresultStatus(d) == PGRES_COMMAND_OK ? PQnfields(d) : 0;
  PQclear(d);
  return n;
}

static bool pg_has(ns_db_stmt *st, int col) {
  return st->res && st->row >= 0 && st->row < st->nrows && col >= 0 && col < PQnfields(st->res);
}

bool ns_db_col_is_null(ns_db_stmt *st, int col) {
  if (st->sq) return sqlite3_column_type(st->sq, col) == SQLITE_NULL;
  return !pg_has(st, col) || PQgetisnull(st->res, st->row, col);
}

static uint64_t be_u64(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | u[i];
  return v;
}

static uint32_t be_u32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static bool pg_is_text_type(unsigned oid) {
  return oid == PG_TEXT_OID || oid == PG_VARCHAR_OID || oid == PG_BPCHAR_OID || oid == PG_NAME_OID;
}

/* Binary-mode numeric value of a column: *is_int says which of iv/dv holds it. */
static void pg_bin_number(ns_db_stmt *st, int col, int64_t *iv, double *dv, bool *is_int) {
  const char *v = PQgetvalue(st->res, st->row, col);
  int len = PQgetlength(st->res, st->row, col);
  *iv = 0, *dv = 0, *is_int = true;
  switch (PQftype(st->res, col)) {
    case PG_INT8_OID: if (len == 8) *iv = (int64_t)be_u64(v); return;
    case PG_INT4_OID: if (len == 4) *iv = (int32_t)be_u32(v); return;
    case PG_OID_OID: if (len == 4) *iv = (int64_t)be_u32(v); return;
    case PG_INT2_OID: if (len == 2) *iv = (int16_t)((unsigned char)v[0] << 8 | (unsigned char)v[1]); return;
    case PG_BOOL_OID: *iv = len > 0 && v[0]; return;
    case PG_FLOAT8_OID: {
      uint64_t b = len == 8 ? be_u64(v) : 0;
      memcpy(dv, &b, 8);
      *is_int = false;
      return;
    }
    case PG_FLOAT4_OID: {
      uint32_t b = len == 4 ? be_u32(v) : 0;
      float f;
      memcpy(&f, &b, 4);
      *dv = f;
      *is_int = false;
      return;
    }
    default: { /* text-like */
      char *end;
      *iv = strtoll(v, &end, 10);
      if (*end) *dv = strtod(v, NULL), *is_int = false;
    }
  }
}

int64_t ns_db_col_int64(ns_db_stmt *st, int col) {
  if (st->sq) return sqlite3_column_int64(st->sq, col);
  if (ns_db_col_is_null(st, col)) return 0;
  if (st->binary) {
    int64_t iv;
    double dv;
    bool is_int;
    pg_bin_number(st, col, &iv, &dv, &is_int);
    return is_int ? iv : (int64_t)dv;
  }
  const char *v = PQgetvalue(st->res, st->row, col);
  if (PQftype(st->res, col) == PG_BOOL_OID) return v[0] == 't';
  char *end;
  long long r = strtoll(v, &end, 10);
  if (*end == '.' || *end == 'e' || *end == 'E') r = (long long)strtod(v, NULL);
  return r;
}

double ns_db_col_double(ns_db_stmt *st, int col) {
  if (st->sq) return sqlite3_column_double(st->sq, col);
  if (ns_db_col_is_null(st, col)) return 0.0;
  if (st->binary) {
    int64_t iv;
    double dv;
    bool is_int;
    pg_bin_number(st, col, &iv, &dv, &is_int);
    return is_int ? (double)iv : dv;
  }
  const char *v = PQgetvalue(st->res, st->row, col);
  if (!strcmp(v, "NaN")) return NAN;
  if (!strcmp(v, "Infinity")) return INFINITY;
  if (!strcmp(v, "-Infinity")) return -INFINITY;
  return strtod(v, NULL);
}

static bool pg_row_cache(ns_db_stmt *st) {
  if (st->blobs) return true;
  int nf = PQnfields(st->res);
  st->blobs = calloc((size_t)nf, sizeof *st->blobs);
  st->blob_lens = calloc((size_t)nf, sizeof *st->blob_lens);
  if (!st->blobs || !st->blob_lens) {
    pg_clear_row(st);
    return false;
  }
  st->ncols_cached = nf;
  return true;
}

const char *ns_db_col_text(ns_db_stmt *st, int col) {
  if (st->sq) return (const char *)sqlite3_column_text(st->sq, col);
  if (ns_db_col_is_null(st, col)) return NULL;
  const char *v = PQgetvalue(st->res, st->row, col);
  unsigned oid = PQftype(st->res, col);
  /* libpq NUL-terminates every value, so binary text (and bytea) reads as is. */
  if (!st->binary || pg_is_text_type(oid) || oid == PG_BYTEA_OID) return v;
  if (!pg_row_cache(st)) return NULL;
  if (!st->blobs[col]) {
    char buf[64];
    int64_t iv;
    double dv;
    bool is_int;
    pg_bin_number(st, col, &iv, &dv, &is_int);
    if (oid == PG_BOOL_OID) snprintf(buf, sizeof buf, "%s", iv ? "t" : "f");
    else if (is_int) snprintf(buf, sizeof buf, "%lld", (long long)iv);
    else snprintf(buf, sizeof buf, "%.17g", dv);
    st->blobs[col] = (unsigned char *)strdup(buf);
  }
  return (const char *)st->blobs[col];
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 0;
}

const void *ns_db_col_blob(ns_db_stmt *st, int col, size_t *n) {
  *n = 0;
  if (st->sq) {
    const void *p = sqlite3_column_blob(st->sq, col);
    *n = (size_t)sqlite3_column_bytes(st->sq, col);
    return p;
  }
  if (ns_db_col_is_null(st, col)) return NULL;
  const char *v = PQgetvalue(st->res, st->row, col);
  size_t len = (size_t)PQgetlength(st->res, st->row, col);
  if (st->binary || PQftype(st->res, col) != PG_BYTEA_OID) {
    *n = len;
    return v;
  }
  if (!pg_row_cache(st)) return NULL;
  if (st->blobs[col]) {
    *n = st->blob_lens[col];
    return st->blobs[col];
  }
  /* bytea_output=hex is the server default since 9.0: "\x0a1b..." */
  if (len < 2 || v[0] != '\\' || v[1] != 'x') {
    size_t un = 0;
    unsigned char *u = PQunescapeBytea((const unsigned char *)v, &un);
    if (!u) return NULL;
    unsigned char *c = malloc(un ? un : 1);
    if (c) memcpy(c, u, un);
    PQfreemem(u);
    st->blobs[col] = c;
    st->blob_lens[col] = un;
    *n = c ? un : 0;
    return c;
  }
  size_t bn = (len - 2) / 2;
  unsigned char *b = malloc(bn ? bn : 1);
  if (!b) return NULL;
  const char *h = v + 2;
  for (size_t i = 0; i < bn; i++) {
    int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
    b[i] = (unsigned char)((hi << 4) | lo);
  }
  st->blobs[col] = b;
  st->blob_lens[col] = bn;
  *n = bn;
  return b;
}
