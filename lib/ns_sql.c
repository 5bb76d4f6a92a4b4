#include "ns_sql.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Arbitrary constant key for pg_advisory_lock: "nsentry" schema migrations. */
#define NS_SQL_LOCK_KEY 0x6e73656e747279LL

const ns_sql_migration *ns_sql_migrations(ns_db_kind kind, size_t *n) {
  if (kind == NS_DB_POSTGRES) {
    *n = ns_sql_postgres_count;
    return ns_sql_postgres_migrations;
  }
  *n = ns_sql_sqlite_count;
  return ns_sql_sqlite_migrations;
}

int ns_sql_latest_version(void) {
  return ns_sql_sqlite_count ? ns_sql_sqlite_migrations[ns_sql_sqlite_count - 1].version : 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *create_version_table =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)";

static ns_status query_int(ns_db *db, const char *sql, int *out) {
  ns_db_stmt *st = NULL;
  bool row = false;
  ns_status s = ns_db_prepare(db, sql, &st);
  if (!s) s = ns_db_step(st, &row);
  *out = (!s && row && !ns_db_col_is_null(st, 0)) ? (int)ns_db_col_int64(st, 0) : 0;
  ns_db_finalize(st);
  return s;
}

ns_status ns_sql_current_version(ns_db *db, int *out) {
  *out = 0;
  int exists = 0;
  ns_status s = query_int(db,
                          ns_db_kind_of(db) == NS_DB_SQLITE
                              ? "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_version'"
                              : "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename='schema_version'"
                                " AND schemaname=current_schema()",
                          &exists);
  if (s || !exists) return s;
  return query_int(db, "SELECT max(version) FROM schema_version", out);
}

static ns_status apply(ns_db *db, int target, int *out_version) {
  size_t n = 0;
  const ns_sql_migration *mig = ns_sql_migrations(ns_db_kind_of(db), &n);
  int latest = ns_sql_latest_version();
  if (target <= 0 || target > latest) target = latest;
  ns_status s = ns_db_begin(db);
  if (s) return s;
  int cur = 0;
  if ((s = ns_db_exec(db, create_version_table)) || (s = ns_sql_current_version(db, &cur))) goto fail;
  if (cur > latest) {
    s = ns_errorf(NS_ERR_VERSION,
                  "database schema version %d is newer than this nsentry supports (%d); upgrade nsentry",
                  cur, latest);
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    if (mig[i].version <= cur || mig[i].version > target) continue;
    if ((s = ns_db_exec(db, mig[i].sql))) {
      char detail[1200];
      snprintf(detail, sizeof detail, "%s", ns_err_detail());
      s = ns_errorf(s, "migration %s failed: %s", mig[i].name, detail);
      goto fail;
    }
    ns_db_stmt *st = NULL;
    bool row;
    if (!(s = ns_db_prepare(db, "INSERT INTO schema_version (version, name, applied_ms) VALUES (?1, ?2, ?3)", &st)) &&
        !(s = ns_db_bind_int64(st, 1, mig[i].version)) && !(s = ns_db_bind_text(st, 2, mig[i].name)) &&
        !(s = ns_db_bind_int64(st, 3, now_ms())))
      s = ns_db_step(st, &row);
    ns_db_finalize(st);
    if (s) goto fail;
    cur = mig[i].version;
  }
  if ((s = ns_db_commit(db))) return s;
  if (out_version) *out_version = cur;
  return NS_OK;
fail:
  ns_db_rollback(db);
  return s;
}

ns_status ns_sql_migrate(ns_db *db, int target, int *out_version) {
  if (out_version) *out_version = 0;
  if (ns_db_kind_of(db) == NS_DB_SQLITE) return apply(db, target, out_version);
  /* Two processes opening a fresh database at once: the second waits here,
   * then finds the schema in place. */
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", NS_SQL_LOCK_KEY);
  ns_status s = ns_db_exec(db, sql);
  if (s) return s;
  s = apply(db, target, out_version);
  snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)", NS_SQL_LOCK_KEY);
  char keep[1200];
  snprintf(keep, sizeof keep, "%s", ns_err_detail());
  ns_status u = ns_db_exec(db, sql);
  if (s) ns_errorf(s, "%s", keep);
  return s ? s : u;
}
