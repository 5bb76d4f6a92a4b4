/* Shared helpers for the import tests: fixture paths and temp files. */
#ifndef NS_IMPORT_TEST_HELPERS_H
#define NS_IMPORT_TEST_HELPERS_H
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Path of tests/import/fixtures/<rel> (static buffer, rotated 8 ways). */
static inline const char *fx(const char *rel) {
  static char buf[8][1024];
  static int k;
  const char *root = getenv("NS_SOURCE_ROOT");
  char *b = buf[k++ & 7];
  snprintf(b, 1024, "%s/tests/import/fixtures/%s", root ? root : ".", rel);
  return b;
}

/* Write `n` bytes to a fresh temp file named .../<name>; returns its path
 * (static buffer, rotated 8 ways). The directory is unique per call. */
static inline const char *tmp_file_n(const char *name, const void *data, size_t n) {
  static char buf[8][512];
  static int k;
  char *b = buf[k++ & 7];
  char dir[] = "/tmp/ns_imp_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  snprintf(b, 512, "%s/%s", dir, name);
  FILE *f = fopen(b, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
  return b;
}
static inline const char *tmp_file(const char *name, const char *text) { return tmp_file_n(name, text, strlen(text)); }

/* Write `text` to <dir>/<rel>, creating parent folders. */
static inline void put_file(const char *dir, const char *rel, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
    *s = '\0';
    mkdir(p, 0755);
    *s = '/';
  }
  FILE *f = fopen(p, "wb");
  cr_assert_not_null(f, "%s", p);
  fputs(text, f);
  fclose(f);
}

static inline void rm_rf(const char *path) {
  char cmd[1100];
  if (strncmp(path, "/tmp/ns_", 8) != 0) return; /* only our own temp trees */
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

static inline void rm_tmp_file(const char *path) {
  char d[512];
  snprintf(d, sizeof d, "%s", path);
  char *s = strrchr(d, '/');
  if (s) *s = '\0';
  rm_rf(d);
}

#define assert_detail_has(s) cr_assert(strstr(ns_err_detail(), (s)) != NULL, "detail '%s' lacks '%s'", ns_err_detail(), (s))
#endif
