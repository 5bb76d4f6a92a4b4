/* Typed configuration driven by NS_CONFIG_TABLE (ns_config_table.h).
 * Files are `key = value` lines; `#` starts a comment; unknown keys, bad
 * types and out-of-range values are errors naming file and line. */
#ifndef NS_CONFIG_H
#define NS_CONFIG_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ns_api.h"
#include "ns_config_table.h"
#include "ns_status.h"

typedef enum { NS_CFGT_BOOL, NS_CFGT_INT, NS_CFGT_DOUBLE, NS_CFGT_STRING, NS_CFGT_ENUM,
               NS_CFGT_DURATION, NS_CFGT_SIZE } ns_cfg_type;

typedef enum {
#define NS_X_KEY(sec, name, type, def, lo, hi, choices, doc) NS_CFG_##name,
  NS_CONFIG_TABLE(NS_X_KEY)
#undef NS_X_KEY
  NS_CFG_COUNT_
} ns_cfg_key;

typedef struct ns_cfg_desc {
  const char *section, *name;
  ns_cfg_type type;
  const char *def;
  double lo, hi;
  const char *choices, *doc;
} ns_cfg_desc;

typedef struct ns_config ns_config;

NS_API const ns_cfg_desc *ns_config_desc(ns_cfg_key k);
/* NS_CFG_COUNT_ if unknown. */
NS_API ns_cfg_key ns_config_lookup(const char *name);

/* A config holding every default. */
NS_API ns_status ns_config_create(ns_config **out);
NS_API void ns_config_free(ns_config *c);
/* Set one key from text, validating type and bounds. */
NS_API ns_status ns_config_set(ns_config *c, const char *key, const char *value);
/* Load a key=value file; on error nothing is changed and the detail names file:line. */
NS_API ns_status ns_config_load_file(ns_config *c, const char *path);
/* Apply "key=value" strings (command-line overrides); same validation. */
NS_API ns_status ns_config_apply_args(ns_config *c, int n, char *const *kv);

NS_API bool ns_cfg_bool(const ns_config *c, ns_cfg_key k);
/* INT, DURATION (milliseconds), SIZE (bytes), BOOL (0/1). */
NS_API int64_t ns_cfg_int(const ns_config *c, ns_cfg_key k);
NS_API double ns_cfg_double(const ns_config *c, ns_cfg_key k);
/* STRING and ENUM (the enum's canonical lower-case choice). */
NS_API const char *ns_cfg_str(const ns_config *c, ns_cfg_key k);

/* Current values as a loadable file (no comments), all keys. */
NS_API ns_status ns_config_dump(const ns_config *c, FILE *f);
/* The commented sample config with defaults (docs/nsentry.conf). */
NS_API ns_status ns_config_write_sample(FILE *f);

/* Parsers shared with other modules. */
NS_API ns_status ns_parse_duration_ms(const char *s, int64_t *out_ms);
NS_API ns_status ns_parse_size(const char *s, int64_t *out_bytes);
NS_API ns_status ns_parse_bool(const char *s, bool *out);

#endif
