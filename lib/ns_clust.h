/* Hierarchical agglomerative clustering (HAC), silhouette and the choice of
 * the cluster count, as pure math on a condensed distance matrix.
 *
 * Condensed layout (scipy's): for n items, D holds the n(n-1)/2 pairwise
 * distances d(i,j), i < j, row by row; see ns_cond_index(). float32 keeps a
 * 13,379-segment matrix at 358 MB.
 *
 * HAC is the nearest-neighbour-chain algorithm (O(n^2) time, one working copy
 * of D) with Lance-Williams updates for complete, average, single and ward.
 * Ward works on the given (Euclidean) distances, as scipy's linkage(X,'ward')
 * does on the distances it computes from X. Merges come out sorted by height
 * in scipy's convention, so partitions match scipy fcluster(maxclust) and
 * sklearn AgglomerativeClustering (compare partitions, not label numbers). */
#ifndef NS_CLUST_H
#define NS_CLUST_H
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_status.h"

typedef enum { NS_LINKAGE_COMPLETE = 0, NS_LINKAGE_AVERAGE, NS_LINKAGE_SINGLE, NS_LINKAGE_WARD } ns_linkage;

/* "complete|average|single|ward" (case-insensitive). */
NS_API ns_status ns_linkage_parse(const char *s, ns_linkage *out);
NS_API const char *ns_linkage_name(ns_linkage l);

/* Entries of a condensed matrix for n items; 0 when n < 2. */
static inline size_t ns_cond_size(size_t n) { return n < 2 ? 0 : n * (n - 1) / 2; }
/* Index of d(i,j) for i != j (either order). */
static inline size_t ns_cond_index(size_t n, size_t i, size_t j) {
  if (i > j) {
    size_t t = i;
    i = j;
    j = t;
  }
  return n * i - i * (i + 1) / 2 + (j - i - 1);
}

/* Progress for long runs: `stage` is a short name ("distances", "hac",
 * "silhouette", ...), done/total its units. Called from the calling thread. */
typedef void (*ns_progress_fn)(void *ctx, const char *stage, size_t done, size_t total);

/* One merge, scipy linkage-matrix convention: a < b are cluster ids (< n: an
 * item, n + r: the cluster formed by merge r), height the linkage distance,
 * size the new cluster's item count. */
typedef struct ns_merge {
  size_t a, b;
  double height;
  size_t size;
} ns_merge;

/* n-1 merges sorted by height (ties keep the order they were found).
 * D must be finite and >= 0 (NS_ERR_NONFINITE / NS_ERR_RANGE naming the
 * pair otherwise); it is not modified. n >= 1 (n == 1 gives no merges and
 * *out = NULL). Caller frees *out. */
NS_API ns_status ns_clust_hac(const float *D, size_t n, ns_linkage link, ns_progress_fn progress, void *pctx,
                              ns_merge **out);

/* Partition after the first n-k merges: labels[i] in 0..k-1, numbered in
 * order of first appearance (item 0 -> 0). 1 <= k <= n. */
NS_API ns_status ns_clust_cut(const ns_merge *z, size_t n, size_t k, int *labels);

/* Renumber labels in order of first appearance; returns the cluster count. */
NS_API size_t ns_clust_canonical(int *labels, size_t n);

/* Mean silhouette coefficient (sklearn's silhouette_score on a precomputed
 * matrix): a sample alone in its cluster scores 0, 0/0 scores 0. labels must
 * be 0..k-1 with 2 <= k <= n-1 (NS_ERR_RANGE otherwise). threads: 0 = online
 * CPUs. */
NS_API ns_status ns_clust_silhouette(const float *D, size_t n, const int *labels, int threads, double *out);

/* Merge clusters smaller than min_size into their nearest cluster (smallest
 * mean distance between members: the average-linkage distance on D), the
 * smallest cluster first, until every cluster has >= min_size members or one
 * cluster is left. labels are renumbered canonically; *k is updated. */
NS_API ns_status ns_clust_merge_small(const float *D, size_t n, int *labels, size_t *k, size_t min_size);

typedef struct ns_clust_opts {
  ns_linkage linkage;
  size_t k_min, k_max;   /* silhouette search range (clipped to 2..n-1) */
  size_t min_size;       /* see ns_clust_merge_small; <= 1 = off */
  int threads;           /* 0 = online CPUs */
  ns_progress_fn progress;
  void *progress_ctx;
} ns_clust_opts;

typedef struct ns_clust_result {
  size_t n;
  size_t k_lo, k_hi;     /* candidates tried; k_hi < k_lo when none could be */
  double *silhouette;    /* k_hi-k_lo+1 values, silhouette[k - k_lo] */
  size_t k_best;         /* best silhouette (smallest k on ties); 1 if no candidate */
  double sil_best;       /* 0 if no candidate */
  size_t k;              /* clusters after merging tiny ones */
  int *labels;           /* n final labels 0..k-1, canonical */
  ns_merge *merges;      /* the dendrogram (n-1 rows) */
} ns_clust_result;

/* HAC, silhouette for every k in the range (one pass over D per batch of
 * k values, since the cuts are nested), best k, then tiny-cluster merging.
 * When no k in the range can be scored (n < 3, or k_min > n-1) the result
 * is one cluster. */
NS_API ns_status ns_clust_select(const float *D, size_t n, const ns_clust_opts *opts, ns_clust_result **out);
NS_API void ns_clust_result_free(ns_clust_result *r);

/* Run fn(ctx, tid) on `threads` threads (0 = online CPUs; the caller's
 * thread is tid 0). Used for the O(n^2) passes of clustering. */
NS_API int ns_clust_threads(int threads);
NS_API ns_status ns_clust_parallel(int threads, void (*fn)(void *ctx, int tid), void *ctx);

#endif
