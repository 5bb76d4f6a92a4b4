#include "ns_log.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

static ns_log_level level = NS_LOG_INFO;
static bool use_syslog = false;
static char ident[64] = "";
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void ns_log_set_level(ns_log_level lvl) { level = lvl; }
ns_log_level ns_log_get_level(void) { return level; }

bool ns_log_parse_level(const char *s, ns_log_level *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (s && strcasecmp(s, names[i]) == 0) {
      *out = (ns_log_level)i;
      return true;
    }
  return false;
}

void ns_log_set_ident(const char *id) {
  if (!id) return;
  pthread_mutex_lock(&lock);
  snprintf(ident, sizeof ident, "%s", id);
  pthread_mutex_unlock(&lock);
}

void ns_log_use_syslog(bool on) {
  pthread_mutex_lock(&lock);
  if (on && !use_syslog) openlog(ident[0] ? ident : "nsentry", LOG_PID, LOG_DAEMON);
  if (!on && use_syslog) closelog();
  use_syslog = on;
  pthread_mutex_unlock(&lock);
}

void ns_vlog(ns_log_level lvl, const char *fmt, va_list ap) {
  static const char *const tags[] = {"error", "warn", "info", "debug"};
  static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
  if (lvl > level) return;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  pthread_mutex_lock(&lock);
  if (use_syslog)
    syslog(prio[lvl], "nsentry: %s%s%s: %s", ident, ident[0] ? ": " : "", tags[lvl], msg);
  else
    fprintf(stderr, "nsentry: %s%s%s: %s\n", ident, ident[0] ? ": " : "", tags[lvl], msg);
  pthread_mutex_unlock(&lock);
}

void ns_log(ns_log_level lvl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ns_vlog(lvl, fmt, ap);
  va_end(ap);
}
