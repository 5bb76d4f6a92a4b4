/* Line charts in a grid of terminal cells using Unicode braille (2x4 dots
 * per cell), so a 60-column chart shows 120 samples. Pure: renders into a
 * wchar_t buffer; the caller draws it. */
#ifndef LBL_CHART_H
#define LBL_CHART_H
#include <stdbool.h>
#include <stddef.h>
#include <wchar.h>

typedef struct lbl_canvas {
  int w, h;          /* cells */
  wchar_t *cells;    /* w*h; L' ' where empty */
  unsigned char *dots; /* w*h braille dot bits */
} lbl_canvas;

int lbl_canvas_init(lbl_canvas *c, int w, int h);
void lbl_canvas_free(lbl_canvas *c);
void lbl_canvas_clear(lbl_canvas *c);
/* Set dot (x, y) in dot coordinates: x in [0, 2w), y in [0, 4h), y = 0 at top. */
void lbl_canvas_dot(lbl_canvas *c, int x, int y);
/* Draw values v[i0..i1) (NaN = gap) scaled into the canvas: lo..hi maps
 * bottom..top. Consecutive points are joined by vertical strokes. */
void lbl_canvas_plot(lbl_canvas *c, const float *v, size_t stride, size_t i0, size_t i1, double lo, double hi);
/* Finalise dots into braille characters. */
void lbl_canvas_render(lbl_canvas *c);
/* Range of v[i0..i1) ignoring NaN; equal bounds widened so a flat line
 * sits mid-chart. Returns false if no finite value. */
bool lbl_range(const float *v, size_t stride, size_t i0, size_t i1, double *lo, double *hi);
#endif
