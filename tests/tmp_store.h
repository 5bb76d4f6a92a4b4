/* A SQLite store in a fresh temporary file for one test, and its removal
 * (the file with its -wal and -shm). Header-only: tests include it after
 * criterion.h. */
#ifndef NS_TESTS_TMP_STORE_H
#define NS_TESTS_TMP_STORE_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "ns_store.h"

/* path: 64 bytes, receives the file name; tag names the test in /tmp. */
static inline ns_store *tmp_store_open(const char *tag, char *path) {
  snprintf(path, 64, "/tmp/ns_%s_XXXXXX", tag);
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0, "mkstemp %s", path);
  close(fd);
  unlink(path);
  char uri[96];
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  ns_store *s = NULL;
  cr_assert_eq(ns_store_open(uri, &s), NS_OK, "%s", ns_err_detail());
  return s;
}

static inline void tmp_store_remove(const char *path) {
  char p[96];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}
#endif
