/* Ablation C2 (paper Table 5): the cluster library with its behaviour
 * clusters replaced by random groups. Each kind keeps the same number of
 * clusters and the same cluster sizes as a reference library (normally the
 * HAC one), but members are drawn uniformly at random (seeded). Per group,
 * centroid, representatives, closeness weights and radius are then computed
 * exactly as ns_clib_build does (see ns_clib.h), so the rest of the pipeline
 * (MAC weights, per-cluster models, matching) runs unchanged. */
#ifndef NS_CLIB_RANDOM_H
#define NS_CLIB_RANDOM_H
#include <stdint.h>
#include "ns_api.h"
#include "ns_clib.h"
#include "ns_status.h"
#include "ns_store.h"

/* Random regrouping of the segments of fs with ref's cluster sizes. fs must
 * hold exactly the segments ref was built from (per kind the same count;
 * every member id of ref present in fs), in any order. The result has ref's
 * params, metric schema and sweep, version 0, no db ids and no MAC
 * statistics (set them with ns_clib_random_set_mac_store or ns_clib_set_mac).
 * Errors: mismatched fs (NS_ERR_INVAL naming the kind / segment). */
NS_API ns_status ns_clib_randomize(const ns_clib *ref, const ns_featset *fs, uint64_t seed, ns_clib **out);

/* Everything from stored segments, like ns_clib_build_store: features of the
 * segments f selects (too-short ones skipped), the HAC library (sizes), the
 * random regrouping, then MAC statistics from the new representatives.
 * ref_out (may be NULL) receives the HAC library with its MAC statistics
 * unset, for comparison. Progress stages as ns_clib_build_store's. */
NS_API ns_status ns_clib_random_build_store(ns_store *st, const ns_seg_filter *f, const ns_clib_params *p,
                                            uint64_t seed, ns_progress_fn progress, void *pctx, ns_clib **out,
                                            ns_clib **ref_out);

/* MAC statistics of every cluster of lib from its representatives' stored
 * segments (ns_clib_set_mac per cluster). */
NS_API ns_status ns_clib_random_set_mac_store(ns_store *st, ns_clib *lib);

#endif
