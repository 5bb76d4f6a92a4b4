#include "lbl_chart.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int lbl_canvas_init(lbl_canvas *c, int w, int h) {
  memset(c, 0, sizeof *c);
  if (w <= 0 || h <= 0) return -1;
  c->w = w, c->h = h;
  c->cells = calloc((size_t)w * h, sizeof *c->cells);
  c->dots = calloc((size_t)w * h, 1);
  if (!c->cells || !c->dots) {
    lbl_canvas_free(c);
    return -1;
  }
  lbl_canvas_clear(c);
  return 0;
}

void lbl_canvas_free(lbl_canvas *c) {
  free(c->cells);
  free(c->dots);
  memset(c, 0, sizeof *c);
}

void lbl_canvas_clear(lbl_canvas *c) {
  for (int i = 0; i < c->w * c->h; i++) c->cells[i] = L' ';
  memset(c->dots, 0, (size_t)c->w * c->h);
}

/* Braille dot numbering: bit for (column, row) within the 2x4 cell. */
static const unsigned char dot_bit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};

void lbl_canvas_dot(lbl_canvas *c, int x, int y) {
  if (x < 0 || y < 0 || x >= 2 * c->w || y >= 4 * c->h) return;
  c->dots[(y / 4) * c->w + x / 2] |= dot_bit[y % 4][x % 2];
}

bool lbl_range(const float *v, size_t stride, size_t i0, size_t i1, double *lo, double *hi) {
  double a = INFINITY, b = -INFINITY;
  for (size_t i = i0; i < i1; i++) {
    float x = v[i * stride];
    if (!isfinite(x)) continue;
    if (x < a) a = x;
    if (x > b) b = x;
  }
  if (!(a <= b)) return false;
  if (b - a < 1e-12) {
    double pad = fabs(a) > 1e-9 ? fabs(a) * 0.5 : 1.0;
    a -= pad, b += pad;
  }
  *lo = a, *hi = b;
  return true;
}

void lbl_canvas_plot(lbl_canvas *c, const float *v, size_t stride, size_t i0, size_t i1, double lo, double hi) {
  if (i1 <= i0 || hi <= lo) return;
  int W = 2 * c->w, H = 4 * c->h;
  size_t n = i1 - i0;
  int prev_y = -1;
  for (int x = 0; x < W; x++) {
    /* Each dot column summarises the samples that fall in it (min..max). */
    size_t a = i0 + (size_t)((double)x * n / W), b = i0 + (size_t)((double)(x + 1) * n / W);
    if (b <= a) b = a + 1;
    if (a >= i1) break;
    if (b > i1) b = i1;
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = a; i < b; i++) {
      float val = v[i * stride];
      if (!isfinite(val)) continue;
      if (val < mn) mn = val;
      if (val > mx) mx = val;
    }
    if (!(mn <= mx)) {
      prev_y = -1;
      continue;
    }
    int y_top = (int)lround((hi - mx) / (hi - lo) * (H - 1)), y_bot = (int)lround((hi - mn) / (hi - lo) * (H - 1));
    if (y_top < 0) y_top = 0;
    if (y_bot > H - 1) y_bot = H - 1;
    if (prev_y >= 0) {  // join to the previous column
      if (prev_y < y_top) y_top = prev_y;
      if (prev_y > y_bot) y_bot = prev_y;
    }
    for (int y = y_top; y <= y_bot; y++) lbl_canvas_dot(c, x, y);
    prev_y = (int)lround((hi - (double)v[(b - 1) * stride]) / (hi - lo) * (H - 1));
    if (!isfinite(v[(b - 1) * stride])) prev_y = -1;
  }
}

void lbl_canvas_render(lbl_canvas *c) {
  for (int i = 0; i < c->w * c->h; i++)
    c->cells[i] = c->dots[i] ? (wchar_t)(0x2800 + c->dots[i]) : L' ';
}
