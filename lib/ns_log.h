/* Logging: every line starts with "nsentry:" and goes to stderr (default)
 * or syslog. Thread-safe; one line per call. */
#ifndef NS_LOG_H
#define NS_LOG_H
#include <stdarg.h>
#include <stdbool.h>
#include "ns_api.h"

typedef enum { NS_LOG_ERROR = 0, NS_LOG_WARN, NS_LOG_INFO, NS_LOG_DEBUG } ns_log_level;

NS_API void ns_log_set_level(ns_log_level lvl);
NS_API ns_log_level ns_log_get_level(void);
/* Parse "error|warn|info|debug"; returns false if unknown. */
NS_API bool ns_log_parse_level(const char *s, ns_log_level *out);
/* ident: component name shown after the prefix (e.g. "nsentryd"); NULL keeps it. */
NS_API void ns_log_set_ident(const char *ident);
NS_API void ns_log_use_syslog(bool on);
NS_API void ns_log(ns_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
NS_API void ns_vlog(ns_log_level lvl, const char *fmt, va_list ap);

#define ns_error(...) ns_log(NS_LOG_ERROR, __VA_ARGS__)
#define ns_warn(...) ns_log(NS_LOG_WARN, __VA_ARGS__)
#define ns_info(...) ns_log(NS_LOG_INFO, __VA_ARGS__)
#define ns_debug(...) ns_log(NS_LOG_DEBUG, __VA_ARGS__)

#endif
