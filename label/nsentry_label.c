/* nsentry-label: review verdicts, label anomalies and adjust clusters in a
 * terminal (ncursesw; works over SSH). A keystroke script (--script or
 * $NSENTRY_LABEL_SCRIPT) drives it headless at a fixed size and can dump
 * screens to files, which the tests compare with golden screens. */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>
#define NCURSES_WIDECHAR 1
#include <curses.h>

#include "lbl_chart.h"
#include "lbl_data.h"
#include "lbl_script.h"
#include "ns_build_config.h"
#include "ns_config.h"

enum { MIN_COLS = 60, MIN_ROWS = 16 };
typedef enum { V_JOBS, V_NODES, V_SEGMENT, V_METRICS, V_CLUSTERS, V_MEMBERS, V_HELP } view_id;
enum { F_ALL, F_ANOMALOUS, F_UNLABELLED, F_ANOM_UNLABELLED, F_COUNT };
enum { S_SCORE, S_TIME, S_JOB, S_COUNT };
static const char *const filter_names[] = {"all", "anomalous", "unlabelled", "anomalous+unlabelled"};
static const char *const sort_names[] = {"score", "time", "job id"};

typedef struct list_state {
  int sel, top;
} list_state;

typedef struct app {
  lbl_data *db;
  char author[64];
  /* jobs */
  lbl_job *jobs;
  size_t njobs;
  int *jidx; /* filtered+sorted indexes into jobs */
  size_t nj;
  list_state jl;
  int filter, sort;
  /* nodes of the open job */
  lbl_node *nodes;
  size_t nnodes;
  list_state nl;
  char job_cluster[64], job_id[64];
  /* segment */
  lbl_segview sv;
  bool sv_loaded;
  unsigned char *shown;
  list_state ml;
  size_t i0, span, cursor;
  long mark;
  /* clusters */
  lbl_cluster *clusters;
  size_t nclusters;
  list_state cl;
  lbl_member *members;
  size_t nmembers;
  list_state mbl;
  /* ui */
  view_id view;
  view_id stack[8];
  int depth;
  char status[512];
  bool status_err;
  bool quit;
  lbl_script *script;
  const char *dump_dir;
} app;

static void set_status(app *a, bool err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_status(app *a, bool err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->status, sizeof a->status, fmt, ap);
  va_end(ap);
  a->status_err = err;
}

static void db_error(app *a, ns_status st, const char *what) {
  set_status(a, true, "%s failed: %s", what, ns_err_message(st));
}

static void fmt_time(int64_t ms, char *buf, size_t n) {
  if (ms <= 0) {
    snprintf(buf, n, "-");
    return;
  }
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_score(double v, char *buf, size_t n) {
  if (isfinite(v)) snprintf(buf, n, "%.3g", v);
  else snprintf(buf, n, "-");
}

static const char *verdict_name(int v) { return v < 0 ? "unscored" : v ? "ANOMALOUS" : "normal"; }

/* ---- drawing helpers ---- */

static void put(int y, int x, int maxw, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(int y, int x, int maxw, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  wchar_t wb[1024];
  size_t n = mbstowcs(wb, buf, 1023);
  if (n == (size_t)-1) {
    mvaddnstr(y, x, buf, maxw);
    return;
  }
  wb[n] = 0;
  mvaddnwstr(y, x, wb, maxw);
}

static void draw_status(app *a) {
  int y = LINES - 1;
  move(y, 0);
  clrtoeol();
  if (a->status_err) attron(A_BOLD);
  put(y, 0, COLS - 1, "%s", a->status[0] ? a->status : "? help  q back/quit");
  if (a->status_err) attroff(A_BOLD);
}

static void draw_title(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void draw_title(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  attron(A_REVERSE);
  move(0, 0);
  for (int i = 0; i < COLS; i++) addch(' ');
  put(0, 0, COLS, "%s", buf);
  attroff(A_REVERSE);
}

static int list_rows(void) { return LINES - 3; }

static void list_fix(list_state *l, size_t n) {
  int rows = list_rows();
  if (n == 0) {
    l->sel = l->top = 0;
    return;
  }
  if (l->sel < 0) l->sel = 0;
  if (l->sel >= (int)n) l->sel = (int)n - 1;
  if (l->sel < l->top) l->top = l->sel;
  if (l->sel >= l->top + rows) l->top = l->sel - rows + 1;
  if (l->top < 0) l->top = 0;
}

static bool list_key(list_state *l, size_t n, int key) {
  int page = list_rows() > 1 ? list_rows() - 1 : 1;
  switch (key) {
  case 'j': case KEY_DOWN: l->sel++; break;
  case 'k': case KEY_UP: l->sel--; break;
  case KEY_NPAGE: case ' ': l->sel += page; break;
  case KEY_PPAGE: l->sel -= page; break;
  case 'g': case KEY_HOME: l->sel = 0; break;
  case 'G': case KEY_END: l->sel = (int)n - 1; break;
  default: return false;
  }
  list_fix(l, n);
  return true;
}

/* ---- jobs ---- */

static app *sort_ctx;
static int cmp_jobs(const void *pa, const void *pb) {
  const lbl_job *x = &sort_ctx->jobs[*(const int *)pa], *y = &sort_ctx->jobs[*(const int *)pb];
  int c = 0;
  switch (sort_ctx->sort) {
  case S_SCORE: {
    double sx = isfinite(x->score) ? x->score : -1, sy = isfinite(y->score) ? y->score : -1;
    c = (sx < sy) - (sx > sy);
    break;
  }
  case S_TIME: c = (x->start_ms < y->start_ms) - (x->start_ms > y->start_ms); break;
  default: break;
  }
  if (!c) c = strcmp(x->cluster, y->cluster);
  if (!c) {
    long jx = atol(x->job_id), jy = atol(y->job_id);
    c = (jx > jy) - (jx < jy);
  }
  if (!c) c = strcmp(x->job_id, y->job_id);
  return c;
}

static void jobs_refilter(app *a) {
  free(a->jidx);
  a->jidx = malloc((a->njobs ? a->njobs : 1) * sizeof *a->jidx);
  a->nj = 0;
  if (!a->jidx) return;
  for (size_t i = 0; i < a->njobs; i++) {
    const lbl_job *j = &a->jobs[i];
    bool anom = j->verdict == 1, unl = j->nlabels == 0;
    if ((a->filter == F_ANOMALOUS && !anom) || (a->filter == F_UNLABELLED && !unl) ||
        (a->filter == F_ANOM_UNLABELLED && !(anom && unl)))
      continue;
    a->jidx[a->nj++] = (int)i;
  }
  sort_ctx = a;
  qsort(a->jidx, a->nj, sizeof *a->jidx, cmp_jobs);
  list_fix(&a->jl, a->nj);
}

static void jobs_load(app *a) {
  lbl_job *jobs = NULL;
  size_t n = 0;
  ns_status st = lbl_list_jobs(a->db, &jobs, &n);
  if (st) {
    db_error(a, st, "loading jobs");
    return;
  }
  free(a->jobs);
  a->jobs = jobs;
  a->njobs = n;
  jobs_refilter(a);
}

static void draw_jobs(app *a) {
  draw_title(" nsentry-label  jobs (%zu of %zu)  filter: %s  sort: %s", a->nj, a->njobs, filter_names[a->filter],
             sort_names[a->sort]);
  attron(A_BOLD);
  put(1, 0, COLS, "%-10s %-12s %-10s %-10s %5s %-19s %-9s %7s %6s", "cluster", "job", "user", "partition",
      "nodes", "start (UTC)", "verdict", "score", "labels");
  attroff(A_BOLD);
  if (a->nj == 0) {
    put(3, 2, COLS - 2, "%s", a->njobs ? "No job matches this filter (f changes it)."
                                       : "No jobs in the database yet: import or ingest some first.");
    return;
  }
  for (int r = 0; r < list_rows() && a->jl.top + r < (int)a->nj; r++) {
    const lbl_job *j = &a->jobs[a->jidx[a->jl.top + r]];
    char t[32], sc[16];
    fmt_time(j->start_ms, t, sizeof t);
    fmt_score(j->score, sc, sizeof sc);
    if (a->jl.top + r == a->jl.sel) attron(A_REVERSE);
    if (j->verdict == 1) attron(A_BOLD);
    move(2 + r, 0);
    clrtoeol();
    put(2 + r, 0, COLS, "%-10.10s %-12.12s %-10.10s %-10.10s %5d %-19s %-9s %7s %6d", j->cluster, j->job_id,
        j->user, j->partition, j->nnodes, t, verdict_name(j->verdict), sc, j->nlabels);
    attroff(A_REVERSE | A_BOLD);
  }
}

/* ---- nodes ---- */

static void nodes_load(app *a) {
  lbl_node *nodes = NULL;
  size_t n = 0;
  ns_status st = lbl_list_nodes(a->db, a->job_cluster, a->job_id, &nodes, &n);
  if (st) {
    db_error(a, st, "loading nodes");
    return;
  }
  free(a->nodes);
  a->nodes = nodes;
  a->nnodes = n;
  list_fix(&a->nl, n);
}

static void draw_nodes(app *a) {
  draw_title(" job %s on %s  (%zu node segments)", a->job_id, a->job_cluster, a->nnodes);
  attron(A_BOLD);
  put(1, 0, COLS, "%-16s %-19s %8s %-9s %7s %7s %-8s %6s", "node", "start (UTC)", "points", "verdict", "score",
      "cluster", "model", "labels");
  attroff(A_BOLD);
  if (!a->nnodes) {
    put(3, 2, COLS - 2, "This job has no stored segments (nothing was shipped or imported for it).");
    return;
  }
  for (int r = 0; r < list_rows() && a->nl.top + r < (int)a->nnodes; r++) {
    const lbl_node *nd = &a->nodes[a->nl.top + r];
    char t[32], sc[16];
    fmt_time(nd->start_ms, t, sizeof t);
    fmt_score(nd->score, sc, sizeof sc);
    const char *cl = nd->cluster[0] ? nd->cluster : "-";
    if (a->nl.top + r == a->nl.sel) attron(A_REVERSE);
    move(2 + r, 0);
    clrtoeol();
    put(2 + r, 0, COLS, "%-16.16s %-19s %8zu %-9s %7s %7s %-8.8s %6d", nd->node, t, nd->T, verdict_name(nd->verdict),
        sc, cl, nd->model[0] ? nd->model : "-", nd->nlabels);
    attroff(A_REVERSE);
  }
}

/* ---- segment ---- */

static void seg_open(app *a, int64_t seg_id, int64_t at_ms) {
  lbl_segview sv;
  ns_status st = lbl_load_segview(a->db, seg_id, &sv);
  if (st) {
    db_error(a, st, "loading segment");
    return;
  }
  lbl_segview_clear(&a->sv);
  free(a->shown);
  a->sv = sv;
  a->sv_loaded = true;
  a->shown = calloc(sv.seg->M, 1);
  for (size_t m = 0; m < sv.seg->M && a->shown; m++) a->shown[m] = m < 4;
  a->i0 = 0;
  a->span = sv.seg->T;
  a->cursor = 0;
  a->mark = -1;
  if (at_ms > 0 && sv.seg->interval_ms > 0 && at_ms >= sv.seg->start_ms) {
    size_t t = (size_t)((at_ms - sv.seg->start_ms) / sv.seg->interval_ms);
    a->cursor = t < sv.seg->T ? t : sv.seg->T - 1;
  }
  a->ml.sel = a->ml.top = 0;
}

static void seg_clamp(app *a) {
  size_t T = a->sv.seg->T;
  if (a->span < 8) a->span = T < 8 ? T : 8;
  if (a->span > T) a->span = T;
  if (a->cursor >= T) a->cursor = T ? T - 1 : 0;
  if (a->cursor < a->i0) a->i0 = a->cursor;
  if (a->cursor >= a->i0 + a->span) a->i0 = a->cursor - a->span + 1;
  if (a->i0 + a->span > T) a->i0 = T - a->span;
}

static const ns_label *label_at(const app *a, int64_t ms) {
  for (size_t i = 0; i < a->sv.nlabels; i++)
    if (a->sv.labels[i].start_ms <= ms && ms <= a->sv.labels[i].end_ms) return &a->sv.labels[i];
  return NULL;
}

static int64_t t_ms(const app *a, size_t t) { return a->sv.seg->start_ms + (int64_t)t * a->sv.seg->interval_ms; }

/* Column of the chart area holding sample t, or -1. */
static int col_of(const app *a, size_t t, int W) {
  if (t < a->i0 || t >= a->i0 + a->span) return -1;
  return (int)((double)(t - a->i0) * W / (double)a->span);
}

static void draw_chart(app *a, int y, int h, int W, const float *v, size_t stride, const char *name, double thr) {
  double lo, hi;
  char rng[64];
  if (!lbl_range(v, stride, a->i0, a->i0 + a->span, &lo, &hi)) {
    put(y, 0, W, "%s: no data", name);
    return;
  }
  if (isfinite(thr) && thr > hi) hi = thr * 1.05;
  snprintf(rng, sizeof rng, "[%.4g .. %.4g]", lo, hi);
  attron(A_BOLD);
  put(y, 0, W, "%s", name);
  attroff(A_BOLD);
  put(y, (int)strlen(name) + 1, W, " %s%s", rng, isfinite(thr) ? "  - - threshold" : "");
  lbl_canvas c;
  if (lbl_canvas_init(&c, W, h)) return;
  lbl_canvas_plot(&c, v, stride, a->i0, a->i0 + a->span, lo, hi);
  if (isfinite(thr)) {
    int ty = (int)lround((hi - thr) / (hi - lo) * (4 * h - 1));
    for (int x = 0; x < 2 * W; x += 3) lbl_canvas_dot(&c, x, ty);
  }
  lbl_canvas_render(&c);
  int cx = col_of(a, a->cursor, W);
  for (int r = 0; r < h; r++) {
    for (int x = 0; x < W; x++) {
      cchar_t cc;
      wchar_t wc[2] = {c.cells[r * W + x], 0};
      setcchar(&cc, wc, x == cx ? A_REVERSE : A_NORMAL, 0, NULL);
      mvadd_wch(y + 1 + r, x, &cc);
    }
  }
  lbl_canvas_free(&c);
}

static void draw_segment(app *a) {
  const ns_segment *s = a->sv.seg;
  seg_clamp(a);
  char t0[32], t1[32], sc[16];
  fmt_time(s->start_ms, t0, sizeof t0);
  fmt_time(s->end_ms, t1, sizeof t1);
  fmt_score(a->sv.score_max, sc, sizeof sc);
  draw_title(" %s %s node %s  %s  score %s  cluster %s  model %s  %s .. %s", s->job_id ? "job" : "idle",
             s->job_id ? s->job_id : "", s->node ? s->node : "?", verdict_name(a->sv.verdict), sc,
             a->sv.cluster[0] ? a->sv.cluster : "-",
             a->sv.model[0] ? a->sv.model : "-", t0, t1 + 11);
  int W = COLS, y = 1, bottom = LINES - 4;
  int nshown = 0;
  for (size_t m = 0; m < s->M; m++) nshown += a->shown[m];
  int charts = nshown + (a->sv.score != NULL);
  int h = charts ? (bottom - y) / charts - 1 : 1;
  if (h > 6) h = 6;
  if (h < 1) h = 1;
  if (a->sv.score && y + h + 1 <= bottom) {
    draw_chart(a, y, h, W, a->sv.score, 1, "anomaly score", a->sv.threshold);
    y += h + 1;
  }
  for (size_t m = 0; m < s->M && y + h + 1 <= bottom; m++) {
    if (!a->shown[m]) continue;
    draw_chart(a, y, h, W, s->x + m, s->M, s->metrics[m], NAN);
    y += h + 1;
  }
  /* Interval bar: detected intervals (^) and labels (A/N), cursor and mark. */
  int by = LINES - 4;
  move(by, 0);
  clrtoeol();
  for (int x = 0; x < W; x++) {
    size_t t = a->i0 + (size_t)((double)x * a->span / W);
    int64_t ms = t_ms(a, t);
    char ch = '.';
    for (size_t i = 0; i < a->sv.niv; i++)
      if (a->sv.iv[i].start_ms <= ms && ms <= a->sv.iv[i].end_ms) ch = '^';
    const ns_label *l = label_at(a, ms);
    if (l) ch = l->label ? 'A' : 'N';
    if (a->mark >= 0) {
      size_t lo = (size_t)a->mark < a->cursor ? (size_t)a->mark : a->cursor;
      size_t hi = (size_t)a->mark < a->cursor ? a->cursor : (size_t)a->mark;
      if (t >= lo && t <= hi) ch = '=';
    }
    if (col_of(a, a->cursor, W) == x) attron(A_REVERSE);
    mvaddch(by, x, (chtype)ch);
    attroff(A_REVERSE);
  }
  /* Cursor line: exact time and values. */
  char tc[32];
  fmt_time(t_ms(a, a->cursor), tc, sizeof tc);
  char vals[512] = "";
  size_t off = 0;
  if (a->sv.score) off += (size_t)snprintf(vals + off, sizeof vals - off, " score=%.4g", a->sv.score[a->cursor]);
  for (size_t m = 0; m < s->M && off < sizeof vals - 1; m++)
    if (a->shown[m])
      off += (size_t)snprintf(vals + off, sizeof vals - off, " %s=%.4g", s->metrics[m], s->x[a->cursor * s->M + m]);
  move(LINES - 3, 0);
  clrtoeol();
  put(LINES - 3, 0, COLS, "t=%zu/%zu %s UTC%s", a->cursor, s->T, tc, vals);
  const ns_label *l = label_at(a, t_ms(a, a->cursor));
  move(LINES - 2, 0);
  clrtoeol();
  if (l)
    put(LINES - 2, 0, COLS, "label: %s by %s (%s)%s%s", l->label ? "anomalous" : "normal", l->author ? l->author : "?",
        l->source ? l->source : "?", l->note && l->note[0] ? " note: " : "", l->note ? l->note : "");
  else
    put(LINES - 2, 0, COLS, "view %zu-%zu of %zu  %s", a->i0, a->i0 + a->span - 1, s->T,
        a->mark >= 0 ? "marking: move, then a=anomalous n=normal" : "v mark  x next unlabelled  m metrics");
}

static void draw_metrics(app *a) {
  const ns_segment *s = a->sv.seg;
  draw_title(" metrics of %s  (space toggles, q returns)", s->node ? s->node : "?");
  list_fix(&a->ml, s->M);
  for (int r = 0; r < list_rows() + 1 && a->ml.top + r < (int)s->M; r++) {
    size_t m = (size_t)(a->ml.top + r);
    if ((int)m == a->ml.sel) attron(A_REVERSE);
    move(1 + r, 0);
    clrtoeol();
    put(1 + r, 0, COLS, "[%c] %s", a->shown[m] ? 'x' : ' ', s->metrics[m]);
    attroff(A_REVERSE);
  }
}

/* ---- clusters ---- */

static void clusters_load(app *a) {
  lbl_cluster *c = NULL;
  size_t n = 0;
  ns_status st = lbl_list_clusters(a->db, &c, &n);
  if (st) {
    db_error(a, st, "loading clusters");
    return;
  }
  free(a->clusters);
  a->clusters = c;
  a->nclusters = n;
  list_fix(&a->cl, n);
}

static void draw_clusters(app *a) {
  draw_title(" clusters (%zu)   Enter members  q back", a->nclusters);
  attron(A_BOLD);
  put(1, 0, COLS, "%6s %-5s %-12s %6s %10s %-8s %s", "id", "kind", "label", "size", "radius", "model", "retrain");
  attroff(A_BOLD);
  if (!a->nclusters) {
    put(3, 2, COLS - 2, "No cluster library yet (run `nsentry cluster` or `nsentry train`).");
    return;
  }
  for (int r = 0; r < list_rows() && a->cl.top + r < (int)a->nclusters; r++) {
    const lbl_cluster *c = &a->clusters[a->cl.top + r];
    if (a->cl.top + r == a->cl.sel) attron(A_REVERSE);
    move(2 + r, 0);
    clrtoeol();
    put(2 + r, 0, COLS, "%6lld %-5s %-12.12s %6d %10.4g %-8.8s %s", (long long)c->id, c->kind, c->label, c->size,
        c->radius, c->model[0] ? c->model : "-", c->needs_retrain ? "yes" : "no");
    attroff(A_REVERSE);
  }
}

static void members_load(app *a) {
  if (!a->nclusters) return;
  lbl_member *m = NULL;
  size_t n = 0;
  ns_status st = lbl_list_members(a->db, a->clusters[a->cl.sel].id, &m, &n);
  if (st) {
    db_error(a, st, "loading members");
    return;
  }
  free(a->members);
  a->members = m;
  a->nmembers = n;
  list_fix(&a->mbl, n);
}

static void draw_members(app *a) {
  const lbl_cluster *c = &a->clusters[a->cl.sel];
  draw_title(" cluster %lld (%s, label %s): %zu members by distance   M move  Enter view", (long long)c->id, c->kind,
             c->label, a->nmembers);
  attron(A_BOLD);
  put(1, 0, COLS, "%8s %-16s %-12s %10s %s", "segment", "node", "job", "distance", "representative");
  attroff(A_BOLD);
  for (int r = 0; r < list_rows() && a->mbl.top + r < (int)a->nmembers; r++) {
    const lbl_member *m = &a->members[a->mbl.top + r];
    if (a->mbl.top + r == a->mbl.sel) attron(A_REVERSE);
    move(2 + r, 0);
    clrtoeol();
    put(2 + r, 0, COLS, "%8lld %-16.16s %-12.12s %10.4g %s", (long long)m->seg_id, m->node,
        m->job_id[0] ? m->job_id : "(idle)", m->distance, m->representative ? "yes" : "");
    attroff(A_REVERSE);
  }
}

/* ---- help ---- */

static const char *const help_lines[] = {
    "nsentry-label keys",
    "",
    "everywhere     ? help   q back (quit from the jobs list)   Q quit   r reload   C clusters   J jobs",
    "lists          j/k or arrows move   PgUp/PgDn/space page   g/G first/last   Enter open",
    "jobs           f cycle filter (all, anomalous, unlabelled, both)   s cycle sort (score, time, job)",
    "               x open the highest-scored unlabelled interval",
    "segment        h/l or arrows move cursor   H/L pan   +/- zoom   0 whole segment",
    "               v start/clear a mark   a label marked range (or cursor) anomalous   n label normal",
    "               (a note is asked for; Enter keeps it empty, Esc cancels)",
    "               d delete the label under the cursor   x next highest-scored unlabelled interval",
    "               m choose metrics (space toggles)",
    "clusters       Enter members   in members: M move the segment to another cluster",
    "               (type its id, or 'new'), Enter opens the segment",
    "",
    "Labels are stored with your login name, the time and source 'expert'. They feed",
    "`nsentry eval`, and windows labelled anomalous are excluded from training.",
};

static void draw_help(void) {
  draw_title(" help   (any key returns)");
  for (size_t i = 0; i < sizeof help_lines / sizeof *help_lines && (int)i + 2 < LINES - 1; i++)
    put((int)i + 2, 1, COLS - 2, "%s", help_lines[i]);
}

/* ---- input ---- */

static int next_key(app *a) {
  if (!a->script) return getch();
  for (;;) {
    lbl_script_item it;
    if (!lbl_script_next(a->script, &it)) return -2;  /* script finished */
    if (it.kind == LBL_SCRIPT_KEY) return it.key;
    if (it.kind == LBL_SCRIPT_DUMP) {
      if (a->dump_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.screen", a->dump_dir, it.arg);
        if (lbl_script_dump_screen(path)) set_status(a, true, "cannot write %s: %s", path, strerror(errno));
      }
    } else if (it.kind == LBL_SCRIPT_RESIZE) {
      resizeterm(it.rows, it.cols);
      return KEY_RESIZE;
    }
  }
}

/* Line editor on the status row; returns false on Esc. */
static bool prompt(app *a, const char *label, char *out, size_t n) {
  size_t len = 0;
  out[0] = 0;
  for (;;) {
    move(LINES - 1, 0);
    clrtoeol();
    put(LINES - 1, 0, COLS - 1, "%s%s", label, out);
    refresh();
    int k = next_key(a);
    if (k == -2 || k == 27) return false;
    if (k == '\n' || k == '\r' || k == KEY_ENTER) return true;
    if ((k == KEY_BACKSPACE || k == 127 || k == 8) && len > 0) out[--len] = 0;
    else if (k >= 32 && k < 127 && len + 1 < n) out[len++] = (char)k, out[len] = 0;
  }
}

static void push(app *a, view_id v) {
  if (a->depth < 8) a->stack[a->depth++] = a->view;
  a->view = v;
}

static void pop(app *a) {
  if (a->depth == 0) {
    a->quit = true;
    return;
  }
  a->view = a->stack[--a->depth];
  if (a->view == V_JOBS) jobs_load(a);
  if (a->view == V_NODES) nodes_load(a);
  if (a->view == V_CLUSTERS) clusters_load(a);
  if (a->view == V_MEMBERS) members_load(a);
}

static void open_next_unlabelled(app *a) {
  int64_t seg = 0, at = 0;
  bool found = false;
  ns_status st = lbl_next_unlabelled(a->db, &seg, &at, &found);
  if (st) {
    db_error(a, st, "finding the next interval");
    return;
  }
  if (!found) {
    set_status(a, false, "No unlabelled detected interval left.");
    return;
  }
  seg_open(a, seg, at);
  if (a->sv_loaded && a->view != V_SEGMENT) push(a, V_SEGMENT);
  if (a->sv_loaded) set_status(a, false, "Highest-scored unlabelled interval.");
}

static void label_range(app *a, int value) {
  size_t lo = a->cursor, hi = a->cursor;
  if (a->mark >= 0) {
    lo = (size_t)a->mark < a->cursor ? (size_t)a->mark : a->cursor;
    hi = (size_t)a->mark < a->cursor ? a->cursor : (size_t)a->mark;
  }
  char note[200];
  if (!prompt(a, value ? "anomalous, note: " : "normal, note: ", note, sizeof note)) {
    set_status(a, false, "Cancelled.");
    return;
  }
  ns_status st = lbl_put_label(a->db, a->sv.seg, t_ms(a, lo), t_ms(a, hi), value, a->author, note);
  if (st) {
    db_error(a, st, "saving the label");
    return;
  }
  a->mark = -1;
  if ((st = lbl_reload_labels(a->db, &a->sv))) db_error(a, st, "reloading labels");
  else set_status(a, false, "Labelled %zu point(s) %s.", hi - lo + 1, value ? "anomalous" : "normal");
}

static void delete_label(app *a) {
  const ns_label *l = label_at(a, t_ms(a, a->cursor));
  if (!l) {
    set_status(a, true, "No label under the cursor.");
    return;
  }
  ns_status st = lbl_delete_label(a->db, l->id);
  if (st) {
    db_error(a, st, "deleting the label");
    return;
  }
  if ((st = lbl_reload_labels(a->db, &a->sv))) db_error(a, st, "reloading labels");
  else set_status(a, false, "Label removed.");
}

static void next_interval_in_segment(app *a) {
  double best = -INFINITY;
  size_t bi = (size_t)-1;
  for (size_t i = 0; i < a->sv.niv; i++) {
    const lbl_interval *iv = &a->sv.iv[i];
    bool covered = false;
    for (size_t k = 0; k < a->sv.nlabels; k++)
      if (a->sv.labels[k].start_ms <= iv->end_ms && iv->start_ms <= a->sv.labels[k].end_ms) covered = true;
    if (!covered && iv->score > best) best = iv->score, bi = i;
  }
  bool all_labelled = bi == (size_t)-1 && a->sv.niv > 0;
  if (all_labelled)
    for (size_t i = 0; i < a->sv.niv; i++)
      if (bi == (size_t)-1 || a->sv.iv[i].score > a->sv.iv[bi].score) bi = i;
  if (bi == (size_t)-1) {
    open_next_unlabelled(a);
    return;
  }
  a->cursor = (size_t)((a->sv.iv[bi].start_ms - a->sv.seg->start_ms) / a->sv.seg->interval_ms);
  set_status(a, false, "%sinterval score %.3g  top: %s", all_labelled ? "All intervals here are labelled; " : "",
             a->sv.iv[bi].score, a->sv.iv[bi].top[0] ? a->sv.iv[bi].top : "-");
}

static void move_member(app *a) {
  if (!a->nmembers) return;
  char buf[32];
  if (!prompt(a, "move to cluster id (or 'new'): ", buf, sizeof buf) || !buf[0]) {
    set_status(a, false, "Cancelled.");
    return;
  }
  int64_t to = 0, made = 0;
  if (strcmp(buf, "new") != 0) {
    char *end;
    to = strtoll(buf, &end, 10);
    if (*end || to <= 0) {
      set_status(a, true, "'%s' is not a cluster id.", buf);
      return;
    }
  }
  const lbl_member *m = &a->members[a->mbl.sel];
  ns_status st = lbl_move_member(a->db, m->seg_id, a->clusters[a->cl.sel].id, to, &made);
  if (st) {
    db_error(a, st, "moving the segment");
    return;
  }
  set_status(a, false, "Segment %lld moved to cluster %lld; both models marked for retraining.",
             (long long)m->seg_id, (long long)made);
  clusters_load(a);
  members_load(a);
}

static void handle_key(app *a, int k) {
  if (k == KEY_RESIZE) return;
  a->status[0] = 0;
  a->status_err = false;
  if (a->view == V_HELP) {
    pop(a);
    return;
  }
  if (k == '?') {
    push(a, V_HELP);
    return;
  }
  if (k == 'Q') {
    a->quit = true;
    return;
  }
  if (k == 'C' && a->view != V_CLUSTERS) {
    clusters_load(a);
    push(a, V_CLUSTERS);
    return;
  }
  if (k == 'J' && a->view != V_JOBS) {
    a->depth = 0;
    a->view = V_JOBS;
    jobs_load(a);
    return;
  }
  if (k == 'q' || k == 27) {
    pop(a);
    return;
  }
  switch (a->view) {
  case V_JOBS:
    if (list_key(&a->jl, a->nj, k)) break;
    if (k == 'f') a->filter = (a->filter + 1) % F_COUNT, jobs_refilter(a);
    else if (k == 's') a->sort = (a->sort + 1) % S_COUNT, jobs_refilter(a);
    else if (k == 'r') jobs_load(a);
    else if (k == 'x') open_next_unlabelled(a);
    else if ((k == '\n' || k == KEY_ENTER) && a->nj) {
      const lbl_job *j = &a->jobs[a->jidx[a->jl.sel]];
      snprintf(a->job_cluster, sizeof a->job_cluster, "%s", j->cluster);
      snprintf(a->job_id, sizeof a->job_id, "%s", j->job_id);
      a->nl.sel = a->nl.top = 0;
      nodes_load(a);
      push(a, V_NODES);
    }
    break;
  case V_NODES:
    if (list_key(&a->nl, a->nnodes, k)) break;
    if (k == 'r') nodes_load(a);
    else if ((k == '\n' || k == KEY_ENTER) && a->nnodes) {
      seg_open(a, a->nodes[a->nl.sel].seg_id, 0);
      if (a->sv_loaded && a->sv.seg->id == a->nodes[a->nl.sel].seg_id) push(a, V_SEGMENT);
    }
    break;
  case V_SEGMENT: {
    size_t T = a->sv.seg->T, step = a->span / 4 ? a->span / 4 : 1;
    switch (k) {
    case 'h': case KEY_LEFT: if (a->cursor > 0) a->cursor--; break;
    case 'l': case KEY_RIGHT: if (a->cursor + 1 < T) a->cursor++; break;
    case 'H': a->i0 = a->i0 > step ? a->i0 - step : 0; a->cursor = a->i0 + a->span / 2; break;
    case 'L': a->i0 += step; if (a->i0 + a->span > T) a->i0 = T - a->span; a->cursor = a->i0 + a->span / 2; break;
    case '+': case '=': a->span /= 2; a->i0 = a->cursor > a->span / 2 ? a->cursor - a->span / 2 : 0; break;
    case '-': a->span *= 2; a->i0 = a->cursor > a->span / 2 ? a->cursor - a->span / 2 : 0; break;
    case '0': a->i0 = 0; a->span = T; break;
    case 'v': a->mark = a->mark >= 0 ? -1 : (long)a->cursor; break;
    case 'a': label_range(a, 1); break;
    case 'n': label_range(a, 0); break;
    case 'd': delete_label(a); break;
    case 'x': next_interval_in_segment(a); break;
    case 'm': push(a, V_METRICS); break;
    case 'r': { ns_status st = lbl_reload_labels(a->db, &a->sv); if (st) db_error(a, st, "reloading labels"); break; }
    default: break;
    }
    if (a->view == V_SEGMENT) seg_clamp(a);
    break;
  }
  case V_METRICS:
    /* Space toggles here rather than paging. */
    if (k == ' ' || k == '\n' || k == KEY_ENTER) a->shown[a->ml.sel] ^= 1;
    else list_key(&a->ml, a->sv.seg->M, k);
    break;
  case V_CLUSTERS:
    if (list_key(&a->cl, a->nclusters, k)) break;
    if (k == 'r') clusters_load(a);
    else if ((k == '\n' || k == KEY_ENTER) && a->nclusters) {
      a->mbl.sel = a->mbl.top = 0;
      members_load(a);
      push(a, V_MEMBERS);
    }
    break;
  case V_MEMBERS:
    if (list_key(&a->mbl, a->nmembers, k)) break;
    if (k == 'M') move_member(a);
    else if ((k == '\n' || k == KEY_ENTER) && a->nmembers) {
      seg_open(a, a->members[a->mbl.sel].seg_id, 0);
      if (a->sv_loaded && a->sv.seg->id == a->members[a->mbl.sel].seg_id) push(a, V_SEGMENT);
    }
    break;
  default: break;
  }
}

static void draw(app *a) {
  erase();
  if (COLS < MIN_COLS || LINES < MIN_ROWS) {
    char msg[96];
    snprintf(msg, sizeof msg, "too small: %dx%d (need %dx%d)", COLS, LINES, MIN_COLS, MIN_ROWS);
    int len = (int)strlen(msg);
    put(LINES / 2, len < COLS ? (COLS - len) / 2 : 0, COLS, "%s", msg);
    refresh();
    return;
  }
  switch (a->view) {
  case V_JOBS: draw_jobs(a); break;
  case V_NODES: draw_nodes(a); break;
  case V_SEGMENT: draw_segment(a); break;
  case V_METRICS: draw_metrics(a); break;
  case V_CLUSTERS: draw_clusters(a); break;
  case V_MEMBERS: draw_members(a); break;
  case V_HELP: draw_help(); break;
  }
  draw_status(a);
  refresh();
}

static void usage(FILE *f) {
  fprintf(f, "usage: nsentry-label [-c FILE] [--db URI] [--script FILE] [--size COLSxROWS] [--dump-dir DIR]\n"
             "  Review nsentry verdicts, label anomalies and adjust clusters. Press ? inside for keys.\n"
             "  --script FILE   drive headless from a keystroke script (also $NSENTRY_LABEL_SCRIPT)\n"
             "  --size WxH      screen size in script mode (default 100x30)\n"
             "  --dump-dir DIR  where the script's :dump NAME writes NAME.screen\n");
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"db", required_argument, 0, 'D'},
                                       {"script", required_argument, 0, 'S'}, {"size", required_argument, 0, 'z'},
                                       {"dump-dir", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
  const char *conf = getenv("NSENTRY_CONF"), *db = NULL, *script_path = getenv("NSENTRY_LABEL_SCRIPT"),
             *dump_dir = NULL;
  int cols = 100, rows = 30, c;
  while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': conf = optarg; break;
    case 'D': db = optarg; break;
    case 'S': script_path = optarg; break;
    case 'd': dump_dir = optarg; break;
    case 'z':
      if (sscanf(optarg, "%dx%d", &cols, &rows) != 2 || cols < 1 || rows < 1 || cols > 1000 || rows > 1000) {
        fprintf(stderr, "nsentry-label: --size wants COLSxROWS, e.g. 100x30, not '%s'\n", optarg);
        return 2;
      }
      break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("nsentry-label %s\n", NS_VERSION); return 0;
    default: usage(stderr); return 2;
    }
  }
  ns_config *cfg = NULL;
  ns_status st = ns_config_create(&cfg);
  if (!st && (conf || access("/etc/nsentry/nsentry.conf", R_OK) == 0))
    st = ns_config_load_file(cfg, conf ? conf : "/etc/nsentry/nsentry.conf");
  if (st) {
    fprintf(stderr, "nsentry-label: config: %s\n", ns_err_message(st));
    ns_config_free(cfg);
    return 1;
  }
  if (!db) db = ns_cfg_str(cfg, NS_CFG_db);

  app a = {0};
  a.mark = -1;
  a.dump_dir = dump_dir;
  const char *user = getenv("USER");
  struct passwd *pw = user ? NULL : getpwuid(getuid());
  snprintf(a.author, sizeof a.author, "%s", user ? user : pw ? pw->pw_name : "unknown");
  if ((st = lbl_data_open(db, &a.db))) {
    fprintf(stderr, "nsentry-label: cannot open database %s: %s\n", db, ns_err_message(st));
    ns_config_free(cfg);
    return 1;
  }
  if (script_path && (st = lbl_script_open(script_path, &a.script))) {
    fprintf(stderr, "nsentry-label: script: %s\n", ns_err_message(st));
    lbl_data_close(a.db);
    ns_config_free(cfg);
    return 1;
  }

  setlocale(LC_ALL, "");
  SCREEN *scr = NULL;
  FILE *devnull_out = NULL, *devnull_in = NULL;
  if (a.script) {
    /* Headless: a virtual screen of the requested size, output discarded;
     * the screen contents are read back for dumps. */
    char buf[16];
    snprintf(buf, sizeof buf, "%d", rows);
    setenv("LINES", buf, 1);
    snprintf(buf, sizeof buf, "%d", cols);
    setenv("COLUMNS", buf, 1);
    use_env(TRUE);
    devnull_out = fopen("/dev/null", "w");
    devnull_in = fopen("/dev/null", "r");
    scr = devnull_out && devnull_in ? newterm("xterm", devnull_out, devnull_in) : NULL;
    if (!scr) {
      fprintf(stderr, "nsentry-label: cannot create a headless screen (terminfo 'xterm' missing?)\n");
      return 1;
    }
    set_term(scr);
  } else {
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
      fprintf(stderr, "nsentry-label: needs a terminal (or --script for headless use)\n");
      lbl_data_close(a.db);
      ns_config_free(cfg);
      return 2;
    }
    initscr();
  }
  /* Leave the terminal sane on SIGTERM/SIGINT/SIGHUP too. */
  signal(SIGTERM, on_signal);
  signal(SIGHUP, on_signal);
  cbreak();
  noecho();
  nonl();
  keypad(stdscr, TRUE);
  curs_set(0);
  set_escdelay(25);
  if (!a.script) timeout(500);

  jobs_load(&a);
  while (!a.quit && !got_signal) {
    draw(&a);
    int k = next_key(&a);
    if (k == -2) break;
    if (k == ERR) continue;
    if (k == '\r') k = '\n';
    if (COLS < MIN_COLS || LINES < MIN_ROWS) {
      if (k == 'q' || k == 'Q') a.quit = true;
      continue;
    }
    if ((a.view == V_SEGMENT || a.view == V_METRICS) && !a.sv_loaded) a.view = V_JOBS;
    handle_key(&a, k);
  }
  endwin();
  if (scr) delscreen(scr);
  if (devnull_out) fclose(devnull_out);
  if (devnull_in) fclose(devnull_in);

  free(a.jobs);
  free(a.jidx);
  free(a.nodes);
  lbl_segview_clear(&a.sv);
  free(a.shown);
  free(a.clusters);
  free(a.members);
  lbl_script_close(a.script);
  lbl_data_close(a.db);
  ns_config_free(cfg);
  return 0;
}
