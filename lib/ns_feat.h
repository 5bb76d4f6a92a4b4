/* TSFEL-0.1.7-equivalent feature extraction: 134 features per metric, in
 * TSFEL's (lexicographic) column order, with the 256 "FFT mean coefficient"
 * columns averaged into one, as the NodeSentry reference does. Formulas,
 * guards for constant/near-constant series and tolerances: docs/features.md. */
#ifndef NS_FEAT_H
#define NS_FEAT_H
#include <stddef.h>
#include "ns_api.h"
#include "ns_mts.h"
#include "ns_status.h"

#define NS_FEAT_N 134

/* TSFEL column name, i in [0, NS_FEAT_N); NULL outside. */
NS_API const char *ns_feat_name(int i);
/* Shortest series accepted (LPC needs 12 samples). */
NS_API size_t ns_feat_min_length(void);

/* Raw TSFEL-equivalent features of one series, TSFEL column order.
 * fs: sampling frequency in Hz (the reference used TSFEL's default 100).
 * Errors: NS_ERR_TOO_SHORT (n < ns_feat_min_length()), NS_ERR_NONFINITE
 * (detail names the index), NS_ERR_INVAL (NULL, fs not finite and > 0).
 * Kurtosis and Skewness are NaN for a constant series (scipy's guard). */
NS_API ns_status ns_feat_series(const double *x, size_t n, double fs, double out[NS_FEAT_N]);

/* Row z-score (ddof = 1) in place: non-finite entries are skipped in the
 * mean and std and set to 0; a constant row -> all 0; the features of a
 * constant series (peak-to-peak distance exactly 0) -> all 0. */
NS_API void ns_feat_rowz(double f[NS_FEAT_N]);

/* Features of rows [t0, t1) of every metric of a segment, row-standardised:
 * *out is M x NS_FEAT_N float32, row-major (caller frees with free()).
 * threads <= 0 -> all online CPUs. The result does not depend on threads. */
NS_API ns_status ns_feat_segment(const ns_segment *s, size_t t0, size_t t1, double fs, int threads,
                                 float **out);

/* Features of all rows of each of nseg segments with one pool of threads
 * over every (segment, metric): out[i] is segs[i]->M x NS_FEAT_N float32
 * (caller frees each). On error every out[i] is NULL and the detail names
 * the segment (node), metric and row. threads <= 0 -> all online CPUs. */
NS_API ns_status ns_feat_segments(const ns_segment *const *segs, size_t nseg, double fs, int threads,
                                  float **out);

/* Reusable per-thread workspace: buffers, windows, wavelet kernels and the
 * MFCC filterbank are kept between calls of the same length and fs. FFTW
 * plans are cached process-wide per length (planner calls are serialised). */
typedef struct ns_feat_ws ns_feat_ws;
NS_API ns_status ns_feat_ws_create(ns_feat_ws **out);
NS_API void ns_feat_ws_free(ns_feat_ws *ws);
/* ns_feat_series with a workspace; one workspace per thread. */
NS_API ns_status ns_feat_series_ws(ns_feat_ws *ws, const double *x, size_t n, double fs,
                                   double out[NS_FEAT_N]);

/* Destroy the cached FFTW plans that no live workspace holds (optional,
 * e.g. at exit; safe while other threads compute features). */
NS_API void ns_feat_cleanup(void);

#endif
