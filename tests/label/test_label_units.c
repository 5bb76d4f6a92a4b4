#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#define NCURSES_WIDECHAR 1
#include <curses.h>
#include "lbl_chart.h"
#include "lbl_script.h"

Test(script, keys_specials_and_commands) {
  lbl_script *s = NULL;
  cr_assert_eq(lbl_script_from_string("# comment\njk<Enter><lt>\n:dump first-1\n:resize 80x24\n", &s), NS_OK);
  lbl_script_item it;
  int want[] = {'j', 'k', '\n', '<'};
  for (int i = 0; i < 4; i++) {
    cr_assert(lbl_script_next(s, &it));
    cr_assert_eq(it.kind, LBL_SCRIPT_KEY);
    cr_assert_eq(it.key, want[i]);
  }
  cr_assert(lbl_script_next(s, &it));
  cr_assert_eq(it.kind, LBL_SCRIPT_DUMP);
  cr_assert_str_eq(it.arg, "first-1");
  cr_assert(lbl_script_next(s, &it));
  cr_assert_eq(it.kind, LBL_SCRIPT_RESIZE);
  cr_assert_eq(it.cols, 80);
  cr_assert_eq(it.rows, 24);
  cr_assert_not(lbl_script_next(s, &it));
  lbl_script_close(s);
}

Test(script, errors_name_line_and_column) {
  lbl_script *s = NULL;
  cr_assert_eq(lbl_script_from_string("jj\nx<Nope>\n", &s), NS_ERR_PARSE);
  cr_assert_null(s);
  cr_assert(strstr(ns_err_detail(), "line 2 column 2") != NULL, "%s", ns_err_detail());
  cr_assert_eq(lbl_script_from_string("<Enter\n", &s), NS_ERR_PARSE);
  cr_assert_eq(lbl_script_from_string(":dump ../etc/passwd\n", &s), NS_ERR_PARSE);
  cr_assert_eq(lbl_script_from_string(":explode\n", &s), NS_ERR_PARSE);
  cr_assert_eq(lbl_script_from_string(":resize 0x5\n", &s), NS_ERR_PARSE);
  cr_assert_eq(lbl_script_open("/nonexistent/keys", &s), NS_ERR_IO);
}

Test(chart, braille_dots) {
  lbl_canvas c;
  cr_assert_eq(lbl_canvas_init(&c, 2, 1), 0);
  lbl_canvas_dot(&c, 0, 0);
  lbl_canvas_dot(&c, 1, 3);
  lbl_canvas_dot(&c, 3, 1);
  lbl_canvas_dot(&c, 9, 9); /* outside: ignored */
  lbl_canvas_render(&c);
  cr_assert_eq(c.cells[0], (wchar_t)(0x2800 + 0x01 + 0x80));
  cr_assert_eq(c.cells[1], (wchar_t)(0x2800 + 0x10));
  lbl_canvas_free(&c);
  cr_assert_neq(lbl_canvas_init(&c, 0, 3), 0);
}

Test(chart, plot_rising_line_fills_corners) {
  lbl_canvas c;
  cr_assert_eq(lbl_canvas_init(&c, 4, 2), 0);
  float v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  double lo, hi;
  cr_assert(lbl_range(v, 1, 0, 8, &lo, &hi));
  cr_assert_float_eq(lo, 0, 0);
  cr_assert_float_eq(hi, 7, 0);
  lbl_canvas_plot(&c, v, 1, 0, 8, lo, hi);
  lbl_canvas_render(&c);
  /* Lowest value bottom-left (row 1, col 0), highest top-right (row 0, col 3). */
  cr_assert(c.dots[1 * 4 + 0] & 0x40, "bottom-left dot missing");
  cr_assert(c.dots[0 * 4 + 3] & 0x08, "top-right dot missing");
  cr_assert_eq(c.dots[0 * 4 + 0], 0);
  lbl_canvas_free(&c);
}

Test(chart, range_handles_nan_and_flat) {
  float v[4] = {NAN, 2, 2, NAN};
  double lo, hi;
  cr_assert(lbl_range(v, 1, 0, 4, &lo, &hi));
  cr_assert_lt(lo, 2);
  cr_assert_gt(hi, 2);
  float w[2] = {NAN, NAN};
  cr_assert_not(lbl_range(w, 1, 0, 2, &lo, &hi));
}
