/* One table of status codes for the whole project. Library and plugin code
 * never exits; it returns an ns_status, and may attach a detail message
 * (file, line, column, offending value) with ns_errorf(). */
#ifndef NS_STATUS_H
#define NS_STATUS_H
#include <stdarg.h>
#include "ns_api.h"

#define NS_STATUS_TABLE(X)                                                   \
  X(NS_OK, "ok")                                                             \
  X(NS_ERR_NOMEM, "out of memory")                                           \
  X(NS_ERR_INVAL, "invalid argument")                                        \
  X(NS_ERR_RANGE, "value out of range")                                      \
  X(NS_ERR_IO, "I/O error")                                                  \
  X(NS_ERR_PARSE, "parse error")                                             \
  X(NS_ERR_FORMAT, "unsupported or malformed format")                        \
  X(NS_ERR_NOTFOUND, "not found")                                            \
  X(NS_ERR_EXISTS, "already exists")                                         \
  X(NS_ERR_DB, "database error")                                             \
  X(NS_ERR_SCHEMA, "schema or metric-schema mismatch")                       \
  X(NS_ERR_VERSION, "version mismatch")                                      \
  X(NS_ERR_CORRUPT, "corrupt data")                                          \
  X(NS_ERR_TOO_SHORT, "series too short")                                    \
  X(NS_ERR_NONFINITE, "non-finite value (NaN or Inf)")                       \
  X(NS_ERR_EMPTY, "no data")                                                 \
  X(NS_ERR_AUTH, "authentication failed")                                    \
  X(NS_ERR_FORBIDDEN, "not authorised")                                      \
  X(NS_ERR_NET, "network error")                                             \
  X(NS_ERR_TIMEOUT, "timed out")                                             \
  X(NS_ERR_BUSY, "resource busy")                                            \
  X(NS_ERR_LIMIT, "limit exceeded")                                          \
  X(NS_ERR_UNSUPPORTED, "not supported")                                     \
  X(NS_ERR_STATE, "invalid state")                                           \
  X(NS_ERR_SLURM, "Slurm error")                                             \
  X(NS_ERR_INTERNAL, "internal error")

typedef enum {
#define NS_X_ENUM(code, msg) code,
  NS_STATUS_TABLE(NS_X_ENUM)
#undef NS_X_ENUM
  NS_STATUS_COUNT_
} ns_status;

/* Short message for a code; never NULL. */
NS_API const char *ns_strerror(ns_status s);
/* Symbolic name, e.g. "NS_ERR_PARSE"; never NULL. */
NS_API const char *ns_status_name(ns_status s);

/* Record a thread-local detail message for the error being returned and
 * return `code`, so call sites read `return ns_errorf(NS_ERR_PARSE, "%s:%d:%d: ...", ...)`. */
NS_API ns_status ns_errorf(ns_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
NS_API ns_status ns_verrorf(ns_status code, const char *fmt, va_list ap);
/* The detail recorded last on this thread ("" if none). */
NS_API const char *ns_err_detail(void);
NS_API void ns_err_clear(void);
/* "<strerror>: <detail>" or just "<strerror>"; thread-local buffer. */
NS_API const char *ns_err_message(ns_status s);

#endif
