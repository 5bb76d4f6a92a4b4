/* The cluster library: behaviour clusters of training segments, built from
 * their features, and online matching of a new segment to them.
 *
 * ONE representation and ONE distance are used everywhere (clustering,
 * choosing representatives, closeness weights, radii, matching):
 *   - a segment's representation is the M x NS_CLIB_NFEAT matrix of
 *     row-standardised features (ns_feat_segment) of its first match_len
 *     (the whole segment if shorter). Library members are described by the
 *     same prefix that is available online, so a segment's distance to its
 *     cluster is the same whether it is computed during training or later.
 *   - d(a, b) = sum over metrics m of || a_m - b_m ||_2 (ns_clib_distance).
 *
 * Per kind (job, idle) separately (one_pool: all segments together, as
 * kind job): distance matrix -> HAC (ns_clust) ->
 * k by best silhouette in [k_min, k_max] -> clusters below min_size merged
 * into the nearest. Per cluster (method §3.4, with the one distance):
 *   1. c0 = mean of all members' representations;
 *   2. representatives = the n_rep members nearest c0 (all if fewer);
 *   3. centroid = mean of the representatives;
 *   4. every member's distance to the centroid; radius = the largest;
 *   5. closeness weight of representative i: w_i = 1 - 0.9 (d_i - dmin) /
 *      (dmax - dmin), in [0.1, 1] (1 if all equal). The reference gives the
 *      farthest weight 0, which drops it from training; we never do.
 *   6. MAC: mac_m = sum_i (w_i / sum w) * mean_t |x_t,m - x_t-1,m| over the
 *      representatives' whole preprocessed series; loss weight
 *      W_m = 1 - 0.9 (mac_m - min) / (max - min), normalised to sum 1 (stable
 *      metrics weigh most; the most volatile keeps 0.1/1 of the top weight).
 *   7. sub-patterns (strata >= 2; job clusters of more than 2 x strata members):
 *      up to 512 members after the representatives, evenly spaced in rank,
 *      split by Ward HAC into `strata` groups; groups holding at least
 *      max(2, sample / (4 strata)) of them count (smaller ones are outliers).
 *      Every member is given the counted group of its nearest medoid
 *      (stratum), and cover lists the sampled members group by group,
 *      largest group first, most central first. Training gives each
 *      sub-pattern its own members (train_strata_members, ns_pipeline).
 *
 * Matching: representation of the segment's prefix -> distances to the
 * centroids of clusters of the segment's kind (all clusters if the library
 * has none of that kind) -> nearest first; unmatched (a new pattern) when
 * distance > radius_factor * radius.
 *
 * For the model area, per cluster c: clusters[c].members[0..n_rep) are the
 * representative segment ids, rep_weight[r] their closeness weights, and the
 * segment code of representative r is r (nearest the centroid = 0);
 * mac_weight[m] the loss weights (M floats summing to 1, library metric order).
 * For detection: ns_clib_match_segment() gives cluster index, label,
 * distance, unmatched flag and the nearest representative (its code).
 *
 * Storage: ns_clib_save() writes the whole library as one versioned artifact
 * (kind "clib", name "clusters"; self-contained binary with checksum) and,
 * when given a model_libraries id, the clusters / cluster_members rows that
 * verdicts reference (clusters.params holds {"clib_version":V,"index":c}). */
#ifndef NS_CLIB_H
#define NS_CLIB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_clust.h"
#include "ns_config.h"
#include "ns_mts.h"
#include "ns_status.h"
#include "ns_store.h"

/* Features per metric (NS_FEAT_N of ns_feat.h). */
#define NS_CLIB_NFEAT 134

typedef struct ns_clib_params {
  ns_linkage linkage;
  size_t k_min, k_max;   /* silhouette search range */
  size_t min_size;       /* tiny clusters are merged */
  size_t n_rep;          /* representatives per cluster (K) */
  int64_t match_len_ms;  /* prefix that represents a segment */
  double radius_factor;
  double feat_fs;        /* Hz passed to the features; 0 = 1/interval */
  int threads;           /* 0 = online CPUs */
  size_t strata;         /* sub-patterns per job cluster for training coverage (ns_clib_cluster_fill); 0 = none */
  bool one_pool;         /* cluster every segment together, whatever its kind (C1); not saved */
} ns_clib_params;

/* Defaults equal to the config table's. */
NS_API void ns_clib_params_default(ns_clib_params *p);
NS_API ns_status ns_clib_params_from_config(const ns_config *cfg, ns_clib_params *p);

/* Representations of n segments: segment i is the M x NS_CLIB_NFEAT matrix
 * at f + i*M*NS_CLIB_NFEAT. */
typedef struct ns_featset {
  size_t n, M;
  int64_t *ids;          /* segment ids (0 = not stored) */
  ns_seg_kind *kind;
  float *f;
} ns_featset;
NS_API ns_status ns_featset_create(size_t n, size_t M, ns_featset **out);
NS_API void ns_featset_free(ns_featset *fs);

/* Rows of the prefix of s that represents it: min(T, match_len / interval),
 * at least 1. */
NS_API size_t ns_clib_prefix_rows(const ns_segment *s, int64_t match_len_ms);
/* The representation of s (M x NS_CLIB_NFEAT, malloc'ed). Errors: non-finite
 * values (NS_ERR_NONFINITE naming row and metric), a prefix shorter than the
 * features need (NS_ERR_TOO_SHORT), non-finite features. */
NS_API ns_status ns_clib_segment_features(const ns_segment *s, const ns_clib_params *p, float **out);

/* The one segment distance (sum over M metrics of per-metric L2). */
NS_API double ns_clib_distance(const float *a, const float *b, size_t M);
/* Condensed matrix (ns_clust layout) over the segments idx[0..n) of fs
 * (idx NULL = all), computed on `threads` threads with the same kernel as
 * ns_clib_distance (bit-identical values). *out malloc'ed. */
NS_API ns_status ns_clib_distance_matrix(const ns_featset *fs, const size_t *idx, size_t n, int threads,
                                         ns_progress_fn progress, void *pctx, float **out);

typedef struct ns_clib_cluster {
  ns_seg_kind kind;
  int label;             /* number within its kind, 0.. */
  int64_t db_id;         /* clusters.id when saved for a model library; else 0 */
  size_t size;
  int64_t *members;      /* size segment ids: representatives first, each part nearest the centroid first */
  float *member_dist;    /* their distances to the centroid */
  size_t n_rep;          /* min(size, params.n_rep) */
  float *rep_weight;     /* n_rep closeness weights in [0.1, 1] */
  float *rep_feat;       /* n_rep x M x NFEAT representations (nearest-representative queries) */
  float *centroid;       /* M x NFEAT */
  double radius;         /* largest member distance */
  float *mac;            /* M closeness-weighted MAC values; NULL until ns_clib_set_mac */
  float *mac_weight;     /* M loss weights summing to 1; NULL until ns_clib_set_mac */
  /* Sub-patterns for training coverage (params.strata; ns_clib_cluster_fill);
   * n_strata 0: none, and stratum/cover are NULL. */
  size_t n_strata;
  int32_t *stratum;      /* size: each member's sub-pattern 0..n_strata-1 (nearest medoid), -1 = none */
  size_t n_cover;
  uint64_t *cover;       /* member indices of the sampled members, by sub-pattern (largest first), central first */
} ns_clib_cluster;

/* Silhouette sweep of one kind. */
typedef struct ns_clib_sweep {
  size_t n;              /* segments of this kind */
  size_t k_lo, k_hi;     /* candidates; none when k_hi < k_lo */
  double *silhouette;    /* k_hi-k_lo+1 */
  size_t k_best, k;      /* best by silhouette, after merging tiny clusters */
  double sil_best;
} ns_clib_sweep;

typedef struct ns_clib {
  int64_t version;       /* artifact version when saved/loaded; 0 otherwise */
  ns_clib_params params;
  size_t M;
  char **metrics;        /* M names: the library's metric schema */
  size_t n_clusters;
  ns_clib_cluster *clusters; /* job clusters first, then idle */
  ns_clib_sweep sweep[2];    /* [NS_SEG_JOB], [NS_SEG_IDLE] */
} ns_clib;

NS_API void ns_clib_free(ns_clib *lib);

/* Steps 1-5 and 7 above for one cluster whose members are the featset rows
 * rows[0..sz): representatives (p->n_rep), centroid, member distances,
 * radius, closeness weights (not MAC), sub-patterns (p->strata, on
 * p->threads). Used by the build and by other groupings
 * of the same featset (the C2 ablation). */
NS_API ns_status ns_clib_cluster_fill(const ns_featset *fs, const size_t *rows, size_t sz, const ns_clib_params *p,
                                      ns_clib_cluster *c);

/* Build from representations (job and idle rows of fs clustered apart).
 * metrics: fs->M names. MAC statistics are left unset. */
NS_API ns_status ns_clib_build(const ns_featset *fs, const char *const *metrics, const ns_clib_params *p,
                               ns_progress_fn progress, void *pctx, ns_clib **out);
/* Set cluster c's MAC statistics from its representatives' preprocessed
 * segments, reps[r] being members[r] (r < n_rep). Metric names must match. */
NS_API ns_status ns_clib_set_mac(ns_clib *lib, size_t c, const ns_segment *const *reps);

/* Everything from stored segments: the segments that f selects are loaded
 * one at a time for their features, clustered, and the representatives are
 * loaded again for MAC. All must share one metric schema. Progress stages:
 * "features", "distances", "hac", "silhouette", "mac". */
NS_API ns_status ns_clib_build_store(ns_store *st, const ns_seg_filter *f, const ns_clib_params *p,
                                     ns_progress_fn progress, void *pctx, ns_clib **out);

typedef struct ns_clib_match {
  size_t cluster;        /* index into lib->clusters */
  ns_seg_kind kind;
  int label;
  int64_t db_id;
  double distance;       /* to the centroid */
  double limit;          /* radius_factor * radius */
  bool unmatched;        /* distance > limit: a new pattern */
  size_t nearest_rep;    /* nearest representative = its segment code */
  double rep_distance;
} ns_clib_match;

/* Nearest clusters of `kind` to a representation (M x NFEAT), nearest
 * first; up to n_best written, *n_out how many. */
NS_API ns_status ns_clib_match_features(const ns_clib *lib, ns_seg_kind kind, const float *feat,
                                        ns_clib_match *best, size_t n_best, size_t *n_out);
/* Same from a preprocessed segment: its metrics must be the library's, in
 * order (NS_ERR_SCHEMA naming the first difference). */
NS_API ns_status ns_clib_match_segment(const ns_clib *lib, const ns_segment *seg, ns_clib_match *best,
                                       size_t n_best, size_t *n_out);

/* Self-contained binary form ("NSCLIB\0\1", format version, checksum). */
NS_API ns_status ns_clib_serialize(const ns_clib *lib, void **buf, size_t *n);
NS_API ns_status ns_clib_deserialize(const void *buf, size_t n, ns_clib **out);

/* Save as the next artifact version (lib->version is set). library_id > 0
 * also writes clusters / cluster_members rows for that model_libraries row
 * (and sets each cluster's db_id), all in one transaction. A library that
 * already has a version (saved or loaded) is not written again: only the
 * rows are added, so a training pipeline can attach the version that
 * `nsentry cluster` saved. Set lib->version = 0 first to save a modified
 * library as a new version. */
NS_API ns_status ns_clib_save(ns_store *st, ns_clib *lib, int64_t library_id);
/* version <= 0: the latest. */
NS_API ns_status ns_clib_load(ns_store *st, int64_t version, ns_clib **out);
/* The library saved for a model library, with db ids filled in. */
NS_API ns_status ns_clib_load_for_library(ns_store *st, int64_t library_id, ns_clib **out);

#endif
