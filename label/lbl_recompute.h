/* Recompute a stored cluster after its membership changed by hand: the same
 * steps as the cluster library build (ns_clib.h) on the current members. */
#ifndef LBL_RECOMPUTE_H
#define LBL_RECOMPUTE_H
#include <stdint.h>
#include "ns_status.h"
#include "ns_store.h"

/* Inside the caller's transaction: updates clusters.size/radius/centroid and
 * cluster_members.distance/representative of `cluster_id`. A cluster left
 * empty keeps no centroid (size 0, radius NULL). */
ns_status lbl_recompute_cluster(ns_store *st, int64_t cluster_id);
#endif
