#include "lbl_script.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#define NCURSES_WIDECHAR 1
#include <curses.h>

struct lbl_script {
  lbl_script_item *items;
  size_t n, pos;
};

static const struct {
  const char *name;
  int key;
} specials[] = {{"Enter", '\n'},       {"Esc", 27},         {"Tab", '\t'},       {"Space", ' '},
                {"Up", KEY_UP},        {"Down", KEY_DOWN},  {"Left", KEY_LEFT},  {"Right", KEY_RIGHT},
                {"PgUp", KEY_PPAGE},   {"PgDn", KEY_NPAGE}, {"Home", KEY_HOME},  {"End", KEY_END},
                {"BS", KEY_BACKSPACE}, {"lt", '<'}};

static int add(lbl_script *s, lbl_script_item it) {
  if (s->n % 64 == 0) {
    lbl_script_item *v = realloc(s->items, (s->n + 64) * sizeof *v);
    if (!v) return -1;
    s->items = v;
  }
  s->items[s->n++] = it;
  return 0;
}

static ns_status parse_line(lbl_script *s, char *line, int lineno) {
  size_t len = strlen(line);
  while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
  if (!len || line[0] == '#') return NS_OK;
  lbl_script_item it = {0};
  if (line[0] == ':') {
    char cmd[32] = "", arg[256] = "";
    if (sscanf(line, ":%31s %255s", cmd, arg) < 1) return ns_errorf(NS_ERR_PARSE, "script line %d: empty command", lineno);
    if (strcmp(cmd, "dump") == 0 && arg[0]) {
      for (const char *c = arg; *c; c++)
        if (!(*c == '-' || *c == '_' || *c == '.' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
              (*c >= 'A' && *c <= 'Z')))
          return ns_errorf(NS_ERR_PARSE, "script line %d: dump name '%s' may use letters, digits, . _ - only",
                           lineno, arg);
      it.kind = LBL_SCRIPT_DUMP;
      snprintf(it.arg, sizeof it.arg, "%s", arg);
    } else if (strcmp(cmd, "resize") == 0 && sscanf(arg, "%dx%d", &it.cols, &it.rows) == 2 && it.cols > 0 &&
               it.rows > 0) {
      it.kind = LBL_SCRIPT_RESIZE;
    } else {
      return ns_errorf(NS_ERR_PARSE, "script line %d: unknown command '%s' (use :dump NAME or :resize WxH)",
                       lineno, line);
    }
    return add(s, it) ? NS_ERR_NOMEM : NS_OK;
  }
  for (size_t i = 0; i < len;) {
    it.kind = LBL_SCRIPT_KEY;
    if (line[i] == '<') {
      const char *close = strchr(line + i, '>');
      size_t k, n = close ? (size_t)(close - line - i - 1) : 0;
      for (k = 0; close && k < sizeof specials / sizeof *specials; k++)
        if (strlen(specials[k].name) == n && strncmp(specials[k].name, line + i + 1, n) == 0) break;
      if (!close || k == sizeof specials / sizeof *specials)
        return ns_errorf(NS_ERR_PARSE, "script line %d column %zu: unknown key name (write <lt> for '<')", lineno,
                         i + 1);
      it.key = specials[k].key;
      i += n + 2;
    } else {
      it.key = (unsigned char)line[i++];
    }
    if (add(s, it)) return NS_ERR_NOMEM;
  }
  return NS_OK;
}

ns_status lbl_script_from_string(const char *text, lbl_script **out) {
  *out = NULL;
  lbl_script *s = calloc(1, sizeof *s);
  char *copy = strdup(text);
  ns_status st = (!s || !copy) ? NS_ERR_NOMEM : NS_OK;
  int lineno = 0;
  for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL; !st && line;
       line = strtok_r(NULL, "\n", &save))
    st = parse_line(s, line, ++lineno);
  free(copy);
  if (st) {
    lbl_script_close(s);
    return st;
  }
  *out = s;
  return NS_OK;
}

ns_status lbl_script_open(const char *path, lbl_script **out) {
  *out = NULL;
  FILE *f = fopen(path, "r");
  if (!f) return ns_errorf(NS_ERR_IO, "%s: %s", path, strerror(errno));
  char *text = NULL;
  size_t n = 0;
  ssize_t r = getdelim(&text, &n, '\0', f);
  fclose(f);
  if (r < 0) {
    free(text);
    return ns_errorf(NS_ERR_IO, "%s: cannot read", path);
  }
  ns_status st = lbl_script_from_string(text, out);
  free(text);
  if (st) return ns_errorf(st, "%s: %s", path, ns_err_detail());  /* safe: ns_errorf copies first */
  return NS_OK;
}

void lbl_script_close(lbl_script *s) {
  if (!s) return;
  free(s->items);
  free(s);
}

bool lbl_script_next(lbl_script *s, lbl_script_item *it) {
  if (s->pos >= s->n) return false;
  *it = s->items[s->pos++];
  return true;
}

int lbl_script_dump_screen(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  for (int y = 0; y < LINES; y++) {
    char line[8192];
    size_t off = 0, keep = 0;
    for (int x = 0; x < COLS && off + 8 < sizeof line; x++) {
      cchar_t cc;
      wchar_t wc[CCHARW_MAX + 1] = {0};
      attr_t attrs;
      short pair;
      if (mvin_wch(y, x, &cc) == ERR || getcchar(&cc, wc, &attrs, &pair, NULL) == ERR || !wc[0]) wc[0] = L' ';
      char mb[16];
      mbstate_t ps = {0};
      size_t n = wcrtomb(mb, wc[0], &ps);
      if (n == (size_t)-1) mb[0] = '?', n = 1;
      memcpy(line + off, mb, n);
      off += n;
      if (wc[0] != L' ') keep = off;
    }
    line[keep] = 0;
    fprintf(f, "%s\n", line);
  }
  return fclose(f) ? -1 : 0;
}
