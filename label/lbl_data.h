/* nsentry-label's view of the database: the lists and edits the screens
 * need, over ns_store / ns_db (SQLite or PostgreSQL). Every call returns an
 * ns_status; a vanished database is an error, never a crash. */
#ifndef LBL_DATA_H
#define LBL_DATA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ns_mts.h"
#include "ns_status.h"
#include "ns_store.h"

typedef struct lbl_data lbl_data;

typedef struct lbl_job {
  char cluster[64], job_id[64], user[32], partition[32];
  int nnodes, nsegments;
  int64_t start_ms, end_ms;
  int verdict;          /* -1 none, 0 normal, 1 anomalous */
  double score;         /* max node score; NaN if unscored */
  int nlabels;
} lbl_job;

typedef struct lbl_node {
  char node[64];
  int64_t seg_id;
  int64_t start_ms, end_ms;
  size_t T;
  int verdict;
  double score;
  char cluster[32];     /* matched cluster label, "" if none */
  char model[32];
  int nlabels;
} lbl_node;

typedef struct lbl_interval {
  int64_t start_ms, end_ms;
  double score;
  char top[96];         /* "cpu_user+, mem_used-" */
} lbl_interval;

/* Everything the segment screen shows. */
typedef struct lbl_segview {
  ns_segment *seg;
  float *score;         /* T or NULL when no per-point score is stored */
  double threshold;     /* NaN if unknown */
  int verdict;
  char cluster[32];
  double score_max;
  char model[32];
  lbl_interval *iv;
  size_t niv;
  ns_label *labels;
  size_t nlabels;
} lbl_segview;

typedef struct lbl_cluster {
  int64_t id;
  char label[32];
  char kind[8];
  int size;
  double radius;
  char model[32];
  bool needs_retrain;
} lbl_cluster;

typedef struct lbl_member {
  int64_t seg_id;
  char node[64], job_id[64];
  double distance;
  bool representative;
} lbl_member;

ns_status lbl_data_open(const char *uri, lbl_data **out);
void lbl_data_close(lbl_data *d);
/* NS_ERR_DB with a detail when the database has gone away. */
ns_status lbl_data_alive(lbl_data *d);

ns_status lbl_list_jobs(lbl_data *d, lbl_job **out, size_t *n);
ns_status lbl_list_nodes(lbl_data *d, const char *cluster, const char *job_id, lbl_node **out, size_t *n);
ns_status lbl_load_segview(lbl_data *d, int64_t seg_id, lbl_segview *out);
void lbl_segview_clear(lbl_segview *v);
ns_status lbl_reload_labels(lbl_data *d, lbl_segview *v);
ns_status lbl_put_label(lbl_data *d, const ns_segment *seg, int64_t start_ms, int64_t end_ms, int label,
                        const char *author, const char *note);
ns_status lbl_delete_label(lbl_data *d, int64_t label_id);
/* The job/node/segment holding the highest-scored interval no label covers. */
ns_status lbl_next_unlabelled(lbl_data *d, int64_t *seg_id, int64_t *start_ms, bool *found);

ns_status lbl_list_clusters(lbl_data *d, lbl_cluster **out, size_t *n);
ns_status lbl_list_members(lbl_data *d, int64_t cluster_id, lbl_member **out, size_t *n);
/* Move a segment to another cluster (to_cluster_id <= 0: a new cluster of
 * the same library and kind); recompute both clusters' centroid and radius
 * and mark their models for retraining. */
ns_status lbl_move_member(lbl_data *d, int64_t seg_id, int64_t from_cluster_id, int64_t to_cluster_id,
                          int64_t *new_cluster_id);
#endif
