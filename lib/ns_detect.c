#include "ns_detect.h"
#include <stdlib.h>

/* Until the detection area lands, there is never an active library: callers
 * must report "no model library" rather than invent a verdict. */
ns_status ns_library_load_active(ns_store *st, ns_library **out) {
  (void)st;
  *out = NULL;
  return ns_errorf(NS_ERR_NOTFOUND, "no model library is active (run `nsentry train`)");
}
ns_status ns_library_load(ns_store *st, int64_t id, ns_library **out) {
  (void)st;
  *out = NULL;
  return ns_errorf(NS_ERR_NOTFOUND, "model library %lld not found", (long long)id);
}
void ns_library_free(ns_library *lib) { (void)lib; }
int64_t ns_library_id(const ns_library *lib) { (void)lib; return 0; }
const char *ns_library_version(const ns_library *lib) { (void)lib; return ""; }
ns_status ns_detect_segment(const ns_library *lib, const ns_segment *raw, const ns_config *cfg,
                            ns_node_verdict **out) {
  (void)lib, (void)raw, (void)cfg;
  *out = NULL;
  return ns_errorf(NS_ERR_STATE, "no model library loaded");
}
void ns_node_verdict_free(ns_node_verdict *v) {
  if (!v) return;
  free(v->intervals);
  free(v->score);
  free(v->flag);
  free(v);
}
