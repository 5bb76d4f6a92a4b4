/* Schema migrations for both dialects. The numbered files under sql/sqlite/
 * and sql/postgres/ are embedded at build time (sql/ns_sql_embed.c); they are
 * applied in order, each pending set inside one transaction, and recorded in
 * schema_version. Both dialects always carry the same version numbers. */
#ifndef NS_SQL_H
#define NS_SQL_H
#include <stddef.h>
#include "ns_api.h"
#include "ns_db.h"
#include "ns_status.h"

typedef struct ns_sql_migration {
  int version;      /* from the file name prefix: 001_init.sql -> 1 */
  const char *name; /* file name */
  const char *sql;  /* the whole file */
} ns_sql_migration;

/* Generated tables (build/sql/ns_sql_migrations.c), sorted by version. */
extern const ns_sql_migration ns_sql_sqlite_migrations[];
extern const size_t ns_sql_sqlite_count;
extern const ns_sql_migration ns_sql_postgres_migrations[];
extern const size_t ns_sql_postgres_count;

NS_API const ns_sql_migration *ns_sql_migrations(ns_db_kind kind, size_t *n);
/* Highest version this build knows. */
NS_API int ns_sql_latest_version(void);
/* Version recorded in the database (0 = empty database). */
NS_API ns_status ns_sql_current_version(ns_db *db, int *out);
/* Brings the database to `target` (<= 0: latest). Refuses a database newer
 * than this build (NS_ERR_VERSION). PostgreSQL: serialised across processes
 * with an advisory lock; SQLite: by the write lock. *out_version may be NULL. */
NS_API ns_status ns_sql_migrate(ns_db *db, int target, int *out_version);

#endif
