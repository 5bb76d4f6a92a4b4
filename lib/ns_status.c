#include "ns_status.h"
#include <stdio.h>
#include <string.h>

static const char *const messages[] = {
#define NS_X_MSG(code, msg) msg,
    NS_STATUS_TABLE(NS_X_MSG)
#undef NS_X_MSG
};
static const char *const names[] = {
#define NS_X_NAME(code, msg) #code,
    NS_STATUS_TABLE(NS_X_NAME)
#undef NS_X_NAME
};

static _Thread_local char detail[1024];
static _Thread_local char full[1200];

const char *ns_strerror(ns_status s) {
  if ((unsigned)s >= NS_STATUS_COUNT_) return "unknown status";
  return messages[s];
}

const char *ns_status_name(ns_status s) {
  if ((unsigned)s >= NS_STATUS_COUNT_) return "NS_UNKNOWN";
  return names[s];
}

ns_status ns_verrorf(ns_status code, const char *fmt, va_list ap) {
  /* Via a scratch buffer: callers often wrap the previous detail
   * (ns_errorf(st, "%s: %s", path, ns_err_detail())). */
  char tmp[sizeof detail];
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  memcpy(detail, tmp, sizeof detail);
  return code;
}

ns_status ns_errorf(ns_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ns_verrorf(code, fmt, ap);
  va_end(ap);
  return code;
}

const char *ns_err_detail(void) { return detail; }
void ns_err_clear(void) { detail[0] = '\0'; }

const char *ns_err_message(ns_status s) {
  if (detail[0])
    snprintf(full, sizeof full, "%s: %s", ns_strerror(s), detail);
  else
    snprintf(full, sizeof full, "%s", ns_strerror(s));
  return full;
}
