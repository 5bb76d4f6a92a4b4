/* Thin SQL driver over SQLite and PostgreSQL (libpq), so every table module
 * writes its queries once. Placeholders are written ?1, ?2, ... and become
 * $1, $2 on PostgreSQL. Dialect differences that cannot be hidden (upserts,
 * SKIP LOCKED) are checked with ns_db_kind_of(). */
#ifndef NS_DB_H
#define NS_DB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_status.h"

typedef enum { NS_DB_SQLITE, NS_DB_POSTGRES } ns_db_kind;
typedef struct ns_db ns_db;
typedef struct ns_db_stmt ns_db_stmt;

/* "sqlite:/path/file.db", "sqlite::memory:", or a libpq URI / conninfo
 * ("postgresql://...", "postgres://...", "host=... dbname=..."). */
NS_API ns_status ns_db_open(const char *uri, ns_db **out);
NS_API void ns_db_close(ns_db *db);
NS_API ns_db_kind ns_db_kind_of(const ns_db *db);
/* Run one or more statements without parameters or results. */
NS_API ns_status ns_db_exec(ns_db *db, const char *sql);
NS_API ns_status ns_db_begin(ns_db *db);
NS_API ns_status ns_db_commit(ns_db *db);
NS_API ns_status ns_db_rollback(ns_db *db);

NS_API ns_status ns_db_prepare(ns_db *db, const char *sql, ns_db_stmt **out);
NS_API void ns_db_finalize(ns_db_stmt *st);
/* Parameters are 1-based. Text and blobs are copied. */
NS_API ns_status ns_db_bind_null(ns_db_stmt *st, int idx);
NS_API ns_status ns_db_bind_int64(ns_db_stmt *st, int idx, int64_t v);
NS_API ns_status ns_db_bind_double(ns_db_stmt *st, int idx, double v);
NS_API ns_status ns_db_bind_text(ns_db_stmt *st, int idx, const char *v); /* NULL binds NULL */
NS_API ns_status ns_db_bind_blob(ns_db_stmt *st, int idx, const void *p, size_t n);
/* Executes on the first call; *row says whether a result row is available. */
NS_API ns_status ns_db_step(ns_db_stmt *st, bool *row);
/* Ready the statement to run again with new bindings. */
NS_API ns_status ns_db_reset(ns_db_stmt *st);
/* Rows changed by the last executed INSERT/UPDATE/DELETE. */
NS_API int64_t ns_db_changes(ns_db_stmt *st);

/* Columns are 0-based; valid until the next step/reset/finalize. */
NS_API int ns_db_column_count(ns_db_stmt *st);
NS_API bool ns_db_col_is_null(ns_db_stmt *st, int col);
NS_API int64_t ns_db_col_int64(ns_db_stmt *st, int col);
NS_API double ns_db_col_double(ns_db_stmt *st, int col);
NS_API const char *ns_db_col_text(ns_db_stmt *st, int col); /* NULL if SQL NULL */
NS_API const void *ns_db_col_blob(ns_db_stmt *st, int col, size_t *n);

/* Transaction nesting depth (0 = autocommit; >1 = inside savepoints). */
NS_API int ns_db_tx_depth(const ns_db *db);
/* Rollbacks (full or to a savepoint) so far on this connection: caches of rows
 * written inside a transaction compare it to know when to forget them. */
NS_API uint64_t ns_db_rollback_count(const ns_db *db);

/* Last driver error text (also put in ns_err_detail by failing calls). */
NS_API const char *ns_db_errmsg(const ns_db *db);

#endif
