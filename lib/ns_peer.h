/* Peer reference scores for contamination-robust training.
 *
 * An anomaly (injected, or a real one in the training history) is on one
 * node; a regime the model fits badly is on every node of the job. So a
 * training stretch is judged against the same times on its peers: the job's
 * other nodes, scored by the same model (an idle segment's peers are other
 * nodes' idle segments overlapping it). A window far above its peers is
 * contamination; a window as bad as its peers is a hard regime and stays.
 * Single-node jobs have no peers: callers fall back to the segment's own
 * median (ns_train_relative_error). */
#ifndef NS_PEER_H
#define NS_PEER_H
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"
#include "ns_model.h"
#include "ns_mts.h"
#include "ns_status.h"
#include "ns_store.h"
#include "ns_train.h"

/* Peer lists per segment and the cluster's idle spans, kept across the
 * calls of one training (the rounds ask again for the same series). */
typedef struct ns_peer_cache ns_peer_cache;
NS_API ns_status ns_peer_cache_create(ns_peer_cache **out);
NS_API void ns_peer_cache_free(ns_peer_cache *c);

/* For every series i (segs[i] its stored segment, ser[i] its model input
 * and segment code), ref[i][t] = median score the model m gives the same
 * time on up to max_peers peer segments (nearest row within half an
 * interval; NAN where no peer covers t). *ref_out: n arrays, free with
 * ns_peer_ref_free. A series whose segment has no id, or no peer, gets an
 * all-NAN array. cache: may be NULL (one for this call). Errors: store and
 * model errors, NS_ERR_NOMEM. */
NS_API ns_status ns_peer_ref(ns_store *st, ns_peer_cache *cache, const ns_model *m, ns_segment *const *segs,
                             const ns_train_series *ser, size_t n, int max_peers, float ***ref_out);
NS_API void ns_peer_ref_free(float **ref, size_t n);

/* Window error over the mean peer reference of the same points (w, nw as
 * from ns_train_list_windows over series of lengths given by ser); NAN where
 * fewer than half of the window's points have a reference. */
NS_API void ns_peer_window_ratio(const float *err, const ns_train_window *w, size_t nw, int window,
                                 const ns_train_series *ser, float *const *ref, float *out);

#endif
