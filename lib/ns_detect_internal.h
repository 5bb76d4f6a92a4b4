/* Shared between ns_detect.c and ns_pipeline.c (not installed). */
#ifndef NS_DETECT_INTERNAL_H
#define NS_DETECT_INTERNAL_H
#include "ns_baseline.h"
#include "ns_clib.h"
#include "ns_detect.h"
#include "ns_model.h"
#include "ns_pipeline.h"
#include "ns_prep.h"

#define NS_LIBRARY_FORMAT 1

struct ns_library {
  int64_t id;
  char version[32];
  ns_variant variant;
  ns_prep_params *prep;  /* NULL: trained on already-preprocessed segments */
  ns_clib *clib;
  ns_model **models;     /* one per clib cluster ... */
  ns_baseline **baselines; /* ... or, where that is NULL, a baseline (variants zscore, ae) */
  size_t n_models;
  size_t M;
  char **metrics;
};

/* model_libraries.params, JSON text:
 * {"format":1,"variant":"full","prep_cluster":"lab","prep_version":3,"clib_version":7} */
typedef struct ns_library_params {
  ns_variant variant;
  char prep_cluster[64];
  int64_t prep_version, clib_version;
} ns_library_params;
ns_status ns_library_params_parse(const char *json, ns_library_params *p);
/* Whether variant v puts a baseline in every cluster, and which kind. */
bool ns_variant_baseline(ns_variant v, ns_baseline_kind *kind);
#endif
